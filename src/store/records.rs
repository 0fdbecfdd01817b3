//! The stored records. Each is encoded by [`super::codec`] behind its `VERSION` byte; a
//! change to any field list means a new version and a decoder for the old one.

use serde::{Deserialize, Serialize};

use super::codec::Record;
use crate::model::{
    DeliveryId, DeliveryStatus, EventId, EventPattern, EventType, Millis, NotificationId,
    NotificationKind, WebhookId, WebhookStatus,
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
