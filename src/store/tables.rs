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
//! | `attempts`           | (delivery seq, attempt number)    | `Attempt`        |
//! | `webhook_deliveries` | (webhook id, delivery seq)        | delivery id      |
//! | `queue`              | (webhook number, due ms, delivery seq) | ()          |
//! | `events_by_seq`      | event seq                         | event id         |
//! | `deliveries_by_seq`  | delivery seq                      | delivery id      |
//! | `attempt_stats`      | (webhook id, unix minute)         | `MinuteStats`    |
//! | `event_deliveries`   | (event seq, delivery seq)         | ()               |
//! | `webhook_cleanup`    | webhook id                        | cleanup kind     |
//! | `delivery_filter`    | (webhook number, status, type, seq) | ()             |
//! | `webhook_numbers`    | webhook id                        | webhook number   |
//! | `user_type_events`   | (user, event type, event seq)     | event id         |
//! | `queue_order`        | (webhook number, position)        | ()               |
//! | `queue_requeued`     | delivery id                       | position         |
//! | `queue_requeued_at`  | position                          | delivery seq     |
//! | `notifications`      | notification seq                  | `NotificationRecord` |
//! | `notification_pending` | (webhook id, notification seq)  | ()               |
//! | `notification_due`   | (due ms, notification seq)        | ()               |
//! | `notification_marks` | webhook id                        | `NotifyMarks`    |
//! | `webhooks_by_status` | ([`status_rank`], webhook id)     | ()               |
//! | `attempt_totals`     | unix minute                       | (succeeded, failed, errored) |
//!
//! Invariants, kept by every write in `store::ops`:
//! - `user_webhooks` has an entry exactly for each webhook, under its owner.
//! - `events` doubles as the ingest idempotency table: an event id is stored once, ever
//!   (until retention prunes it).
//! - `user_events` indexes each event with `seq < meta[`[`EVENT_FILTER_FROM`]`]` (stored
//!   by a hookd before the type index) exactly once, under its user; later events are in
//!   `user_type_events` only (an older hookd's event at or above the mark may be in both,
//!   and retention removes both entries).
//! - `webhook_deliveries` indexes each delivery written by an older hookd exactly once,
//!   under its webhook, and no other: from [`DELIVERY_FILTER_FROM`] on, `delivery_filter`
//!   lists every delivery under its webhook, so that one index serves the whole log
//!   (listings read `webhook_deliveries` only below the mark; an older hookd's delivery
//!   at or above it is in both, and a removal takes both entries).
//! - `attempts` holds every recorded attempt under its delivery's seq and its number;
//!   a delivery's rows are numbered `1..=attempts` (its record's count), so recording an
//!   attempt inserts one row and rewrites a record of constant size, and reading a
//!   delivery's attempts is one range. Exception: a record stored at version 1 carried
//!   its attempts inline and has no rows; readers take the inline list
//!   (`ops::deliveries::attempts_of`), and the next write of the record
//!   (`ops::deliveries::save`, the one way a delivery record is rewritten) moves them
//!   into `attempts` in the same transaction. The rows go with their delivery
//!   (`ops::deliveries::DeliveryTables::remove`: retention, webhook removal).
//! - A delivery stored at version 2 names its event by seq (`EventRef::Seq`), resolved
//!   through `events_by_seq`; retention keeps an event while any of its deliveries is
//!   stored, so the name always resolves. (Version 1 records name it by id and may
//!   outlive it, as before.) An event stored at version 2 records `first_delivery`:
//!   ingestion gives its deliveries the consecutive seqs from there.
//! - A delivery is `pending` exactly when it has one `queue` entry, whose due time equals
//!   its `next_attempt_at`. The queue is per webhook so that cancelling a webhook's work is
//!   one range and a slow webhook's backlog never sits in front of another webhook's work.
//! - `queue_order` has exactly one entry for each pending delivery (so for each `queue`
//!   entry), under its webhook, at its *position*: its seq, or its `queue_requeued`
//!   value. `queue_requeued` has an entry exactly for the pending deliveries queued again
//!   by a manual retry or a recover, whose position is a fresh number taken from
//!   `delivery_seq` when they were queued (so delivery seqs have gaps, and such a position
//!   is no delivery's seq); `queue_requeued_at` has the same entries the other way round,
//!   so that a place in line names its delivery: the one at the position in
//!   `queue_requeued_at`, or else the one whose seq the position is. Positions are
//!   unique, and a webhook's first entry is the head of its line, which a FIFO webhook
//!   sends first (`ops::order`). The entries are made and removed in the same
//!   transaction as the `queue` entry. A store written by an older hookd gets them once,
//!   at the first open by this version ([`QUEUE_ORDER_BUILT`]).
//! - `queue` and `queue_order` name a webhook by its number and a delivery by its seq
//!   or position (20 and 12 bytes an entry; `deliveries_by_seq` gives the id), stored in
//!   redb as `queue2` and `queue_order2`. Their first forms ([`QUEUE_V1`],
//!   [`QUEUE_ORDER_V1`]) used the 16-byte ids (40 bytes an entry each); the first open by
//!   a hookd that knows the second forms moves the entries, fills `queue_requeued_at`,
//!   and deletes the first forms (`ops::order::upgrade`). Then `queue` is
//!   [`QUEUE_MOVED`], of other types, so that an older hookd refuses the file.
//! - `events_by_seq` and `deliveries_by_seq` index every event and delivery once, in
//!   ingestion order, so retention prunes the oldest first without a scan.
//! - `attempt_stats` counts every recorded attempt once, under its webhook and the
//!   minute it started; it keeps at most the last day per webhook (`ops::stats`).
//! - Sequence numbers in `meta` (`event_seq`, `delivery_seq`) only grow; a sequence
//!   number is never reused.
//! - `meta`'s [`FORMAT`] is never above [`STORE_FORMAT`] while this hookd has the file
//!   open: a higher one is refused before anything is read or written (`ops::ensure_tables`).
//! - `meta`'s [`LOG_APPLIED`] names the last redo-logged batch the tables include, written
//!   in the same transaction as the batch; the durable file plus the log's batches after
//!   it are every write that was answered ([`super::redo`]). [`LOG_STRETCH`] names the
//!   stretch of the log that follows the durable state.
//! - `meta` keeps the webhooks by status for `/metrics`, changed in the same transaction
//!   as every webhook record that is created, deleted or changes its status:
//!   [`WEBHOOKS_HEALTHY`], [`WEBHOOKS_FAILING`] and [`WEBHOOKS_DISABLED`] equal the number
//!   of `webhooks` records with that status. They are counted afresh from `webhooks` at
//!   every open ([`super::ops::ensure_tables`]: one scan of a table of at most users ×
//!   `max_per_user` rows), so a store written by an older hookd gets them too.
//!   The queue depth needs no counter: redb keeps every table's length in its root, so
//!   `queue.len()` is exact and O(1), and it *is* the number of pending deliveries.
//! - `webhooks_by_status` has an entry exactly for each webhook, under its current status
//!   ([`status_rank`]: failing, then disabled, then healthy), moved in the same transaction
//!   as the counters above; like them it is rebuilt from `webhooks` at every open. It
//!   serves the operator view's list, failing and disabled webhooks first, in O(page).
//! - `attempt_totals` counts every recorded attempt once, under the minute it started and
//!   its outcome (`ops::stats::Outcome`), summed over all webhooks (deleted ones
//!   included); it keeps the last day, like `attempt_stats`. Attempts recorded by an older
//!   hookd are not in it.
//! - `delivery_filter` indexes each delivery with `seq >= meta[`[`DELIVERY_FILTER_FROM`]`]`
//!   exactly once, under its webhook, its *current* status and its event type
//!   ([`status_code`], [`type_code`]); every status change moves the entry in the same
//!   transaction, and the entry goes with its delivery (retention, webhook removal). It
//!   serves the delivery log in O(page): a filter reads the ranges of the statuses and
//!   types it allows, the unfiltered log all of them (at most 4 × 12 ranges), merged
//!   newest first. Deliveries written before the filter existed (seq below the mark, set
//!   once at the first open by a hookd with the index to the next delivery seq) have no
//!   entry and never get one (a status change moves an entry only if there was one);
//!   listings reach them through `webhook_deliveries`, until retention prunes them.
//!   An entry is a key alone, stored in redb as `delivery_filter2`: the delivery's id is
//!   its `deliveries_by_seq` entry, and the webhook is named by its number (below). (The
//!   first form, `delivery_filter`, was keyed by webhook id and held the delivery id as
//!   its value; [`DELIVERY_FILTER_V1`] says how it goes.)
//! - `webhook_numbers` gives every webhook, and every deleted webhook whose deliveries
//!   are still being removed (a [`CLEANUP_REMOVE`] entry), one number, and no other
//!   webhook has one: it is given when the webhook is created (for an older store, at the
//!   first open) from `meta[`[`WEBHOOK_NUMBER`]`]`, which only grows, so no two webhooks
//!   ever share a number, and it goes with the webhook's last delivery (`ops::filter`).
//! - `user_type_events` likewise indexes each event with `seq >= meta[`[`EVENT_FILTER_FROM`]`]`
//!   exactly once under its user and type (events never change type); the entry goes with
//!   its event (retention). It serves the event log's `type=` filter: an exact type is one
//!   range, a group (`message:*`) merges the ranges of its types, and the whole log
//!   (`*`) merges all of them, newest first. Older events are reached through
//!   `user_events`, as older deliveries through `webhook_deliveries`.
//!
//!   The marks and counters are kept only by this version and later: a file written by an
//!   older hookd after this one must not be opened by this one again (go back to an older
//!   version by restoring a backup, as operations.md says; that file predates the marks).
//! - `event_deliveries` has an entry for every delivery of every event stored at version 1
//!   (made with the event); the entries go with their event. An entry whose delivery is
//!   gone (pruned, or removed with its webhook) may remain until then. Retention reads it
//!   to keep such an event while any of its deliveries is pending (a claimed, in-flight
//!   delivery is still pending). Events stored before this table existed have no entries;
//!   events stored at version 2 have none either: their `first_delivery` says where
//!   their deliveries are in `deliveries_by_seq`.
//! - Work that is too big for one transaction is done in chunks of at most
//!   [`CLEANUP_CHUNK`] deliveries, one write job each, so other writes commit in between.
//!   `webhook_cleanup` says which is unfinished, so a restart resumes it:
//!   - [`CLEANUP_REMOVE`]: the webhook was deleted. Its record and `user_webhooks` entry
//!     went in the first commit; its deliveries (found through `delivery_filter` and
//!     `webhook_deliveries`, with their `attempts` rows and their `deliveries_by_seq`,
//!     `delivery_filter`, `webhook_deliveries` and `queue` entries) are removed chunk by
//!     chunk, each delivery with all of its rows at once. Deliveries whose webhook is gone
//!     exist only under such an entry; nothing sends them (no webhook record, nothing to
//!     send to).
//!   - [`CLEANUP_CANCEL`]: the webhook was disabled. Its record says so since the first
//!     commit (so nothing is dispatched for it); its queue entries are cancelled chunk by
//!     chunk, each delivery leaving the queue as it becomes `cancelled`. Re-enabling ends
//!     the entry (the API finishes the cancellation first).
//!
//!   A webhook has at most one entry; a delete turns a cancel into a remove.
//! - Operator notifications (`ops::notifications`, `crate::notify`) are written in the
//!   same transaction as the webhook status change they tell of, so none is lost or
//!   invented by a crash:
//!   - a notification is `Held` or `Pending` exactly when it has one
//!     `notification_pending` entry, under the webhook it tells of; entries go in
//!     notification seq order, which is the order the webhook's notifications are sent in;
//!   - `notification_due` has exactly one entry per webhook with pending notifications:
//!     its oldest one's, keyed by when that may next be attempted (the later of its
//!     `not_before` and its `next_attempt_at`). The sender reads only the first key, so
//!     what it does costs the same however many notifications wait;
//!   - a webhook has at most one `Held` notification, and it is its newest;
//!   - `notification_marks` holds what the rate limit remembers per webhook
//!     (`notify::throttle`), updated whenever a notification is queued to be sent or a
//!     held one is released; it goes with its webhook (delete);
//!   - `meta[`[`NOTIFICATION_SEQ`]`]` only grows; `notifications` keeps every open
//!     notification and the last [`NOTIFICATIONS_KEPT`] or so finished ones, oldest
//!     pruned first (a held notification that is dropped or replaced before it goes is
//!     deleted: it was never sent).

