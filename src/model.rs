//! The domain vocabulary shared by the API, the store and the delivery engine:
//! identifiers, the event catalog, subscription patterns, statuses and time.
//!
//! Invariants:
//! - Ids are newtypes over UUIDs; their text forms carry a prefix (`wh-`, `dlv-`) so an id
//!   pasted into the wrong place is rejected instead of silently looked up.
//! - `EventType` and the status enums are stored in records by variant position (bincode),
//!   so variants may only ever be *appended*, never reordered or removed.
//! - Times are unix milliseconds (`Millis`) inside hookd and RFC 3339 UTC with a `Z` outside.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// A value from a request that hookd refuses; the text is the reason the client is shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// A fresh, time-ordered id (UUIDv7): every id hookd makes up for a webhook, a delivery
/// or a notification. Store writes draw theirs through the writer ([`crate::store::Tx`]),
/// which records them for the redo log.
pub fn fresh_id() -> u128 {
    Uuid::now_v7().as_u128()
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub u128);

        impl $name {
            /// A fresh, time-ordered id (UUIDv7).
            pub fn generate() -> Self {
                Self(fresh_id())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), Uuid::from_u128(self.0).hyphenated())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = ();
            /// Accepts only the canonical text form (`prefix` + hyphenated lowercase UUID).
            fn from_str(s: &str) -> Result<Self, ()> {
                let rest = s.strip_prefix($prefix).ok_or(())?;
                let uuid = Uuid::try_parse(rest).map_err(|_| ())?;
                let id = Self(uuid.as_u128());
                if id.to_string() == s { Ok(id) } else { Err(()) }
            }
        }
    };
}

prefixed_id!(
    /// Identifies a webhook: `wh-<uuid>`.
    WebhookId,
    "wh-"
);
prefixed_id!(
    /// Identifies one delivery of one event to one webhook: `dlv-<uuid>`. Stable across attempts.
    DeliveryId,
    "dlv-"
);
prefixed_id!(
    /// Identifies one operator notification: `ntf-<uuid>`, its `webhook-id` header.
    NotificationId,
    "ntf-"
);

/// Event ids are chosen by the publisher (1–128 of `[A-Za-z0-9._:-]`) or generated as `evt-<uuid>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Debug)]
pub struct EventId(String);

impl EventId {
    pub const MAX_LEN: usize = 128;

    pub fn generate() -> Self {
        Self(format!("evt-{}", Uuid::now_v7().hyphenated()))
    }

    pub fn parse(s: &str) -> Result<Self, Invalid> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-');
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.chars().all(valid_char) {
            return Err(Invalid(format!(
                "`id` must be 1–{} characters of A-Z a-z 0-9 . _ : -",
                Self::MAX_LEN
            )));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The group an event type belongs to; `app:*`, `message:*`, `agent:*` subscribe to a whole group.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum EventGroup {
    App,
    Message,
    Agent,
}

impl EventGroup {
    pub fn as_str(self) -> &'static str {
        match self {
            EventGroup::App => "app",
            EventGroup::Message => "message",
            EventGroup::Agent => "agent",
        }
    }
}

macro_rules! event_catalog {
    ($($variant:ident => $name:literal, $group:ident;)*) => {
        /// The event catalog of the webhook guide. Append only (see module docs).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
        pub enum EventType { $($variant,)* }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$(EventType::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(EventType::$variant => $name,)* }
            }

            pub fn group(self) -> EventGroup {
                match self { $(EventType::$variant => EventGroup::$group,)* }
            }
        }
    };
}

event_catalog! {
    AppConnecting => "app:connecting", App;
    AppConnected => "app:connected", App;
    AppDisconnected => "app:disconnected", App;
    AppHealthWarning => "app:health_warning", App;
    AppHealthCleared => "app:health_cleared", App;
    AppHealthCheck => "app:health_check", App;
    MessageReceived => "message:received", Message;
    MessageSending => "message:sending", Message;
    MessageSent => "message:sent", Message;
    AgentInvoked => "agent:invoked", Agent;
    AgentResponse => "agent:response", Agent;
    AgentError => "agent:error", Agent;
}

