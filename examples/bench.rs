//! Benchmark of hookd end to end, on loopback, against the real `hookd` binary.
//!
//! ```text
//! cargo build --release --bin hookd --example bench
//! cargo run --release --example bench -- [a b c d e] [--events N] [--concurrency C] …
//! ```
//!
//! Each scenario starts a fresh `hookd serve` (found next to this example, i.e.
//! `target/release/hookd`, or `--hookd PATH`) on a temporary data dir with a generated
//! config, and runs three actors in this process:
//!
//! * a **load driver**: C threads, each with its own keep-alive ureq agent, POSTing events
//!   to `/api/hooks/events` with the publisher token, either as fast as the answers come
//!   back (closed loop) or at fixed send times (open loop, `--rate`). Every payload
//!   carries `"seq"` (the event's number in the run) and `"sentNs"` (nanoseconds since
//!   this process's shared clock origin, taken just before the request is written; in
//!   open-loop mode the *scheduled* send time, so a lagging driver shows up as latency);
//! * a **receiver**: a hyper 1 HTTP/1.1 keep-alive server on 127.0.0.1 (tokio, 2 worker
//!   threads) that answers 200 with an empty body, and records for each request its
//!   arrival time, the webhook (from the URL path `/h/<k>`), the attempt
//!   (`X-Hook-Attempt`) and `seq`/`sentNs` (found by a byte search in the body: no JSON
//!   parse);
//! * a **sampler**: hookd's `VmRSS` every 100 ms and `VmHWM` at the end (from
//!   `/proc/<pid>/status`), and the CPU time of every hookd and bench thread
//!   (`/proc/<pid>/task/*/stat`) over the measured phase, so each figure comes with who
//!   was busy. Threads are summed by name (`hookd-worker-*`); `(exited threads)` is CPU
//!   of threads that ended inside the window (the bench's driver threads; in hookd, the
//!   short-lived threads ureq spawns to resolve the destination of an attempt).
//!   `CPU others` is the rest of the machine (`/proc/stat`): on a shared box, read every
//!   figure next to it.
//!
//! Per scenario it prints: ingest events/s and latency (request written → 202 read),
//! deliveries/s at the receiver (first arrival → last arrival), end-to-end latency
//! (`sentNs` → first successful arrival), lost deliveries (expected, never answered 200
//! within the drain timeout) and duplicates (more than one 200 for the same event and
//! webhook), hookd's peak RSS, and the size of `hookd.redb` per event.
//!
//! Scenarios (default `a b c e`; `d` is long and opt-in):
//!
//! * `a` — 20,000 events, closed loop at concurrency 32, one webhook.
//! * `b` — 5,000 events × 10 webhooks of one user (all `"*"`): 50,000 deliveries.
//! * `c` — open loop, 400 events/s for 30 s, one webhook: latency at a steady rate.
//! * `d` — 100,000 deliveries (`--pending N`, 10 webhooks) queued while the receiver port
//!   refuses connections and the first attempt is `--first-delay` away, so nothing is
//!   attempted: RSS with the queue full; then SIGTERM, wait until the whole queue is due,
//!   start the receiver, restart hookd on the same data dir (spawn → `/healthz` 200 is
//!   "ready"), and measure the drain rate of the backlog.
//! * `e` — every first attempt is answered 500, the second 200, with
//!   `retry_schedule = ["0s", "1s"]`, at 400 events/s for 10 s: retry lateness =
//!   (attempt 2 arrival − attempt 1 arrival) − 1 s. Note that hookd starts the delay at
//!   the *end* of attempt 1 (when its outcome is recorded), so lateness includes the
//!   500's round trip and the wait for the writer.
//!
//! Everything stays on 127.0.0.1. hookd's log goes to a file in the temp dir (it logs one
//! line per attempt at the default `info` level; `--log` changes `RUST_LOG`).

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use hookd::auth::token_sha256_hex;

const USER: &str = "bench-user";
const USER_TOKEN: &str = "bench-user-token-for-loopback-benchmarks-only";
const PUBLISHER: &str = "bench-publisher";
const PUBLISHER_TOKEN: &str = "bench-publisher-token-for-loopback-benchmarks-only";
/// Effectively no rate limit: the benchmark measures the engine, not the limiter.
const NO_RATE_LIMIT: u32 = 100_000_000;
/// Linux reports thread CPU times in clock ticks of 1/100 s (USER_HZ).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Parser, Debug)]
#[command(
    about = "Benchmarks hookd on loopback: ingest, delivery throughput, latency, RSS, restart.",
    after_help = "Scenarios: a (20k events, 1 webhook), b (5k events x 10 webhooks), \
                  c (400 events/s for 30 s), d (1M-style pending queue + restart; opt-in), \
                  e (retry lateness). Default: a b c e."
)]
struct Args {
    /// Scenarios to run, by name (a b c d e). Default: a b c e.
    scenarios: Vec<String>,
    /// Events per scenario (a: 20000, b: 5000; c and e derive it from --rate × --duration).
    #[arg(long)]
    events: Option<usize>,
    /// Driver threads (closed loop: requests in flight; default 32, open loop 16).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Webhooks subscribed to every event (a, c, e: 1; b, d: 10).
    #[arg(long)]
    webhooks: Option<usize>,
    /// Open-loop send rate in events/s (c and e: 400).
    #[arg(long)]
    rate: Option<u32>,
    /// Open-loop duration in seconds (c: 30, e: 10).
    #[arg(long)]
    duration: Option<u64>,
    /// Scenario d: deliveries to queue (events = pending / webhooks).
    #[arg(long, default_value_t = 100_000)]
    pending: usize,
    /// Scenario d: delay before the first attempt, in seconds (must exceed the time it
    /// takes to queue everything; default 30 + pending / 5000).
    #[arg(long)]
    first_delay: Option<u64>,
    /// Seconds without a new delivery after which the missing ones count as lost.
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    /// hookd `delivery.workers` (default: hookd's default, 64).
    #[arg(long)]
    workers: Option<usize>,
    /// hookd `delivery.max_in_flight_per_webhook` (default: hookd's default, 8).
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Bytes of filler text in each event payload.
    #[arg(long, default_value_t = 128)]
    payload_bytes: usize,
    /// Give each webhook a secret, so deliveries are signed (as in production).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    secret: bool,
    /// Path of the hookd binary (default: next to this example, target/<profile>/hookd).
    #[arg(long)]
    hookd: Option<PathBuf>,
    /// RUST_LOG for hookd (its log goes to a file in the temp dir).
    #[arg(long, default_value = "info")]
    log: String,
    /// Parent directory of the temp dirs (data, config, logs); default: the system temp
    /// dir. E.g. /dev/shm to take the disk's fsync out of the picture.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the temp dirs (data, config, hookd logs) and print where they are.
    #[arg(long)]
    keep: bool,
}

