//! The hookd process under test (config, start, `kill -9`, restart on the same data dir)
//! and a small blocking client for its API.

use std::fs::OpenOptions;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hookd::auth::token_sha256_hex;

use crate::now_ns;

pub const PUBLISHER_TOKEN: &str = "crash-publisher-token-for-loopback-only";
/// The users whose webhooks the campaign manages, with their tokens.
pub const USERS: [(&str, &str); 3] = [
    ("crash-user-a", "crash-user-a-token-for-loopback-only"),
    ("crash-user-b", "crash-user-b-token-for-loopback-only"),
    ("crash-user-c", "crash-user-c-token-for-loopback-only"),
];

/// The retry schedule hookd runs with: four attempts within about 2 s.
pub const RETRY_SCHEDULE: [&str; 4] = ["0s", "200ms", "500ms", "1s"];

/// Writes the config for a hookd on `127.0.0.1:port` with its data in `dir/data`.
pub fn write_config(dir: &Path, port: u16) -> PathBuf {
    let schedule: Vec<String> = RETRY_SCHEDULE.iter().map(|d| format!("\"{d}\"")).collect();
    let mut text = format!(
        "listen = \"127.0.0.1:{port}\"\ndata_dir = \"{}\"\n\n\
         [delivery]\nallow_http = true\nallow_private_networks = true\n\
         retry_schedule = [{}]\ntimeout = \"2s\"\nmax_in_flight_per_webhook = 16\n\n\
         [limits]\nmax_webhooks_per_user = 1000\nevents_per_minute_per_webhook = 100000000\n\n\
         [[tokens]]\nuser = \"crash-publisher\"\nrole = \"publisher\"\nsha256 = \"{}\"\n",
        dir.join("data").display(),
        schedule.join(", "),
        token_sha256_hex(PUBLISHER_TOKEN),
    );
    for (user, token) in USERS {
        text.push_str(&format!(
            "\n[[tokens]]\nuser = \"{user}\"\nrole = \"user\"\nsha256 = \"{}\"\n",
            token_sha256_hex(token)
        ));
    }
    let path = dir.join("hookd.toml");
    std::fs::write(&path, text).expect("write the hookd config");
    path
}

/// A loopback port that was free a moment ago. hookd binds it on every start (a port
/// chosen by the kernel at each start would change across restarts).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a probe socket");
    listener.local_addr().expect("probe address").port()
}

/// The hookd process: started, killed and restarted on one config and data dir.
pub struct Hookd {
    bin: PathBuf,
    config: PathBuf,
    log_path: PathBuf,
    rust_log: String,
    pub port: u16,
    child: Option<Child>,
    /// Campaign-clock time of each spawn, in order (incarnation k started at `spawns[k]`).
    pub spawns: Vec<u64>,
    /// Campaign-clock time of each SIGKILL.
    pub kills: Vec<u64>,
    /// Spawn → `/healthz` 200 of each start.
    pub ready: Vec<Duration>,
}

impl Hookd {
    pub fn new(bin: &Path, dir: &Path, port: u16, rust_log: &str) -> Hookd {
        Hookd {
            bin: bin.to_path_buf(),
            config: write_config(dir, port),
            log_path: dir.join("hookd.log"),
            rust_log: rust_log.to_string(),
            port,
            child: None,
            spawns: Vec::new(),
            kills: Vec::new(),
            ready: Vec::new(),
        }
    }

    /// Starts hookd and waits until `/healthz` answers 200 (at most 60 s).
    pub fn start(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "hookd is already running");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .map_err(|e| format!("open the hookd log: {e}"))?;
        let started = Instant::now();
        self.spawns.push(now_ns());
        let mut child = Command::new(&self.bin)
            .arg("serve")
            .arg("--config")
            .arg(&self.config)
            .env("RUST_LOG", &self.rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.bin.display()))?;
        let health = Api::new(self.port, Duration::from_millis(500));
        let deadline = started + Duration::from_secs(60);
        loop {
            if let Ok((200, _)) = health.call("GET", "/healthz", None, None) {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "hookd exited ({status}) before answering /healthz; see {}",
                    self.log_path.display()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err("hookd did not answer /healthz within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(3));
        }
        self.ready.push(started.elapsed());
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL (`Child::kill` is SIGKILL on Unix) and reap.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.kills.push(now_ns());
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops hookd at the end of the campaign (SIGKILL too: nothing is checked after).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The incarnation (index into `spawns`) that was running, or last started, at `t`.
    pub fn incarnation_at(&self, t: u64) -> usize {
        self.spawns.partition_point(|&s| s <= t).saturating_sub(1)
    }
}

impl Drop for Hookd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A blocking API client with one keep-alive agent.
pub struct Api {
    agent: ureq::Agent,
    base: String,
}

/// An HTTP answer (status, body), or why there was none.
pub type Reply = Result<(u16, String), String>;

impl Api {
    pub fn new(port: u16, timeout: Duration) -> Api {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(timeout))
            .timeout_recv_response(Some(timeout))
            .timeout_recv_body(Some(timeout))
            .build();
        Api {
            agent: ureq::Agent::new_with_config(config),
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    /// One request; `body` is sent as JSON.
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> Reply {
        let url = format!("{}{path}", self.base);
        let auth = token.map(|t| format!("Bearer {t}"));
        let answer = match (method, body) {
            ("GET", _) => {
                let mut r = self.agent.get(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            ("DELETE", _) => {
                let mut r = self.agent.delete(&url);
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                r.call()
            }
            (method, body) => {
                let mut r = if method == "PATCH" {
                    self.agent.patch(&url)
                } else {
                    self.agent.post(&url)
                };
                if let Some(a) = &auth {
                    r = r.header("Authorization", a);
                }
                match body {
                    Some(b) => r
                        .header("Content-Type", "application/json")
                        .send(b.as_bytes()),
                    None => r.send_empty(),
                }
            }
        };
        let mut answer = answer.map_err(|e| e.to_string())?;
        let status = answer.status().as_u16();
        let text = answer
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("reading the answer: {e}"))?;
        Ok((status, text))
    }

    /// GET that must answer 200 with JSON.
    pub fn get_json(&self, path: &str, token: &str) -> Result<serde_json::Value, String> {
        match self.call("GET", path, Some(token), None)? {
            (200, body) => serde_json::from_str(&body).map_err(|e| format!("{path}: {e}")),
            (status, body) => Err(format!("GET {path}: {status} {body}")),
        }
    }

    /// Every item of a paged list (`{"<key>": […], "next": cursor|null}`).
    pub fn get_all(
        &self,
        path: &str,
        key: &str,
        token: &str,
    ) -> Result<Vec<serde_json::Value>, String> {
        let sep = if path.contains('?') { '&' } else { '?' };
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page_path = match &cursor {
                Some(c) => format!("{path}{sep}limit=100&after={c}"),
                None => format!("{path}{sep}limit=100"),
            };
            let page = self.get_json(&page_path, token)?;
            items.extend(page[key].as_array().cloned().unwrap_or_default());
            match page["next"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return Ok(items),
            }
        }
    }
}
