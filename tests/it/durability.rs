//! Durability against real process deaths: `kill -9` while publishers are sending loses
//! no acknowledged event and invents none; `kill -9` with attempts in flight redelivers
//! exactly those; SIGTERM exits 0 with everything committed and drains the attempts
//! under way, so nothing arrives twice.

use crate::common;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{Hookd, USER};

const RECEIVER: &str = "http://127.0.0.1:9/hook";

fn all_event_ids(hookd: &Hookd) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/hooks/events?limit=100&after={c}"),
            None => "/api/hooks/events?limit=100".to_string(),
        };
        let page = hookd.get(&path, USER).json();
        for e in page["events"].as_array().unwrap() {
            assert!(
                ids.insert(e["id"].as_str().unwrap().to_string()),
                "listed twice: {e}"
            );
        }
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

fn all_delivery_event_ids(hookd: &Hookd, webhook: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let base = format!("/api/hooks/webhooks/{webhook}/deliveries?limit=100");
        let path = match &cursor {
            Some(c) => format!("{base}&after={c}"),
            None => base,
        };
        let page = hookd.get(&path, USER).json();
        for d in page["deliveries"].as_array().unwrap() {
            assert_eq!(d["status"], "pending", "{d}");
            ids.push(d["eventId"].as_str().unwrap().to_string());
        }
        match page["next"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return ids,
        }
    }
}

/// How often each id occurs in `ids`, for the ones that occur more than once.
fn repeated(ids: &[String]) -> Vec<(&str, usize)> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let mut more: Vec<_> = counts.into_iter().filter(|(_, n)| *n > 1).collect();
    more.sort_unstable();
    more
}