use redb::TableDefinition;

use crate::model::{DeliveryStatus, EventType, WebhookStatus};

pub const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
pub const WEBHOOKS: TableDefinition<u128, &[u8]> = TableDefinition::new("webhooks");
pub const USER_WEBHOOKS: TableDefinition<(&str, u128), ()> = TableDefinition::new("user_webhooks");
pub const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("events");
pub const USER_EVENTS: TableDefinition<(&str, u64), &str> = TableDefinition::new("user_events");
pub const DELIVERIES: TableDefinition<u128, &[u8]> = TableDefinition::new("deliveries");
pub const WEBHOOK_DELIVERIES: TableDefinition<(u128, u64), u128> =
    TableDefinition::new("webhook_deliveries");
/// ([`WEBHOOK_NUMBERS`] of the webhook, due ms, delivery seq) → (): each webhook's pending
/// deliveries, soonest due first.
pub const QUEUE: TableDefinition<(u32, u64, u64), ()> = TableDefinition::new("queue2");
/// The first form of [`QUEUE`]: (webhook id, due ms, delivery id). Moved into it and
/// deleted at the first open by a hookd that knows the second (`ops::order::upgrade`).
pub const QUEUE_V1: TableDefinition<(u128, u64, u128), ()> = TableDefinition::new("queue");
/// What is named `queue` once the queue has its second form: one row, `"moved"` →
/// `"queue2"`. A hookd from before opens `queue` with [`QUEUE_V1`]'s types, which redb
/// refuses (a table type mismatch), so it does not start on a file whose pending
/// deliveries it would not see. Made by every open ([`QUEUE_COMPACT`] says it was).
pub const QUEUE_MOVED: TableDefinition<&str, &str> = TableDefinition::new("queue");
/// `meta`: set once the queue has its second form and [`QUEUE_MOVED`] stands in its
/// first form's place.
pub const QUEUE_COMPACT: &str = "queue_compact";
pub const EVENTS_BY_SEQ: TableDefinition<u64, &str> = TableDefinition::new("events_by_seq");
pub const DELIVERIES_BY_SEQ: TableDefinition<u64, u128> = TableDefinition::new("deliveries_by_seq");

