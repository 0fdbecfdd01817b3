//! Frozen layouts of version 2, read by `decode_older` and never changed again.

use serde::{Deserialize, Serialize};

use super::{DeliveryRecord, EventRef};
use crate::model::{DeliveryId, DeliveryStatus, EventType, Millis, WebhookId};

/// `DeliveryRecord` at version 2: its id inside it as well as in its key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecordV2 {
    pub id: DeliveryId,
    pub seq: u64,
    pub webhook_id: WebhookId,
    pub event: EventRef,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub next_attempt_at: Option<Millis>,
    pub created_at: Millis,
    pub schedule_base: u32,
}

impl From<DeliveryRecordV2> for DeliveryRecord {
    fn from(old: DeliveryRecordV2) -> Self {
        DeliveryRecord {
            id: old.id,
            seq: old.seq,
            webhook_id: old.webhook_id,
            event: old.event,
            event_type: old.event_type,
            status: old.status,
            attempts: old.attempts,
            next_attempt_at: old.next_attempt_at,
            created_at: old.created_at,
            schedule_base: old.schedule_base,
            inline_attempts: Vec::new(),
        }
    }
}
