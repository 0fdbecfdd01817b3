//! The promise under faults and skew: one busy tenant does not starve another, nothing is
//! sent after DELETE or disable has answered, proxy variables in hookd's environment do
//! not get around the destination guard.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::disk::SmallDisk;
use crate::common::receiver::{Receiver, Reply};
use crate::common::{Hookd, OTHER_USER, Settings, USER, eventually};

const WAIT: Duration = Duration::from_secs(30);

/// A hookd with two workers and `per_webhook` attempts at once per webhook, a receiver
/// that answers in 1 s and one that answers at once.
fn two_workers(per_webhook: usize) -> (Hookd, Receiver, Receiver) {
    let hookd = Hookd::start_with(Settings {
        delivery: format!("workers = 2\nmax_in_flight_per_webhook = {per_webhook}"),
        ..Settings::default()
    });
    let slow = Receiver::start(|_, _| Reply::Delayed(Duration::from_secs(1), 200));
    (hookd, slow, Receiver::ok())
}

/// Ingests `n` `message:received` events for user-123 (a backlog for its webhooks).
fn backlog(hookd: &Hookd, n: usize) {
    for n in 0..n {
        let r = hookd.ingest(
            "message:received",
            "user-123",
            &format!("{{\"n\":{n}}}"),
            None,
        );
        assert_eq!(r.status, 202, "{}", r.body);
    }
}

/// Two old webhooks with 15-event backlogs to a receiver that answers in 1 s, two workers,
/// one attempt at a time per webhook: a newer webhook's one event must get the first
/// worker that frees up, not wait behind both backlogs (it used to wait ~15 s).
#[test]
fn a_busy_webhook_does_not_starve_a_newer_one() {
    let (hookd, slow, fast) = two_workers(1);
    let a1 = hookd.create_webhook(USER, &slow.url("/a1"), &["message:received"], None);
    let a2 = hookd.create_webhook(USER, &slow.url("/a2"), &["message:received"], None);
    backlog(&hookd, 15);
    // Both backlogs are being worked on before the newcomer arrives.
    slow.wait_for(2, WAIT);
    let b = hookd.create_webhook(USER, &fast.url("/b"), &["agent:error"], None);
    let sent = Instant::now();
    let r = hookd.ingest("agent:error", "user-123", "{}", None);
    assert_eq!(r.status, 202, "{}", r.body);
    fast.wait_for(1, WAIT);
    let waited = sent.elapsed();
    let slow_before = slow.received().len();
    // Two attempts were under way when it arrived; it goes as soon as one ends. Allow
    // two more starts for the time between the ingest and the first worker freeing up.
    assert!(
        slow_before <= 4,
        "{b} waited behind {slow_before} attempts of {a1} and {a2} ({waited:?})"
    );
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    // The backlogs themselves still complete: the turns skip nobody.
    slow.wait_until(Duration::from_secs(60), |got| got.len() == 30);
}

/// The same across users: one user's backlog does not hold up another user's webhook.
#[test]
fn one_users_backlog_does_not_starve_another_user() {
    let (hookd, slow, fast) = two_workers(2);
    hookd.create_webhook(USER, &slow.url("/busy"), &["message:received"], None);
    backlog(&hookd, 12);
    slow.wait_for(2, WAIT);
    hookd.create_webhook(OTHER_USER, &fast.url("/other"), &["message:received"], None);
    let r = hookd.ingest("message:received", "user-456", "{}", None);
    assert_eq!(r.status, 202, "{}", r.body);
    fast.wait_for(1, WAIT);
    let slow_before = slow.received().len();
    assert!(
        slow_before <= 4,
        "the other user's delivery waited behind {slow_before} attempts"
    );
}

/// A listener whose accept queue is full: connection attempts to it hang in SYN-SENT
/// (the kernel drops their SYNs) until the test starts accepting.
struct FullListener {
    listener: TcpListener,
    _fillers: Vec<TcpStream>,
}

impl FullListener {
    fn start() -> FullListener {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        socket.bind(&any.into()).expect("bind");
        socket.listen(0).expect("listen");
        let listener: TcpListener = socket.into();
        let addr = listener.local_addr().expect("local address");
        // Fill the queue until a connection no longer completes.
        let mut fillers = Vec::new();
        loop {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(s) => fillers.push(s),
                Err(_) => break,
            }
            assert!(fillers.len() < 64, "the accept queue never filled up");
        }
        FullListener {
            listener,
            _fillers: fillers,
        }
    }

    fn port(&self) -> u16 {
        self.listener.local_addr().expect("local address").port()
    }

    /// Whether some connection to this listener is stuck in SYN-SENT (read from `ss`).
    fn has_connect_pending(&self) -> bool {
        let out = std::process::Command::new("ss")
            .args(["-Htn", "state", "syn-sent"])
            .output()
            .expect("the test needs `ss` (iproute2) to see hookd's pending connect");
        let port = format!(":{}", self.port());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.split_whitespace().any(|field| field.ends_with(&port)))
    }

    /// Accepts for `window` and returns every request byte that arrives meanwhile.
    fn drain(&self, window: Duration) -> Vec<u8> {
        let got = Arc::new(Mutex::new(Vec::new()));
        self.listener.set_nonblocking(true).expect("nonblocking");
        let deadline = Instant::now() + window;
        let mut readers = Vec::new();
        while Instant::now() < deadline {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let got = Arc::clone(&got);
                    readers.push(std::thread::spawn(move || {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = stream.read(&mut buf) {
                            if n == 0 {
                                break;
                            }
                            got.lock().expect("lock").extend_from_slice(&buf[..n]);
                        }
                    }));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        for r in readers {
            let _ = r.join();
        }
        got.lock().expect("lock").clone()
    }
}