pub const EVENT_SEQ: &str = "event_seq";
pub const DELIVERY_SEQ: &str = "delivery_seq";
/// The seq of the last redo-logged batch the stored state includes ([`super::redo`]).
pub const LOG_APPLIED: &str = "log_applied";
/// The redo log stretch that follows this durable state: drawn anew by every checkpoint
/// and mixed into the log's checksums, so that only the records written after the state
/// the file holds are ever run into it ([`super::redo`]). A backup copy has none.
pub const LOG_STRETCH: &str = "log_stretch";
pub const ATTEMPT_STATS: TableDefinition<(u128, u64), &[u8]> =
    TableDefinition::new("attempt_stats");
pub const EVENT_DELIVERIES: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("event_deliveries");
pub const WEBHOOK_CLEANUP: TableDefinition<u128, u8> = TableDefinition::new("webhook_cleanup");
/// (delivery seq, attempt number) → `Attempt`: every attempt of every delivery.
pub const ATTEMPTS: TableDefinition<(u64, u32), &[u8]> = TableDefinition::new("attempts");

/// `webhook_cleanup`: the webhook was deleted; remove its deliveries.
pub const CLEANUP_REMOVE: u8 = 1;
/// `webhook_cleanup`: the webhook was disabled; cancel its pending deliveries.
pub const CLEANUP_CANCEL: u8 = 2;
/// At most this many deliveries are removed, cancelled or queued again per write job.
pub const CLEANUP_CHUNK: usize = 1000;

