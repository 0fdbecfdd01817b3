//! hookd as a process: the config the bench writes for it, finding the binary, spawning
//! `hookd serve`, and stopping it.
//!
//! hookd listens on `127.0.0.1:0`; the bench learns the port from the `listening on`
//! line of its log (kept at `info` whatever `--log` says). "Ready" is the first
//! `/healthz` 200 after the spawn (the restart figure of scenario d). While it runs, its
//! `VmRSS` is sampled every 100 ms; [`Hookd::stop`] reads `VmHWM`, sends SIGTERM and
//! times the clean exit (the `stop` line).

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::Args;
use crate::api::Api;
use crate::rss::{RssSampler, RssStats, proc_status_kib};

/// Finds the hookd binary, or exits with a message saying how to build it.
pub fn locate_hookd(explicit: Option<&Path>) -> PathBuf {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            // target/<profile>/examples/bench → target/<profile>/hookd
            let exe = std::env::current_exe().expect("path of the bench executable");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("the bench runs from target/<profile>/examples");
            profile_dir.join("hookd")
        }
    };
    if !path.is_file() {
        eprintln!(
            "bench: hookd binary not found at {}\n\
             build it first with `cargo build --release` (same CARGO_TARGET_DIR as the \
             bench), or pass --hookd PATH",
            path.display()
        );
        std::process::exit(2);
    }
    path
}

/// A running `hookd serve`, with its RSS sampled every 100 ms.
pub struct Hookd {
    pub child: Option<Child>,
    pub pid: u32,
    pub addr: SocketAddr,
    /// Spawn → first `/healthz` 200.
    pub ready: Duration,
    pub log_path: PathBuf,
    pub sampler: RssSampler,
}

/// What [`Hookd::stop`] observed.
pub struct Stopped {
    pub rss: RssStats,
    /// SIGTERM → exit.
    pub stop_time: Duration,
    pub status: Option<ExitStatus>,
}

impl Hookd {
    /// Starts `hookd serve --config config` and waits until it answers `/healthz`.
    /// `label` names it in the output ("hookd", "node 1").
    pub fn spawn(bin: &Path, config: &Path, log_path: &Path, args: &Args, label: &str) -> Hookd {
        let log = File::create(log_path).expect("create the hookd log file");
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            // `listening on` is logged at info by hookd::daemon: keep it whatever --log says.
            .env("RUST_LOG", format!("{},hookd::daemon=info", args.log))
            // The config file names the store; an inherited URL would override it.
            .env_remove("HOOKD_POSTGRES_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let pid = child.id();
        let addr = wait_for_listen_addr(&mut child, log_path);
        let health = Api::new(addr);
        let deadline = Instant::now() + Duration::from_secs(60);
        while health.get_status("/healthz") != Some(200) {
            assert!(
                Instant::now() < deadline,
                "hookd did not answer /healthz 200 within 60 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let ready = started.elapsed();
        println!(
            "{label:<18}pid {pid}, API on {addr}, ready in {:.0} ms",
            ready.as_secs_f64() * 1e3
        );
        Hookd {
            child: Some(child),
            pid,
            addr,
            ready,
            log_path: log_path.to_path_buf(),
            sampler: RssSampler::start(pid),
        }
    }

    pub fn rss_now(&self) -> u64 {
        proc_status_kib(self.pid, "VmRSS").unwrap_or(0)
    }

    /// Reads the peak RSS, sends SIGTERM and waits (at most 60 s) for a clean exit.
    pub fn stop(mut self) -> Stopped {
        let rss = self.sampler.finish(self.pid);
        let Some(mut child) = self.child.take() else {
            unreachable!("stop is called once");
        };
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        if !sent.is_ok_and(|s| s.success()) {
            let _ = child.kill();
        }
        let deadline = started + Duration::from_secs(60);
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = child.kill();
                    break child.wait().ok();
                }
            }
        };
        Stopped {
            rss,
            stop_time: started.elapsed(),
            status,
        }
    }
}

impl Drop for Hookd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls hookd's log for `listening on ADDR`.
pub fn wait_for_listen_addr(child: &mut Child, log_path: &Path) -> SocketAddr {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let log = std::fs::read_to_string(log_path).unwrap_or_default();
        if let Some(addr) = log
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
        {
            return addr;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("hookd exited ({status}) before listening; its log:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "hookd did not log `listening on` within 60 s; its log:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The hookd processes of a scenario: one on redb; with `--postgres`, `--nodes` of them
/// on the same database, each with its own port, data dir, log and `node_id`.
pub struct Nodes {
    pub nodes: Vec<Hookd>,
}

impl Nodes {
    /// Starts one node per config, one after the other (node 0 first: it is the one the
    /// bench creates webhooks on).
    pub fn spawn(bin: &Path, configs: &[PathBuf], logs: &[PathBuf], args: &Args) -> Nodes {
        let several = configs.len() > 1;
        let nodes = configs
            .iter()
            .zip(logs)
            .enumerate()
            .map(|(i, (config, log))| {
                let label = if several {
                    format!("hookd node {i}")
                } else {
                    "hookd".to_string()
                };
                Hookd::spawn(bin, config, log, args, &label)
            })
            .collect();
        Nodes { nodes }
    }

    /// Node 0: webhook creation and the stats query go there.
    pub fn first(&self) -> &Hookd {
        &self.nodes[0]
    }

    pub fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().map(|n| n.pid).collect()
    }

    /// VmRSS summed over the nodes.
    pub fn rss_now(&self) -> u64 {
        self.nodes.iter().map(Hookd::rss_now).sum()
    }

    /// The slowest node's spawn → `/healthz` 200.
    pub fn ready(&self) -> Duration {
        self.nodes.iter().map(|n| n.ready).max().unwrap_or_default()
    }

    /// Lines containing `needle` in every node's log.
    pub fn count_log_lines(&self, needle: &str) -> usize {
        self.nodes
            .iter()
            .map(|n| count_lines(&n.log_path, needle))
            .sum()
    }

    /// Stops the nodes one after the other; what each stop observed, in node order.
    pub fn stop(self) -> Vec<Stopped> {
        self.nodes.into_iter().map(Hookd::stop).collect()
    }
}

fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}
