//! The API behind the dashboard, against a real hookd and real receivers on 127.0.0.1:
//! test events, per-minute attempt statistics and the event-type filter of the log.

use std::time::Duration;

use crate::common::receiver::{Receiver, Reply};
use crate::common::{Hookd, OTHER_USER, PUBLISHER, Settings, USER};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_test_event_goes_to_that_webhook_only_with_the_guides_payload() {
    let hookd = Hookd::start();
    let rx = Receiver::ok();
    // Subscribed to messages only: a test event goes regardless of the subscription.
    let target = hookd.create_webhook(USER, &rx.url("/target"), &["message:*"], None);
    let bystander = hookd.create_webhook(USER, &rx.url("/bystander"), &["*"], None);

    let r = hookd.post(
        &format!("/api/hooks/webhooks/{target}/test"),
        USER,
        r#"{"type":"app:health_warning"}"#,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let answer = r.json();
    assert_eq!(answer["status"], "pending");
    let delivery = answer["deliveryId"].as_str().unwrap().to_owned();
    let event_id = answer["eventId"].as_str().unwrap().to_owned();

    let got = rx.wait_for(1, WAIT);
    assert_eq!(got[0].path, "/target");
    assert_eq!(got[0].header("x-hook-delivery"), Some(delivery.as_str()));
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["event"]["id"], event_id.as_str());
    assert_eq!(body["event"]["type"], "app:health_warning");
    assert_eq!(body["event"]["userId"], "user-123");
    assert_eq!(body["event"]["source"], "hookd-test");
    assert_eq!(
        body["event"]["payload"]["warningMessage"],
        "Phone appears offline"
    );
    assert_eq!(body["webhook"]["id"], target.as_str());
    hookd.wait_deliveries(USER, &target, WAIT, |d| d[0]["status"] == "succeeded");
    // It is a real event in the owner's log, with one delivery.
    let event = hookd
        .get(&format!("/api/hooks/events/{event_id}"), USER)
        .json();
    assert_eq!(event["deliveries"], 1);
    // The event's one delivery is the target's: the other webhook has none in its log.
    let others = hookd.get(&format!("/api/hooks/webhooks/{bystander}/deliveries"), USER);
    assert_eq!(others.json()["deliveries"], serde_json::json!([]));
}

