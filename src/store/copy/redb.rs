//! The redb side of `hookd store copy`: reading a store file in one read transaction,
//! and writing an empty one with every index table and counter of `store::tables`.
//!
//! redb lets one process open a file: a store that a running hookd holds cannot be
//! opened, which is what keeps a copy from reading a file that is still changing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use redb::{
    Database, DatabaseError, Durability, Key, Range, ReadOnlyTable, ReadTransaction,
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError, Value,
    WriteTransaction,
};

use super::{
    AttemptRow, BATCH, BATCH_BYTES, Batch, Counts, DeliveryRow, EventRow, NotificationRow, Refused,
    Seqs, WebhookRow,
};
use crate::model::DeliveryId;
use crate::store::StoreError;
use crate::store::codec::decode;
use crate::store::embedded::apply_redo_log;
use crate::store::ops::events::EventIndexes;
use crate::store::ops::filter::{FilterIndex, assign_number};
use crate::store::ops::order::Queue;
use crate::store::ops::{check_format, ensure_tables, meta_get, notifications::due_key};
use crate::store::records::{EventRecord, EventRef};
use crate::store::tables::*;

/// redb's page cache for the copy (its default is 1 GiB): the copy reads and writes
/// each page about once, so a bigger cache would only grow the memory used.
const CACHE_BYTES: usize = 32 << 20;

/// Opens an existing store file, saying so clearly when a running hookd holds it, and
/// brings it up to date with its redo log (after an unclean stop the log holds writes the
/// file lacks: `store::redo`).
fn open_existing(path: &Path) -> anyhow::Result<Database> {
    match Database::builder().set_cache_size(CACHE_BYTES).open(path) {
        Ok(db) => {
            // A newer hookd's file would be misread, and its redo log misapplied.
            check_format(&db)?;
            apply_redo_log(path, &db)
                .with_context(|| format!("cannot run the redo log of {}", path.display()))?;
            Ok(db)
        }
        Err(DatabaseError::DatabaseAlreadyOpen) => Err(Refused(format!(
            "{} is in use: a running hookd holds it (redb lets one process open a file); \
             stop hookd first",
            path.display()
        ))
        .into()),
        Err(e) => Err(StoreError::from(e))
            .with_context(|| format!("cannot open the store {}", path.display())),
    }
}

