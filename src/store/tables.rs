//! The redb tables and the invariants that tie them together.
//!
//! | table                | key                               | value            |
//! |----------------------|-----------------------------------|------------------|
//! | `meta`               | name (`"event_seq"`, …)           | u64 counter      |
//! | `webhooks`           | webhook id                        | `WebhookRecord`  |
//! | `user_webhooks`      | (user, webhook id)                | ()               |
//! | `events`             | event id                          | `EventRecord`    |
//! | `user_events`        | (user, event seq)                 | event id         |
//! | `deliveries`         | delivery id                       | `DeliveryRecord` |
//! | `webhook_deliveries` | (webhook id, delivery seq)        | delivery id      |
//! | `queue`              | (webhook id, due ms, delivery id) | ()               |
//! | `events_by_seq`      | event seq                         | event id         |
//! | `deliveries_by_seq`  | delivery seq                      | delivery id      |
//! | `attempt_stats`      | (webhook id, unix minute)         | `MinuteStats`    |
//!
//! Invariants, kept by every write in `store::ops`:
//! - `user_webhooks` has an entry exactly for each webhook, under its owner.
//! - `events` doubles as the ingest idempotency table: an event id is stored once, ever
//!   (until retention prunes it), and `user_events` indexes each event exactly once.
//! - `webhook_deliveries` indexes each delivery exactly once, under its webhook.
//! - A delivery is `pending` exactly when it has one `queue` entry, whose due time equals
//!   its `next_attempt_at`. The queue is per webhook so that cancelling a webhook's work is
//!   one range and a slow webhook's backlog never sits in front of another webhook's work.
//! - `events_by_seq` and `deliveries_by_seq` index every event and delivery once, in
//!   ingestion order, so retention prunes the oldest first without a scan.
//! - `attempt_stats` counts every recorded attempt once, under its webhook and the
//!   minute it started; it keeps at most the last day per webhook (`ops::stats`).
//! - Counters in `meta` only grow; a sequence number is never reused.

use redb::TableDefinition;

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const WEBHOOKS: TableDefinition<u128, &[u8]> = TableDefinition::new("webhooks");
pub const USER_WEBHOOKS: TableDefinition<(&str, u128), ()> = TableDefinition::new("user_webhooks");
pub const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("events");
pub const USER_EVENTS: TableDefinition<(&str, u64), &str> = TableDefinition::new("user_events");
pub const DELIVERIES: TableDefinition<u128, &[u8]> = TableDefinition::new("deliveries");
pub const WEBHOOK_DELIVERIES: TableDefinition<(u128, u64), u128> =
    TableDefinition::new("webhook_deliveries");
pub const QUEUE: TableDefinition<(u128, u64, u128), ()> = TableDefinition::new("queue");
pub const EVENTS_BY_SEQ: TableDefinition<u64, &str> = TableDefinition::new("events_by_seq");
pub const DELIVERIES_BY_SEQ: TableDefinition<u64, u128> = TableDefinition::new("deliveries_by_seq");

pub const EVENT_SEQ: &str = "event_seq";
pub const DELIVERY_SEQ: &str = "delivery_seq";
pub const ATTEMPT_STATS: TableDefinition<(u128, u64), &[u8]> =
    TableDefinition::new("attempt_stats");