/// DELETE answers only once no attempt of the webhook can still write: an attempt stuck
/// connecting when the DELETE came must not deliver afterwards (it used to, 0.7 s later).
#[test]
fn nothing_is_sent_after_delete_answers() {
    fence_holds(|hookd, id| {
        let r = hookd.delete(&format!("/api/hooks/webhooks/{id}"), USER);
        assert_eq!(r.status, 204, "{}", r.body);
    });
}

#[test]
fn nothing_is_sent_after_disable_answers() {
    fence_holds(|hookd, id| {
        let r = hookd.patch(
            &format!("/api/hooks/webhooks/{id}"),
            USER,
            r#"{"enabled":false}"#,
        );
        assert_eq!(r.status, 200, "{}", r.body);
    });
}

fn fence_holds(stop: impl Fn(&Hookd, &str)) {
    let hookd = Hookd::start_with(Settings {
        delivery: "timeout = \"3s\"\nretry_schedule = [\"0s\", \"1s\"]".into(),
        ..Settings::default()
    });
    let receiver = FullListener::start();
    let id = hookd.create_webhook(
        USER,
        &format!("http://127.0.0.1:{}/fenced", receiver.port()),
        &["message:received"],
        None,
    );
    let r = hookd.ingest("message:received", "user-123", r#"{"fence":true}"#, None);
    assert_eq!(r.status, 202, "{}", r.body);
    // Wait until hookd's attempt is past every check and stuck connecting.
    let deadline = Instant::now() + WAIT;
    while !receiver.has_connect_pending() {
        assert!(Instant::now() < deadline, "hookd never tried to connect");
        std::thread::sleep(Duration::from_millis(20));
    }
    stop(&hookd, &id);
    // From the answer on, nothing for this webhook may reach the receiver, though it
    // now accepts everything.
    let after = receiver.drain(Duration::from_secs(5));
    let text = String::from_utf8_lossy(&after);
    assert!(
        !text.contains("POST /fenced"),
        "a request reached the receiver after the answer:\n{text}"
    );
}

/// A recording HTTP proxy: every request line it receives, answered 502.
fn recording_proxy() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.2:0").expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]);
            let line = head.lines().next().unwrap_or("").to_string();
            record.lock().expect("lock").push(line);
            let _ = stream.write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n");
        }
    });
    (addr, seen)
}

/// `HTTP_PROXY`/`HTTPS_PROXY`/`ALL_PROXY` in hookd's environment are ignored. The proxy
/// sits in an allowed network (127.0.0.2/32), the destination (localhost) does not: with
/// the variables followed, the guard checked only the proxy's address and the proxy was
/// asked to go to the refused one.
#[test]
fn proxy_variables_do_not_get_around_the_guard() {
    let (proxy, seen) = recording_proxy();
    let proxy_url = format!("http://{proxy}");
    let receiver = Receiver::ok();
    let env = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
    ]
    .iter()
    .map(|k| (k.to_string(), proxy_url.clone()))
    .collect();
    let hookd = Hookd::start_with(Settings {
        delivery:
            "allow_http = true\nallowed_networks = [\"127.0.0.2/32\"]\nretry_schedule = [\"0s\"]"
                .into(),
        strict_destinations: true,
        env,
        ..Settings::default()
    });
    // A host name is checked when connecting, so creating it succeeds.
    let url = format!("http://localhost:{}/behind-the-guard", receiver.addr.port());
    let id = hookd.create_webhook(USER, &url, &["message:received"], None);
    let r = hookd.ingest("message:received", "user-123", "{}", None);
    assert_eq!(r.status, 202, "{}", r.body);
    let list = hookd.wait_deliveries(USER, &id, WAIT, |d| {
        d.len() == 1 && d[0]["status"] == "failed"
    });
    let error = list[0]["attempts"][0]["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("destination_not_allowed"),
        "attempt error: {error}"
    );
    assert_eq!(seen.lock().expect("lock").clone(), Vec::<String>::new());
    assert!(receiver.received().is_empty());
}

