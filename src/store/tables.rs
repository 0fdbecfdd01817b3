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
//! | `event_deliveries`   | (event seq, delivery seq)         | ()               |
//! | `webhook_cleanup`    | webhook id                        | cleanup kind     |
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
//! - `event_deliveries` has an entry for every delivery of every stored event (made with
//!   the event); the entries go with their event. An entry whose delivery is gone (pruned,
//!   or removed with its webhook) may remain until then. Retention reads it to keep an
//!   event while any of its deliveries is pending (a claimed, in-flight delivery is still
//!   pending). Events stored before this table existed have no entries.
//! - Work that is too big for one transaction is done in chunks of at most
//!   [`CLEANUP_CHUNK`] deliveries, one write job each, so other writes commit in between.
//!   `webhook_cleanup` says which is unfinished, so a restart resumes it:
//!   - [`CLEANUP_REMOVE`]: the webhook was deleted. Its record and `user_webhooks` entry
//!     went in the first commit; its deliveries (with their `webhook_deliveries`,
//!     `deliveries_by_seq` and `queue` entries) are removed chunk by chunk, each delivery
//!     with all of its index entries at once. Deliveries whose webhook is gone exist only
//!     under such an entry; nothing sends them (no webhook record, nothing to send to).
//!   - [`CLEANUP_CANCEL`]: the webhook was disabled. Its record says so since the first
//!     commit (so nothing is dispatched for it); its queue entries are cancelled chunk by
//!     chunk, each delivery leaving the queue as it becomes `cancelled`. Re-enabling ends
//!     the entry (the API finishes the cancellation first).
//!
//!   A webhook has at most one entry; a delete turns a cancel into a remove.

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
pub const EVENT_DELIVERIES: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("event_deliveries");
pub const WEBHOOK_CLEANUP: TableDefinition<u128, u8> = TableDefinition::new("webhook_cleanup");

/// `webhook_cleanup`: the webhook was deleted; remove its deliveries.
pub const CLEANUP_REMOVE: u8 = 1;
/// `webhook_cleanup`: the webhook was disabled; cancel its pending deliveries.
pub const CLEANUP_CANCEL: u8 = 2;
/// At most this many deliveries are removed, cancelled or queued again per write job.
pub const CLEANUP_CHUNK: usize = 1000;