/// A table of the snapshot, or `None` when the file predates it (it is then empty).
fn table<K: Key + 'static, V: Value + 'static>(
    rtx: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<ReadOnlyTable<K, V>>, StoreError> {
    match rtx.open_table(def) {
        Ok(t) => Ok(Some(t)),
        Err(TableError::TableDoesNotExist(_)) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn len<K: Key + 'static, V: Value + 'static>(
    rtx: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    Ok(match table(rtx, def)? {
        Some(t) => t.len()?,
        None => 0,
    })
}

fn range<K: Key + 'static, V: Value + 'static>(
    rtx: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Result<Option<Range<'static, K, V>>, StoreError> {
    match table(rtx, def)? {
        Some(t) => Ok(Some(t.range::<K::SelfType<'static>>(..)?)),
        None => Ok(None),
    }
}

/// The next up to [`BATCH`] rows of `range` (fewer once their values reach
/// [`BATCH_BYTES`]: events carry payloads), each made into a `T` by `row`.
fn take<K: Key + 'static, V: Value + 'static, T>(
    range: &mut Option<Range<'static, K, V>>,
    mut row: impl FnMut(K::SelfType<'_>, V::SelfType<'_>) -> anyhow::Result<T>,
) -> anyhow::Result<Vec<T>> {
    let mut out = Vec::new();
    if let Some(range) = range {
        let mut bytes = 0;
        while out.len() < BATCH && bytes < BATCH_BYTES {
            let Some(entry) = range.next() else { break };
            let (k, v) = entry.map_err(StoreError::from)?;
            let value = v.value();
            bytes += V::as_bytes(&value).as_ref().len();
            out.push(row(k.value(), value)?);
        }
    }
    Ok(out)
}

/// Where the reading has got to: the table being read, in the order a sink needs.
enum Cursor {
    Start,
    Webhooks(Option<Range<'static, u128, &'static [u8]>>),
    Events(Option<Range<'static, &'static str, &'static [u8]>>),
    Deliveries(Option<Range<'static, u128, &'static [u8]>>),
    Attempts(Option<Range<'static, (u64, u32), &'static [u8]>>),
    Stats(Option<Range<'static, (u128, u64), &'static [u8]>>),
    Totals(Option<Range<'static, u64, (u64, u64, u64)>>),
    Cleanups(Option<Range<'static, u128, u8>>),
    Notifications(Option<Range<'static, u64, &'static [u8]>>),
    Marks(Option<Range<'static, u128, &'static [u8]>>),
    Done,
}

/// A store file read in one snapshot.
pub(super) struct Source {
    rtx: ReadTransaction,
    cursor: Cursor,
    /// Attempts read from version 1 records (inline), which `attempts` does not count.
    inline_attempts: u64,
    _db: Database,
}

impl Source {
    pub fn open(path: &Path) -> anyhow::Result<Source> {
        if !path.exists() {
            return Err(Refused(format!("{}: no such store file", path.display())).into());
        }
        let db = open_existing(path)?;
        let rtx = db.begin_read().map_err(StoreError::from)?;
        Ok(Source {
            rtx,
            cursor: Cursor::Start,
            inline_attempts: 0,
            _db: db,
        })
    }

    /// The next batch; `None` once every table is read. An exhausted table moves the
    /// cursor to the next one.
    pub fn next(&mut self) -> anyhow::Result<Option<Batch>> {
        loop {
            let batch = match &mut self.cursor {
                Cursor::Start => {
                    self.cursor = Cursor::Webhooks(range(&self.rtx, WEBHOOKS)?);
                    continue;
                }
                Cursor::Webhooks(r) => {
                    let rows = take(r, |_, bytes| {
                        Ok(WebhookRow {
                            record: decode(bytes)?,
                            bytes: bytes.to_vec(),
                        })
                    })?;
                    if rows.is_empty() {
                        self.cursor = Cursor::Events(range(&self.rtx, EVENTS)?);
                        continue;
                    }
                    Batch::Webhooks(rows)
                }
                Cursor::Events(r) => {
                    let rows = take(r, |_, bytes| {
                        Ok(EventRow {
                            record: decode(bytes)?,
                            bytes: bytes.to_vec(),
                        })
                    })?;
                    if rows.is_empty() {
                        self.cursor = Cursor::Deliveries(range(&self.rtx, DELIVERIES)?);
                        continue;
                    }
                    Batch::Events(rows)
                }
                Cursor::Deliveries(r) => {
                    let events = table(&self.rtx, EVENTS)?;
                    let requeued = table(&self.rtx, QUEUE_REQUEUED)?;
                    let mut inline = 0;
                    let rows = take(r, |id, bytes| {
                        let row = delivery_row(id, bytes, events.as_ref(), requeued.as_ref())?;
                        inline += row.attempts.len() as u64;
                        Ok(row)
                    })?;
                    self.inline_attempts += inline;
                    if rows.is_empty() {
                        self.cursor = Cursor::Attempts(range(&self.rtx, ATTEMPTS)?);
                        continue;
                    }
                    Batch::Deliveries(rows)
                }
                Cursor::Attempts(r) => {
                    let rows = take(r, |(delivery_seq, number), bytes| {
                        Ok(AttemptRow {
                            delivery_seq,
                            number,
                            bytes: bytes.to_vec(),
                        })
                    })?;
                    if rows.is_empty() {
                        self.cursor = Cursor::Stats(range(&self.rtx, ATTEMPT_STATS)?);
                        continue;
                    }
                    Batch::Attempts(rows)
                }
                Cursor::Stats(r) => {
                    let rows = take(r, |(webhook, minute), bytes| {
                        Ok((webhook, minute, bytes.to_vec()))
                    })?;
                    if rows.is_empty() {
                        self.cursor = Cursor::Totals(range(&self.rtx, ATTEMPT_TOTALS)?);
                        continue;
                    }
                    Batch::Stats(rows)
                }
                Cursor::Totals(r) => {
                    let rows = take(r, |minute, (s, f, e)| Ok((minute, s, f, e)))?;
                    if rows.is_empty() {
                        self.cursor = Cursor::Cleanups(range(&self.rtx, WEBHOOK_CLEANUP)?);
                        continue;
                    }
                    Batch::Totals(rows)
                }
                Cursor::Cleanups(r) => {
                    let rows = take(r, |webhook, kind| Ok((webhook, kind)))?;
                    if rows.is_empty() {
                        self.cursor = Cursor::Notifications(range(&self.rtx, NOTIFICATIONS)?);
                        continue;
                    }
                    Batch::Cleanups(rows)
                }
                Cursor::Notifications(r) => {
                    // In seq order (the table's key), as `Batch::Notifications` promises.
                    let rows = take(r, |_, bytes| {
                        Ok(NotificationRow {
                            record: decode(bytes)?,
                            bytes: bytes.to_vec(),
                        })
                    })?;
                    if rows.is_empty() {
                        self.cursor = Cursor::Marks(range(&self.rtx, NOTIFICATION_MARKS)?);
                        continue;
                    }
                    Batch::Notifications(rows)
                }
                Cursor::Marks(r) => {
                    let rows = take(r, |webhook, bytes| Ok((webhook, bytes.to_vec())))?;
                    if rows.is_empty() {
                        self.cursor = Cursor::Done;
                        continue;
                    }
                    Batch::Marks(rows)
                }
                Cursor::Done => return Ok(None),
            };
            return Ok(Some(batch));
        }
    }

    pub fn seqs(&self) -> anyhow::Result<Seqs> {
        let Some(meta) = table(&self.rtx, META)? else {
            return Ok(Seqs::default());
        };
        Ok(Seqs {
            event: meta_get(&meta, EVENT_SEQ)?,
            delivery: meta_get(&meta, DELIVERY_SEQ)?,
            notification: meta_get(&meta, NOTIFICATION_SEQ)?,
        })
    }

    /// What the snapshot holds (attempts include those read inline, so call this once
    /// everything is read).
    pub fn counts(&self) -> anyhow::Result<Counts> {
        Ok(counts(&self.rtx)?).map(|mut c: Counts| {
            c.attempts += self.inline_attempts;
            c
        })
    }
}

fn counts(rtx: &ReadTransaction) -> Result<Counts, StoreError> {
    Ok(Counts {
        webhooks: len(rtx, WEBHOOKS)?,
        events: len(rtx, EVENTS)?,
        deliveries: len(rtx, DELIVERIES)?,
        attempts: len(rtx, ATTEMPTS)?,
        // A store that no hookd with the compact queue has opened keeps the first form.
        pending: match table(rtx, QUEUE)? {
            Some(queue) => queue.len()?,
            None => len(rtx, QUEUE_V1)?,
        },
        attempt_stats: len(rtx, ATTEMPT_STATS)?,
        attempt_totals: len(rtx, ATTEMPT_TOTALS)?,
        cleanups: len(rtx, WEBHOOK_CLEANUP)?,
        notifications: len(rtx, NOTIFICATIONS)?,
        notification_marks: len(rtx, NOTIFICATION_MARKS)?,
    })
}

/// A delivery as the copy carries it, with its event's seq and its place in line.
fn delivery_row(
    id: u128,
    bytes: &[u8],
    events: Option<&ReadOnlyTable<&'static str, &'static [u8]>>,
    requeued: Option<&ReadOnlyTable<u128, u64>>,
) -> anyhow::Result<DeliveryRow> {
    DeliveryRow::of(DeliveryId(id), bytes, |d| {
        let event_seq = match &d.event {
            EventRef::Seq(seq) => *seq,
            EventRef::Id(id) => match events.map(|t| t.get(id.as_str())).transpose()?.flatten() {
                Some(event) => decode::<EventRecord>(event.value())?.seq,
                None => 0, // pruned before its version 1 delivery: nothing names it any more
            },
        };
        let position = match requeued.map(|t| t.get(d.id.0)).transpose()?.flatten() {
            Some(p) => p.value(),
            None => d.seq,
        };
        Ok((event_seq, position))
    })
}

/// An empty store file being filled: written beside the target and moved into place by
/// [`Sink::commit`], so that a copy that fails leaves no half-filled store behind.
pub(super) struct Sink {
    target: PathBuf,
    partial: PathBuf,
    db: Database,
    /// Webhooks whose oldest open notification has its `notification_due` entry.
    due_given: HashSet<u128>,
}

impl Sink {
    /// Refuses a target that holds anything (or that a hookd holds); starts the copy.
    pub fn create(target: &Path) -> anyhow::Result<Sink> {
        if target.exists() {
            let db = open_existing(target)?;
            let held = counts(&db.begin_read().map_err(StoreError::from)?)?;
            if held != Counts::default() {
                return Err(Refused(format!(
                    "{} is not empty ({} webhooks, {} events, {} deliveries, {} \
                     notifications): the target of a copy must be an empty store",
                    target.display(),
                    held.webhooks,
                    held.events,
                    held.deliveries,
                    held.notifications
                ))
                .into());
            }
        }
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let partial = target.with_extension("redb.copying");
        match std::fs::remove_file(&partial) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", partial.display()));
            }
        }
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&partial)
            .map_err(StoreError::from)
            .with_context(|| format!("cannot create {}", partial.display()))?;
        ensure_tables(&db)?;
        // Everything copied is in the filter indexes, so the marks are 0: no delivery or
        // event needs the scans kept for files written by an older hookd.
        let txn = db.begin_write().map_err(StoreError::from)?;
        {
            let mut meta = txn.open_table(META).map_err(StoreError::from)?;
            meta.insert(DELIVERY_FILTER_FROM, 0)
                .map_err(StoreError::from)?;
            meta.insert(EVENT_FILTER_FROM, 0)
                .map_err(StoreError::from)?;
        }
        txn.commit().map_err(StoreError::from)?;
        Ok(Sink {
            target: target.to_owned(),
            partial,
            db,
            due_given: HashSet::new(),
        })
    }

    /// Writes one batch in its own transaction (not yet durable: [`Sink::commit`] is).
    pub fn put(&mut self, batch: Batch) -> anyhow::Result<()> {
        let mut txn = self.db.begin_write().map_err(StoreError::from)?;
        txn.set_durability(Durability::None)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        write(&txn, batch, &mut self.due_given)?;
        txn.commit().map_err(StoreError::from)?;
        Ok(())
    }

    /// Sets the sequences to where the source's were, so new seqs follow the copied ones.
    pub fn set_seqs(&mut self, seqs: Seqs) -> anyhow::Result<()> {
        let txn = self.db.begin_write().map_err(StoreError::from)?;
        {
            let mut meta = txn.open_table(META).map_err(StoreError::from)?;
            for (name, value) in [
                (EVENT_SEQ, seqs.event),
                (DELIVERY_SEQ, seqs.delivery),
                (NOTIFICATION_SEQ, seqs.notification),
            ] {
                let now = meta_get(&meta, name)?;
                meta.insert(name, now.max(value))
                    .map_err(StoreError::from)?;
            }
        }
        txn.commit().map_err(StoreError::from)?;
        // The webhooks by status (`meta` counters and `webhooks_by_status`) are counted
        // from `webhooks`, as at every open; this commit is durable.
        ensure_tables(&self.db)?;
        Ok(())
    }

    pub fn counts(&self) -> anyhow::Result<Counts> {
        Ok(counts(&self.db.begin_read().map_err(StoreError::from)?)?)
    }

    /// Closes the (durably committed) copy and moves it into place.
    pub fn commit(self) -> anyhow::Result<()> {
        drop(self.db);
        std::fs::rename(&self.partial, &self.target).with_context(|| {
            format!(
                "cannot move {} to {}",
                self.partial.display(),
                self.target.display()
            )
        })?;
        if let Some(dir) = self.target.parent().filter(|d| !d.as_os_str().is_empty()) {
            // The rename is durable once the directory is.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .with_context(|| format!("cannot sync {}", dir.display()))?;
        }
        Ok(())
    }
}

/// Writes one batch's rows with every index entry they have (`store::tables`).
fn write(
    txn: &WriteTransaction,
    batch: Batch,
    due_given: &mut HashSet<u128>,
) -> Result<(), StoreError> {
    match batch {
        Batch::Webhooks(rows) => {
            let mut records = txn.open_table(WEBHOOKS)?;
            let mut per_user = txn.open_table(USER_WEBHOOKS)?;
            for WebhookRow { bytes, record } in rows {
                records.insert(record.id.0, bytes.as_slice())?;
                per_user.insert((record.user.as_str(), record.id.0), ())?;
                assign_number(txn, record.id)?;
            }
        }
        Batch::Events(rows) => {
            let mut records = txn.open_table(EVENTS)?;
            let mut indexes = EventIndexes::open(txn)?;
            for EventRow { bytes, record: e } in rows {
                records.insert(e.id.as_str(), bytes.as_slice())?;
                indexes.insert(&e)?;
            }
        }
        Batch::Deliveries(rows) => write_deliveries(txn, rows)?,
        Batch::Attempts(rows) => {
            let mut attempts = txn.open_table(ATTEMPTS)?;
            for a in rows {
                attempts.insert((a.delivery_seq, a.number), a.bytes.as_slice())?;
            }
        }
        Batch::Stats(rows) => {
            let mut stats = txn.open_table(ATTEMPT_STATS)?;
            for (webhook, minute, bytes) in rows {
                stats.insert((webhook, minute), bytes.as_slice())?;
            }
        }
        Batch::Totals(rows) => {
            let mut totals = txn.open_table(ATTEMPT_TOTALS)?;
            for (minute, s, f, e) in rows {
                totals.insert(minute, (s, f, e))?;
            }
        }
        Batch::Cleanups(rows) => {
            let mut cleanup = txn.open_table(WEBHOOK_CLEANUP)?;
            for (webhook, kind) in rows {
                cleanup.insert(webhook, kind)?;
            }
        }
        Batch::Notifications(rows) => {
            let mut records = txn.open_table(NOTIFICATIONS)?;
            let mut pending = txn.open_table(NOTIFICATION_PENDING)?;
            let mut due = txn.open_table(NOTIFICATION_DUE)?;
            for NotificationRow { bytes, record: n } in rows {
                records.insert(n.seq, bytes.as_slice())?;
                if n.state.is_open() {
                    let webhook = n.webhook.id.0;
                    pending.insert((webhook, n.seq), ())?;
                    // Rows come in seq order: the first open one is the webhook's oldest.
                    if due_given.insert(webhook) {
                        due.insert((due_key(&n), n.seq), ())?;
                    }
                }
            }
        }
        Batch::Marks(rows) => {
            let mut marks = txn.open_table(NOTIFICATION_MARKS)?;
            for (webhook, bytes) in rows {
                marks.insert(webhook, bytes.as_slice())?;
            }
        }
    }
    Ok(())
}

fn write_deliveries(txn: &WriteTransaction, rows: Vec<DeliveryRow>) -> Result<(), StoreError> {
    // A deleted webhook whose deliveries are still being removed has no record to copy,
    // but its deliveries' index entries need its number.
    let webhooks: std::collections::BTreeSet<_> =
        rows.iter().map(|row| row.record.webhook_id).collect();
    for webhook in webhooks {
        assign_number(txn, webhook)?;
    }
    let mut records = txn.open_table(DELIVERIES)?;
    let mut attempts = txn.open_table(ATTEMPTS)?;
    let mut by_seq = txn.open_table(DELIVERIES_BY_SEQ)?;
    let mut filter = FilterIndex::open(txn)?;
    let mut queue = Queue::open(txn)?;
    let events = txn.open_table(EVENTS)?;
    let mut per_event = txn.open_table(EVENT_DELIVERIES)?;
    for row in rows {
        let d = &row.record;
        records.insert(d.id.0, row.bytes.as_slice())?;
        by_seq.insert(d.seq, d.id.0)?;
        let number = filter.insert(d)?;
        for (number, bytes) in &row.attempts {
            attempts.insert((d.seq, *number), bytes.as_slice())?;
        }
        if row.due().is_some() {
            if row.position == d.seq {
                queue.entered(number, d)?;
            } else {
                queue.requeued(number, d, row.position)?;
            }
        }
        // An event stored at version 1 lists its deliveries in `event_deliveries` (they
        // name it by id); events are copied before deliveries, so it is here if kept.
        if let EventRef::Id(id) = &d.event
            && let Some(event) = events.get(id.as_str())?
            && event.value().first() == Some(&1)
        {
            let event: EventRecord = decode(event.value())?;
            per_event.insert((event.seq, d.seq), ())?;
        }
    }
    Ok(())
}
