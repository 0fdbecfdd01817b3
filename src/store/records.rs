//! The stored records. Each is encoded by [`super::codec`] behind its `VERSION` byte; a
//! change to any field list means a new version and a decoder for the old one.

use serde::{Deserialize, Serialize};

use super::codec::{CodecError, Record, decode, decode_body, encode_view};
use crate::model::{
    DeliveryId, DeliveryStatus, EventId, EventPattern, EventType, Millis, NotificationId,
    NotificationKind, Ordering, WebhookId, WebhookStatus,
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
    /// The seq of its first delivery: ingestion gives an event's deliveries consecutive
    /// seqs, so they are `first_delivery..first_delivery + deliveries`. `None` for an
    /// event stored at version 1, whose deliveries `event_deliveries` lists instead.
    pub first_delivery: Option<u64>,
    /// The W3C trace the publisher sent the event in, if a valid one.
    pub trace: Option<TraceContext>,
}

impl Record for EventRecord {
    const NAME: &'static str = "event";
    const VERSION: u8 = 2;

    fn decode_older(version: u8, body: &[u8]) -> Result<Self, CodecError> {
        match version {
            1 => decode_body::<v1::EventRecordV1>(Self::NAME, body).map(EventRecord::from),
            _ => Err(CodecError::unknown_version::<Self>(version)),
        }
    }
}

impl EventRecord {
    /// The seqs of its deliveries, when the record knows them (version 2 on).
    pub fn delivery_seqs(&self) -> Option<std::ops::Range<u64>> {
        self.first_delivery
            .map(|first| first..first.saturating_add(u64::from(self.deliveries)))
    }
}

/// Which event a delivery carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventRef {
    /// By its seq (`events_by_seq` names it): every delivery stored at version 2 on. The
    /// event outlives its deliveries (retention keeps it while any of them exists).
    Seq(u64),
    /// By its id: a delivery stored at version 1, whose event may be pruned first.
    Id(EventId),
}

impl EventRef {
    /// Whether `event` is the one this names (a read joined by another column, say).
    pub fn names(&self, event: &EventRecord) -> bool {
        match self {
            EventRef::Seq(seq) => event.seq == *seq,
            EventRef::Id(id) => event.id == *id,
        }
    }
}

/// One event on its way to one webhook. Its attempts are rows of `attempts`, keyed by
/// its seq and their number, so that recording one writes only that row and this record
/// (see [`super::tables`]). Stored under its id, and (from version 3 on) without it:
/// [`DeliveryRecord::encode`] and [`DeliveryRecord::decode`] are the only way in and
/// out, and the second takes the id from the key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    /// The key it is stored under, not part of the stored bytes.
    #[serde(skip, default = "unset_id")]
    pub id: DeliveryId,
    /// Creation order, daemon-wide; the listing cursor.
    pub seq: u64,
    pub webhook_id: WebhookId,
    pub event: EventRef,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    /// Attempts made so far: the next one is number `attempts + 1`.
    pub attempts: u32,
    /// Set exactly while `status == Pending` (mirrors the queue entry's key).
    pub next_attempt_at: Option<Millis>,
    pub created_at: Millis,
    /// Attempts made before the current run of the retry schedule began (a manual retry
    /// or a recover starts the schedule again while attempt numbers keep counting).
    pub schedule_base: u32,
    /// The attempts of a record read at version 1, which held them inline: served from
    /// here until the record is next written, which moves them into `attempts` in the
    /// same transaction (`ops::deliveries::save`). Never stored in the record itself.
    #[serde(skip)]
    pub inline_attempts: Vec<(u32, Attempt)>,
}

/// What a decoded body holds in place of the id until [`DeliveryRecord::decode`] sets it
/// (nothing outside this module sees it).
fn unset_id() -> DeliveryId {
    DeliveryId(0)
}

/// A delivery record as the codec sees it: the same fields, the id left out. Private, so
/// that every read goes through [`DeliveryRecord::decode`], which has the id.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct StoredDelivery(DeliveryRecord);

impl Record for StoredDelivery {
    const NAME: &'static str = "delivery";
    const VERSION: u8 = DeliveryRecord::VERSION;