/// Below `store.min_free_space` new events are refused with 503 store_full and a
/// Retry-After; the rest of hookd works; once space is freed events are accepted again.
#[test]
fn the_free_space_reserve_refuses_new_events_only() {
    if crate::common::redb_only("the free-space reserve of the redb data dir (tmpfs)") {
        return;
    }
    let Some(disk) = SmallDisk::mount("32m") else {
        return;
    };
    let hookd = Hookd::start_with(Settings {
        data_dir: Some(disk.data()),
        store: "min_free_space = \"8MiB\"".into(),
        ..Settings::default()
    });
    let rx = Receiver::ok();
    let id = hookd.create_webhook(USER, &rx.url("/r"), &["message:received"], None);
    let r = hookd.ingest(
        "message:received",
        "user-123",
        "{}",
        Some("before-the-reserve"),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    disk.fill(4 << 20);
    let refused = eventually(WAIT, "new events were never refused", || {
        let r = hookd.ingest("message:received", "user-123", "{}", None);
        (r.status != 202).then_some(r)
    });
    refused.assert_error(503, "store_full");
    assert_eq!(refused.header("retry-after"), Some("5"));
    // What keeps existing promises still commits: a webhook can be disabled.
    let r = hookd.patch(
        &format!("/api/hooks/webhooks/{id}"),
        USER,
        r#"{"enabled":false}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let health = hookd.get("/healthz", USER);
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["reason"], "store_full");
    disk.free();
    eventually(WAIT, "events were not accepted again", || {
        let r = hookd.ingest(
            "message:received",
            "user-123",
            "{}",
            Some("after-the-reserve"),
        );
        (r.status == 202).then_some(())
    });
    assert_eq!(hookd.get("/healthz", USER).status, 200);
    let r = hookd.get("/api/hooks/events/before-the-reserve", USER);
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The disk fills up for real (no reserve): commits fail with ENOSPC. hookd answers 503,
/// /healthz says degraded, deliveries already made are not made again; once space is
/// freed it reopens its store by itself, answers ok and loses no acknowledged event.
#[test]
fn a_full_disk_is_survived_without_a_restart() {
    if crate::common::redb_only("fills the tmpfs under the redb file") {
        return;
    }
    let Some(disk) = SmallDisk::mount("24m") else {
        return;
    };
    let hookd = Hookd::start_with(Settings {
        data_dir: Some(disk.data()),
        store: "min_free_space = 0".into(),
        ..Settings::default()
    });
    let rx = Receiver::ok();
    hookd.create_webhook(USER, &rx.url("/r"), &["message:received"], None);
    let payload = format!("{{\"pad\":\"{}\"}}", "x".repeat(60_000));
    let mut acknowledged = Vec::new();
    let mut n = 0;
    let mut ingest = |acknowledged: &mut Vec<String>| {
        n += 1;
        let id = format!("full-{n}");
        let r = hookd.ingest("message:received", "user-123", &payload, Some(&id));
        if r.status == 202 {
            acknowledged.push(id);
        }
        r
    };
    for _ in 0..5 {
        assert_eq!(ingest(&mut acknowledged).status, 202);
    }
    disk.fill(0);
    let refused = eventually(
        Duration::from_secs(60),
        "the full disk never refused an event",
        || {
            let r = ingest(&mut acknowledged);
            (r.status != 202).then_some(r)
        },
    );
    assert_eq!(refused.status, 503, "{}", refused.body);
    let code = refused.json()["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        code == "store_full" || code == "store_unavailable",
        "code {code}: {}",
        refused.body
    );
    // The truth right after the failure: degraded (hookd marks its health before it
    // answers, and waits 100 ms before its first reopen). Once a commit on the reopened
    // file succeeds it may say ok again, truthfully, while new events are refused only if
    // free space is under the reserve.
    let health = hookd.get("/healthz", USER);
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["status"], "degraded");
    // /metrics still answers while the store is down, and counts the failure.
    let metrics = hookd.get("/metrics", USER);
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    assert!(
        metrics
            .body
            .lines()
            .any(|l| l.starts_with("hookd_store_errors_total ") && !l.ends_with(" 0")),
        "the outage is counted: {}",
        metrics.body
    );
    disk.free();
    eventually(
        Duration::from_secs(30),
        "hookd did not recover by itself",
        || (hookd.get("/healthz", USER).status == 200).then_some(()),
    );
    assert_eq!(ingest(&mut acknowledged).status, 202);
    for id in &acknowledged {
        let r = hookd.get(&format!("/api/hooks/events/{id}"), USER);
        assert_eq!(r.status, 200, "acknowledged event {id} lost: {}", r.body);
    }
    // Every acknowledged event arrives, each delivery exactly once (nothing was in
    // flight at a crash: there was none).
    let got = rx.wait_until(WAIT, |got| got.len() >= acknowledged.len());
    let mut per_delivery = std::collections::HashMap::new();
    for req in &got {
        let id = req
            .header("x-hook-delivery")
            .unwrap_or_default()
            .to_string();
        *per_delivery.entry(id).or_insert(0) += 1;
    }
    let resent: Vec<_> = per_delivery.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        resent.is_empty(),
        "deliveries sent more than once: {resent:?}"
    );
}
