//! The stored records. Each is encoded by [`super::codec`] behind its `VERSION` byte; a
//! change to any field list means a new version and a decoder for the old one.

use serde::{Deserialize, Serialize};

use super::codec::{CodecError, Record, decode_body};
use crate::model::{
    DeliveryId, DeliveryStatus, EventId, EventPattern, EventType, Millis, Ordering, WebhookId,
    WebhookStatus,
};
use crate::trace_context::TraceContext;

/// A registered endpoint. Invariant: `status == Disabled` exactly when `!enabled`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub id: WebhookId,
    pub user: String,
    pub name: String,
    pub url: String,
    pub event_types: Vec<EventPattern>,
    pub enabled: bool,
    pub status: WebhookStatus,
    /// Never returned by the API and never logged.
    pub secret: Option<String>,
    /// The secret replaced by a rotation and the end of its grace period.
    pub previous_secret: Option<(String, Millis)>,
    pub created_at: Millis,
    pub updated_at: Millis,
    /// When the current run of failures began (set with `Failing`, cleared by a success).
    pub failing_since: Option<Millis>,
    /// The latest successful attempt, to the minute (not rewritten on every success).
    pub last_success_at: Option<Millis>,
    /// A receiver's `Retry-After`: no attempt to this webhook starts before this time.
    pub paused_until: Option<Millis>,
    /// Extra request headers sent with every attempt, in the order the user gave them
    /// (names as given, unique ignoring case). Secrets like `secret`: the API shows only
    /// the names, and they are never logged. Since version 2.
    pub headers: Vec<(String, String)>,
    /// Whether deliveries go one at a time in queue order. Since version 2.
    pub ordering: Ordering,
}

impl Record for WebhookRecord {
    const NAME: &'static str = "webhook";
    const VERSION: u8 = 2;

    fn decode_older(version: u8, body: &[u8]) -> Result<Self, CodecError> {
        match version {
            1 => decode_body::<v1::WebhookRecordV1>(Self::NAME, body).map(Into::into),
            _ => Err(CodecError::unknown_version::<Self>(version)),
        }
    }
}

impl WebhookRecord {
    /// A new, enabled, healthy webhook with a fresh id.
    pub fn new(
        user: String,
        name: String,
        url: String,
        event_types: Vec<EventPattern>,
        secret: Option<String>,
        now: Millis,
    ) -> WebhookRecord {
        WebhookRecord {
            id: WebhookId::generate(),
            user,
            name,
            url,
            event_types,
            enabled: true,
            status: WebhookStatus::Healthy,
            secret,
            previous_secret: None,
            created_at: now,
            updated_at: now,
            failing_since: None,
            last_success_at: None,
            paused_until: None,
            headers: Vec::new(),
            ordering: Ordering::None,
        }
    }

    pub fn wants(&self, event_type: EventType) -> bool {
        self.enabled && self.event_types.iter().any(|p| p.matches(event_type))
    }
}

/// One ingested event, as the publisher sent it (payload in canonical JSON form).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: EventId,
    /// Ingestion order, daemon-wide; the listing cursor.
    pub seq: u64,
    pub user: String,
    pub event_type: EventType,
    pub source: String,
    /// RFC 3339, normalized to UTC `Z`.
    pub timestamp: String,
    /// Canonical (JSON.stringify-stable) JSON text of the payload object.
    pub payload: String,
    pub received_at: Millis,
    /// How many deliveries ingestion queued: the answer a repeated id gets again.
    pub deliveries: u32,
    /// The W3C trace the publisher sent the event in, if a valid one. Since version 2.
    pub trace: Option<TraceContext>,
}

impl Record for EventRecord {
    const NAME: &'static str = "event";
    const VERSION: u8 = 2;

    fn decode_older(version: u8, body: &[u8]) -> Result<Self, CodecError> {
        match version {
            1 => decode_body::<v1::EventRecordV1>(Self::NAME, body).map(Into::into),
            _ => Err(CodecError::unknown_version::<Self>(version)),
        }
    }
}

/// One event on its way to one webhook, with every attempt made so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub id: DeliveryId,
    /// Creation order, daemon-wide; the listing cursor.
    pub seq: u64,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: Vec<Attempt>,
    /// Set exactly while `status == Pending` (mirrors the queue entry's key).
    pub next_attempt_at: Option<Millis>,
    pub created_at: Millis,
    /// Attempts made before the current run of the retry schedule began (a manual retry
    /// or a recover starts the schedule again while attempt numbers keep counting).
    pub schedule_base: u32,
}

impl Record for DeliveryRecord {
    const NAME: &'static str = "delivery";
    const VERSION: u8 = 1;
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub at: Millis,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// The first KiB of what the receiver answered.
    pub response_body: Option<String>,
}

/// Layouts of schema version 1, frozen: never change these. Records written by an older
/// hookd are read through them and upgraded on decode (see [`super::codec`]).
pub mod v1 {
    use serde::{Deserialize, Serialize};

