//! Test harness: runs the real `hookd` binary on a free loopback port with a temporary
//! data dir, and talks to it over plain HTTP/1.1 sockets (so tests control every byte).

pub mod disk;
pub mod receiver;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use hookd::auth::token_sha256_hex;
use serde_json::Value;

pub const USER: &str = "dev-user-token-NOT-FOR-PRODUCTION";
pub const OTHER_USER: &str = "dev-other-user-token-NOT-FOR-PRODUCTION";
pub const PUBLISHER: &str = "dev-publisher-token-NOT-FOR-PRODUCTION";
pub const ADMIN: &str = "dev-admin-token-NOT-FOR-PRODUCTION";

/// Extra TOML lines for the `[delivery]` and `[limits]` sections of the test config.
#[derive(Default, Clone)]
pub struct Settings {
    pub delivery: String,
    pub limits: String,
    /// Replaces the permissive default of allow_http/allow_private_networks = true.
    pub strict_destinations: bool,
    /// Extra top-level TOML lines (before any section).
    pub top: String,
    /// Extra environment variables for the hookd process.
    pub env: Vec<(String, String)>,
    /// Lines for the `[retention]` section.
    pub retention: String,
    /// Lines for the `[store]` section.
    pub store: String,
    /// Where the store lives instead of the temp dir's `data` (e.g. a small tmpfs).
    pub data_dir: Option<PathBuf>,
}

impl Settings {
    /// Adds a `[retention] events = …` section.
    pub fn with_retention(mut self, events: &str) -> Settings {
        self.retention = format!("events = \"{events}\"");
        self
    }
}

pub fn config_text(data_dir: &Path, s: &Settings) -> String {
    let permissive = if s.strict_destinations {
        ""
    } else {
        "allow_http = true\nallow_private_networks = true\n"
    };
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{}\n\n[delivery]\n{permissive}{}\n\n[limits]\n{}\n\n[retention]\n{}\n\n[store]\n{}\n\n\
         [[tokens]]\nuser = \"user-123\"\nrole = \"user\"\nsha256 = \"{}\"\n\n\
         [[tokens]]\nuser = \"user-456\"\nrole = \"user\"\nsha256 = \"{}\"\n\n\
         [[tokens]]\nuser = \"openwork\"\nrole = \"publisher\"\nsha256 = \"{}\"\n\n\
         [[tokens]]\nuser = \"ops\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        data_dir.display(),
        s.top,
        s.delivery,
        s.limits,
        s.retention,
        s.store,
        token_sha256_hex(USER),
        token_sha256_hex(OTHER_USER),
        token_sha256_hex(PUBLISHER),
        token_sha256_hex(ADMIN),
    )
}

pub struct Hookd {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    log: Arc<Mutex<Vec<String>>>,
    env: Vec<(String, String)>,
}

impl Hookd {
    pub fn start() -> Hookd {
        Hookd::start_with(Settings::default())
    }

    pub fn start_with(settings: Settings) -> Hookd {
        let dir = tempfile::tempdir().expect("temp dir");
        let config_path = dir.path().join("hookd.toml");
        std::fs::write(
            &config_path,
            config_text(
                &settings
                    .data_dir
                    .clone()
                    .unwrap_or_else(|| dir.path().join("data")),
                &settings,
            ),
        )
        .expect("write config");
        let log = Arc::new(Mutex::new(Vec::new()));
        let env = settings.env.clone();
        let (child, addr) = spawn(&config_path, &log, &env);
        Hookd {
            child: Some(child),
            addr,
            dir,
            config_path,
            log,
            env,
        }
    }

