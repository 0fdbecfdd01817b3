//! Events: ingest (publisher) and the event log (user).

use serde_json::{Value, json};

use super::checker::{Checker, OpId, Req, start};
use super::paths::*;
use crate::common::{OTHER_USER, PUBLISHER, USER};

pub const COVERS: &[OpId] = &[("POST", EVENTS), ("GET", EVENTS), ("GET", EVENT)];

/// A realistic event (a time zone offset, nested payload) for `user-123`.
pub fn event(id: &str, event_type: &str) -> String {
    json!({
        "type": event_type, "userId": "user-123", "source": "whatsapp",
        "payload": {"text": "hi", "n": 1.0, "nested": {"b": 1, "a": [1, 2]}},
        "id": id, "timestamp": "2024-01-26T12:30:00+02:00"
    })
    .to_string()
}

#[test]
fn ingest_and_the_event_log() {
    let hookd = start();
    let c = Checker::new(&hookd);
    // Two webhooks match a message event, one an agent event.
    hookd.create_webhook(USER, "http://127.0.0.1:9/a", &["message:*"], None);
    hookd.create_webhook(USER, "http://127.0.0.1:9/b", &["*"], None);

    let e1 = event("msg-1", "message:received");
    c.expect(
        Req::new("POST", EVENTS)
            .token(PUBLISHER)
            .body("text/plain", e1.as_bytes()),
        415,
        "ingest text/plain",
    );
    let huge_event = format!(
        "{{\"type\":\"app:connected\",\"userId\":\"user-123\",\"source\":\"s\",\"payload\":{{\"x\":\"{}\"}}}}",
        "y".repeat(9000)
    );
    c.expect(
        Req::new("POST", EVENTS).token(PUBLISHER).json(&huge_event),
        413,
        "ingest 413",
    );
    for bad in [
        "{",
        "",
        r#"{"type":"app:nope","userId":"u","source":"s","payload":{}}"#,
        r#"{"type":"app:connected","userId":"u","source":"s","payload":[]}"#,
        r#"{"type":"app:connected","userId":"u","source":"s","payload":{},"extra":1}"#,
        r#"{"type":"app:connected","userId":"u","source":"s","payload":{"n":1e400}}"#,
        r#"{"type":"app:connected","userId":"u","source":"s","payload":{"a":1,"a":2}}"#,
        r#"{"type":"app:connected","userId":"","source":"s","payload":{}}"#,
        r#"{"type":"app:connected","userId":"u","source":"s","payload":{},"id":"bad id"}"#,
        r#"{"type":"app:connected","userId":"u","source":"s","payload":{},"timestamp":"yesterday"}"#,
    ] {
        c.expect(
            Req::new("POST", EVENTS).token(PUBLISHER).json(bad),
            400,
            bad,
        );
    }
    let r = c.expect(
        Req::new("POST", EVENTS).token(PUBLISHER).json(&e1),
        202,
        "ingest",
    );
    assert_eq!(r.json(), json!({"id": "msg-1", "deliveries": 2}));
    let r = c.expect(
        Req::new("POST", EVENTS).token(PUBLISHER).json(&e1),
        200,
        "repeated id",
    );
    assert_eq!(r.json(), json!({"id": "msg-1", "deliveries": 2}));
    let e2 = json!({
        "type": "agent:invoked", "userId": "user-123", "source": "agent", "payload": {}
    })
    .to_string();
    let r = c.expect(
        Req::new("POST", EVENTS)
            .token(PUBLISHER)
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header("tracestate", "rojo=00f067aa0ba902b7")
            .json(&e2),
        202,
        "ingest without id, in a trace",
    );
    let e2_id = r.json()["id"].as_str().unwrap().to_string();
    assert!(e2_id.starts_with("evt-"), "{e2_id}");
    assert_eq!(r.json()["deliveries"], 1, "only the catch-all matches");

    // The log.
    let r = c.expect(Req::new("GET", EVENTS).token(USER), 200, "events");
    assert_eq!(r.json()["events"].as_array().unwrap().len(), 2);
    let r = c.expect(
        Req::new("GET", &format!("{EVENTS}?limit=1&type=*")).token(USER),
        200,
        "first page",
    );
    let next = r.json()["next"]
        .as_str()
        .expect("a next cursor")
        .to_string();
    let r = c.expect(
        Req::new("GET", &format!("{EVENTS}?limit=1&after={next}")).token(USER),
        200,
        "second page",
    );
    assert_eq!(r.json()["events"][0]["id"], "msg-1");
    assert_eq!(r.json()["next"], Value::Null, "the last page");
    c.expect(
        Req::new("GET", &format!("{EVENTS}?type=message%3A*&limit=500")).token(USER),
        200,
        "type pattern, clamped limit",
    );
    for q in [
        "limit=0",
        "limit=x",
        "limit=-1",
        "after=bogus",
        "type=app:nope",
        "type=%zz",
    ] {
        c.expect(
            Req::new("GET", &format!("{EVENTS}?{q}")).token(USER),
            400,
            q,
        );
    }
    let r = c.expect(
        Req::new("GET", &format!("{EVENTS}/msg-1")).token(USER),
        200,
        "get event",
    );
    assert_eq!(r.json()["timestamp"], "2024-01-26T10:30:00Z");
    let r = c.expect(
        Req::new("GET", &format!("{EVENTS}/{e2_id}")).token(USER),
        200,
        "evt id",
    );
    assert_eq!(r.json()["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    c.expect(
        Req::new("GET", &format!("{EVENTS}/msg-1")).token(OTHER_USER),
        404,
        "other's",
    );
    c.expect(
        Req::new("GET", &format!("{EVENTS}/nope")).token(USER),
        404,
        "no event",
    );
    c.finish(COVERS);
}
