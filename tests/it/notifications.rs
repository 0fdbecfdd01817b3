//! Operator notifications end to end: a real hookd, a webhook receiver that fails, answers
//! 410 or recovers, and a notification receiver, all on 127.0.0.1. Each status change
//! hookd makes arrives as a signed notification; a flapping receiver does not cause a
//! storm, yet the last state is told; a notification whose receiver is down survives a
//! `kill -9` and arrives after the restart.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::common::receiver::{Received, Receiver, Reply};
use crate::common::{Hookd, Settings, USER, eventually};

const WAIT: Duration = Duration::from_secs(20);
/// The notification secret, in the Standard Webhooks form (32 bytes of 0x2a).
const SECRET: &str = "whsec_KioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

fn settings(delivery: &str, notify: &Receiver) -> Settings {
    Settings {
        delivery: delivery.into(),
        notifications: format!(
            "url = \"{}\"\nsecret = \"{SECRET}\"",
            notify.url("/ops/hookd")
        ),
        ..Settings::default()
    }
}

/// Checks the Standard Webhooks signature of a notification by the spec, independently of
/// hookd's code: HMAC-SHA256 keyed with the base64-decoded secret over
/// "{webhook-id}.{webhook-timestamp}.{body}".
fn assert_signed(n: &Received) {
    let id = n.header("webhook-id").expect("webhook-id");
    let ts = n.header("webhook-timestamp").expect("webhook-timestamp");
    let key = BASE64.decode(SECRET.trim_start_matches("whsec_")).unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{ts}.").as_bytes());
    mac.update(&n.body);
    let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    assert_eq!(n.header("webhook-signature"), Some(expected.as_str()));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let ts: i64 = ts.parse().unwrap();
    assert!(
        (now - ts).abs() <= 30,
        "webhook-timestamp is the attempt's time"
    );
    if let Some(verdicts) =
        crate::security::verify_with_official_library(SECRET, std::slice::from_ref(n))
    {
        assert_eq!(verdicts, [true], "the official library accepts it");
    }
}

fn kinds(got: &[Received]) -> Vec<String> {
    got.iter()
        .map(|n| n.json()["type"].as_str().unwrap().to_owned())
        .collect()
}

fn metric(hookd: &Hookd, line_start: &str) -> Option<f64> {
    let text = hookd.request("GET", "/metrics", None, None).body;
    text.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
}

#[test]
fn failing_recovered_and_disabled_are_told_signed() {
    let notify = Receiver::ok();
    let hookd = Hookd::start_with(settings(r#"retry_schedule = ["0s", "200ms"]"#, &notify));
    let rx = Receiver::start(|_, _| Reply::Full(500, vec![], "down".into()));
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);

    // Both attempts fail: the webhook is failing, and the operator hears of it.
    hookd.publish("app:health_check", "user-123", "{}", Some("n-1"));
    let got = notify.wait_for(1, WAIT);
    let failing = &got[0];
    assert_eq!(failing.path, "/ops/hookd");
    assert_eq!(failing.header("content-type"), Some("application/json"));
    assert_signed(failing);
    let body = failing.json();
    // Compact JSON with the documented key order.
    let raw = failing.body_str();
    assert!(
        raw.starts_with(r#"{"type":"webhook.failing","timestamp":""#),
        "{raw}"
    );
    let at = |key: &str| raw.find(&format!("\"{key}\":")).unwrap();
    assert!(
        at("timestamp") < at("webhook") && at("webhook") < at("reason"),
        "{raw}"
    );
    assert!(
        raw.contains(r#""userId":"user-123","status":"failing","enabled":true}"#),
        "{raw}"
    );
    assert_eq!(body.as_object().unwrap().len(), 4, "{raw}");
    assert_eq!(body["type"], "webhook.failing");
    assert_eq!(
        body["webhook"],
        serde_json::json!({"id": hook, "name": "test hook", "url": rx.url("/h"),
            "userId": "user-123", "status": "failing", "enabled": true})
    );
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains("HTTP 500") && reason.contains("dlv-"),
        "{reason}"
    );
    assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    assert_eq!(hookd.webhook(USER, &hook)["status"], "failing");

    // The next success: recovered, at once (a recovery is never held back).
    rx.set(|_, _| Reply::Status(200));
    hookd.publish("app:health_check", "user-123", "{}", Some("n-2"));
    let got = notify.wait_for(2, WAIT);
    let recovered = got[1].json();
    assert_eq!(recovered["type"], "webhook.recovered");
    assert_eq!(
        (
            &recovered["webhook"]["status"],
            &recovered["webhook"]["enabled"]
        ),
        (&Value::from("healthy"), &Value::Bool(true))
    );
    assert_signed(&got[1]);

    // 410 Gone: hookd disables the webhook and says so.
    rx.set(|_, _| Reply::Status(410));
    hookd.publish("app:health_check", "user-123", "{}", Some("n-3"));
    let got = notify.wait_for(3, WAIT);
    let disabled = got[2].json();
    assert_eq!(disabled["type"], "webhook.disabled");
    assert_eq!(
        (
            &disabled["webhook"]["status"],
            &disabled["webhook"]["enabled"]
        ),
        (&Value::from("disabled"), &Value::Bool(false))
    );
    assert!(
        disabled["reason"].as_str().unwrap().contains("410 Gone"),
        "{disabled}"
    );
    assert_signed(&got[2]);

    // Each notification has its own webhook-id; every one was sent once.
    let ids: std::collections::HashSet<&str> = got
        .iter()
        .map(|n| n.header("webhook-id").unwrap())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|id| id.starts_with("ntf-")), "{ids:?}");
    assert_eq!(
        kinds(&got),
        ["webhook.failing", "webhook.recovered", "webhook.disabled"]
    );
    for kind in ["failing", "recovered", "disabled"] {
        let sent = format!("hookd_notifications_total{{type=\"webhook.{kind}\",result=\"sent\"}}");
        eventually(WAIT, "sent notifications are counted", || {
            (metric(&hookd, &sent) == Some(1.0)).then_some(())
        });
    }
    assert_eq!(metric(&hookd, "hookd_notifications_pending"), Some(0.0));
}