impl EventType {
    /// An example payload of this type, for test events: the webhook guide's example where
    /// the guide gives one, else one in the same style.
    pub fn sample_payload(self) -> &'static str {
        match self {
            EventType::AppConnecting => r#"{"appType":"whatsapp","status":"connecting"}"#,
            EventType::AppConnected => {
                r#"{"appType":"whatsapp","status":"connected","metadata":{"phoneNumber":"+1234567890"}}"#
            }
            EventType::AppDisconnected => {
                r#"{"appType":"whatsapp","status":"disconnected","reason":"user_initiated"}"#
            }
            EventType::AppHealthWarning => {
                r#"{"appType":"whatsapp","status":"degraded","healthStatus":"warning","warningMessage":"Phone appears offline","recommendation":"Check your phone connection"}"#
            }
            EventType::AppHealthCleared => {
                r#"{"appType":"whatsapp","status":"connected","healthStatus":"healthy","previousWarning":"Phone appears offline"}"#
            }
            EventType::AppHealthCheck => {
                r#"{"appType":"whatsapp","status":"connected","healthStatus":"healthy"}"#
            }
            EventType::MessageReceived => {
                r#"{"appType":"whatsapp","messageId":"msg-123","from":"+1234567890","text":"Hello!"}"#
            }
            EventType::MessageSending => {
                r#"{"appType":"whatsapp","messageId":"msg-124","to":"+1234567890","text":"Hi there!"}"#
            }
            EventType::MessageSent => {
                r#"{"appType":"whatsapp","messageId":"msg-124","to":"+1234567890","status":"sent"}"#
            }
            EventType::AgentInvoked => r#"{"agentId":"agent-1","trigger":"message:received"}"#,
            EventType::AgentResponse => {
                r#"{"agentId":"agent-1","response":"Your order has shipped.","durationMs":840}"#
            }
            EventType::AgentError => {
                r#"{"agentId":"agent-1","error":"model timeout","retryable":true}"#
            }
        }
    }
}

impl FromStr for EventType {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        EventType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| Invalid(format!("unknown event type \"{}\"", s.escape_debug())))
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a webhook's `eventTypes`: an exact type, a whole group, or everything.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum EventPattern {
    Exact(EventType),
    Group(EventGroup),
    All,
}

impl EventPattern {
    pub fn matches(self, event_type: EventType) -> bool {
        match self {
            EventPattern::Exact(t) => t == event_type,
            EventPattern::Group(g) => event_type.group() == g,
            EventPattern::All => true,
        }
    }
}

impl FromStr for EventPattern {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "*" => Ok(EventPattern::All),
            "app:*" => Ok(EventPattern::Group(EventGroup::App)),
            "message:*" => Ok(EventPattern::Group(EventGroup::Message)),
            "agent:*" => Ok(EventPattern::Group(EventGroup::Agent)),
            _ => s.parse().map(EventPattern::Exact).map_err(|_| {
                Invalid(format!(
                    "unknown event type \"{}\": use a name from the catalog, \"app:*\", \"message:*\", \"agent:*\" or \"*\"",
                    s.escape_debug()
                ))
            }),
        }
    }
}

impl fmt::Display for EventPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventPattern::Exact(t) => f.write_str(t.as_str()),
            EventPattern::Group(g) => write!(f, "{}:*", g.as_str()),
            EventPattern::All => f.write_str("*"),
        }
    }
}

/// A webhook's health as users see it. `Disabled` exactly when the webhook is not enabled.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum WebhookStatus {
    Healthy,
    Failing,
    Disabled,
}

impl WebhookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookStatus::Healthy => "healthy",
            WebhookStatus::Failing => "failing",
            WebhookStatus::Disabled => "disabled",
        }
    }
}