#[test]
fn kill_9_while_publishers_send_loses_no_acknowledged_event() {
    // Deliveries far in the future: this test is about the queue, not sending.
    let mut hookd = Hookd::start_with(common::Settings {
        delivery: r#"retry_schedule = ["1h"]"#.into(),
        ..Default::default()
    });
    let hook_a = hookd.create_webhook(USER, RECEIVER, &["*"], None);
    let hook_b = hookd.create_webhook(USER, RECEIVER, &["message:*"], None);

    // 8 concurrent publishers (concurrent ingests share group commits) send until hookd
    // dies under them. Each records what it sent and what was acknowledged.
    let addr = hookd.addr;
    let acked_so_far = Arc::new(AtomicUsize::new(0));
    let publishers: Vec<_> = (0..8)
        .map(|t| {
            let acked_so_far = Arc::clone(&acked_so_far);
            std::thread::spawn(move || {
                let auth = format!("Bearer {}", common::PUBLISHER);
                let (mut sent, mut acked) = (Vec::new(), Vec::new());
                for i in 0..20_000 {
                    let id = format!("crash-{t}-{i}");
                    let kind = if i % 2 == 0 { "message:received" } else { "app:connected" };
                    let body = format!(r#"{{"type":"{kind}","userId":"user-123","source":"s","payload":{{"i":{i}}},"id":"{id}"}}"#);
                    sent.push(id.clone());
                    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
                    match common::try_http(addr, "POST", "/api/hooks/events", &headers, Some(body.as_bytes())) {
                        Ok(r) => {
                            assert_eq!(r.status, 202, "{id}: {}", r.body);
                            acked.push(id);
                            acked_so_far.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => return (sent, acked, Some(e)),
                    }
                }
                (sent, acked, None)
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked_so_far.load(Ordering::Relaxed) < 300 {
        assert!(Instant::now() < deadline, "publishers stalled");
        std::thread::sleep(Duration::from_millis(1));
    }
    hookd.kill9();
    let mut sent = HashSet::new();
    let mut acked = HashSet::new();
    for (t, p) in publishers.into_iter().enumerate() {
        let (s, a, error) = p.join().unwrap();
        // Every publisher was still sending when hookd died: requests were in flight.
        let error = error.unwrap_or_else(|| panic!("publisher {t} finished before the kill"));
        eprintln!(
            "publisher {t}: {} sent, {} acknowledged, then: {error}",
            s.len(),
            a.len()
        );
        sent.extend(s);
        acked.extend(a);
    }
    assert!(acked.len() >= 300);

    hookd.restart();
    let stored = all_event_ids(&hookd);
    let lost: Vec<_> = acked.difference(&stored).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
    let invented: Vec<_> = stored.difference(&sent).collect();
    assert!(invented.is_empty(), "stored but never sent: {invented:?}");
    eprintln!(
        "{} sent, {} acknowledged, {} stored",
        sent.len(),
        acked.len(),
        stored.len()
    );

    // Exactly one pending delivery per stored event for the catch-all webhook, and one
    // per stored message event for the message:* webhook: no duplicates, none missing.
    let a = all_delivery_event_ids(&hookd, &hook_a);
    assert_eq!(
        repeated(&a),
        [],
        "duplicate deliveries for the catch-all webhook"
    );
    assert_eq!(a.iter().cloned().collect::<HashSet<_>>(), stored);
    assert_eq!(a.len(), stored.len());
    let b = all_delivery_event_ids(&hookd, &hook_b);
    assert_eq!(
        repeated(&b),
        [],
        "duplicate deliveries for the message:* webhook"
    );
    let expected_b: HashSet<String> = stored
        .iter()
        .filter(|id| {
            let i: u64 = id.rsplit('-').next().unwrap().parse().unwrap();
            i.is_multiple_of(2)
        })
        .cloned()
        .collect();
    assert_eq!(b.iter().cloned().collect::<HashSet<_>>(), expected_b);
    assert_eq!(b.len(), expected_b.len());

    // Idempotency survives the crash too.
    let some_acked = acked.iter().next().unwrap();
    let again = hookd.ingest("message:received", "user-123", "{}", Some(some_acked));
    assert_eq!(again.status, 200, "{}", again.body);
}

#[test]
fn sigterm_exits_zero_and_keeps_everything() {
    let mut hookd = Hookd::start();
    let hook = hookd.create_webhook(USER, RECEIVER, &["*"], None);
    for i in 0..20 {
        assert_eq!(
            hookd
                .ingest("agent:invoked", "user-123", "{}", Some(&format!("t{i}")))
                .status,
            202
        );
    }
    let status = hookd.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        hookd.log()
    );
    assert!(hookd.log().contains("SIGTERM"));
    // Every user of the store let go before exit, so the file was closed cleanly and the
    // next start needs no repair.
    assert!(
        !hookd.log().contains("store still in use"),
        "{}",
        hookd.log()
    );
    hookd.restart();
    assert_eq!(all_event_ids(&hookd).len(), 20);
    assert_eq!(
        hookd
            .get(&format!("/api/hooks/webhooks/{hook}"), USER)
            .status,
        200
    );
}

#[test]
fn a_second_hookd_on_the_same_data_is_refused_clearly() {
    if crate::common::redb_only(
        "the redb file's lock (on PostgreSQL a second node joins the cluster)",
    ) {
        return;
    }
    let hookd = Hookd::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["serve", "--config"])
        .arg(&hookd.config_path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("hookd.redb"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn event_ids(received: &[common::receiver::Received]) -> HashSet<String> {
    received.iter().map(|r| r.event_id()).collect()
}

/// Every delivery of `webhook` succeeded after exactly one recorded attempt.
fn all_succeeded_once(hookd: &Hookd, webhook: &str, n: usize) {
    let log = hookd.wait_deliveries(USER, webhook, Duration::from_secs(30), |d| {
        d.len() == n && d.iter().all(|d| d["status"] == "succeeded")
    });
    for d in &log {
        let attempts = d["attempts"].as_array().unwrap();
        assert_eq!(attempts.len(), 1, "one recorded attempt: {d}");
        assert_eq!(attempts[0]["attempt"], 1, "{d}");
    }
}

#[test]
fn kill_9_with_attempts_in_flight_then_everything_arrives_after_restart() {
    use common::receiver::{Receiver, Reply};
    let mut hookd = Hookd::start_with(common::Settings {
        delivery: "workers = 4\nmax_in_flight_per_webhook = 4\ntimeout = \"60s\"".into(),
        ..Default::default()
    });
    // Every attempt hangs (far longer than the test needs): the four in flight are under
    // way when hookd dies, and no fifth can start.
    let rx = Receiver::start(|_, _| Reply::Hang(Duration::from_secs(45)));
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    for i in 0..20 {
        hookd.publish("message:received", "user-123", "{}", Some(&format!("k{i}")));
    }
    rx.wait_for(4, Duration::from_secs(20));
    hookd.kill9();
    let in_flight = rx.received();
    assert_eq!(
        in_flight.len(),
        4,
        "max_in_flight_per_webhook attempts were under way"
    );

    rx.set(|_, _| Reply::Status(200));
    hookd.restart();
    all_succeeded_once(&hookd, &hook, 20);
    let got = rx.received();
    let want: HashSet<String> = (0..20).map(|i| format!("k{i}")).collect();
    assert_eq!(event_ids(&got), want);
    // The four under way at the kill are sent again, each exactly once more, with the
    // same delivery id and the same attempt number (the interrupted attempt was never
    // recorded); every other delivery arrives exactly once.
    let again: Vec<&common::receiver::Received> = got[4..].iter().collect();
    for first in &in_flight {
        let repeats: Vec<_> = again
            .iter()
            .filter(|r| r.event_id() == first.event_id())
            .collect();
        assert_eq!(repeats.len(), 1, "{} redelivered once", first.event_id());
        for header in ["x-hook-delivery", "x-hook-attempt"] {
            assert_eq!(
                repeats[0].header(header),
                first.header(header),
                "{} repeats {header}",
                first.event_id()
            );
        }
    }
    assert_eq!(
        got.len(),
        24,
        "the 16 never in flight arrive exactly once: {:?}",
        got.iter().map(|r| r.event_id()).collect::<Vec<_>>()
    );
    assert!(
        got.iter().all(|r| r.header("x-hook-attempt") == Some("1")),
        "every request is attempt 1"
    );
}

#[test]
fn sigterm_mid_delivery_exits_zero_and_the_rest_follows_after_restart() {
    use common::receiver::{Receiver, Reply};
    let mut hookd = Hookd::start_with(common::Settings {
        delivery: "workers = 2\nmax_in_flight_per_webhook = 2".into(),
        ..Default::default()
    });
    let rx = Receiver::start(|_, _| Reply::Delayed(Duration::from_millis(300), 200));
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    for i in 0..20 {
        hookd.publish("agent:response", "user-123", "{}", Some(&format!("s{i}")));
    }
    rx.wait_for(1, Duration::from_secs(20));
    let status = hookd.terminate();
    assert!(
        status.success(),
        "exit status {status:?}; log:\n{}",
        hookd.log()
    );
    let before = rx.received().len();
    assert!(
        before < 20,
        "shutdown did not wait for the whole queue ({before} sent)"
    );

    hookd.restart();
    // The attempts under way at SIGTERM were drained (answered and recorded), so after
    // the restart every event arrives exactly once.
    all_succeeded_once(&hookd, &hook, 20);
    let got = rx.received();
    let ids: Vec<String> = got.iter().map(|r| r.event_id()).collect();
    assert_eq!(
        repeated(&ids),
        [],
        "delivered twice across a graceful restart"
    );
    let want: HashSet<String> = (0..20).map(|i| format!("s{i}")).collect();
    assert_eq!(event_ids(&got), want);
    assert_eq!(got.len(), 20);
}