fn main() {
    let args = Args::parse();
    let _ = clock_ns();
    let bin = locate_hookd(args.hookd.as_deref());
    let mut scenarios: Vec<String> = args.scenarios.iter().map(|s| s.to_lowercase()).collect();
    if scenarios.is_empty() {
        scenarios = ["a", "b", "c", "e"].map(String::from).to_vec();
    }
    if let Some(bad) = scenarios
        .iter()
        .find(|s| !["a", "b", "c", "d", "e"].contains(&s.as_str()))
    {
        eprintln!("bench: unknown scenario {bad:?}; choose from a b c d e");
        std::process::exit(2);
    }
    println!("hookd benchmark — binary {}", bin.display());
    println!(
        "{} CPUs; all traffic on 127.0.0.1; hookd log level {:?}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.log
    );
    let bench = Bench { args, bin };
    let mut rates = Rates::default();
    for scenario in &scenarios {
        match scenario.as_str() {
            "a" => rates.a = Some(bench.scenario_a()),
            "b" => rates.b = Some(bench.scenario_b()),
            "c" => bench.scenario_c(),
            "d" => bench.scenario_d(&rates),
            "e" => bench.scenario_e(),
            _ => unreachable!("checked above"),
        }
    }
    if LOSSES.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("bench: deliveries were lost or duplicated (see above): failing");
        std::process::exit(1);
    }
}