/// How a webhook's deliveries may overtake each other. `None`: attempts run side by side
/// (up to `max_in_flight_per_webhook`), each on its own schedule. `Fifo`: one delivery at a
/// time, in the order they were queued; the head blocks the rest while it is retried.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default, Serialize, Deserialize)]
pub enum Ordering {
    #[default]
    None,
    Fifo,
}

impl Ordering {
    pub fn as_str(self) -> &'static str {
        match self {
            Ordering::None => "none",
            Ordering::Fifo => "fifo",
        }
    }
}

impl FromStr for Ordering {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "none" => Ok(Ordering::None),
            "fifo" => Ok(Ordering::Fifo),
            other => Err(Invalid(format!(
                "unknown ordering \"{}\": use \"none\" or \"fifo\"",
                other.escape_debug()
            ))),
        }
    }
}

/// What an operator notification tells about a webhook. Stored by variant position:
/// append only.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum NotificationKind {
    /// It became `failing`: a delivery used up its retry schedule.
    Failing,
    /// hookd disabled it: a `410 Gone`, or failing for `delivery.disable_after`.
    Disabled,
    /// It was `failing` and a delivery succeeded: `healthy` again.
    Recovered,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 3] = [
        NotificationKind::Failing,
        NotificationKind::Disabled,
        NotificationKind::Recovered,
    ];

    /// The `type` of the notification body.
    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::Failing => "webhook.failing",
            NotificationKind::Disabled => "webhook.disabled",
            NotificationKind::Recovered => "webhook.recovered",
        }
    }
}

/// Where one delivery stands. Only `Pending` deliveries have a queue entry.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum DeliveryStatus {
    Pending,
    Succeeded,
    Failed,
    Cancelled,
}

impl DeliveryStatus {
    pub const ALL: &'static [DeliveryStatus] = &[
        DeliveryStatus::Pending,
        DeliveryStatus::Succeeded,
        DeliveryStatus::Failed,
        DeliveryStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = Invalid;
    fn from_str(s: &str) -> Result<Self, Invalid> {
        DeliveryStatus::ALL
            .iter()
            .copied()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                Invalid(format!(
                    "unknown status \"{}\": use pending, succeeded, failed or cancelled",
                    s.escape_debug()
                ))
            })
    }
}

/// Unix time in milliseconds: the one time representation inside hookd.
#[derive(
    Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Debug, Serialize, Deserialize,
)]
pub struct Millis(pub i64);

impl Millis {
    /// hookd's wall clock: the system's, but never backwards (see [`crate::clock`]).
    pub fn now() -> Self {
        Millis(crate::clock::wall_ms())
    }

    pub fn saturating_add(self, d: std::time::Duration) -> Self {
        Millis(
            self.0
                .saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        )
    }

    /// The queue key form: times before the epoch sort as 0.
    pub fn as_key(self) -> u64 {
        u64::try_from(self.0).unwrap_or(0)
    }

    /// Back from the key form (a key past `i64::MAX` reads as the farthest time).
    pub fn from_key(key: u64) -> Self {
        Millis(i64::try_from(key).unwrap_or(i64::MAX))
    }

    pub fn to_rfc3339(self) -> String {
        let nanos = i128::from(self.0) * 1_000_000;
        let t =
            OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(OffsetDateTime::UNIX_EPOCH);
        format_utc(t)
    }
}

/// RFC 3339 in UTC with a `Z`, and milliseconds only when they are not zero.
fn format_utc(t: OffsetDateTime) -> String {
    let ms = t.millisecond();
    let base = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if ms == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{ms:03}Z")
    }
}

/// Parses an RFC 3339 timestamp with any offset and normalizes it to UTC `Z`, keeping the
/// instant and its full sub-second precision.
pub fn normalize_rfc3339(s: &str) -> Result<String, Invalid> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        Invalid(format!(
            "\"{}\" is not an RFC 3339 timestamp like 2024-01-26T10:30:00Z",
            s.escape_debug()
        ))
    })?;
    // `to_offset` panics when the UTC instant leaves years 0000-9999 (e.g.
    // 9999-12-31T23:59:59-01:00); found by fuzzing.
    let utc = t.checked_to_offset(time::UtcOffset::UTC).ok_or_else(|| {
        Invalid(format!(
            "\"{}\" is outside the years 0000-9999 in UTC",
            s.escape_debug()
        ))
    })?;
    utc.format(&Rfc3339)
        .map_err(|e| Invalid(format!("timestamp cannot be represented: {e}")))
}

