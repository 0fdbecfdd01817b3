//! Frozen layouts of version 1, read by `decode_older` and never changed again.

use serde::{Deserialize, Serialize};

use super::{Attempt, DeliveryRecord, EventRecord, EventRef, WebhookRecord};
use crate::model::{
    DeliveryId, DeliveryStatus, EventId, EventPattern, EventType, Millis, Ordering, WebhookId,
    WebhookStatus,
};

/// `WebhookRecord` at version 1: no `headers`, no `ordering`.
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
impl From<WebhookRecordV1> for WebhookRecord {
    fn from(old: WebhookRecordV1) -> Self {
        WebhookRecord {
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

/// `EventRecord` at version 1: no `first_delivery`, no `trace`.
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

impl From<EventRecordV1> for EventRecord {
    fn from(old: EventRecordV1) -> Self {
        EventRecord {
            id: old.id,
            seq: old.seq,
            user: old.user,
            event_type: old.event_type,
            source: old.source,
            timestamp: old.timestamp,
            payload: old.payload,
            received_at: old.received_at,
            deliveries: old.deliveries,
            first_delivery: None,
            trace: None,
        }
    }
}

/// `DeliveryRecord` at version 1: the event by id, every attempt inline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecordV1 {
    pub id: DeliveryId,
    pub seq: u64,
    pub webhook_id: WebhookId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: Vec<AttemptV1>,
    pub next_attempt_at: Option<Millis>,
    pub created_at: Millis,
    pub schedule_base: u32,
}

/// An attempt inside a version 1 delivery record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttemptV1 {
    pub number: u32,
    pub at: Millis,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
    pub response_body: Option<String>,
}

impl From<DeliveryRecordV1> for DeliveryRecord {
    fn from(old: DeliveryRecordV1) -> Self {
        // Numbers went 1, 2, 3…; the highest is the count, so the next attempt can
        // never take a number already used.
        let attempts = old.attempts.iter().map(|a| a.number).max().unwrap_or(0);
        DeliveryRecord {
            id: old.id,
            seq: old.seq,
            webhook_id: old.webhook_id,
            event: EventRef::Id(old.event_id),
            event_type: old.event_type,
            status: old.status,
            attempts,
            next_attempt_at: old.next_attempt_at,
            created_at: old.created_at,
            schedule_base: old.schedule_base,
            inline_attempts: old
                .attempts
                .into_iter()
                .map(|a| {
                    let attempt = Attempt {
                        at: a.at,
                        status_code: a.status_code,
                        duration_ms: a.duration_ms,
                        error: a.error,
                        response_body: a.response_body,
                    };
                    (a.number, attempt)
                })
                .collect(),
        }
    }
}