/// Set when any scenario lost or duplicated a delivery: the run then exits 1, so a
/// script (or CI) running the benchmark cannot miss it. Scenarios kill nothing, so the
/// bound for both is zero.
static LOSSES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints a scenario's lost and duplicated deliveries and remembers any.
fn report_losses(lost: usize, duplicates: usize) {
    println!("lost / duplicates {lost} / {duplicates}");
    if lost > 0 || duplicates > 0 {
        LOSSES.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Delivery rates of the empty-queue scenarios, to compare the backlog drain with.
#[derive(Default)]
struct Rates {
    a: Option<f64>,
    b: Option<f64>,
}

struct Bench {
    args: Args,
    bin: PathBuf,
}

// ---------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------

/// What the driver sends and how.
#[derive(Clone, Copy, Debug)]
struct Plan {
    events: usize,
    webhooks: usize,
    concurrency: usize,
    /// `None`: closed loop. `Some(r)`: open loop at r events/s.
    rate: Option<f64>,
}

impl Plan {
    fn describe(&self) -> String {
        let pace = match self.rate {
            None => format!("closed loop, concurrency {}", self.concurrency),
            Some(r) => format!("open loop at {r} events/s ({} threads)", self.concurrency),
        };
        format!(
            "{} events × {} webhook(s) = {} deliveries, {pace}",
            self.events,
            self.webhooks,
            self.events * self.webhooks
        )
    }
}

impl Bench {
    fn closed_plan(&self, events: usize, webhooks: usize) -> Plan {
        Plan {
            events: self.args.events.unwrap_or(events),
            webhooks: self.args.webhooks.unwrap_or(webhooks),
            concurrency: self.args.concurrency.unwrap_or(32).max(1),
            rate: None,
        }
    }

    fn open_plan(&self, rate: u32, seconds: u64) -> Plan {
        let rate = self.args.rate.unwrap_or(rate).max(1);
        let seconds = self.args.duration.unwrap_or(seconds).max(1);
        Plan {
            events: self.args.events.unwrap_or(rate as usize * seconds as usize),
            webhooks: self.args.webhooks.unwrap_or(1),
            concurrency: self.args.concurrency.unwrap_or(16).max(1),
            rate: Some(f64::from(rate)),
        }
    }

    /// a: throughput and ingest latency with one webhook.
    fn scenario_a(&self) -> f64 {
        let plan = self.closed_plan(20_000, 1);
        self.throughput("a", &plan).delivery_rate
    }

    /// b: fan-out to 10 webhooks of one user.
    fn scenario_b(&self) -> f64 {
        let plan = self.closed_plan(5_000, 10);
        self.throughput("b", &plan).delivery_rate
    }

    /// c: latency at a steady, moderate rate.
    fn scenario_c(&self) {
        let plan = self.open_plan(400, 30);
        self.throughput("c", &plan);
    }

    /// Runs `plan` against a fresh hookd and a receiver that answers 200, and prints the
    /// block of figures.
    fn throughput(&self, name: &str, plan: &Plan) -> Measured {
        header(name, &plan.describe());
        let run = self.run_plan(plan, ReplyMode::AlwaysOk, &["0s"]);
        print_ingest(&run.driven);
        let measured = run.stats.print(&run.driven);
        run.api.print_stats_cost(run.expected);
        let stopped = run.hookd.stop();
        print_rss(&stopped.rss);
        print_store(run.dir.path(), plan.events);
        run.cpu.print();
        println!(
            "CPU cost          hookd {:.0} µs per event ({:.0} µs per delivery)",
            run.cpu.hookd_us_per(plan.events),
            run.cpu.hookd_us_per(run.expected)
        );
        print_stop(&stopped);
        self.finish(run.dir);
        measured
    }

    /// Starts a fresh hookd (with `retry_schedule`) and a receiver answering as `reply`,
    /// creates the plan's webhooks, drives the plan and waits for every delivery.
    fn run_plan(&self, plan: &Plan, reply: ReplyMode, retry_schedule: &[&str]) -> PlanRun {
        let dir = self.temp_dir();
        let receiver = Receiver::start(bind_loopback(0), reply);
        let settings = HookdSettings::new(plan.webhooks, retry_schedule);
        let config = self.write_config(dir.path(), &settings);
        let hookd = Hookd::spawn(
            &self.bin,
            &config,
            &dir.path().join("hookd.log"),
            &self.args,
        );
        let api = Api::new(hookd.addr);
        api.create_webhooks(plan.webhooks, receiver.addr, self.args.secret);

        let cpu = CpuWindow::start(hookd.pid);
        let driven = drive(hookd.addr, plan, self.args.payload_bytes);
        let expected = plan.events * plan.webhooks;
        receiver.wait_for(expected, Duration::from_secs(self.args.drain_timeout));
        let cpu = cpu.finish();
        let arrivals = receiver.arrivals();
        let stats = DeliveryStats::of(&arrivals, plan.events, plan.webhooks, &driven);
        PlanRun {
            dir,
            hookd,
            api,
            cpu,
            driven,
            arrivals,
            stats,
            expected,
        }
    }

    /// d: a big pending queue: RSS, restart time, drain rate.
    fn scenario_d(&self, rates: &Rates) {
        let webhooks = self.args.webhooks.unwrap_or(10).max(1);
        let events = (self.args.pending / webhooks).max(1);
        let pending = events * webhooks;
        let first_delay = self.args.first_delay.unwrap_or(30 + pending as u64 / 5_000);
        let plan = Plan {
            events,
            webhooks,
            concurrency: self.args.concurrency.unwrap_or(32).max(1),
            rate: None,
        };
        header(
            "d",
            &format!(
                "{} pending deliveries ({}), first attempt {first_delay} s after ingest",
                pending,
                plan.describe()
            ),
        );
        let dir = self.temp_dir();
        // The receiver's port refuses connections until the receiver starts on it.
        let port = bind_loopback(0).local_addr().expect("reserved port").port();
        let receiver_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let delay = format!("{first_delay}s");
        let settings = HookdSettings::new(webhooks, &[delay.as_str(), "1s"]);
        let config = self.write_config(dir.path(), &settings);

        // Phase 1: fill the queue.
        let hookd = Hookd::spawn(
            &self.bin,
            &config,
            &dir.path().join("hookd-1.log"),
            &self.args,
        );
        let api = Api::new(hookd.addr);
        api.create_webhooks(webhooks, receiver_addr, self.args.secret);
        std::thread::sleep(Duration::from_millis(500));
        let empty_rss = hookd.rss_now();
        let cpu = CpuWindow::start(hookd.pid);
        let driven = drive(hookd.addr, &plan, self.args.payload_bytes);
        let cpu = cpu.finish();
        let ingest_end = Instant::now();
        println!("-- phase 1: queue {pending} deliveries (receiver down)");
        print_ingest(&driven);
        println!(
            "queueing          {:.0} deliveries/s committed",
            pending as f64 / driven.span_s()
        );
        cpu.print();
        println!(
            "CPU cost          hookd {:.0} µs per event ({:.0} µs per queued delivery)",
            cpu.hookd_us_per(events),
            cpu.hookd_us_per(pending)
        );
        std::thread::sleep(Duration::from_secs(2));
        let full_rss = hookd.rss_now();
        let attempted = count_lines(&hookd.log_path, "delivery attempt");
        let stopped = hookd.stop();
        println!(
            "hookd RSS         empty queue {:.1} MiB → idle with {pending} pending {:.1} MiB \
             (growth {:+.1} MiB); peak during ingest {:.1} MiB (VmHWM)",
            kib_to_mib(empty_rss),
            kib_to_mib(full_rss),
            kib_to_mib(full_rss) - kib_to_mib(empty_rss),
            kib_to_mib(stopped.rss.hwm_kib),
        );
        print_store(dir.path(), events);
        print_stop(&stopped);
        if attempted > 0 {
            println!(
                "WARNING           {attempted} attempts were made before the restart: \
                 raise --first-delay (ingest took longer than {first_delay} s)"
            );
        }

        // Phase 2: wait (hookd down) until every delivery is due, then restart and drain.
        let due = ingest_end + Duration::from_secs(first_delay) + Duration::from_millis(500);
        let wait = due.saturating_duration_since(Instant::now());
        println!(
            "-- phase 2: waiting {:.0} s until the whole queue is due, then restart",
            wait.as_secs_f64()
        );
        std::thread::sleep(wait);
        let receiver = Receiver::start(bind_loopback(port), ReplyMode::AlwaysOk);
        let hookd = Hookd::spawn(
            &self.bin,
            &config,
            &dir.path().join("hookd-2.log"),
            &self.args,
        );
        let ready_rss = hookd.rss_now();
        println!(
            "restart           spawn → /healthz 200 in {:.0} ms with {pending} pending \
             (RSS at ready {:.1} MiB)",
            hookd.ready.as_secs_f64() * 1e3,
            kib_to_mib(ready_rss)
        );
        let cpu = CpuWindow::start(hookd.pid);
        receiver.wait_for(pending, Duration::from_secs(self.args.drain_timeout));
        let cpu = cpu.finish();
        let arrivals = receiver.arrivals();
        let stats = DeliveryStats::of(&arrivals, events, webhooks, &driven);
        let drain = stats.delivery_rate();
        println!(
            "drain             {} deliveries in {:.2} s = {:.0} deliveries/s (first → last arrival)",
            stats.unique_ok,
            stats.span_s(),
            drain
        );
        for (label, rate) in [("a", rates.a), ("b", rates.b)] {
            if let Some(rate) = rate {
                println!(
                    "                  = {:.0} % of scenario {label}'s empty-queue rate ({rate:.0}/s)",
                    100.0 * drain / rate
                );
            }
        }
        report_losses(stats.lost, stats.duplicates);
        Api::new(hookd.addr).print_stats_cost(pending);
        let stopped = hookd.stop();
        println!(
            "hookd RSS (drain) peak {:.1} MiB (VmHWM; sampled max {:.1} MiB)",
            kib_to_mib(stopped.rss.hwm_kib),
            kib_to_mib(stopped.rss.sampled_max_kib)
        );
        print_store(dir.path(), events);
        cpu.print();
        println!(
            "CPU cost          hookd {:.0} µs per delivery drained",
            cpu.hookd_us_per(pending)
        );
        print_stop(&stopped);
        self.finish(dir);
    }

    /// e: retry punctuality.
    fn scenario_e(&self) {
        let plan = self.open_plan(400, 10);
        header(
            "e",
            &format!(
                "{}; attempt 1 answered 500, attempt 2 200; retry_schedule [\"0s\", \"1s\"]",
                plan.describe()
            ),
        );
        let run = self.run_plan(&plan, ReplyMode::FailFirstAttempt, &["0s", "1s"]);
        print_ingest(&run.driven);
        let lateness = retry_lateness(&run.arrivals, plan.webhooks, Duration::from_secs(1));
        println!(
            "retry lateness    p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms   min {:.1} ms   \
             ({} retries; attempt-2 arrival − attempt-1 arrival − 1 s)",
            percentile_signed_ms(&lateness, 50.0),
            percentile_signed_ms(&lateness, 99.0),
            percentile_signed_ms(&lateness, 100.0),
            percentile_signed_ms(&lateness, 0.0),
            lateness.len()
        );
        let within = lateness.iter().filter(|&&l| l <= 50_000_000).count();
        let early = lateness.iter().filter(|&&l| l < -1_000_000).count();
        println!(
            "                  {:.2} % within 50 ms; {early} more than 1 ms early",
            100.0 * within as f64 / lateness.len().max(1) as f64
        );
        report_losses(run.stats.lost, run.stats.duplicates);
        let stopped = run.hookd.stop();
        print_rss(&stopped.rss);
        run.cpu.print();
        print_stop(&stopped);
        self.finish(run.dir);
    }

    fn temp_dir(&self) -> tempfile::TempDir {
        let mut builder = tempfile::Builder::new();
        builder.prefix("hookd-bench-");
        match &self.args.dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .expect("create a temp dir")
    }

    fn finish(&self, dir: tempfile::TempDir) {
        if self.args.keep {
            println!("kept              {}", dir.keep().display());
        }
        println!();
    }

    fn write_config(&self, dir: &Path, settings: &HookdSettings) -> PathBuf {
        let path = dir.join("hookd.toml");
        let text = settings.toml(&dir.join("data"), &self.args);
        std::fs::write(&path, text).expect("write the hookd config");
        path
    }
}

// ---------------------------------------------------------------------------------------
// hookd: config, process, API
// ---------------------------------------------------------------------------------------

struct HookdSettings {
    webhooks: usize,
    retry_schedule: Vec<String>,
}

impl HookdSettings {
    fn new(webhooks: usize, retry_schedule: &[&str]) -> HookdSettings {
        HookdSettings {
            webhooks,
            retry_schedule: retry_schedule.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn toml(&self, data_dir: &Path, args: &Args) -> String {
        let schedule: Vec<String> = self
            .retry_schedule
            .iter()
            .map(|d| format!("\"{d}\""))
            .collect();
        let mut delivery = format!(
            "allow_http = true\nallow_private_networks = true\nretry_schedule = [{}]\n",
            schedule.join(", ")
        );
        if let Some(w) = args.workers {
            let _ = writeln!(delivery, "workers = {w}");
        }
        if let Some(m) = args.max_in_flight {
            let _ = writeln!(delivery, "max_in_flight_per_webhook = {m}");
        }
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[delivery]\n{delivery}\n\
             [limits]\nmax_webhooks_per_user = {}\nevents_per_minute_per_webhook = {NO_RATE_LIMIT}\n\n\
             [[tokens]]\nuser = \"{USER}\"\nrole = \"user\"\nsha256 = \"{}\"\n\n\
             [[tokens]]\nuser = \"{PUBLISHER}\"\nrole = \"publisher\"\nsha256 = \"{}\"\n",
            data_dir.display(),
            self.webhooks.max(10),
            token_sha256_hex(USER_TOKEN),
            token_sha256_hex(PUBLISHER_TOKEN),
        )
    }
}

/// Finds the hookd binary, or exits with a message saying how to build it.
fn locate_hookd(explicit: Option<&Path>) -> PathBuf {
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
struct Hookd {
    child: Option<Child>,
    pid: u32,
    addr: SocketAddr,
    /// Spawn → first `/healthz` 200.
    ready: Duration,
    log_path: PathBuf,
    sampler: RssSampler,
}

/// What [`Hookd::stop`] observed.
struct Stopped {
    rss: RssStats,
    /// SIGTERM → exit.
    stop_time: Duration,
    status: Option<ExitStatus>,
}

impl Hookd {
    fn spawn(bin: &Path, config: &Path, log_path: &Path, args: &Args) -> Hookd {
        let log = File::create(log_path).expect("create the hookd log file");
        let started = Instant::now();
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            // `listening on` is logged at info by hookd::daemon: keep it whatever --log says.
            .env("RUST_LOG", format!("{},hookd::daemon=info", args.log))
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
            "hookd             pid {pid}, API on {addr}, ready in {:.0} ms",
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

    fn rss_now(&self) -> u64 {
        proc_status_kib(self.pid, "VmRSS").unwrap_or(0)
    }

    /// Reads the peak RSS, sends SIGTERM and waits (at most 60 s) for a clean exit.
    fn stop(mut self) -> Stopped {
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
fn wait_for_listen_addr(child: &mut Child, log_path: &Path) -> SocketAddr {
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

/// Setup calls to hookd's API (webhooks, health), on one keep-alive agent.
struct Api {
    agent: ureq::Agent,
    base: String,
}

impl Api {
    fn new(addr: SocketAddr) -> Api {
        Api {
            agent: agent(Duration::from_secs(10)),
            base: format!("http://{addr}"),
        }
    }

    fn get_status(&self, path: &str) -> Option<u16> {
        let mut answer = self.agent.get(format!("{}{path}", self.base)).call().ok()?;
        let _ = answer.body_mut().read_to_vec();
        Some(answer.status().as_u16())
    }

    /// Times `GET …/stats?window=24h` (the dashboard's widest query) on the first
    /// webhook, `calls` times one after another; answers (p50, p99) in milliseconds.
    fn time_stats(&self, calls: usize) -> (f64, f64) {
        let mut list = self
            .agent
            .get(format!("{}/api/hooks/webhooks", self.base))
            .header("Authorization", format!("Bearer {USER_TOKEN}"))
            .call()
            .expect("list webhooks");
        let text = list.body_mut().read_to_string().unwrap_or_default();
        let hooks: serde_json::Value = serde_json::from_str(&text).expect("webhook list JSON");
        let id = hooks[0]["id"].as_str().expect("a webhook id").to_owned();
        let url = format!("{}/api/hooks/webhooks/{id}/stats?window=24h", self.base);
        let mut took: Vec<u64> = (0..calls)
            .map(|_| {
                let started = Instant::now();
                let mut answer = self
                    .agent
                    .get(&url)
                    .header("Authorization", format!("Bearer {USER_TOKEN}"))
                    .call()
                    .expect("stats request");
                let _ = answer.body_mut().read_to_vec();
                assert_eq!(answer.status().as_u16(), 200, "stats answered");
                u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
            })
            .collect();
        took.sort_unstable();
        (percentile_ms(&took, 50.0), percentile_ms(&took, 99.0))
    }

    /// Prints the stats query's cost next to how much the store holds.
    fn print_stats_cost(&self, deliveries_in_store: usize) {
        let (p50, p99) = self.time_stats(200);
        println!(
            "stats query       GET …/stats?window=24h p50 {p50:.2} ms   p99 {p99:.2} ms \
             (200 calls; {deliveries_in_store} deliveries in the store)"
        );
    }

    /// Creates `n` webhooks of the bench user, subscribed to everything, pointing at
    /// `http://<receiver>/h/<k>`.
    fn create_webhooks(&self, n: usize, receiver: SocketAddr, secret: bool) {
        for k in 0..n {
            let secret_field = if secret {
                format!(",\"secret\":\"bench-secret-{k}\"")
            } else {
                String::new()
            };
            let body = format!(
                "{{\"name\":\"bench {k}\",\"url\":\"http://{receiver}/h/{k}\",\"eventTypes\":[\"*\"]{secret_field}}}"
            );
            let mut answer = self
                .agent
                .post(format!("{}/api/hooks/webhooks", self.base))
                .header("Authorization", format!("Bearer {USER_TOKEN}"))
                .header("Content-Type", "application/json")
                .send(body.as_bytes())
                .expect("create a webhook: request failed");
            let text = answer.body_mut().read_to_string().unwrap_or_default();
            assert_eq!(answer.status().as_u16(), 201, "create a webhook: {text}");
        }
    }
}

/// A keep-alive agent. Deliberately no global timeout: with one, ureq 3 resolves the
/// host on a freshly spawned thread for every request (even on a pooled connection),
/// which would charge the driver a thread spawn per event.
fn agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .build();
    ureq::Agent::new_with_config(config)
}

// ---------------------------------------------------------------------------------------
// Load driver
// ---------------------------------------------------------------------------------------

/// One ingest request.
struct Sent {
    sent_ns: u64,
    done_ns: u64,
    /// The request was written later than 1 ms after its scheduled time (open loop).
    late: bool,
}

struct Driven {
    sent: Vec<Sent>,
    /// `seq` → hookd answered 202.
    accepted: Vec<bool>,
    errors: usize,
    first_error: Option<String>,
}

impl Driven {
    fn first_sent(&self) -> u64 {
        self.sent.iter().map(|s| s.sent_ns).min().unwrap_or(0)
    }

    fn last_done(&self) -> u64 {
        self.sent.iter().map(|s| s.done_ns).max().unwrap_or(0)
    }

    fn span_s(&self) -> f64 {
        (self.last_done().saturating_sub(self.first_sent())) as f64 / 1e9
    }
}

/// Sends `plan.events` events from `plan.concurrency` threads; returns when all answered.
fn drive(addr: SocketAddr, plan: &Plan, payload_bytes: usize) -> Driven {
    let url = format!("http://{addr}/api/hooks/events");
    let auth = format!("Bearer {PUBLISHER_TOKEN}");
    let filler = "x".repeat(payload_bytes);
    let next = AtomicUsize::new(0);
    let errors = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    let start_ns = clock_ns() + 20_000_000; // all threads start together, 20 ms from now
    let interval_ns = plan.rate.map(|r| 1e9 / r);
    let per_thread: Vec<(Vec<Sent>, Vec<usize>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.concurrency)
            .map(|t| {
                let (url, auth, filler, next, errors, first_error) =
                    (&url, &auth, &filler, &next, &errors, &first_error);
                std::thread::Builder::new()
                    .name(format!("bench-drive-{t}"))
                    .spawn_scoped(scope, move || {
                        let agent = agent(Duration::from_secs(60));
                        let mut sent = Vec::new();
                        let mut accepted = Vec::new();
                        sleep_until_ns(start_ns);
                        loop {
                            let seq = next.fetch_add(1, Ordering::Relaxed);
                            if seq >= plan.events {
                                break;
                            }
                            let scheduled = interval_ns.map(|i| start_ns + (seq as f64 * i) as u64);
                            if let Some(at) = scheduled {
                                sleep_until_ns(at);
                            }
                            let now = clock_ns();
                            let sent_ns = scheduled.unwrap_or(now);
                            let body = format!(
                                "{{\"type\":\"message:received\",\"userId\":\"{USER}\",\"source\":\"bench\",\
                                 \"payload\":{{\"seq\":{seq},\"sentNs\":{sent_ns},\"text\":\"{filler}\"}}}}"
                            );
                            let result = agent
                                .post(url.as_str())
                                .header("Authorization", auth.as_str())
                                .header("Content-Type", "application/json")
                                .send(body.as_bytes());
                            let outcome = match result {
                                Ok(mut answer) => {
                                    let status = answer.status().as_u16();
                                    let text = answer.body_mut().read_to_string().unwrap_or_default();
                                    if status == 202 {
                                        Ok(())
                                    } else {
                                        Err(format!("status {status}: {text}"))
                                    }
                                }
                                Err(e) => Err(format!("request failed: {e}")),
                            };
                            let done_ns = clock_ns();
                            match outcome {
                                Ok(()) => {
                                    sent.push(Sent {
                                        sent_ns,
                                        done_ns,
                                        late: now > sent_ns + 1_000_000,
                                    });
                                    accepted.push(seq);
                                }
                                Err(e) => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                    first_error.lock().expect("error slot").get_or_insert(e);
                                }
                            }
                        }
                        (sent, accepted)
                    })
                    .expect("spawn a driver thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("driver thread panicked"))
            .collect()
    });
    let mut accepted = vec![false; plan.events];
    let mut sent = Vec::with_capacity(plan.events);
    for (s, seqs) in per_thread {
        sent.extend(s);
        for seq in seqs {
            accepted[seq] = true;
        }
    }
    Driven {
        sent,
        accepted,
        errors: errors.into_inner(),
        first_error: first_error.into_inner().expect("error slot"),
    }
}

fn sleep_until_ns(at: u64) {
    let now = clock_ns();
    if at > now {
        std::thread::sleep(Duration::from_nanos(at - now));
    }
}

// ---------------------------------------------------------------------------------------
// Receiver
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq)]
enum ReplyMode {
    AlwaysOk,
    /// 500 to attempt 1, 200 to every later attempt.
    FailFirstAttempt,
}

/// One request as the receiver saw it.
#[derive(Clone, Copy)]
struct Arrival {
    at_ns: u64,
    sent_ns: u64,
    seq: u32,
    hook: u16,
    attempt: u16,
    ok: bool,
}

struct ReceiverShared {
    mode: ReplyMode,
    arrivals: Mutex<Vec<Arrival>>,
    /// Requests answered 200 so far.
    ok_count: AtomicUsize,
    last_ns: AtomicU64,
}

struct Receiver {
    addr: SocketAddr,
    shared: Arc<ReceiverShared>,
    /// Dropping the runtime closes the listener and every connection.
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    fn start(listener: TcpListener, mode: ReplyMode) -> Receiver {
        let addr = listener.local_addr().expect("receiver address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking receiver socket");
        let shared = Arc::new(ReceiverShared {
            mode,
            arrivals: Mutex::new(Vec::new()),
            ok_count: AtomicUsize::new(0),
            last_ns: AtomicU64::new(0),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bench-recv")
            .enable_all()
            .build()
            .expect("receiver runtime");
        let accept_shared = Arc::clone(&shared);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("receiver listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&accept_shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| receive(Arc::clone(&shared), req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            shared,
            _runtime: runtime,
        }
    }

    /// Waits until `expected` requests were answered 200, or until no request at all
    /// arrived for `quiet` (then the missing ones count as lost).
    fn wait_for(&self, expected: usize, quiet: Duration) {
        let mut last_seen = (self.shared.last_ns.load(Ordering::Relaxed), Instant::now());
        while self.shared.ok_count.load(Ordering::Relaxed) < expected {
            std::thread::sleep(Duration::from_millis(20));
            let last = self.shared.last_ns.load(Ordering::Relaxed);
            if last != last_seen.0 {
                last_seen = (last, Instant::now());
            } else if last_seen.1.elapsed() > quiet {
                println!(
                    "drain timeout     nothing arrived for {} s; {} of {expected} answered 200",
                    quiet.as_secs(),
                    self.shared.ok_count.load(Ordering::Relaxed)
                );
                return;
            }
        }
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.shared.arrivals.lock().expect("arrivals").clone()
    }
}

async fn receive(
    shared: Arc<ReceiverShared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at_ns = clock_ns();
    let hook = req
        .uri()
        .path()
        .strip_prefix("/h/")
        .and_then(|k| k.parse().ok())
        .unwrap_or(u16::MAX);
    let attempt = req
        .headers()
        .get("x-hook-attempt")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let ok = !(shared.mode == ReplyMode::FailFirstAttempt && attempt <= 1);
    let arrival = Arrival {
        at_ns,
        sent_ns: number_after(&body, b"\"sentNs\":").unwrap_or(0),
        seq: number_after(&body, b"\"seq\":").map_or(u32::MAX, |n| n as u32),
        hook,
        attempt,
        ok,
    };
    shared.arrivals.lock().expect("arrivals").push(arrival);
    if ok {
        shared.ok_count.fetch_add(1, Ordering::Relaxed);
    }
    shared.last_ns.store(at_ns, Ordering::Relaxed);
    let mut response = Response::new(Full::new(Bytes::new()));
    if !ok {
        *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    }
    Ok(response)
}

/// The unsigned integer right after the first occurrence of `key` in `body`.
fn number_after(body: &[u8], key: &[u8]) -> Option<u64> {
    let start = body.windows(key.len()).position(|w| w == key)? + key.len();
    body[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(None, |acc: Option<u64>, &b| {
            Some(acc.unwrap_or(0) * 10 + u64::from(b - b'0'))
        })
}

// ---------------------------------------------------------------------------------------
// Analysis and output
// ---------------------------------------------------------------------------------------

/// Figures kept to compare scenarios.
/// A plan run to the end by [`Bench::run_plan`], hookd still running.
struct PlanRun {
    dir: tempfile::TempDir,
    hookd: Hookd,
    api: Api,
    cpu: CpuUse,
    driven: Driven,
    arrivals: Vec<Arrival>,
    stats: DeliveryStats,
    /// Deliveries the plan makes: events × webhooks.
    expected: usize,
}

struct Measured {
    delivery_rate: f64,
}

struct DeliveryStats {
    /// (event, webhook) pairs answered 200 at least once.
    unique_ok: usize,
    lost: usize,
    duplicates: usize,
    first_ok_ns: u64,
    last_ok_ns: u64,
    /// sentNs → first 200 arrival, per delivery.
    e2e_ns: Vec<u64>,
    /// Deliveries that arrived after the driver's last 202 (the backlog left when
    /// ingest stopped).
    after_ingest: usize,
}

impl DeliveryStats {
    fn of(arrivals: &[Arrival], events: usize, webhooks: usize, driven: &Driven) -> DeliveryStats {
        // Per (event, webhook): (first 200 arrival, the sentNs it carried).
        let mut first_ok = vec![(u64::MAX, 0); events * webhooks];
        let mut duplicates = 0;
        let mut stray = 0;
        for a in arrivals.iter().filter(|a| a.ok) {
            let (seq, hook) = (a.seq as usize, a.hook as usize);
            if seq >= events || hook >= webhooks {
                stray += 1;
                continue;
            }
            let slot = &mut first_ok[seq * webhooks + hook];
            if slot.0 == u64::MAX {
                *slot = (a.at_ns, a.sent_ns);
            } else {
                duplicates += 1;
                slot.0 = slot.0.min(a.at_ns);
            }
        }
        if stray > 0 {
            println!("WARNING           {stray} requests with an unknown seq or webhook");
        }
        let mut e2e_ns = Vec::with_capacity(first_ok.len());
        let mut lost = 0;
        for (key, &(at, sent)) in first_ok.iter().enumerate() {
            if !driven.accepted[key / webhooks] {
                continue; // hookd did not accept this event: nothing is expected
            }
            if at == u64::MAX {
                lost += 1;
            } else {
                e2e_ns.push(at.saturating_sub(sent));
            }
        }
        e2e_ns.sort_unstable();
        let received = first_ok.iter().map(|s| s.0).filter(|&at| at != u64::MAX);
        let ingest_done = driven.last_done();
        DeliveryStats {
            after_ingest: received.clone().filter(|&at| at > ingest_done).count(),
            unique_ok: e2e_ns.len(),
            lost,
            duplicates,
            first_ok_ns: received.clone().min().unwrap_or(0),
            last_ok_ns: received.max().unwrap_or(0),
            e2e_ns,
        }
    }

    fn span_s(&self) -> f64 {
        self.last_ok_ns.saturating_sub(self.first_ok_ns) as f64 / 1e9
    }

    fn delivery_rate(&self) -> f64 {
        self.unique_ok as f64 / self.span_s().max(1e-9)
    }

    fn print(&self, driven: &Driven) -> Measured {
        let delivery_rate = self.delivery_rate();
        println!(
            "deliveries        {} in {:.2} s = {:.0} deliveries/s (receiver: first → last arrival)",
            self.unique_ok,
            self.span_s(),
            delivery_rate
        );
        let backlog_span = self.last_ok_ns.saturating_sub(driven.last_done()) as f64 / 1e9;
        // Only worth a line when a real backlog was left (not the last few in flight).
        if self.after_ingest >= 100 && backlog_span > 0.0 {
            println!(
                "  after ingest    {} of them after the last 202, in {:.2} s = {:.0} deliveries/s \
                 (backlog with no ingest running)",
                self.after_ingest,
                backlog_span,
                self.after_ingest as f64 / backlog_span
            );
        }
        let events = driven.sent.len();
        let e2e_span = self.last_ok_ns.saturating_sub(driven.first_sent()) as f64 / 1e9;
        println!(
            "end to end        {events} events in {:.2} s = {:.0} events/s (first send → last arrival)",
            e2e_span,
            events as f64 / e2e_span.max(1e-9)
        );
        println!(
            "e2e latency       p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   (sentNs → arrival)",
            percentile_ms(&self.e2e_ns, 50.0),
            percentile_ms(&self.e2e_ns, 99.0),
            percentile_ms(&self.e2e_ns, 100.0)
        );
        report_losses(self.lost, self.duplicates);
        Measured { delivery_rate }
    }
}

/// For each delivery with attempts 1 and 2: arrival(2) − arrival(1) − `delay`, in ns,
/// sorted. Negative means early: hookd keeps due times in whole milliseconds, so a retry
/// can legitimately come up to 1 ms before the nanosecond-exact schedule.
fn retry_lateness(arrivals: &[Arrival], webhooks: usize, delay: Duration) -> Vec<i64> {
    let mut firsts: HashMap<usize, u64> = HashMap::new();
    let mut seconds: HashMap<usize, u64> = HashMap::new();
    for a in arrivals {
        let key = a.seq as usize * webhooks + a.hook as usize;
        match a.attempt {
            1 => firsts.entry(key).or_insert(a.at_ns),
            2 => seconds.entry(key).or_insert(a.at_ns),
            _ => continue,
        };
    }
    let delay_ns = delay.as_nanos() as i64;
    let mut lateness: Vec<i64> = seconds
        .iter()
        .filter_map(|(key, &second)| {
            let first = *firsts.get(key)?;
            Some(second as i64 - first as i64 - delay_ns)
        })
        .collect();
    lateness.sort_unstable();
    lateness
}

/// The `p`th percentile (nearest rank) of sorted signed nanoseconds, in milliseconds.
fn percentile_signed_ms(sorted_ns: &[i64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1e6
}

fn header(name: &str, what: &str) {
    println!("== scenario {name}: {what}");
}

fn print_ingest(driven: &Driven) {
    let mut latencies: Vec<u64> = driven
        .sent
        .iter()
        .map(|s| s.done_ns.saturating_sub(s.sent_ns))
        .collect();
    latencies.sort_unstable();
    let late = driven.sent.iter().filter(|s| s.late).count();
    println!(
        "ingest            {} events in {:.2} s = {:.0} events/s (202s; errors {}{})",
        driven.sent.len(),
        driven.span_s(),
        driven.sent.len() as f64 / driven.span_s().max(1e-9),
        driven.errors,
        if late > 0 {
            format!("; {late} sent > 1 ms behind schedule")
        } else {
            String::new()
        }
    );
    if let Some(e) = &driven.first_error {
        println!("first error       {e}");
    }
    println!(
        "ingest latency    p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0),
        percentile_ms(&latencies, 100.0)
    );
}

fn print_rss(rss: &RssStats) {
    println!(
        "hookd RSS         peak {:.1} MiB (VmHWM; max of 100 ms VmRSS samples {:.1} MiB)",
        kib_to_mib(rss.hwm_kib),
        kib_to_mib(rss.sampled_max_kib)
    );
}

fn print_store(dir: &Path, events: usize) {
    let path = dir.join("data").join(hookd::config::DB_FILE_NAME);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "store             hookd.redb {:.1} MiB = {:.0} bytes/event",
        bytes as f64 / MIB,
        bytes as f64 / events.max(1) as f64
    );
}

fn print_stop(stopped: &Stopped) {
    let status = stopped
        .status
        .map_or("unknown".to_string(), |s| s.to_string());
    println!(
        "stop              SIGTERM → exit in {:.0} ms ({status})",
        stopped.stop_time.as_secs_f64() * 1e3
    );
}

/// The `p`th percentile (nearest rank) of sorted nanoseconds, in milliseconds.
fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1e6
}

fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// Clock, sockets, /proc sampling
// ---------------------------------------------------------------------------------------

/// Nanoseconds since this process's clock origin (shared by driver and receiver).
fn clock_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn bind_loopback(port: u16) -> TcpListener {
    TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:{port}: {e}"))
}

/// A `kB` field of `/proc/<pid>/status`, e.g. `VmRSS` or `VmHWM`.
fn proc_status_kib(pid: u32, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

struct RssStats {
    hwm_kib: u64,
    sampled_max_kib: u64,
}

/// Samples a process's VmRSS every 100 ms on a thread.
struct RssSampler {
    stop: Arc<AtomicBool>,
    max_kib: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let max_kib = Arc::new(AtomicU64::new(0));
        let (stop2, max2) = (Arc::clone(&stop), Arc::clone(&max_kib));
        let thread = std::thread::Builder::new()
            .name("bench-rss".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    if let Some(kib) = proc_status_kib(pid, "VmRSS") {
                        max2.fetch_max(kib, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            })
            .expect("spawn the RSS sampler");
        RssSampler {
            stop,
            max_kib,
            thread: Some(thread),
        }
    }

    fn finish(&mut self, pid: u32) -> RssStats {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        RssStats {
            hwm_kib: proc_status_kib(pid, "VmHWM").unwrap_or(0),
            sampled_max_kib: self.max_kib.load(Ordering::Relaxed),
        }
    }
}

/// CPU ticks per thread of one process: tid → (name, utime + stime).
fn thread_ticks(pid: u32) -> HashMap<u32, (String, u64)> {
    let mut ticks = HashMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return ticks;
    };
    for task in tasks.flatten() {
        let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // "tid (name) state ppid … utime stime …": fields 14 and 15, counted from 1.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_string();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        ticks.insert(tid, (name, field(11) + field(12)));
    }
    ticks
}

/// utime + stime of a whole process (threads that exited included), in ticks.
fn process_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some(close) = stat.rfind(')') else {
        return 0;
    };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Busy ticks of the whole machine (every CPU), from the `cpu` line of `/proc/stat`.
fn machine_busy_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0;
    };
    // user nice system idle iowait irq softirq steal …: all but idle and iowait.
    line.split_whitespace()
        .skip(1)
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum()
}

/// A snapshot of one process's CPU time, per thread and in total.
struct ProcessTicks {
    threads: HashMap<u32, (String, u64)>,
    total: u64,
}

impl ProcessTicks {
    fn take(pid: u32) -> ProcessTicks {
        ProcessTicks {
            threads: thread_ticks(pid),
            total: process_ticks(pid),
        }
    }
}

/// CPU used by hookd's threads, the bench's threads and everything else on the machine
/// between `start` and `finish`.
struct CpuWindow {
    pid: u32,
    started: Instant,
    hookd: ProcessTicks,
    bench: ProcessTicks,
    machine: u64,
}

struct CpuUse {
    seconds: f64,
    /// (process, thread group, CPU seconds), busiest first.
    groups: Vec<(&'static str, String, f64)>,
    /// CPU seconds of all other processes (and the kernel's own threads).
    others: f64,
}

impl CpuWindow {
    fn start(pid: u32) -> CpuWindow {
        CpuWindow {
            pid,
            started: Instant::now(),
            hookd: ProcessTicks::take(pid),
            bench: ProcessTicks::take(std::process::id()),
            machine: machine_busy_ticks(),
        }
    }

    fn finish(self) -> CpuUse {
        let seconds = self.started.elapsed().as_secs_f64();
        let mut groups = Vec::new();
        let mut measured = 0;
        for (process, before, after) in [
            ("hookd", &self.hookd, ProcessTicks::take(self.pid)),
            ("bench", &self.bench, ProcessTicks::take(std::process::id())),
        ] {
            let mut by_group: HashMap<String, u64> = HashMap::new();
            let mut live = 0;
            for (tid, (name, ticks)) in &after.threads {
                let used = ticks.saturating_sub(before.threads.get(tid).map_or(0, |(_, t)| *t));
                live += used;
                *by_group.entry(thread_group(name)).or_default() += used;
            }
            // Threads that ended inside the window (the driver's) only show in the total.
            let total = after.total.saturating_sub(before.total);
            if total > live {
                *by_group.entry("(exited threads)".into()).or_default() += total - live;
            }
            measured += total.max(live);
            groups.extend(
                by_group
                    .into_iter()
                    .map(|(g, t)| (process, g, t as f64 / CLOCK_TICKS_PER_SEC)),
            );
        }
        groups.sort_by(|a, b| b.2.total_cmp(&a.2));
        let machine = machine_busy_ticks().saturating_sub(self.machine);
        CpuUse {
            seconds,
            groups,
            others: machine.saturating_sub(measured) as f64 / CLOCK_TICKS_PER_SEC,
        }
    }
}

/// `hookd-worker-12` → `hookd-worker-*`: threads of a pool are summed.
fn thread_group(name: &str) -> String {
    let trimmed = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if trimmed.len() < name.len() {
        format!("{trimmed}*")
    } else {
        name.to_string()
    }
}

impl CpuUse {
    /// CPU time hookd spent per unit of work (e.g. per event), in microseconds.
    fn hookd_us_per(&self, units: usize) -> f64 {
        let hookd: f64 = self
            .groups
            .iter()
            .filter(|g| g.0 == "hookd")
            .map(|g| g.2)
            .sum();
        hookd * 1e6 / units.max(1) as f64
    }

    fn print(&self) {
        for process in ["hookd", "bench"] {
            let total: f64 = self
                .groups
                .iter()
                .filter(|g| g.0 == process)
                .map(|g| g.2)
                .sum();
            let mut line = format!(
                "CPU {process:<6}        {:.2} cores over {:.1} s:",
                total / self.seconds.max(1e-9),
                self.seconds
            );
            for (_, group, secs) in self.groups.iter().filter(|g| g.0 == process).take(5) {
                let _ = write!(line, " {group} {:.2}", secs / self.seconds.max(1e-9));
            }
            println!("{line}");
        }
        println!(
            "CPU others        {:.2} cores (other processes on the machine, kernel threads)",
            self.others / self.seconds.max(1e-9)
        );
    }
}