    /// Starts hookd again on the same config and data dir (a new port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop hookd before restarting it");
        let (child, addr) = spawn(&self.config_path, &self.log, &self.env);
        self.child = Some(child);
        self.addr = addr;
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL");
            child.wait().expect("reap");
        }
    }

    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .expect("kill");
        assert!(ok.success());
    }

    /// SIGTERM, then waits (at most 30 s) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        self.signal("TERM");
        self.terminate_wait()
    }

    /// Waits (at most 30 s) for hookd to exit after a signal already sent.
    pub fn terminate_wait(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "hookd did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Waits until a log line contains `needle` (at most `timeout`).
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.log.lock().unwrap().iter().any(|l| l.contains(needle)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        json: Option<&str>,
    ) -> Resp {
        let mut headers = Vec::new();
        if let Some(t) = token {
            headers.push(("Authorization".to_string(), format!("Bearer {t}")));
        }
        if json.is_some() {
            headers.push(("Content-Type".to_string(), "application/json".to_string()));
        }
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        http(self.addr, method, path, &headers, json.map(str::as_bytes))
    }

    pub fn get(&self, path: &str, token: &str) -> Resp {
        self.request("GET", path, Some(token), None)
    }

    pub fn post(&self, path: &str, token: &str, json: &str) -> Resp {
        self.request("POST", path, Some(token), Some(json))
    }

    pub fn patch(&self, path: &str, token: &str, json: &str) -> Resp {
        self.request("PATCH", path, Some(token), Some(json))
    }

    pub fn delete(&self, path: &str, token: &str) -> Resp {
        self.request("DELETE", path, Some(token), None)
    }

    /// Creates a webhook for `token`'s user and returns its id.
    pub fn create_webhook(
        &self,
        token: &str,
        url: &str,
        event_types: &[&str],
        secret: Option<&str>,
    ) -> String {
        let mut body =
            serde_json::json!({"name": "test hook", "url": url, "eventTypes": event_types});
        if let Some(s) = secret {
            body["secret"] = Value::String(s.to_string());
        }
        let r = self.post("/api/hooks/webhooks", token, &body.to_string());
        assert_eq!(r.status, 201, "create webhook: {}", r.body);
        r.json()["id"].as_str().expect("id").to_string()
    }

    /// Ingests an event of `event_type` for `user` and returns (status, answer).
    pub fn ingest(&self, event_type: &str, user: &str, payload: &str, id: Option<&str>) -> Resp {
        let id_field = id.map(|i| format!(",\"id\":\"{i}\"")).unwrap_or_default();
        let body = format!(
            "{{\"type\":\"{event_type}\",\"userId\":\"{user}\",\"source\":\"whatsapp\",\"payload\":{payload}{id_field}}}"
        );
        self.post("/api/hooks/events", PUBLISHER, &body)
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

fn spawn(
    config: &Path,
    log: &Arc<Mutex<Vec<String>>>,
    env: &[(String, String)],
) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn hookd");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    let sink = Arc::clone(log);
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                // Text or JSON log line: the address is the run of address characters.
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_hexdigit() || ".:[]".contains(*c))
                    .collect();
                let _ = tx.send(addr);
            }
            sink.lock().unwrap().push(line);
        }
    });
    let addr = match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(a) => a.parse().expect("listen address"),
        Err(_) => {
            let _ = child.kill();
            panic!(
                "hookd did not start; log:\n{}",
                log.lock().unwrap().join("\n")
            );
        }
    };
    (child, addr)
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Asserts the status and the error code of a JSON error answer.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            self.status, status,
            "expected {status} {code}, got: {}",
            self.body
        );
        let v = self.json();
        assert_eq!(v["code"], code, "{}", self.body);
        assert!(
            v["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{}",
            self.body
        );
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    if let Some(b) = body {
        bytes.extend_from_slice(b);
    }
    raw(addr, &bytes)
}

/// Sends `bytes` as they are and parses the answer.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    // The server may answer (e.g. 413) and close before reading everything we send.
    let _ = stream.write_all(bytes);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    parse_response(&answer)
}

pub fn parse_response(answer: &[u8]) -> Resp {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Resp {
        status,
        headers,
        body: body.to_string(),
    }
}

impl Hookd {
    /// Polls the delivery log of `webhook` until `pred` holds for its deliveries (newest
    /// first), at most `timeout`; returns them.
    pub fn wait_deliveries(
        &self,
        token: &str,
        webhook: &str,
        timeout: Duration,
        pred: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let r = self.get(
                &format!("/api/hooks/webhooks/{webhook}/deliveries?limit=100"),
                token,
            );
            assert_eq!(r.status, 200, "{}", r.body);
            let list = r.json()["deliveries"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if pred(&list) {
                return list;
            }
            assert!(
                Instant::now() < deadline,
                "deliveries of {webhook} did not reach the expected state within {timeout:?}: {list:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn webhook(&self, token: &str, webhook: &str) -> Value {
        let r = self.get(&format!("/api/hooks/webhooks/{webhook}"), token);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    }
}

/// Polls `f` every 50 ms until it returns `Some`, failing after `timeout`.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "{what} (waited {timeout:?})");
        std::thread::sleep(Duration::from_millis(50));
    }
}