    fn decode_older(version: u8, body: &[u8]) -> Result<Self, CodecError> {
        let record = match version {
            1 => decode_body::<v1::DeliveryRecordV1>(Self::NAME, body)?.into(),
            2 => decode_body::<v2::DeliveryRecordV2>(Self::NAME, body)?.into(),
            _ => return Err(CodecError::unknown_version::<Self>(version)),
        };
        Ok(StoredDelivery(record))
    }
}

impl DeliveryRecord {
    /// The schema version it is written at. 3: no id (the key is the id), 17 bytes less a
    /// delivery. 2: attempts in their own table, the event by seq. 1: attempts inline,
    /// the event by id.
    pub const VERSION: u8 = 3;

    /// The bytes stored under its id.
    pub fn encode(&self) -> Vec<u8> {
        encode_view::<StoredDelivery>(self)
    }

    /// The record stored under `id`. (A record of version 1 or 2 holds its id as well;
    /// the key is the same id, and the key is what counts.)
    pub fn decode(id: DeliveryId, bytes: &[u8]) -> Result<DeliveryRecord, CodecError> {
        let StoredDelivery(mut record) = decode::<StoredDelivery>(bytes)?;
        record.id = id;
        Ok(record)
    }
}

/// One attempt, stored in `attempts` under (delivery seq, attempt number).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: Millis,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// The first KiB of what the receiver answered.
    pub response_body: Option<String>,
}

impl Record for Attempt {
    const NAME: &'static str = "attempt";
    const VERSION: u8 = 1;
}

/// One operator notification (`store::ops::notifications`): what it tells, and how far
/// its sending has come.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotificationRecord {
    /// Its `webhook-id` header: the same on every attempt.
    pub id: NotificationId,
    /// Creation order, daemon-wide: its key, and the order a webhook's notifications go in.
    pub seq: u64,
    pub kind: NotificationKind,
    /// When the webhook's status changed: the body's `timestamp`.
    pub at: Millis,
    /// The webhook as that change left it.
    pub webhook: WebhookSnapshot,
    pub reason: String,
    pub state: NotificationState,
    /// No attempt before this: the end of the rate limit's window for a held one, the
    /// creation time for the others.
    pub not_before: Millis,
    pub attempts: u32,
    /// Set after a failed attempt while another is scheduled.
    pub next_attempt_at: Option<Millis>,
    /// What the latest failed attempt got (a status or a network error).
    pub last_error: Option<String>,
    /// When it was sent, given up or skipped.
    pub finished_at: Option<Millis>,
}

impl Record for NotificationRecord {
    const NAME: &'static str = "notification";
    const VERSION: u8 = 1;
}

/// The webhook fields a notification carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WebhookSnapshot {
    pub id: WebhookId,
    pub user: String,
    pub name: String,
    pub url: String,
    pub status: WebhookStatus,
    pub enabled: bool,
}

impl WebhookSnapshot {
    pub fn of(hook: &WebhookRecord) -> WebhookSnapshot {
        WebhookSnapshot {
            id: hook.id,
            user: hook.user.clone(),
            name: hook.name.clone(),
            url: hook.url.clone(),
            status: hook.status,
            enabled: hook.enabled,
        }
    }
}

/// Where a notification stands. Stored by variant position: append only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotificationState {
    /// Held back by the rate limit until `not_before`; replaced or dropped if the webhook
    /// changes again meanwhile.
    Held,
    /// To be sent (again).
    Pending,
    /// A 2xx came back.
    Sent,
    /// The retry schedule ran out.
    Failed,
    /// No `notifications.url` was configured when its turn came.
    Skipped,
}

impl NotificationState {
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationState::Held => "held",
            NotificationState::Pending => "pending",
            NotificationState::Sent => "sent",
            NotificationState::Failed => "failed",
            NotificationState::Skipped => "skipped",
        }
    }

    /// Whether it is still to be sent (it then has a `notification_pending` entry).
    pub fn is_open(self) -> bool {
        matches!(self, NotificationState::Held | NotificationState::Pending)
    }
}

/// Per webhook, what the rate limit of notifications remembers (`crate::notify::throttle`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyMarks {
    /// When a notification of each kind (by position in [`NotificationKind::ALL`]) was
    /// last queued to be sent.
    pub last: [Option<Millis>; 3],
    /// The kind of the last one queued to be sent: the state the receiver will know once
    /// everything queued has gone.
    pub told: Option<NotificationKind>,
}

impl Record for NotifyMarks {
    const NAME: &'static str = "notification marks";
    const VERSION: u8 = 1;
}

pub mod v1;
pub mod v2;

