//! `ordering: "fifo"`: one delivery at a time, in ingestion order. The head blocks the
//! line while it is retried (its schedule, a receiver's `Retry-After`); when it ends
//! `failed`, the next goes; a manual retry or a recover queues behind what is pending;
//! changing the ordering applies to what has not started; a restart and a `kill -9` keep
//! the order (the attempt cut short by the kill is made again before the next one).

use std::time::Duration;

use serde_json::json;

use super::{Scripted, WAIT, settings};
use crate::common::receiver::Reply;
use crate::common::{self, Hookd, USER};

/// How long the receiver holds every request: deliveries that overlapped would show.
const HOLD: Duration = Duration::from_millis(20);

fn fifo_webhook(hookd: &Hookd, url: &str) -> String {
    let body = json!({"name": "ordered", "url": url, "eventTypes": ["*"], "ordering": "fifo"});
    let r = hookd.post("/api/hooks/webhooks", USER, &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["ordering"], "fifo");
    r.json()["id"].as_str().unwrap().to_string()
}

fn publish_all(hookd: &Hookd, ids: &[&str]) {
    for id in ids {
        hookd.publish("app:connected", "user-123", "{}", Some(id));
    }
}

fn delivery_status(hookd: &Hookd, hook: &str, event: &str) -> String {
    let log = hookd.wait_deliveries(USER, hook, WAIT, |_| true);
    let d = log
        .iter()
        .find(|d| d["eventId"] == event)
        .unwrap_or_else(|| panic!("no delivery of {event}: {log:#?}"));
    d["status"].as_str().unwrap().to_string()
}

fn delivery_id(hookd: &Hookd, hook: &str, event: &str) -> String {
    let log = hookd.wait_deliveries(USER, hook, WAIT, |_| true);
    let d = log.iter().find(|d| d["eventId"] == event).unwrap();
    d["id"].as_str().unwrap().to_string()
}

#[test]
fn the_head_blocks_the_line_through_its_retries_a_retry_after_and_its_failure() {
    // Up to 8 attempts at once per webhook would be allowed: FIFO makes it one.
    let hookd = Hookd::start_with(settings(
        r#"retry_schedule = ["0s", "200ms", "200ms"]
max_in_flight_per_webhook = 8"#,
    ));
    let rx = Scripted::start(HOLD);
    // e1 fails twice, then succeeds; e3 asks for a 1 s pause, then succeeds; e5 fails
    // all three attempts and ends failed.
    rx.plan("e1", [Reply::Status(500), Reply::Status(500)]);
    let pause = Reply::Full(503, vec![("Retry-After".into(), "1".into())], String::new());
    rx.plan("e3", [pause]);
    rx.plan(
        "e5",
        [Reply::Status(500), Reply::Status(500), Reply::Status(500)],
    );
    let hook = fifo_webhook(&hookd, &rx.rx.url("/fifo"));
    publish_all(&hookd, &["e1", "e2", "e3", "e4", "e5", "e6", "e7"]);

    let expected = [
        "e1", "e1", "e1", "e2", "e3", "e3", "e4", "e5", "e5", "e5", "e6", "e7",
    ];
    assert_eq!(rx.wait_order(expected.len()), expected);
    assert_eq!(rx.most_at_once(), 1, "one delivery at a time");
    let got = rx.rx.received();
    // The pause held the whole line: e3's retry came after it, e4 after e3's retry.
    let e3: Vec<_> = got.iter().filter(|r| r.event_id() == "e3").collect();
    assert!(
        e3[1].at - e3[0].at >= Duration::from_secs(1),
        "Retry-After honoured: {:?}",
        e3[1].at - e3[0].at
    );
    hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.len() == 7 && d.iter().all(|d| d["status"] != "pending")
    });
    assert_eq!(delivery_status(&hookd, &hook, "e5"), "failed");
    assert_eq!(delivery_status(&hookd, &hook, "e7"), "succeeded");
}

