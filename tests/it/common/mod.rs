//! Test harness: runs the real `hookd` binary on a free loopback port with a temporary
//! data dir, and talks to it over plain HTTP/1.1 sockets (so tests control every byte).

pub mod disk;
pub mod postgres;
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
    /// Lines for the `[notifications]` section.
    pub notifications: String,
    /// The PostgreSQL database to use (`[store] backend = "postgres"`). Under
    /// `HOOKD_TEST_STORE=postgres` a hookd started without one gets a fresh database.
    pub postgres_url: Option<String>,
    /// Lines for the `[cluster]` section, written only with `postgres_url`.
    pub cluster: String,
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
    // On PostgreSQL the data dir stays (hookd may keep files there); the store is the
    // database.
    let (store, cluster) = match &s.postgres_url {
        Some(url) => (
            format!(
                "backend = \"postgres\"\npostgres_url = \"{url}\"\n{}",
                s.store
            ),
            format!("\n\n[cluster]\n{}", s.cluster),
        ),
        None => (s.store.clone(), String::new()),
    };
    format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n{}\n\n[delivery]\n{permissive}{}\n\n[limits]\n{}\n\n[retention]\n{}\n\n[store]\n{store}{cluster}\n\n[notifications]\n{}\n\n\
         [[tokens]]\nuser = \"user-123\"\nrole = \"user\"\nsha256 = \"{}\"\n\n\
         [[tokens]]\nuser = \"user-456\"\nrole = \"user\"\nsha256 = \"{}\"\n\n\
         [[tokens]]\nuser = \"openwork\"\nrole = \"publisher\"\nsha256 = \"{}\"\n\n\
         [[tokens]]\nuser = \"ops\"\nrole = \"admin\"\nsha256 = \"{}\"\n",
        data_dir.display(),
        s.top,
        s.delivery,
        s.limits,
        s.retention,
        s.notifications,
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
    /// The database this hookd got for itself on PostgreSQL; dropped after the process
    /// is gone (`Drop` kills it first).
    _database: Option<postgres::Database>,
}

impl Hookd {
    pub fn start() -> Hookd {
        Hookd::start_with(Settings::default())
    }

    pub fn start_with(mut settings: Settings) -> Hookd {
        let database = (settings.postgres_url.is_none() && postgres::enabled()).then(|| {
            let db = postgres::database();
            settings.postgres_url = Some(db.url().to_string());
            db
        });
        if settings.postgres_url.is_some() && !settings.cluster.contains("node_id") {
            settings.cluster = format!(
                "node_id = \"{}\"\n{}",
                postgres::node_id(),
                settings.cluster
            );
        }
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
            _database: database,
        }
    }

    /// Starts hookd again on the same config and data dir (a new port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop hookd before restarting it");
        let (child, addr) = spawn(&self.config_path, &self.log, &self.env);
        self.child = Some(child);
        self.addr = addr;
    }

    /// SIGKILL, and waits for the process to be gone. Fails when hookd is not running or
    /// had already exited: a kill -9 test must kill a live process.
    pub fn kill9(&mut self) {
        let mut child = self
            .child
            .take()
            .expect("kill9: hookd is not running (stopped already?)");
        if let Some(status) = child.try_wait().expect("kill9: try_wait") {
            panic!(
                "kill9: hookd had already exited ({status}) before the kill; log:\n{}",
                self.log()
            );
        }
        child
            .kill()
            .unwrap_or_else(|e| panic!("kill9: SIGKILL to pid {}: {e}", child.id()));
        let status = child.wait().expect("kill9: reap");
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "kill9: hookd ended with {status}, not by SIGKILL; log:\n{}",
            self.log()
        );
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

    #[must_use = "an answer nobody checks proves nothing"]
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

    #[must_use = "an answer nobody checks proves nothing"]
    pub fn get(&self, path: &str, token: &str) -> Resp {
        self.request("GET", path, Some(token), None)
    }

    #[must_use = "an answer nobody checks proves nothing"]
    pub fn post(&self, path: &str, token: &str, json: &str) -> Resp {
        self.request("POST", path, Some(token), Some(json))
    }

    #[must_use = "an answer nobody checks proves nothing"]
    pub fn patch(&self, path: &str, token: &str, json: &str) -> Resp {
        self.request("PATCH", path, Some(token), Some(json))
    }

    #[must_use = "an answer nobody checks proves nothing"]
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

    /// Ingests an event of `event_type` for `user` and returns the answer.
    #[must_use = "an answer nobody checks proves nothing"]
    pub fn ingest(&self, event_type: &str, user: &str, payload: &str, id: Option<&str>) -> Resp {
        let id_field = id.map(|i| format!(",\"id\":\"{i}\"")).unwrap_or_default();
        let body = format!(
            "{{\"type\":\"{event_type}\",\"userId\":\"{user}\",\"source\":\"whatsapp\",\"payload\":{payload}{id_field}}}"
        );
        self.post("/api/hooks/events", PUBLISHER, &body)
    }

    /// Ingests a new event, asserts the 202, and returns the event's id.
    pub fn publish(&self, event_type: &str, user: &str, payload: &str, id: Option<&str>) -> String {
        let r = self.ingest(event_type, user, payload, id);
        assert_eq!(r.status, 202, "ingest {event_type} {id:?}: {}", r.body);
        r.json()["id"].as_str().expect("event id").to_string()
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
        // The config names the store; a developer's own database must not replace it.
        .env_remove("HOOKD_POSTGRES_URL")
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
#[must_use = "an answer nobody checks proves nothing"]
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    raw(addr, &request_bytes(addr, method, path, headers, body))
}