/// ([`WEBHOOK_NUMBERS`] of the webhook, [`status_code`], [`type_code`], delivery seq) →
/// (): the delivery log's filters (see the invariants above). The key is the whole entry:
/// `deliveries_by_seq` names the delivery (`ops::filter`).
pub const DELIVERY_FILTER: TableDefinition<(u32, u8, u8, u64), ()> =
    TableDefinition::new("delivery_filter2");
/// The first form of [`DELIVERY_FILTER`]: keyed by the webhook's id, with the delivery id
/// as its value (42 bytes an entry instead of 14). The first open by a hookd that knows
/// the second form moves its keys there and deletes it (`ops::filter::upgrade`).
pub const DELIVERY_FILTER_V1: TableDefinition<(u128, u8, u8, u64), u128> =
    TableDefinition::new("delivery_filter");
/// webhook id → its number, which [`DELIVERY_FILTER`]'s keys name it by (`ops::filter`).
pub const WEBHOOK_NUMBERS: TableDefinition<u128, u32> = TableDefinition::new("webhook_numbers");
/// `meta`: the last webhook number given (only grows).
pub const WEBHOOK_NUMBER: &str = "webhook_number";
/// (user, [`type_code`], event seq) → event id: the event log's `type=` filter.
pub const USER_TYPE_EVENTS: TableDefinition<(&str, u8, u64), &str> =
    TableDefinition::new("user_type_events");