#[cfg(test)]
mod tests {
    use super::v1::*;
    use super::*;
    use crate::store::codec::{decode, encode, encode_at};

    #[test]
    fn a_version_1_delivery_keeps_its_attempts_until_it_is_saved() {
        let attempt = |number, code| AttemptV1 {
            number,
            at: Millis(10 * i64::from(number)),
            status_code: Some(code),
            duration_ms: 3,
            error: None,
            response_body: Some("busy".into()),
        };
        let old = DeliveryRecordV1 {
            id: DeliveryId::generate(),
            seq: 7,
            webhook_id: WebhookId::generate(),
            event_id: EventId::parse("evt-old").unwrap(),
            event_type: EventType::AgentError,
            status: DeliveryStatus::Failed,
            attempts: vec![attempt(1, 500), attempt(2, 503)],
            next_attempt_at: None,
            created_at: Millis(5),
            schedule_base: 0,
        };
        let read = DeliveryRecord::decode(old.id, &encode_at(1, &old)).unwrap();
        assert_eq!(read.event, EventRef::Id(old.event_id.clone()));
        assert_eq!(
            (read.id, read.seq, read.status),
            (old.id, 7, DeliveryStatus::Failed)
        );
        assert_eq!(read.attempts, 2, "the next attempt is number 3");
        let numbers: Vec<(u32, Option<u16>)> = read
            .inline_attempts
            .iter()
            .map(|(n, a)| (*n, a.status_code))
            .collect();
        assert_eq!(numbers, [(1, Some(500)), (2, Some(503))]);
        // Written again at the current version, without them: `ops::deliveries::save`
        // moves them into `attempts` first.
        let bytes = read.encode();
        assert_eq!(bytes[0], 3);
        let again = DeliveryRecord::decode(old.id, &bytes).unwrap();
        assert!(again.inline_attempts.is_empty());
        assert_eq!(again.attempts, 2);
    }

    #[test]
    fn a_version_2_delivery_reads_the_same_and_is_written_without_its_id() {
        let old = v2::DeliveryRecordV2 {
            id: DeliveryId::generate(),
            seq: 9,
            webhook_id: WebhookId::generate(),
            event: EventRef::Seq(4),
            event_type: EventType::MessageSent,
            status: DeliveryStatus::Pending,
            attempts: 1,
            next_attempt_at: Some(Millis(1_700_000_000_000)),
            created_at: Millis(1_699_999_999_000),
            schedule_base: 0,
        };
        let v2_bytes = encode_at(2, &old);
        let read = DeliveryRecord::decode(old.id, &v2_bytes).unwrap();
        assert_eq!(read, DeliveryRecord::from(old.clone()));
        let bytes = read.encode();
        assert_eq!(bytes[0], 3);
        // bincode's varint writes a u128 above 2^64 (a UUID's) as a tag byte and 16 bytes.
        assert_eq!(
            bytes.len() + 17,
            v2_bytes.len(),
            "the id is not stored again"
        );
        // The key names the record: the same bytes under another id read as that one.
        let other = DeliveryId::generate();
        let moved = DeliveryRecord::decode(other, &bytes).unwrap();
        assert_eq!((moved.id, moved.seq), (other, 9));
        assert_eq!(
            DeliveryRecord {
                id: old.id,
                ..moved
            },
            read
        );
    }

    #[test]
    fn a_version_1_event_has_no_delivery_range() {
        let old = EventRecordV1 {
            id: EventId::parse("evt-old").unwrap(),
            seq: 3,
            user: "u".into(),
            event_type: EventType::AppConnected,
            source: "s".into(),
            timestamp: "2024-01-01T00:00:00Z".into(),
            payload: "{}".into(),
            received_at: Millis(1),
            deliveries: 2,
        };
        let read: EventRecord = decode(&encode_at(1, &old)).unwrap();
        assert_eq!(
            (read.seq, read.deliveries, read.delivery_seqs()),
            (3, 2, None)
        );
        let new = EventRecord {
            first_delivery: Some(40),
            ..read
        };
        assert_eq!(new.delivery_seqs(), Some(40..42));
        assert_eq!(decode::<EventRecord>(&encode(&new)), Ok(new));
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
        let read: WebhookRecord = decode(&encode_at(1, &old)).unwrap();
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
        let read: EventRecord = decode(&encode_at(1, &old)).unwrap();
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