/// Parses an RFC 3339 timestamp into `Millis` (used for query windows).
pub fn parse_rfc3339_millis(s: &str) -> Result<Millis, Invalid> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
        Invalid(format!(
            "\"{}\" is not an RFC 3339 timestamp like 2024-01-26T10:30:00Z",
            s.escape_debug()
        ))
    })?;
    Ok(Millis((t.unix_timestamp_nanos() / 1_000_000) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_reject_foreign_forms() {
        let id = WebhookId::generate();
        let text = id.to_string();
        assert!(text.starts_with("wh-"));
        assert_eq!(text.parse::<WebhookId>(), Ok(id));
        assert!(text.to_uppercase().parse::<WebhookId>().is_err());
        assert!(text.replace("wh-", "dlv-").parse::<WebhookId>().is_err());
        assert!("wh-".parse::<WebhookId>().is_err());
        let d = DeliveryId::generate();
        assert_eq!(d.to_string().parse::<DeliveryId>(), Ok(d));
    }

    #[test]
    fn times_round_trip_through_the_key_form() {
        assert_eq!(
            Millis::from_key(Millis(1_700_000_000_000).as_key()).0,
            1_700_000_000_000
        );
        assert_eq!(Millis(-5).as_key(), 0, "before the epoch sorts first");
        assert_eq!(Millis::from_key(u64::MAX).0, i64::MAX);
    }

    #[test]
    fn event_ids_follow_the_contract_charset() {
        assert!(EventId::parse("evt_1.a:b-C").is_ok());
        assert!(EventId::parse("").is_err());
        assert!(EventId::parse("a b").is_err());
        assert!(EventId::parse(&"x".repeat(129)).is_err());
        assert!(EventId::parse(&"x".repeat(128)).is_ok());
        assert!(EventId::parse("é").is_err());
    }

    #[test]
    fn patterns_match_exact_group_and_all() {
        let p: EventPattern = "app:*".parse().unwrap();
        assert!(p.matches(EventType::AppConnected));
        assert!(!p.matches(EventType::MessageSent));
        let all: EventPattern = "*".parse().unwrap();
        assert!(EventType::ALL.iter().all(|t| all.matches(*t)));
        let exact: EventPattern = "agent:error".parse().unwrap();
        assert!(exact.matches(EventType::AgentError));
        assert!(!exact.matches(EventType::AgentInvoked));
        assert!("app:unknown".parse::<EventPattern>().is_err());
        assert!("billing:*".parse::<EventPattern>().is_err());
        for t in EventType::ALL {
            assert_eq!(t.as_str().parse::<EventType>(), Ok(*t));
            assert_eq!(EventPattern::Exact(*t).to_string(), t.as_str());
        }
        assert_eq!(EventType::ALL.len(), 12);
    }

    #[test]
    fn timestamps_normalize_to_utc_z() {
        assert_eq!(
            normalize_rfc3339("2024-01-26T12:30:00+02:00").unwrap(),
            "2024-01-26T10:30:00Z"
        );
        assert_eq!(
            normalize_rfc3339("2024-01-26T10:30:00.5Z").unwrap(),
            "2024-01-26T10:30:00.5Z"
        );
        assert!(normalize_rfc3339("yesterday").is_err());
        assert!(normalize_rfc3339("9999-12-31T23:59:59-01:00").is_err());
        assert!(normalize_rfc3339("0000-01-01T00:00:00+01:00").is_err());
        assert_eq!(Millis(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            Millis(1_706_265_000_123).to_rfc3339(),
            "2024-01-26T10:30:00.123Z"
        );
    }
}