fn request_bytes(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Vec<u8> {
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
    bytes
}

/// Sends `bytes` as they are and parses the answer; fails, saying what went wrong, when
/// there is no complete answer.
#[must_use = "an answer nobody checks proves nothing"]
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> Resp {
    try_raw(addr, bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// One HTTP/1.1 request on a fresh connection; `Err` says why there was no complete answer.
pub fn try_http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Result<Resp, String> {
    try_raw(addr, &request_bytes(addr, method, path, headers, body))
}

/// Sends `bytes` and reads the answer to the end. The answer must be whole: a head, and
/// all of its `Content-Length`. The server may answer (e.g. 413) and close before it read
/// everything, so a failed write, or a read that ends in an error, is accepted once the
/// answer is whole.
pub fn try_raw(addr: SocketAddr, bytes: &[u8]) -> Result<Resp, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect to {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| format!("set_read_timeout: {e}"))?;
    let written = stream.write_all(bytes);
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    let request_line = String::from_utf8_lossy(bytes)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let problem = match (&written, &read) {
        (Ok(()), Ok(_)) => None,
        (Err(e), _) => Some(format!("sending failed ({e})")),
        (_, Err(e)) => Some(format!("reading failed ({e})")),
    };
    // An answer to HEAD announces the length of a body it does not send.
    let head_request = request_line.starts_with("HEAD ");
    let incomplete = match announced_length(&answer) {
        None => Some("closed without a whole response head".to_string()),
        Some((Some(len), got)) if got < len && !head_request => {
            Some(format!("the body ends after {got} of its {len} bytes"))
        }
        // Delimited by the close: whole only if the connection ended cleanly.
        Some((None, _)) if problem.is_some() => Some("no Content-Length".to_string()),
        Some(_) => None,
    };
    if let Some(incomplete) = incomplete {
        return Err(format!(
            "no complete answer from {addr} to {request_line:?}: {incomplete}{}; got {} bytes: {:?}",
            problem.map(|p| format!(", {p}")).unwrap_or_default(),
            answer.len(),
            String::from_utf8_lossy(&answer)
        ));
    }
    Ok(parse_response(&answer))
}

/// `None` without a whole response head; else (its Content-Length, the body's length).
fn announced_length(answer: &[u8]) -> Option<(Option<usize>, usize)> {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let length = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok());
    Some((length, body.len()))
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
            // A missing array is an answer that is wrong, not an empty log: fail.
            let list = r.json()["deliveries"]
                .as_array()
                .cloned()
                .unwrap_or_else(|| panic!("no `deliveries` array in {}", r.body));
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

/// Whether this is a CI run (`CI=true`, which .ci/run sets): then a missing optional tool
/// fails the test that needs it instead of skipping that check.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Gate for a check that needs an optional tool (Node, Python's standardwebhooks,
/// systemd-analyze, Chromium). `true`: run it. When the tool is missing (`available` is
/// false), a CI run fails here, naming it; elsewhere the check is skipped with a note.
pub fn optional_tool(available: bool, missing: &str) -> bool {
    if available {
        return true;
    }
    assert!(!in_ci(), "CI=true, but {missing}");
    eprintln!("skipping a check: {missing} (under CI=true this fails)");
    false
}

/// Whether `program --version` runs and succeeds.
pub fn runs(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Skip gate for a test that depends on redb itself (its file, a tmpfs under it, its
/// backup or its upgrade): `true`, with `reason` printed, when the suite runs on
/// PostgreSQL (`HOOKD_TEST_STORE=postgres`). Everything seen through the API runs on both.
pub fn redb_only(reason: &str) -> bool {
    if postgres::enabled() {
        eprintln!("skipped on PostgreSQL: {reason}");
        return true;
    }
    false
}

/// Skip gate for a test of PostgreSQL or the cluster: `true`, with a note, unless the
/// suite runs with `HOOKD_TEST_STORE=postgres`.
pub fn postgres_only() -> bool {
    if postgres::enabled() {
        return false;
    }
    eprintln!("skipped: needs HOOKD_TEST_STORE=postgres (a PostgreSQL test)");
    true
}
