//! The stored records. Each is encoded by [`super::codec`] behind its `VERSION` byte; a
//! change to any field list means a new version and a decoder for the old one.

use serde::{Deserialize, Serialize};

use super::codec::Record;
use crate::model::{
    DeliveryId, DeliveryStatus, EventId, EventPattern, EventType, Millis, WebhookId, WebhookStatus,
};

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
}

impl Record for WebhookRecord {
    const NAME: &'static str = "webhook";
    const VERSION: u8 = 1;
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
}

impl Record for EventRecord {
    const NAME: &'static str = "event";
    const VERSION: u8 = 1;
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
