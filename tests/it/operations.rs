//! Operations: the systemd notify protocol, Prometheus metrics moving with traffic, and
//! JSON logs.

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::common::receiver::{Receiver, Reply};
use crate::common::{Hookd, Settings, USER};

const WAIT: Duration = Duration::from_secs(20);

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        .parse()
        .unwrap()
}

#[test]
fn notifies_systemd_ready_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut hookd = Hookd::start_with(Settings {
        env: vec![
            ("NOTIFY_SOCKET".into(), socket_path.display().to_string()),
            ("WATCHDOG_USEC".into(), "200000".into()),
        ],
        ..Settings::default()
    });
    let next = || {
        let mut buf = [0u8; 256];
        let n = socket.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(next(), "READY=1");
    // Pings every 100 ms (half of WATCHDOG_USEC) from the scheduler loop.
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(next(), "WATCHDOG=1");
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    hookd.signal("TERM");
    // Watchdog pings may keep coming (each read succeeds), so the wait needs a deadline
    // of its own: STOPPING=1 must come soon after SIGTERM.
    let deadline = Instant::now() + WAIT;
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m == "STOPPING=1") {
        assert!(
            Instant::now() < deadline,
            "no STOPPING=1 within {WAIT:?} of SIGTERM; got {} notifications, the last {:?}",
            seen.len(),
            &seen[seen.len().saturating_sub(3)..]
        );
        seen.push(next());
    }
    assert!(hookd.terminate_wait().success());
}

