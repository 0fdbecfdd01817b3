//! The one place that builds a delivery's body, byte for byte:
//!
//! `{"event":{"id":…,"type":…,"timestamp":…,"userId":…,"source":…,"payload":…},"webhook":{"id":…,"name":…}}`
//!
//! Compact, in exactly this key order, strings escaped as `JSON.stringify` escapes them,
//! and the payload in its stored canonical form, so `JSON.stringify(JSON.parse(body))`
//! reproduces the body and the guide's Node.js verifier accepts every signature.

use crate::canonical_json::write_js_string;
use crate::store::records::{EventRecord, WebhookRecord};

pub fn delivery_body(event: &EventRecord, webhook: &WebhookRecord) -> String {
    let mut out = String::with_capacity(event.payload.len() + 256);
    out.push_str("{\"event\":{\"id\":");
    write_js_string(event.id.as_str(), &mut out);
    out.push_str(",\"type\":");
    write_js_string(event.event_type.as_str(), &mut out);
    out.push_str(",\"timestamp\":");
    write_js_string(&event.timestamp, &mut out);
    out.push_str(",\"userId\":");
    write_js_string(&event.user, &mut out);
    out.push_str(",\"source\":");
    write_js_string(&event.source, &mut out);
    out.push_str(",\"payload\":");
    out.push_str(&event.payload);
    out.push_str("},\"webhook\":{\"id\":");
    write_js_string(&webhook.id.to_string(), &mut out);
    out.push_str(",\"name\":");
    write_js_string(&webhook.name, &mut out);
    out.push_str("}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;

    #[test]
    fn builds_the_documented_shape() {
        let event = EventRecord {
            id: EventId::parse("evt-1").unwrap(),
            seq: 1,
            user: "user-123".into(),
            event_type: EventType::AppHealthWarning,
            source: "whats\"app".into(),
            timestamp: "2024-01-26T10:30:00Z".into(),
            payload: r#"{"2":1,"a":"é"}"#.into(),
            received_at: Millis(0),
            deliveries: 1,
            first_delivery: Some(1),
            trace: None,
        };
        let mut webhook = WebhookRecord::new(
            "user-123".into(),
            "Mon\nitor".into(),
            "https://example.com".into(),
            vec![EventPattern::All],
            None,
            Millis(0),
        );
        webhook.id = WebhookId(0);
        assert_eq!(
            delivery_body(&event, &webhook),
            r#"{"event":{"id":"evt-1","type":"app:health_warning","timestamp":"2024-01-26T10:30:00Z","userId":"user-123","source":"whats\"app","payload":{"2":1,"a":"é"}},"webhook":{"id":"wh-00000000-0000-0000-0000-000000000000","name":"Mon\nitor"}}"#
        );
    }
}
