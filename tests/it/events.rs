//! Event ingest and the event log against a real hookd: deliveries queued per matching
//! enabled webhook, idempotent ids, strict payload validation, listing and isolation.

use crate::common::{Hookd, OTHER_USER, PUBLISHER, USER};
use serde_json::Value;

const EVENTS: &str = "/api/hooks/events";
const RECEIVER: &str = "http://127.0.0.1:9/hook";

fn deliveries_of(hookd: &Hookd, webhook: &str) -> Vec<Value> {
    let r = hookd.get(&format!("/api/hooks/webhooks/{webhook}/deliveries"), USER);
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["deliveries"].as_array().unwrap().clone()
}

#[test]
fn ingest_queues_one_delivery_per_matching_enabled_webhook() {
    let hookd = Hookd::start();
    let exact = hookd.create_webhook(USER, RECEIVER, &["app:health_warning"], None);
    let group = hookd.create_webhook(USER, RECEIVER, &["app:*"], None);
    let all = hookd.create_webhook(USER, RECEIVER, &["*"], None);
    let other_type = hookd.create_webhook(USER, RECEIVER, &["message:*"], None);
    let disabled = hookd.create_webhook(USER, RECEIVER, &["*"], None);
    let r = hookd.patch(
        &format!("/api/hooks/webhooks/{disabled}"),
        USER,
        r#"{"enabled":false}"#,
    );
    assert_eq!(r.json()["enabled"], false, "{}", r.body);
    let someone_else = hookd.create_webhook(OTHER_USER, RECEIVER, &["*"], None);

    let r = hookd.ingest(
        "app:health_warning",
        "user-123",
        r#"{"appType":"whatsapp","status":"degraded","healthStatus":"warning","warningMessage":"Phone appears offline"}"#,
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let answer = r.json();
    let event_id = answer["id"].as_str().unwrap().to_string();
    assert!(event_id.starts_with("evt-"), "{event_id}");
    assert_eq!(answer["deliveries"], 3);

    for hook in [&exact, &group, &all] {
        let ds = deliveries_of(&hookd, hook);
        assert_eq!(ds.len(), 1, "{hook}");
        let d = &ds[0];
        assert!(d["id"].as_str().unwrap().starts_with("dlv-"));
        assert_eq!(d["webhookId"], hook.as_str());
        assert_eq!(d["eventId"], event_id.as_str());
        assert_eq!(d["eventType"], "app:health_warning");
        assert!(d["createdAt"].as_str().unwrap().ends_with('Z'));
        // A single delivery is reachable by id, only under its own webhook.
        let one = hookd.get(
            &format!(
                "/api/hooks/webhooks/{hook}/deliveries/{}",
                d["id"].as_str().unwrap()
            ),
            USER,
        );
        assert_eq!(one.status, 200);
        assert_eq!(one.json()["id"], d["id"]);
        hookd
            .get(
                &format!(
                    "/api/hooks/webhooks/{other_type}/deliveries/{}",
                    d["id"].as_str().unwrap()
                ),
                USER,
            )
            .assert_error(404, "not_found");
    }
    for hook in [&other_type, &disabled] {
        assert!(deliveries_of(&hookd, hook).is_empty(), "{hook}");
    }
    let theirs = hookd.get(
        &format!("/api/hooks/webhooks/{someone_else}/deliveries"),
        OTHER_USER,
    );
    assert_eq!(theirs.json()["deliveries"], serde_json::json!([]));
}

#[test]
fn repeated_event_ids_are_idempotent() {
    let hookd = Hookd::start();
    let hook = hookd.create_webhook(USER, RECEIVER, &["*"], None);
    let first = hookd.ingest(
        "message:received",
        "user-123",
        r#"{"text":"hi"}"#,
        Some("order-42.created:v1"),
    );
    assert_eq!(first.status, 202);
    assert_eq!(
        first.json(),
        serde_json::json!({"id": "order-42.created:v1", "deliveries": 1})
    );
    // A second webhook now exists, yet the repeat answers the original and queues nothing.
    hookd.create_webhook(USER, RECEIVER, &["*"], None);
    let again = hookd.ingest(
        "message:received",
        "user-123",
        r#"{"text":"changed"}"#,
        Some("order-42.created:v1"),
    );
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.json(), first.json());
    assert_eq!(deliveries_of(&hookd, &hook).len(), 1);
    let stored = hookd
        .get(&format!("{EVENTS}/order-42.created:v1"), USER)
        .json();
    assert_eq!(stored["payload"], serde_json::json!({"text": "hi"}));
}