#[test]
fn metrics_move_with_traffic() {
    let hookd = Hookd::start();
    let scrape = || {
        let r = hookd.request("GET", "/metrics", None, None);
        assert_eq!(r.status, 200);
        assert!(r.header("content-type").unwrap().starts_with("text/plain"));
        r.body
    };
    let before = scrape();
    assert_eq!(metric(&before, "hookd_events_ingested_total"), 0.0);
    assert_eq!(metric(&before, "hookd_queue_depth"), 0.0);
    assert!(metric(&before, "hookd_store_bytes") > 0.0);

    let ok = Receiver::ok();
    let failing = Receiver::start(|_, _| Reply::Status(500));
    hookd.create_webhook(USER, &ok.url("/ok"), &["*"], None);
    let bad = hookd.create_webhook(USER, &failing.url("/bad"), &["*"], None);
    for i in 0..3 {
        hookd.publish("app:connected", "user-123", "{}", Some(&format!("m{i}")));
    }
    ok.wait_for(3, WAIT);
    failing.wait_for(3, WAIT);
    hookd.wait_deliveries(USER, &bad, WAIT, |d| {
        d.iter()
            .all(|d| d["attempts"].as_array().unwrap().len() == 1)
    });

    // Counters move right after each attempt is committed (a moment after the API shows
    // it): wait until all six attempts and both finished deliveries are counted.
    let deadline = Instant::now() + WAIT;
    let after = loop {
        let text = scrape();
        if metric(&text, "hookd_attempt_duration_seconds_count") == 6.0
            && metric(
                &text,
                "hookd_deliveries_finished_total{status=\"succeeded\"}",
            ) == 3.0
            && metric(&text, "hookd_attempts_total{result=\"failure\"}") == 3.0
        {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "attempts never all counted:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(metric(&after, "hookd_events_ingested_total"), 3.0);
    assert_eq!(
        metric(&after, "hookd_attempts_total{result=\"success\"}"),
        3.0
    );
    assert_eq!(
        metric(&after, "hookd_attempts_total{result=\"failure\"}"),
        3.0
    );
    assert_eq!(
        metric(
            &after,
            "hookd_deliveries_finished_total{status=\"succeeded\"}"
        ),
        3.0
    );
    assert_eq!(metric(&after, "hookd_attempt_duration_seconds_count"), 6.0);
    assert_eq!(
        metric(&after, "hookd_queue_depth"),
        3.0,
        "the failing webhook's three wait for their retry"
    );
    assert_eq!(
        metric(&after, "hookd_queue_due"),
        0.0,
        "not due for a minute"
    );
    assert_eq!(metric(&after, "hookd_webhooks{status=\"healthy\"}"), 2.0);
    // A repeat is not counted again.
    let repeat = hookd.ingest("app:connected", "user-123", "{}", Some("m0"));
    assert_eq!(
        repeat.status, 200,
        "a repeat is answered 200: {}",
        repeat.body
    );
    assert_eq!(repeat.json()["id"], "m0");
    assert_eq!(metric(&scrape(), "hookd_events_ingested_total"), 3.0);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let hookd = Hookd::start_with(Settings {
        top: "log_format = \"json\"".into(),
        ..Settings::default()
    });
    let rx = Receiver::ok();
    hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    hookd.publish("app:connected", "user-123", "{}", None);
    rx.wait_for(1, WAIT);
    assert!(hookd.wait_for_log("delivery attempt", WAIT));
    let log = hookd.log();
    let attempt = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
        .find(|v| v["fields"]["message"] == "delivery attempt")
        .unwrap();
    for field in ["webhook", "delivery", "attempt", "status", "duration_ms"] {
        assert!(
            attempt["fields"].get(field).is_some(),
            "{field} missing: {attempt}"
        );
    }
}

#[test]
fn systemd_unit_is_hardened_and_valid() {
    let unit = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/hookd.service");
    if !common::optional_tool(
        common::runs("systemd-analyze"),
        "systemd-analyze is not installed, so the unit file is not checked (.ci/run installs it)",
    ) {
        return;
    }
    let out = std::process::Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(&unit)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| l.split("exposure level for hookd.service:").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");

    // `verify` needs the ExecStart binary to exist: point it at the one under test.
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(&unit)
        .unwrap()
        .replace("/usr/local/bin/hookd", env!("CARGO_BIN_EXE_hookd"));
    let copy = dir.path().join("hookd.service");
    std::fs::write(&copy, text).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn retention_prunes_old_records_and_leaves_the_queue_alone() {
    // 6 s of retention: hookd prunes every 1.5 s (a quarter of it).
    let hookd = Hookd::start_with(Settings::default().with_retention("6s"));
    let ok = Receiver::ok();
    let down = Receiver::start(|_, _| Reply::Status(503));
    let delivered = hookd.create_webhook(USER, &ok.url("/ok"), &["app:*"], None);
    let waiting = hookd.create_webhook(USER, &down.url("/down"), &["message:*"], None);
    let started = Instant::now();
    hookd.publish("app:connected", "user-123", "{}", Some("old-app"));
    hookd.publish("message:sent", "user-123", "{}", Some("old-msg"));
    ok.wait_for(1, WAIT);
    down.wait_for(1, WAIT);

    // Half a retention later, a newer event (of a type no webhook takes). Sleeping here
    // ages the old events on purpose; nothing is hoped for.
    std::thread::sleep(Duration::from_secs(3).saturating_sub(started.elapsed()));
    hookd.publish("agent:invoked", "user-123", "{}", Some("newer"));
    let newer_at = Instant::now();
    assert_eq!(
        hookd.get("/api/hooks/events/old-app", USER).status,
        200,
        "the old event outlived its first pruning passes (it is younger than 6 s)"
    );

    // Within a few seconds the old event and its finished delivery are gone.
    let deadline = Instant::now() + WAIT;
    while hookd.get("/api/hooks/events/old-app", USER).status != 404 {
        assert!(
            Instant::now() < deadline,
            "old event never pruned; log:\n{}",
            hookd.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The pass that pruned old-app ran after `newer` was stored, when `newer` was at
    // least 3 s old (two pruning intervals) yet younger than the 6 s retention: kept.
    let age = newer_at.elapsed();
    let r = hookd.get("/api/hooks/events/newer", USER);
    assert_eq!(
        r.status,
        200,
        "an event {age:?} old (retention 6 s) was pruned: {}\nlog:\n{}",
        r.body,
        hookd.log()
    );
    assert!(
        age < Duration::from_secs(6),
        "inconclusive: the check came {age:?} after the newer event, past its retention"
    );
    hookd.wait_deliveries(USER, &delivered, WAIT, |d| d.is_empty());
    // The pending delivery stays queued (its retry is due in a minute).
    let pending = hookd.wait_deliveries(USER, &waiting, WAIT, |d| d.len() == 1);
    assert_eq!(pending[0]["status"], "pending");
    let metrics = hookd.request("GET", "/metrics", None, None).body;
    assert_eq!(metric(&metrics, "hookd_queue_depth"), 1.0);
    assert!(hookd.log().contains("retention: pruned"));
}

#[test]
fn backup_under_write_load_restores_every_acknowledged_event() {
    if crate::common::redb_only("restores a redb backup file") {
        return;
    }
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    let mut hookd = Hookd::start();
    let acked = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|t| {
            let (acked, stop, addr) = (Arc::clone(&acked), Arc::clone(&stop), hookd.addr);
            std::thread::spawn(move || {
                let auth = format!("Bearer {}", common::PUBLISHER);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    let id = format!("load-{t}-{i}");
                    let body = format!(r#"{{"type":"agent:invoked","userId":"user-123","source":"s","payload":{{}},"id":"{id}"}}"#);
                    let r = common::http(addr, "POST", "/api/hooks/events", &[("Authorization", &auth), ("Content-Type", "application/json")], Some(body.as_bytes()));
                    assert_eq!(r.status, 202, "{}", r.body);
                    acked.lock().unwrap().push(id);
                    i += 1;
                }
            })
        })
        .collect();
    let deadline = Instant::now() + WAIT;
    while acked.lock().unwrap().len() < 200 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let before: Vec<String> = acked.lock().unwrap().clone();
    // A user token may not take backups.
    hookd
        .request("POST", "/api/admin/backup", Some(USER), None)
        .assert_error(403, "forbidden");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["backup", "--url", &format!("http://{}", hookd.addr)])
        .env("HOOKD_TOKEN", common::ADMIN)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    let total = acked.lock().unwrap().len();
    assert!(
        answer["events"].as_u64().unwrap() >= before.len() as u64,
        "{answer}"
    );
    assert!(answer["bytes"].as_u64().unwrap() > 0);

    // Restore: stop hookd, put the copy in place of the data file, start again.
    let backup = std::path::PathBuf::from(answer["path"].as_str().unwrap());
    hookd.kill9();
    std::fs::copy(&backup, hookd.dir.path().join("data/hookd.redb")).unwrap();
    hookd.restart();
    for id in &before {
        assert_eq!(
            hookd.get(&format!("/api/hooks/events/{id}"), USER).status,
            200,
            "{id} acknowledged before the backup but missing"
        );
    }
    eprintln!(
        "backup held {} events; {} acknowledged before it began, {total} in all",
        answer["events"],
        before.len()
    );
}