/// ([`WEBHOOK_NUMBERS`] of the webhook, position) → (): each webhook's pending deliveries
/// in queue order. A position names its delivery: see [`QUEUE_REQUEUED_AT`].
pub const QUEUE_ORDER: TableDefinition<(u32, u64), ()> = TableDefinition::new("queue_order2");
/// The first form of [`QUEUE_ORDER`]: (webhook id, position) → delivery id; moved like
/// [`QUEUE_V1`].
pub const QUEUE_ORDER_V1: TableDefinition<(u128, u64), u128> = TableDefinition::new("queue_order");
/// delivery id → position: pending deliveries queued again, whose position is not their seq.
pub const QUEUE_REQUEUED: TableDefinition<u128, u64> = TableDefinition::new("queue_requeued");
/// position → delivery seq: [`QUEUE_REQUEUED`] the other way round. A position not in it
/// is the seq of its delivery.
pub const QUEUE_REQUEUED_AT: TableDefinition<u64, u64> = TableDefinition::new("queue_requeued_at");
/// `meta`: set once every pending delivery has its `queue_order` entry (see above).
pub const QUEUE_ORDER_BUILT: &str = "queue_order_built";
/// notification seq → `NotificationRecord`: the outbox and the recent history.
pub const NOTIFICATIONS: TableDefinition<u64, &[u8]> = TableDefinition::new("notifications");
/// (webhook id, notification seq) → (): each webhook's open notifications, in order.
pub const NOTIFICATION_PENDING: TableDefinition<(u128, u64), ()> =
    TableDefinition::new("notification_pending");
/// (due ms, notification seq) → (): the oldest open notification of each webhook.
pub const NOTIFICATION_DUE: TableDefinition<(u64, u64), ()> =
    TableDefinition::new("notification_due");
/// webhook id → `NotifyMarks`: the rate limit's memory.
pub const NOTIFICATION_MARKS: TableDefinition<u128, &[u8]> =
    TableDefinition::new("notification_marks");
/// `meta`: the last notification seq given out.
pub const NOTIFICATION_SEQ: &str = "notification_seq";
/// About this many finished notifications are kept for the operator view.
pub const NOTIFICATIONS_KEPT: u64 = 1000;

/// `meta`: the number of webhooks whose status is `healthy`.
pub const WEBHOOKS_HEALTHY: &str = "webhooks_healthy";
/// `meta`: the number of webhooks whose status is `failing`.
pub const WEBHOOKS_FAILING: &str = "webhooks_failing";
/// `meta`: the number of webhooks whose status is `disabled`.
pub const WEBHOOKS_DISABLED: &str = "webhooks_disabled";
/// `meta`: the store format of the newest hookd that opened the file. A hookd refuses a
/// file whose format is above its [`STORE_FORMAT`] (it would misread it, or write what the
/// newer one misreads); every open sets it to [`STORE_FORMAT`] once its upgrades are done.
/// A file without it is from before the number: the upgrades bring it up to date.
pub const FORMAT: &str = "store_format";
/// The store format this hookd reads and writes. Raise it with every change of a table's
/// layout or a record's encoding that the hookd before would misread (append-only record
/// variants, `codec`, need no raise: an older hookd refuses those rows itself).
pub const STORE_FORMAT: u64 = 1;
/// `meta`: the lowest delivery seq that `delivery_filter` indexes (set once).
pub const DELIVERY_FILTER_FROM: &str = "delivery_filter_from";
/// `meta`: the lowest event seq that `user_type_events` indexes (set once).
pub const EVENT_FILTER_FROM: &str = "event_filter_from";

/// ([`status_rank`], webhook id) → (): every webhook, by status.
pub const WEBHOOKS_BY_STATUS: TableDefinition<(u8, u128), ()> =
    TableDefinition::new("webhooks_by_status");
/// unix minute → (succeeded, failed, errored) attempts of all webhooks.
pub const ATTEMPT_TOTALS: TableDefinition<u64, (u64, u64, u64)> =
    TableDefinition::new("attempt_totals");

/// A webhook status in `webhooks_by_status` keys: the order the operator view lists them.
pub fn status_rank(status: WebhookStatus) -> u8 {
    match status {
        WebhookStatus::Failing => 0,
        WebhookStatus::Disabled => 1,
        WebhookStatus::Healthy => 2,
    }
}

/// The `meta` counter of webhooks with `status`.
pub fn webhook_counter(status: WebhookStatus) -> &'static str {
    match status {
        WebhookStatus::Healthy => WEBHOOKS_HEALTHY,
        WebhookStatus::Failing => WEBHOOKS_FAILING,
        WebhookStatus::Disabled => WEBHOOKS_DISABLED,
    }
}

/// A delivery status in index keys: its position in [`DeliveryStatus::ALL`], which is
/// stable (variants are only appended, see `model`).
pub fn status_code(status: DeliveryStatus) -> u8 {
    DeliveryStatus::ALL
        .iter()
        .position(|s| *s == status)
        .map_or(u8::MAX, |i| i as u8)
}

/// An event type in index keys: its position in [`EventType::ALL`] (append only).
pub fn type_code(event_type: EventType) -> u8 {
    EventType::ALL
        .iter()
        .position(|t| *t == event_type)
        .map_or(u8::MAX, |i| i as u8)
}