#[test]
fn ingest_validation() {
    let hookd = Hookd::start();
    let base = |extra: &str| {
        format!(
            r#"{{"type":"app:connected","userId":"user-123","source":"s","payload":{{}}{extra}}}"#
        )
    };
    let cases: Vec<(&str, String)> = vec![
        ("missing type", r#"{"userId":"u","source":"s","payload":{}}"#.into()),
        ("missing userId", r#"{"type":"app:connected","source":"s","payload":{}}"#.into()),
        ("missing source", r#"{"type":"app:connected","userId":"u","payload":{}}"#.into()),
        ("missing payload", r#"{"type":"app:connected","userId":"u","source":"s"}"#.into()),
        ("empty source", r#"{"type":"app:connected","userId":"u","source":"","payload":{}}"#.into()),
        ("unknown type", r#"{"type":"app:exploded","userId":"u","source":"s","payload":{}}"#.into()),
        ("wildcard type", r#"{"type":"app:*","userId":"u","source":"s","payload":{}}"#.into()),
        ("payload not object", r#"{"type":"app:connected","userId":"u","source":"s","payload":[1]}"#.into()),
        ("userId not string", r#"{"type":"app:connected","userId":7,"source":"s","payload":{}}"#.into()),
        ("unknown field", base(r#","extra":true"#)),
        ("bad id chars", base(r#","id":"a b""#)),
        ("empty id", base(r#","id":"""#)),
        ("long id", base(&format!(r#","id":"{}""#, "i".repeat(129)))),
        ("bad timestamp", base(r#","timestamp":"yesterday""#)),
        ("duplicate key", r#"{"type":"app:connected","userId":"u","source":"s","payload":{"a":1,"a":2}}"#.into()),
        ("big integer", r#"{"type":"app:connected","userId":"u","source":"s","payload":{"n":9007199254740993}}"#.into()),
        ("out of range", r#"{"type":"app:connected","userId":"u","source":"s","payload":{"n":1e400}}"#.into()),
        ("lone surrogate", r#"{"type":"app:connected","userId":"u","source":"s","payload":{"s":"\ud800"}}"#.into()),
        ("trailing garbage", format!("{} x", base(""))),
        ("not an object", "42".into()),
    ];
    for (what, body) in &cases {
        let r = hookd.post(EVENTS, PUBLISHER, body);
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert_eq!(r.json()["code"], "invalid_request", "{what}");
    }
    let big = hookd.post(
        EVENTS,
        PUBLISHER,
        r#"{"type":"app:connected","userId":"u","source":"s","payload":{"n":9007199254740993}}"#,
    );
    assert!(
        big.json()["error"].as_str().unwrap().contains("string"),
        "the error says to send big integers as strings: {}",
        big.body
    );
    let r = hookd.get(EVENTS, USER);
    assert_eq!(
        r.json()["events"],
        serde_json::json!([]),
        "nothing was stored"
    );
}

#[test]
fn timestamps_default_to_now_and_normalize_to_utc() {
    let hookd = Hookd::start();
    let r = hookd.post(
        EVENTS,
        PUBLISHER,
        r#"{"type":"app:connected","userId":"user-123","source":"s","payload":{},"id":"t1","timestamp":"2024-01-26T12:30:00+02:00"}"#,
    );
    assert_eq!(r.status, 202);
    assert_eq!(
        hookd.get(&format!("{EVENTS}/t1"), USER).json()["timestamp"],
        "2024-01-26T10:30:00Z"
    );
    hookd.publish("app:connected", "user-123", "{}", Some("t2"));
    let ts = hookd.get(&format!("{EVENTS}/t2"), USER).json()["timestamp"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(ts.starts_with("20") && ts.ends_with('Z'), "{ts}");
}

#[test]
fn event_log_lists_newest_first_with_cursor_and_filter() {
    let hookd = Hookd::start();
    for i in 0..7 {
        let t = if i % 2 == 0 {
            "app:connected"
        } else {
            "message:sent"
        };
        assert_eq!(
            hookd
                .ingest(
                    t,
                    "user-123",
                    &format!(r#"{{"i":{i}}}"#),
                    Some(&format!("e{i}"))
                )
                .status,
            202
        );
    }
    hookd.publish("app:connected", "user-456", "{}", Some("theirs"));

    let page1 = hookd.get(&format!("{EVENTS}?limit=3"), USER).json();
    let ids = |page: &Value| -> Vec<String> {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&page1), ["e6", "e5", "e4"]);
    let next = page1["next"].as_str().unwrap().to_string();
    let page2 = hookd
        .get(&format!("{EVENTS}?limit=3&after={next}"), USER)
        .json();
    assert_eq!(ids(&page2), ["e3", "e2", "e1"]);
    let page3 = hookd
        .get(
            &format!("{EVENTS}?limit=3&after={}", page2["next"].as_str().unwrap()),
            USER,
        )
        .json();
    assert_eq!(ids(&page3), ["e0"]);
    assert_eq!(page3["next"], Value::Null);

    let apps = hookd
        .get(&format!("{EVENTS}?type=app:connected"), USER)
        .json();
    assert_eq!(ids(&apps), ["e6", "e4", "e2", "e0"]);
    let group = hookd
        .get(&format!("{EVENTS}?type=message%3A%2A"), USER)
        .json();
    assert_eq!(ids(&group), ["e5", "e3", "e1"]);

    let e = &page1["events"][0];
    assert_eq!(e["type"], "app:connected");
    assert_eq!(e["userId"], "user-123");
    assert_eq!(e["source"], "whatsapp");
    assert_eq!(e["payload"], serde_json::json!({"i": 6}));

    for bad in [
        "limit=0",
        "limit=-2",
        "limit=x",
        "after=zzz",
        "type=app:nope",
    ] {
        hookd
            .get(&format!("{EVENTS}?{bad}"), USER)
            .assert_error(400, "invalid_request");
    }
    let clamped = hookd.get(&format!("{EVENTS}?limit=1000"), USER).json();
    assert_eq!(ids(&clamped).len(), 7);

    // Another user's event is invisible.
    hookd
        .get(&format!("{EVENTS}/theirs"), USER)
        .assert_error(404, "not_found");
    assert_eq!(
        hookd.get(&format!("{EVENTS}/theirs"), OTHER_USER).status,
        200
    );
    hookd
        .get(&format!("{EVENTS}/nope"), USER)
        .assert_error(404, "not_found");
}

#[test]
fn payload_is_stored_in_canonical_form() {
    let hookd = Hookd::start();
    let r = hookd.post(
        EVENTS,
        PUBLISHER,
        r#"{"type":"agent:response","userId":"user-123","source":"s","id":"c1","payload":{"b":1.0,"a":[1e21,-0.0,1.5e-7],"2":"x","1":"\u00e9\/"}}"#,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let body = hookd.get(&format!("{EVENTS}/c1"), USER).body;
    assert!(
        body.contains(r#""payload":{"1":"é/","2":"x","b":1,"a":[1e+21,0,1.5e-7]}"#),
        "payload in JavaScript order and number form: {body}"
    );
}

#[test]
fn deliveries_listing_validates_and_pages() {
    let hookd = Hookd::start();
    let hook = hookd.create_webhook(USER, RECEIVER, &["*"], None);
    for i in 0..5 {
        hookd.publish("agent:invoked", "user-123", "{}", Some(&format!("d{i}")));
    }
    let path = format!("/api/hooks/webhooks/{hook}/deliveries");
    let page = hookd.get(&format!("{path}?limit=2"), USER).json();
    let events: Vec<&str> = page["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["eventId"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["d4", "d3"]);
    let next = page["next"].as_str().unwrap();
    let page2 = hookd
        .get(&format!("{path}?limit=2&after={next}"), USER)
        .json();
    assert_eq!(page2["deliveries"][0]["eventId"], "d2");
    assert_eq!(
        hookd.get(&format!("{path}?status=pending"), USER).json()["deliveries"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        hookd.get(&format!("{path}?status=succeeded"), USER).json()["deliveries"],
        serde_json::json!([])
    );
    for bad in ["status=done", "limit=0", "after=c"] {
        hookd
            .get(&format!("{path}?{bad}"), USER)
            .assert_error(400, "invalid_request");
    }
    hookd
        .get(&format!("{path}/dlv-nope"), USER)
        .assert_error(404, "not_found");
}