    use crate::model::{
        EventId, EventPattern, EventType, Millis, Ordering, WebhookId, WebhookStatus,
    };

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct WebhookRecordV1 {
        pub id: WebhookId,
        pub user: String,
        pub name: String,
        pub url: String,
        pub event_types: Vec<EventPattern>,
        pub enabled: bool,
        pub status: WebhookStatus,
        pub secret: Option<String>,
        pub previous_secret: Option<(String, Millis)>,
        pub created_at: Millis,
        pub updated_at: Millis,
        pub failing_since: Option<Millis>,
        pub last_success_at: Option<Millis>,
        pub paused_until: Option<Millis>,
    }

    /// A webhook from before custom headers and ordering: none, and no ordering.
    impl From<WebhookRecordV1> for super::WebhookRecord {
        fn from(old: WebhookRecordV1) -> Self {
            super::WebhookRecord {
                id: old.id,
                user: old.user,
                name: old.name,
                url: old.url,
                event_types: old.event_types,
                enabled: old.enabled,
                status: old.status,
                secret: old.secret,
                previous_secret: old.previous_secret,
                created_at: old.created_at,
                updated_at: old.updated_at,
                failing_since: old.failing_since,
                last_success_at: old.last_success_at,
                paused_until: old.paused_until,
                headers: Vec::new(),
                ordering: Ordering::None,
            }
        }
    }

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    pub struct EventRecordV1 {
        pub id: EventId,
        pub seq: u64,
        pub user: String,
        pub event_type: EventType,
        pub source: String,
        pub timestamp: String,
        pub payload: String,
        pub received_at: Millis,
        pub deliveries: u32,
    }

    /// An event from before trace context: it has none.
    impl From<EventRecordV1> for super::EventRecord {
        fn from(old: EventRecordV1) -> Self {
            super::EventRecord {
                id: old.id,
                seq: old.seq,
                user: old.user,
                event_type: old.event_type,
                source: old.source,
                timestamp: old.timestamp,
                payload: old.payload,
                received_at: old.received_at,
                deliveries: old.deliveries,
                trace: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::codec::{decode, encode};

    /// What a version 1 record looked like on disk: the version byte, then the frozen
    /// layout's bincode (the codec's own configuration, as hookd 1 wrote it).
    fn v1_bytes<T: Serialize>(record: &T) -> Vec<u8> {
        let mut bytes = vec![1];
        bincode::serde::encode_into_std_write(record, &mut bytes, bincode::config::standard())
            .unwrap();
        bytes
    }

    #[test]
    fn a_version_1_webhook_reads_with_no_headers_and_no_ordering() {
        let old = v1::WebhookRecordV1 {
            id: WebhookId(7),
            user: "user-123".into(),
            name: "old".into(),
            url: "https://example.com/h".into(),
            event_types: vec![EventPattern::All],
            enabled: true,
            status: WebhookStatus::Failing,
            secret: Some("s".into()),
            previous_secret: Some(("p".into(), Millis(9))),
            created_at: Millis(1),
            updated_at: Millis(2),
            failing_since: Some(Millis(3)),
            last_success_at: None,
            paused_until: Some(Millis(4)),
        };
        let read: WebhookRecord = decode(&v1_bytes(&old)).unwrap();
        assert_eq!(read, WebhookRecord::from(old.clone()));
        assert!(read.headers.is_empty());
        assert_eq!(read.ordering, Ordering::None);
        assert_eq!(
            (read.name.as_str(), read.secret.as_deref()),
            ("old", Some("s"))
        );
        assert_eq!(read.paused_until, Some(Millis(4)));
        // Written again, it is a version 2 record that reads back the same.
        let again = encode(&read);
        assert_eq!(again[0], 2);
        assert_eq!(decode::<WebhookRecord>(&again), Ok(read));
    }

    #[test]
    fn a_version_1_event_reads_with_no_trace() {
        let old = v1::EventRecordV1 {
            id: EventId::parse("evt-old").unwrap(),
            seq: 42,
            user: "user-123".into(),
            event_type: EventType::MessageSent,
            source: "s".into(),
            timestamp: "2024-01-26T10:30:00Z".into(),
            payload: r#"{"a":1}"#.into(),
            received_at: Millis(5),
            deliveries: 2,
        };
        let read: EventRecord = decode(&v1_bytes(&old)).unwrap();
        assert_eq!(read, EventRecord::from(old));
        assert_eq!(read.trace, None);
        assert_eq!((read.seq, read.deliveries), (42, 2));
        assert_eq!(encode(&read)[0], 2);
    }

    #[test]
    fn new_fields_round_trip() {
        let mut hook = WebhookRecord::new(
            "u".into(),
            "n".into(),
            "https://example.com".into(),
            vec![EventPattern::All],
            None,
            Millis(0),
        );
        hook.headers = vec![("Authorization".into(), "Bearer x".into())];
        hook.ordering = Ordering::Fifo;
        assert_eq!(decode::<WebhookRecord>(&encode(&hook)), Ok(hook));
    }
}