#[test]
fn test_events_refuse_bad_types_strangers_and_disabled_webhooks() {
    let hookd = Hookd::start();
    let rx = Receiver::ok();
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    let path = format!("/api/hooks/webhooks/{hook}/test");
    hookd
        .post(&path, USER, r#"{"type":"app:nope"}"#)
        .assert_error(400, "invalid_request");
    hookd
        .post(&path, USER, r#"{}"#)
        .assert_error(400, "invalid_request");
    hookd
        .post(&path, USER, r#"{"type":"app:connected","x":1}"#)
        .assert_error(400, "invalid_request");
    hookd
        .post(&path, OTHER_USER, r#"{"type":"app:connected"}"#)
        .assert_error(404, "not_found");
    hookd
        .post(&path, PUBLISHER, r#"{"type":"app:connected"}"#)
        .assert_error(403, "forbidden");
    let r = hookd.patch(
        &format!("/api/hooks/webhooks/{hook}"),
        USER,
        r#"{"enabled":false}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    hookd
        .post(&path, USER, r#"{"type":"app:connected"}"#)
        .assert_error(409, "webhook_disabled");
    assert!(rx.received().is_empty());
}

#[test]
fn stats_count_attempts_per_minute_by_outcome() {
    let hookd = Hookd::start_with(Settings {
        delivery: r#"retry_schedule = ["0s"]"#.into(),
        ..Settings::default()
    });
    let rx = Receiver::start(|req, _| {
        if req.path == "/ok" {
            Reply::Status(200)
        } else {
            Reply::Full(500, vec![], "down".into())
        }
    });
    let ok = hookd.create_webhook(USER, &rx.url("/ok"), &["app:connected"], None);
    let bad = hookd.create_webhook(USER, &rx.url("/bad"), &["app:connected"], None);
    let stats = |hook: &str, query: &str| {
        let r = hookd.get(&format!("/api/hooks/webhooks/{hook}/stats{query}"), USER);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
    };
    let empty = stats(&ok, "");
    assert_eq!(empty["window"], "1h");
    assert_eq!(empty["attempts"], 0);
    assert_eq!(empty["successRate"], Value::Null);
    assert_eq!(empty["latencyMs"], Value::Null);
    assert_eq!(empty["lastAttemptAt"], Value::Null);
    assert_eq!(empty["series"].as_array().unwrap().len(), 60);

    for i in 0..3 {
        hookd.publish("app:connected", "user-123", "{}", Some(&format!("s{i}")));
    }
    hookd.wait_deliveries(USER, &ok, WAIT, |d| {
        d.len() == 3 && d.iter().all(|d| d["status"] == "succeeded")
    });
    hookd.wait_deliveries(USER, &bad, WAIT, |d| {
        d.len() == 3 && d.iter().all(|d| d["status"] == "failed")
    });

    let good = stats(&ok, "?window=15m");
    assert_eq!(good["window"], "15m");
    assert_eq!(good["bucketSeconds"], 60);
    assert_eq!(good["attempts"], 3);
    assert_eq!(good["succeeded"], 3);
    assert_eq!(good["successRate"], 1.0);
    assert!(good["latencyMs"]["p50"].is_u64() && good["latencyMs"]["p99"].is_u64());
    assert!(good["lastAttemptAt"].is_string());
    let series = good["series"].as_array().unwrap();
    assert_eq!(series.len(), 15);
    let in_series: u64 = series
        .iter()
        .map(|m| m["succeeded"].as_u64().unwrap())
        .sum();
    assert_eq!(in_series, 3, "the attempts are in the chart's minutes");
    assert!(
        series
            .windows(2)
            .all(|w| w[0]["at"].as_str() < w[1]["at"].as_str())
    );

    let failing = stats(&bad, "?window=2h");
    assert_eq!(failing["series"].as_array().unwrap().len(), 120);
    assert_eq!(failing["failed"], 3);
    assert_eq!(failing["succeeded"], 0);
    assert_eq!(failing["successRate"], 0.0);

    hookd
        .get(&format!("/api/hooks/webhooks/{ok}/stats?window=2d"), USER)
        .assert_error(400, "invalid_request");
    hookd
        .get(&format!("/api/hooks/webhooks/{ok}/stats"), OTHER_USER)
        .assert_error(404, "not_found");
    // Statistics survive a restart: they are in the store, not in memory.
    let mut hookd = hookd;
    let status = hookd.terminate();
    assert!(status.success(), "{status}; log:\n{}", hookd.log());
    hookd.restart();
    let after = hookd
        .get(&format!("/api/hooks/webhooks/{bad}/stats"), USER)
        .json();
    assert_eq!(after["failed"], 3);
}

#[test]
fn the_delivery_log_filters_by_event_type() {
    let hookd = Hookd::start();
    let rx = Receiver::ok();
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    hookd.publish("app:connected", "user-123", "{}", Some("t1"));
    hookd.publish("agent:error", "user-123", "{}", Some("t2"));
    hookd.publish("app:connected", "user-123", "{}", Some("t3"));
    hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.len() == 3 && d.iter().all(|d| d["status"] == "succeeded")
    });
    let list = |query: &str| {
        let r = hookd.get(
            &format!("/api/hooks/webhooks/{hook}/deliveries{query}"),
            USER,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["deliveries"].as_array().unwrap().clone()
    };
    let connected = list("?eventType=app:connected");
    assert_eq!(connected.len(), 2);
    assert!(connected.iter().all(|d| d["eventType"] == "app:connected"));
    assert_eq!(list("?eventType=agent:error&status=succeeded").len(), 1);
    assert_eq!(list("?eventType=agent:error&status=failed").len(), 0);
    hookd
        .get(
            &format!("/api/hooks/webhooks/{hook}/deliveries?eventType=app:*"),
            USER,
        )
        .assert_error(400, "invalid_request");
}

#[test]
fn the_dashboard_is_served_with_a_strict_policy_and_no_token() {
    let hookd = Hookd::start();
    let page = hookd.request("GET", "/ui/", None, None);
    assert_eq!(page.status, 200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    let csp = page.header("content-security-policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    assert!(!csp.contains("unsafe-inline"));
    assert!(page.body.contains("app.js"));
    let js = hookd.request("GET", "/ui/app.js", None, None);
    assert_eq!(js.status, 200);
    assert!(
        js.header("content-type")
            .unwrap()
            .starts_with("text/javascript")
    );
    let redirect = hookd.request("GET", "/ui", None, None);
    assert_eq!(redirect.status, 308);
    assert_eq!(redirect.header("location"), Some("/ui/"));
    hookd
        .request("GET", "/ui/secrets.txt", None, None)
        .assert_error(404, "not_found");
    hookd
        .request("POST", "/ui/", None, None)
        .assert_error(405, "method_not_allowed");
}
