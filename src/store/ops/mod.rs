//! Queries and write operations over the tables. Every write keeps the invariants listed
//! in [`super::tables`]; every function here is synchronous and runs either inside a read
//! snapshot or inside one job of the group commit ([`super::Tx`]).

pub mod attempts;
pub mod deliveries;
pub mod events;
pub(crate) mod filter;
pub mod logged;
pub mod notifications;
pub mod order;
pub mod overview;
pub mod queue;
pub mod retention;
pub mod stats;
pub mod webhooks;

#[cfg(test)]
pub(crate) mod observe_tests;

/// For unit tests: a fresh store in a temp dir (kept alive by the returned guard) with one
/// webhook of user `u` subscribed to every event.
#[cfg(test)]
pub(crate) fn test_store_with_webhook() -> (
    tempfile::TempDir,
    crate::store::RedbStore,
    crate::model::WebhookId,
) {
    use crate::model::{EventPattern, Millis};
    let dir = tempfile::tempdir().expect("temp dir");
    let store = crate::store::RedbStore::open(&dir.path().join("t.redb")).expect("open store");
    let hook = WebhookRecord::new(
        "u".into(),
        "n".into(),
        "https://example.com/".into(),
        vec![EventPattern::All],
        None,
        Millis(0),
    );
    let id = hook.id;
    store
        .write_blocking(move |tx| webhooks::create(tx, hook, 10))
        .expect("create webhook");
    (dir, store, id)
}

use redb::{Database, ReadableDatabase, ReadableTable};

use super::codec::{self, Record};
use super::records::WebhookRecord;
use super::tables::*;
use super::{StoreError, Tx};
use crate::model::WebhookStatus;

/// Creates every table so that read transactions never meet a missing one; counts the
/// webhooks by status into `meta` and indexes them in `webhooks_by_status` (one scan of
/// `webhooks`, so both hold whatever wrote the file before); and sets the marks from which the filter indexes are complete
/// the first time this version opens the file (see [`super::tables`]).
pub fn ensure_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        // Before anything else reads or writes the file.
        refuse_newer(meta.get(FORMAT)?.map(|v| v.value()))?;
        let mut by_status = [0u64; 3];
        let mut index = txn.open_table(WEBHOOKS_BY_STATUS)?;
        index.retain(|_, _| false)?;
        for entry in txn.open_table(WEBHOOKS)?.iter()? {
            let hook: WebhookRecord = codec::decode(entry?.1.value())?;
            by_status[hook.status as usize] += 1;
            index.insert((status_rank(hook.status), hook.id.0), ())?;
        }
        for status in [
            WebhookStatus::Healthy,
            WebhookStatus::Failing,
            WebhookStatus::Disabled,
        ] {
            meta.insert(webhook_counter(status), by_status[status as usize])?;
        }
        for (mark, seq) in [
            (DELIVERY_FILTER_FROM, DELIVERY_SEQ),
            (EVENT_FILTER_FROM, EVENT_SEQ),
        ] {
            if meta.get(mark)?.is_none() {
                let next = meta.get(seq)?.map_or(0, |v| v.value()) + 1;
                meta.insert(mark, next)?;
            }
        }
    }
    let moved = filter::upgrade(&txn)?;
    if moved > 0 {
        tracing::info!(moved, "delivery filter index moved to its compact form");
    }
    // After the filter's upgrade, which numbers every webhook of an older store.
    let (moved, placed) = order::upgrade(&txn)?;
    if moved > 0 {
        tracing::info!(moved, "queue moved to its compact form");
    }
    if placed > 0 {
        // A store from before queue order: its pending deliveries line up by seq.
        tracing::info!(placed, "pending deliveries put in queue order");
    }
    txn.open_table(WEBHOOKS)?;
    txn.open_table(USER_WEBHOOKS)?;
    txn.open_table(EVENTS)?;
    txn.open_table(USER_EVENTS)?;
    txn.open_table(DELIVERIES)?;
    txn.open_table(WEBHOOK_DELIVERIES)?;
    txn.open_table(QUEUE)?;
    txn.open_table(EVENTS_BY_SEQ)?;
    txn.open_table(DELIVERIES_BY_SEQ)?;
    txn.open_table(ATTEMPT_STATS)?;
    txn.open_table(EVENT_DELIVERIES)?;
    txn.open_table(WEBHOOK_CLEANUP)?;
    txn.open_table(DELIVERY_FILTER)?;
    txn.open_table(WEBHOOK_NUMBERS)?;
    txn.open_table(USER_TYPE_EVENTS)?;
    txn.open_table(ATTEMPTS)?;
    txn.open_table(QUEUE_ORDER)?;
    txn.open_table(QUEUE_REQUEUED)?;
    txn.open_table(QUEUE_REQUEUED_AT)?;
    txn.open_table(NOTIFICATIONS)?;
    txn.open_table(NOTIFICATION_PENDING)?;
    txn.open_table(NOTIFICATION_DUE)?;
    txn.open_table(NOTIFICATION_MARKS)?;
    txn.open_table(ATTEMPT_TOTALS)?;
    txn.open_table(META)?.insert(FORMAT, STORE_FORMAT)?;
    txn.commit()?;
    Ok(())
}

/// Refuses a file written by a newer hookd, for a tool that reads a store without
/// opening it as hookd does (`hookd store copy`); hookd's own open checks in
/// [`ensure_tables`].
pub fn check_format(db: &Database) -> Result<(), StoreError> {
    let rtx = db.begin_read()?;
    let found = match rtx.open_table(META) {
        Ok(meta) => meta.get(FORMAT)?.map(|v| v.value()),
        Err(redb::TableError::TableDoesNotExist(_)) => None,
        Err(e) => return Err(e.into()),
    };
    refuse_newer(found)
}

