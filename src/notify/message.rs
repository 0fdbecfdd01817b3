//! One operator notification on the wire: its JSON body and its headers.
//!
//! ```text
//! {"type":"webhook.failing","timestamp":"…","webhook":{"id","name","url","userId","status","enabled"},"reason":"…"}
//! ```
//!
//! Headers: `Content-Type: application/json`, `User-Agent: hookd/<version>` (the HTTP
//! client's), and the Standard Webhooks trio: `webhook-id` (the notification's own
//! `ntf-…` id, the same on every attempt), `webhook-timestamp` (this attempt, unix
//! seconds) and, with `notifications.secret`, `webhook-signature` — signed exactly as
//! deliveries are ([`crate::delivery::signing`]).

use serde::Serialize;

use crate::delivery::signing::standard_signature;
use crate::store::records::NotificationRecord;

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    webhook: Webhook<'a>,
    reason: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Webhook<'a> {
    id: String,
    name: &'a str,
    url: &'a str,
    user_id: &'a str,
    status: &'static str,
    enabled: bool,
}

/// The body, compact JSON in the documented key order.
pub fn body(n: &NotificationRecord) -> String {
    let w = &n.webhook;
    let body = Body {
        kind: n.kind.as_str(),
        timestamp: n.at.to_rfc3339(),
        webhook: Webhook {
            id: w.id.to_string(),
            name: &w.name,
            url: &w.url,
            user_id: &w.user,
            status: w.status.as_str(),
            enabled: w.enabled,
        },
        reason: &n.reason,
    };
    // Strings, a bool and fixed keys: serializing into memory cannot fail.
    serde_json::to_string(&body).unwrap_or_default()
}

/// The headers of one attempt at `timestamp` (unix seconds) carrying `body`.
pub fn headers(
    n: &NotificationRecord,
    secret: Option<&str>,
    timestamp: i64,
    body: &str,
) -> Vec<(&'static str, String)> {
    let id = n.id.to_string();
    let mut headers = vec![
        ("Content-Type", "application/json".to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
    ];
    if let Some(secret) = secret {
        headers.push((
            "webhook-signature",
            standard_signature(secret, &id, timestamp, body.as_bytes()),
        ));
    }
    headers.push(("webhook-id", id));
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Millis, NotificationId, NotificationKind, WebhookId, WebhookStatus};
    use crate::store::records::{NotificationState, WebhookSnapshot};

    fn notification() -> NotificationRecord {
        NotificationRecord {
            id: NotificationId(7),
            seq: 1,
            kind: NotificationKind::Disabled,
            at: Millis(1_706_265_000_123),
            webhook: WebhookSnapshot {
                id: WebhookId(9),
                user: "user-123".into(),
                name: "Orders \"prod\"".into(),
                url: "https://example.com/h".into(),
                status: WebhookStatus::Disabled,
                enabled: false,
            },
            reason: "the receiver answered 410 Gone".into(),
            state: NotificationState::Pending,
            not_before: Millis(0),
            attempts: 0,
            next_attempt_at: None,
            last_error: None,
            finished_at: None,
        }
    }

    #[test]
    fn the_body_has_the_documented_fields_in_order() {
        assert_eq!(
            body(&notification()),
            r#"{"type":"webhook.disabled","timestamp":"2024-01-26T10:30:00.123Z","webhook":{"id":"wh-00000000-0000-0000-0000-000000000009","name":"Orders \"prod\"","url":"https://example.com/h","userId":"user-123","status":"disabled","enabled":false},"reason":"the receiver answered 410 Gone"}"#
        );
    }

    #[test]
    fn headers_carry_the_notifications_own_id_and_a_standard_signature() {
        let n = notification();
        let b = body(&n);
        let h = headers(&n, Some("whsec_AAEC"), 1_700_000_000, &b);
        let get = |name: &str| h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.clone());
        assert_eq!(
            get("webhook-id").as_deref(),
            Some("ntf-00000000-0000-0000-0000-000000000007")
        );
        assert_eq!(get("webhook-timestamp").as_deref(), Some("1700000000"));
        assert_eq!(
            get("webhook-signature"),
            Some(standard_signature(
                "whsec_AAEC",
                "ntf-00000000-0000-0000-0000-000000000007",
                1_700_000_000,
                b.as_bytes()
            ))
        );
        let unsigned = headers(&n, None, 1, &b);
        assert!(unsigned.iter().all(|(k, _)| *k != "webhook-signature"));
    }
}
