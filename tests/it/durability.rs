//! Durability against real process deaths: `kill -9` right after the last 202 loses
//! nothing, SIGTERM exits 0 with everything committed.

use crate::common;

use std::collections::HashSet;
use std::sync::Arc;

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

#[test]
fn kill_9_right_after_the_last_202_loses_nothing() {
    // Deliveries far in the future: this test is about the queue, not sending.
    let hookd = Hookd::start_with(common::Settings {
        delivery: r#"retry_schedule = ["1h"]"#.into(),
        ..Default::default()
    });
    let hook_a = hookd.create_webhook(USER, RECEIVER, &["*"], None);
    let hook_b = hookd.create_webhook(USER, RECEIVER, &["message:*"], None);

    // 8 concurrent publishers, 300 events: concurrent ingests share group commits.
    let hookd = Arc::new(std::sync::Mutex::new(hookd));
    let addr = hookd.lock().unwrap().addr;
    let threads: Vec<_> = (0..8)
        .map(|t| {
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                for i in 0..38 {
                    let id = format!("crash-{t}-{i}");
                    let kind = if i % 2 == 0 { "message:received" } else { "app:connected" };
                    let body = format!(r#"{{"type":"{kind}","userId":"user-123","source":"s","payload":{{"i":{i}}},"id":"{id}"}}"#);
                    let r = common::http(
                        addr,
                        "POST",
                        "/api/hooks/events",
                        &[("Authorization", &format!("Bearer {}", common::PUBLISHER)), ("Content-Type", "application/json")],
                        Some(body.as_bytes()),
                    );
                    assert_eq!(r.status, 202, "{}", r.body);
                    acked.push((id, kind));
                }
                acked
            })
        })
        .collect();
    let acked: Vec<(String, &str)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    // No pause: the process dies the moment the last 202 is in.
    let mut hookd = Arc::try_unwrap(hookd).ok().unwrap().into_inner().unwrap();
    hookd.kill9();
    assert_eq!(acked.len(), 304);

    hookd.restart();
    let events = all_event_ids(&hookd);
    for (id, _) in &acked {
        assert!(events.contains(id), "event {id} was acknowledged but lost");
    }
    assert_eq!(events.len(), acked.len());

    let a: HashSet<String> = all_delivery_event_ids(&hookd, &hook_a)
        .into_iter()
        .collect();
    let b: Vec<String> = all_delivery_event_ids(&hookd, &hook_b);
    assert_eq!(
        a.len(),
        acked.len(),
        "one pending delivery per event for the catch-all webhook"
    );
    let expected_b: HashSet<&str> = acked
        .iter()
        .filter(|(_, k)| k.starts_with("message:"))
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        b.len(),
        expected_b.len(),
        "no duplicates for the message:* webhook"
    );
    assert_eq!(
        b.iter().map(String::as_str).collect::<HashSet<_>>(),
        expected_b
    );

    // Idempotency survives the crash too.
    let again = hookd.ingest("message:received", "user-123", "{}", Some(&acked[0].0));
    assert_eq!(again.status, 200);
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

#[test]
fn kill_9_with_attempts_in_flight_then_everything_arrives_after_restart() {
    use common::receiver::{Receiver, Reply};
    let mut hookd = Hookd::start_with(common::Settings {
        delivery: "workers = 4\nmax_in_flight_per_webhook = 4\ntimeout = \"10s\"".into(),
        ..Default::default()
    });
    // Every attempt hangs: the four in flight are under way when hookd dies.
    let rx = Receiver::start(|_, _| Reply::Hang(std::time::Duration::from_secs(5)));
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    for i in 0..20 {
        assert_eq!(
            hookd
                .ingest("message:received", "user-123", "{}", Some(&format!("k{i}")))
                .status,
            202
        );
    }
    rx.wait_for(4, std::time::Duration::from_secs(20));
    hookd.kill9();

    rx.set(|_, _| Reply::Status(200));
    hookd.restart();
    let want: HashSet<String> = (0..20).map(|i| format!("k{i}")).collect();
    let got = rx.wait_until(std::time::Duration::from_secs(30), |r| {
        event_ids(r).is_superset(&want)
    });
    assert!(event_ids(&got).is_superset(&want));
    // Redelivery keeps the delivery id: the in-flight four arrive twice with the same ids.
    let first_four: Vec<&str> = got[..4]
        .iter()
        .map(|r| r.header("x-hook-delivery").unwrap())
        .collect();
    for id in first_four {
        assert!(
            got[4..]
                .iter()
                .any(|r| r.header("x-hook-delivery") == Some(id)),
            "{id} was attempted again"
        );
    }
    hookd.wait_deliveries(USER, &hook, std::time::Duration::from_secs(30), |d| {
        d.len() == 20 && d.iter().all(|d| d["status"] == "succeeded")
    });
}

#[test]
fn sigterm_mid_delivery_exits_zero_and_the_rest_follows_after_restart() {
    use common::receiver::{Receiver, Reply};
    let mut hookd = Hookd::start_with(common::Settings {
        delivery: "workers = 2\nmax_in_flight_per_webhook = 2".into(),
        ..Default::default()
    });
    let rx = Receiver::start(|_, _| Reply::Delayed(std::time::Duration::from_millis(300), 200));
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    for i in 0..20 {
        assert_eq!(
            hookd
                .ingest("agent:response", "user-123", "{}", Some(&format!("s{i}")))
                .status,
            202
        );
    }
    rx.wait_for(1, std::time::Duration::from_secs(20));
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
    let want: HashSet<String> = (0..20).map(|i| format!("s{i}")).collect();
    rx.wait_until(std::time::Duration::from_secs(30), |r| {
        event_ids(r).is_superset(&want)
    });
    hookd.wait_deliveries(USER, &hook, std::time::Duration::from_secs(30), |d| {
        d.len() == 20 && d.iter().all(|d| d["status"] == "succeeded")
    });
}