/// The one rule of [`FORMAT`]: a format above [`STORE_FORMAT`] is refused.
fn refuse_newer(found: Option<u64>) -> Result<(), StoreError> {
    match found {
        Some(found) if found > STORE_FORMAT => Err(StoreError::FormatTooNew {
            found,
            known: STORE_FORMAT,
        }),
        _ => Ok(()),
    }
}

/// Whether the store has a table of `table`'s name (of whatever types): how an upgrade
/// finds a table's first form.
pub(crate) fn has_table<K: redb::Key, V: redb::Value>(
    txn: &redb::WriteTransaction,
    table: redb::TableDefinition<K, V>,
) -> Result<bool, StoreError> {
    use redb::TableHandle;
    Ok(txn.list_tables()?.any(|t| t.name() == table.name()))
}

/// Loads and decodes one record by key.
fn load<'k, K, R>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: impl std::borrow::Borrow<K::SelfType<'k>>,
) -> Result<Option<R>, StoreError>
where
    K: redb::Key + 'static,
    R: Record,
{
    match table.get(key)? {
        Some(bytes) => Ok(Some(codec::decode(bytes.value())?)),
        None => Ok(None),
    }
}

/// How much one chunk of a big job (a webhook's removal or cancellation, a recover,
/// retention) may do in its write job: at most [`CLEANUP_CHUNK`] rows, and no more than
/// [`CHUNK_TIME`] of work once [`CHUNK_MIN`] rows are done. The time bound keeps the
/// commit that other writes share short whatever the hardware (or an unoptimized
/// build); the row minimum keeps small jobs whole and makes progress certain.
pub(crate) struct Chunk {
    started: std::time::Instant,
    pub(crate) rows: usize,
    timed: bool,
}

pub(crate) const CHUNK_MIN: usize = 32;
pub(crate) const CHUNK_TIME: std::time::Duration = std::time::Duration::from_millis(8);

impl Chunk {
    pub(crate) fn start() -> Chunk {
        Chunk {
            started: std::time::Instant::now(),
            rows: 0,
            timed: true,
        }
    }

    /// A chunk of [`CHUNK_MIN`] rows, without the time bound: for a write the redo log
    /// carries, which must do the same when it is run again (`ops::logged`).
    pub(crate) fn rows_only() -> Chunk {
        Chunk {
            timed: false,
            ..Chunk::start()
        }
    }

    /// Whether another row fits; count it with [`Chunk::did`].
    pub(crate) fn room(&self) -> bool {
        self.rows < CLEANUP_CHUNK
            && (self.rows < CHUNK_MIN || (self.timed && self.started.elapsed() < CHUNK_TIME))
    }

    pub(crate) fn did(&mut self) {
        self.rows += 1;
    }
}

/// A page of a newest-first listing and the cursor of the next page.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<u64>,
}

/// A `meta` value (0 when absent).
pub(crate) fn meta_get(
    meta: &impl ReadableTable<&'static str, u64>,
    name: &str,
) -> Result<u64, StoreError> {
    Ok(meta.get(name)?.map_or(0, |v| v.value()))
}

/// Keeps the webhooks-by-status counters of `meta` and the `webhooks_by_status` index:
/// webhook `id` went from `before` to `after` (`None`: absent). Call it in the
/// transaction that writes the record.
pub(crate) fn count_webhook(
    tx: &Tx<'_>,
    id: crate::model::WebhookId,
    before: Option<WebhookStatus>,
    after: Option<WebhookStatus>,
) -> Result<(), StoreError> {
    if before == after {
        return Ok(());
    }
    let mut index = tx.txn.open_table(WEBHOOKS_BY_STATUS)?;
    if let Some(status) = before {
        index.remove((status_rank(status), id.0))?;
    }
    if let Some(status) = after {
        index.insert((status_rank(status), id.0), ())?;
    }
    let mut meta = tx.txn.open_table(META)?;
    if let Some(status) = before {
        let name = webhook_counter(status);
        let n = meta_get(&meta, name)?;
        meta.insert(name, n.saturating_sub(1))?;
    }
    if let Some(status) = after {
        let name = webhook_counter(status);
        let n = meta_get(&meta, name)?;
        meta.insert(name, n + 1)?;
    }
    Ok(())
}

/// Merges index ranges, each in descending sequence order, into one descending stream:
/// a filtered listing reads one entry per item shown plus one per range.
pub(crate) struct MergeDesc<I: Iterator> {
    ranges: Vec<std::iter::Peekable<I>>,
}

impl<V, I: Iterator<Item = Result<(u64, V), StoreError>>> MergeDesc<I> {
    pub(crate) fn new(ranges: impl IntoIterator<Item = I>) -> Self {
        MergeDesc {
            ranges: ranges.into_iter().map(Iterator::peekable).collect(),
        }
    }
}

impl<V, I: Iterator<Item = Result<(u64, V), StoreError>>> Iterator for MergeDesc<I> {
    type Item = Result<(u64, V), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut best: Option<(usize, u64)> = None;
        for (i, range) in self.ranges.iter_mut().enumerate() {
            match range.peek() {
                None => {}
                // An error goes out first; the listing stops there.
                Some(Err(_)) => return range.next(),
                Some(Ok((seq, _))) if best.is_none_or(|(_, b)| *seq > b) => {
                    best = Some((i, *seq));
                }
                Some(Ok(_)) => {}
            }
        }
        best.and_then(|(i, _)| self.ranges[i].next())
    }
}