#[test]
fn a_manual_retry_and_a_recover_queue_behind_what_is_pending() {
    // One attempt per delivery: a failure is final.
    let hookd = Hookd::start_with(settings(r#"retry_schedule = ["0s"]"#));
    let rx = Scripted::start(HOLD);
    rx.plan("r1", [Reply::Status(500)]);
    rx.hold("r2");
    let hook = fifo_webhook(&hookd, &rx.rx.url("/fifo"));
    publish_all(&hookd, &["r1", "r2", "r3", "r4"]);
    // r1 failed; r2 is under way (held), r3 and r4 wait behind it. Retrying r1 now puts
    // it behind r3 and r4.
    common::eventually(WAIT, "r2 under way", || {
        (rx.order() == ["r1", "r2"]).then_some(())
    });
    assert_eq!(delivery_status(&hookd, &hook, "r1"), "failed");
    let r1 = delivery_id(&hookd, &hook, "r1");
    let r = hookd.post(
        &format!("/api/hooks/webhooks/{hook}/deliveries/{r1}/retry"),
        USER,
        "",
    );
    assert_eq!(r.status, 202, "{}", r.body);
    rx.release("r2");
    assert_eq!(rx.wait_order(5), ["r1", "r2", "r3", "r4", "r1"]);

    // r5 and r6 fail; while r7 is under way, with r8 behind it, a recover of the window
    // queues r5 and r6 behind r8, in the order they were ingested.
    rx.plan("r5", [Reply::Status(500)]);
    rx.plan("r6", [Reply::Status(500)]);
    rx.hold("r7");
    publish_all(&hookd, &["r5", "r6", "r7", "r8"]);
    common::eventually(WAIT, "r7 under way", || {
        (rx.order().len() == 8).then_some(())
    });
    assert_eq!(rx.order()[5..], ["r5", "r6", "r7"]);
    let r = hookd.post(
        &format!("/api/hooks/webhooks/{hook}/recover"),
        USER,
        r#"{"since":"2000-01-01T00:00:00Z"}"#,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.json()["queued"],
        2,
        "r5 and r6 (r1 succeeded on its retry)"
    );
    rx.release("r7");
    assert_eq!(rx.wait_order(11)[5..], ["r5", "r6", "r7", "r8", "r5", "r6"]);
    assert_eq!(rx.most_at_once(), 1, "one delivery at a time");
}

#[test]
fn ordering_is_checked_shown_and_a_change_applies_to_what_has_not_started() {
    let hookd = Hookd::start();
    let rx = Scripted::start(HOLD);
    let plain = hookd.create_webhook(USER, &rx.rx.url("/plain"), &["message:*"], None);
    assert_eq!(hookd.webhook(USER, &plain)["ordering"], "none");
    let path = format!("/api/hooks/webhooks/{plain}");
    for bad in [r#""FIFO""#, r#""lifo""#, r#""""#, "1", "null", "[]"] {
        hookd
            .patch(&path, USER, &format!(r#"{{"ordering":{bad}}}"#))
            .assert_error(400, "invalid_request");
        hookd
            .post(
                "/api/hooks/webhooks",
                USER,
                &format!(
                    r#"{{"name":"x","url":"http://127.0.0.1:9/x","eventTypes":["*"],"ordering":{bad}}}"#
                ),
            )
            .assert_error(400, "invalid_request");
    }
    let r = hookd.patch(&path, USER, r#"{"ordering":"fifo"}"#);
    assert_eq!((r.status, &r.json()["ordering"]), (200, &json!("fifo")));
    let r = hookd.patch(&path, USER, r#"{"ordering":"none"}"#);
    assert_eq!((r.status, &r.json()["ordering"]), (200, &json!("none")));
    assert_eq!(
        hookd.get("/api/hooks/webhooks", USER).json()[0]["ordering"],
        "none"
    );

    // A FIFO webhook whose head is under way: switched to "none", the deliveries behind
    // it go at once, side by side with the head.
    let hook = fifo_webhook(&hookd, &rx.rx.url("/fifo"));
    rx.hold("s1");
    publish_all(&hookd, &["s1", "s2", "s3"]);
    common::eventually(WAIT, "s1 under way", || {
        (rx.order() == ["s1"]).then_some(())
    });
    let r = hookd.patch(
        &format!("/api/hooks/webhooks/{hook}"),
        USER,
        r#"{"ordering":"none"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut order = rx.wait_order(3);
    order[1..].sort();
    assert_eq!(order, ["s1", "s2", "s3"]);
    // s2 and s3 are through while s1, held by the receiver, is still under way.
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.iter().filter(|d| d["status"] == "succeeded").count() == 2
    });
    let s1 = log.iter().find(|d| d["eventId"] == "s1").unwrap();
    assert_eq!(s1["status"], "pending", "{log:#?}");
    rx.release("s1");
    hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.len() == 3 && d.iter().all(|d| d["status"] == "succeeded")
    });
}

#[test]
fn a_restart_and_a_kill_9_keep_the_order() {
    let mut hookd = Hookd::start_with(settings(r#"retry_schedule = ["0s", "1s", "1s"]"#));
    let rx = Scripted::start(HOLD);
    // The head fails its first attempt; hookd stops (SIGTERM) while it waits for its
    // retry, and starts again: the head goes first, then the others, in order.
    rx.plan("k1", [Reply::Status(500)]);
    fifo_webhook(&hookd, &rx.rx.url("/fifo"));
    publish_all(&hookd, &["k1", "k2", "k3"]);
    assert_eq!(rx.wait_order(1), ["k1"]);
    assert!(hookd.terminate().success(), "{}", hookd.log());
    assert_eq!(
        rx.order(),
        ["k1"],
        "nothing behind the head went before the stop"
    );
    hookd.restart();
    assert_eq!(rx.wait_order(4), ["k1", "k1", "k2", "k3"]);

    // The head is under way (held by the receiver) when hookd is killed: after the
    // restart it is attempted again, before anything behind it.
    rx.hold("k4");
    publish_all(&hookd, &["k4", "k5", "k6"]);
    assert_eq!(rx.wait_order(5)[4], "k4");
    hookd.kill9();
    rx.release("k4");
    common::eventually(WAIT, "the cut-off request answered", || {
        (rx.answering() == 0).then_some(())
    });
    assert_eq!(rx.order().len(), 5, "nothing else was sent before the kill");
    hookd.restart();
    let order = rx.wait_order(8);
    assert_eq!(order[4..], ["k4", "k4", "k5", "k6"]);
    let got = rx.rx.received();
    assert_eq!(
        got[4].header("x-hook-delivery"),
        got[5].header("x-hook-delivery"),
        "the same delivery again"
    );
    assert_eq!(rx.most_at_once(), 1, "one delivery at a time");
}