#[test]
fn failing_for_disable_after_is_told_as_disabled() {
    let notify = Receiver::ok();
    let hookd = Hookd::start_with(settings(
        "retry_schedule = [\"0s\", \"300ms\", \"300ms\", \"300ms\", \"300ms\", \"300ms\", \"300ms\", \"300ms\", \"300ms\", \"300ms\"]\ndisable_after = \"1s\"",
        &notify,
    ));
    let rx = Receiver::start(|_, _| Reply::Status(503));
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    hookd.publish("agent:error", "user-123", "{}", Some("da-1"));
    let got = notify.wait_for(1, WAIT);
    let n = got[0].json();
    // It was never `failing` (the schedule did not run out): disabled is the one change.
    assert_eq!(n["type"], "webhook.disabled", "{n}");
    assert_eq!(n["webhook"]["id"], hook.as_str());
    let reason = n["reason"].as_str().unwrap();
    assert!(reason.contains("delivery.disable_after (1s)"), "{reason}");
    assert_signed(&got[0]);
}

#[test]
fn a_flapping_receiver_does_not_storm_and_the_last_state_is_told() {
    let notify = Receiver::ok();
    // One attempt per delivery: every failed delivery makes the webhook failing at once.
    let hookd = Hookd::start_with(settings(r#"retry_schedule = ["0s"]"#, &notify));
    // Events whose id starts with "bad" fail, the others succeed.
    let rx = Receiver::start(|req, _| {
        let bad = req.json()["event"]["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("bad"));
        Reply::Status(if bad { 500 } else { 200 })
    });
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    // Ten flaps within a few seconds, one delivery finished before the next is sent.
    for i in 0..10 {
        for (id, status) in [
            (format!("bad-{i}"), "failed"),
            (format!("good-{i}"), "succeeded"),
        ] {
            hookd.publish("message:sent", "user-123", "{}", Some(&id));
            hookd.wait_deliveries(USER, &hook, WAIT, |d| {
                d.first()
                    .is_some_and(|d| d["eventId"] == id.as_str() && d["status"] == status)
            });
        }
    }
    assert_eq!(hookd.webhook(USER, &hook)["status"], "healthy");
    // Everything is settled once nothing is pending any more: the first failure and its
    // recovery were told; the rest of the storm was suppressed (held, then made moot).
    eventually(WAIT, "no notification left to send", || {
        (metric(&hookd, "hookd_notifications_pending") == Some(0.0)).then_some(())
    });
    let suppressed = metric(
        &hookd,
        "hookd_notifications_total{type=\"webhook.failing\",result=\"suppressed\"}",
    )
    .unwrap();
    assert!(suppressed >= 9.0, "{suppressed}");
    let got = notify.received();
    assert_eq!(kinds(&got), ["webhook.failing", "webhook.recovered"]);

    // It fails once more within the minute: held back, then told when the minute of the
    // first failure notification is over, so the operator's last word is the true state.
    hookd.publish("message:sent", "user-123", "{}", Some("bad-last"));
    hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.first()
            .is_some_and(|d| d["eventId"] == "bad-last" && d["status"] == "failed")
    });
    assert_eq!(metric(&hookd, "hookd_notifications_pending"), Some(1.0));
    let got = notify.wait_for(3, Duration::from_secs(90));
    assert_eq!(
        kinds(&got),
        ["webhook.failing", "webhook.recovered", "webhook.failing"]
    );
    let first: i64 = got[0].header("webhook-timestamp").unwrap().parse().unwrap();
    let last: i64 = got[2].header("webhook-timestamp").unwrap().parse().unwrap();
    assert!(
        last - first >= 59,
        "one failing notification per minute at most"
    );
    assert_signed(&got[2]);
}

#[test]
fn a_notification_waits_for_its_receiver_through_a_kill_9() {
    // An address where nothing listens yet.
    let addr = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap()
    };
    let mut hookd = Hookd::start_with(Settings {
        delivery:
            r#"retry_schedule = ["0s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s", "1s"]"#
                .into(),
        notifications: format!("url = \"http://{addr}/ops\"\nsecret = \"{SECRET}\""),
        ..Settings::default()
    });
    let rx = Receiver::start(|_, _| Reply::Status(410));
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    hookd.publish("agent:error", "user-123", "{}", Some("k-1"));
    assert!(
        hookd.wait_for_log("notification attempt failed", WAIT),
        "the first attempt meets a closed port; log:\n{}",
        hookd.log()
    );
    hookd.kill9();

    let notify = Receiver::start_on(addr, |_, _| Reply::Status(204));
    hookd.restart();
    let got = notify.wait_for(1, WAIT);
    let n = got[0].json();
    assert_eq!(n["type"], "webhook.disabled");
    assert_eq!(n["webhook"]["id"], hook.as_str());
    assert_signed(&got[0]);
    eventually(WAIT, "the restarted hookd counts it sent", || {
        (metric(
            &hookd,
            "hookd_notifications_total{type=\"webhook.disabled\",result=\"sent\"}",
        ) == Some(1.0))
        .then_some(())
    });
    assert_eq!(notify.received().len(), 1, "sent once");
}
