//! The pending queue as writes keep it: each webhook's pending deliveries in due order
//! (`queue`, which the scheduler reads) and in queue order (`queue_order`, which a FIFO
//! webhook (`ordering: "fifo"`) is sent in). See [`crate::store::tables`].
//!
//! A delivery's place in line is its *position*, a number from the delivery sequence: a
//! new delivery's position is its own seq (ingestion order); a delivery queued again by
//! a manual retry or a recover takes a fresh number from the sequence, which sorts it
//! behind every delivery queued before it and ahead of every one queued after. Such
//! positions are remembered in `queue_requeued`, so that any write can find a
//! delivery's entry from the delivery alone, and in `queue_requeued_at`, so that a place
//! in line names its delivery (any other position is its delivery's seq). The head of a
//! webhook's line is its first `queue_order` entry.
//!
//! Every webhook keeps its line, whatever its ordering, so that switching a webhook to
//! `fifo` orders the deliveries it already has without any work, and switching back
//! costs nothing either. The order is in the store, so a restart or a crash keeps it: a
//! head whose attempt was cut short is still the head afterwards.
//!
//! Both tables name a webhook by its number (`ops::filter`) and a delivery by its seq
//! or position: 20 and 12 bytes an entry where the ids took 40 each. The pages stay about
//! half full, because every webhook's ranges grow at once, so with 200,000 deliveries
//! pending at fan-out 10 the two took 1,534 bytes an event with the ids and take 615 now
//! (redb's table statistics; issue 13's store row, BENCHMARKS.md).
//!
//! A write names the number: whoever holds `webhook_numbers` open (the filter index)
//! reads it, since redb opens a table once per transaction at a time.

use redb::{ReadTransaction, ReadableTable, Table, TableHandle, WriteTransaction};

use super::deliveries::load_delivery;
use super::filter::{Numbers, number_of};
use super::{StoreError, has_table};
use crate::model::{DeliveryId, DeliveryStatus, Millis, WebhookId};
use crate::store::records::DeliveryRecord;
use crate::store::tables::*;

/// How many stale entries a look at the head steps over at most (with the invariants
/// kept there are none; this only bounds a read of a damaged file).
const MAX_STALE: usize = 64;

/// A `queue` key: (webhook number, due ms, delivery seq).
pub(crate) type DueKey = (u32, u64, u64);

/// The queue's tables, open in a write transaction.
pub(crate) struct Queue<'t> {
    due: Table<'t, DueKey, ()>,
    line: Table<'t, (u32, u64), ()>,
    requeued: Table<'t, u128, u64>,
    requeued_at: Table<'t, u64, u64>,
}

impl<'t> Queue<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Queue<'t>, StoreError> {
        Ok(Queue {
            due: txn.open_table(QUEUE)?,
            line: txn.open_table(QUEUE_ORDER)?,
            requeued: txn.open_table(QUEUE_REQUEUED)?,
            requeued_at: txn.open_table(QUEUE_REQUEUED_AT)?,
        })
    }

    /// A new pending delivery of the webhook numbered `number`: due at its
    /// `next_attempt_at`, at the back of its line at its own seq.
    pub(crate) fn entered(&mut self, number: u32, d: &DeliveryRecord) -> Result<(), StoreError> {
        self.rescheduled(number, d, None)?;
        self.line.insert((number, d.seq), ())?;
        Ok(())
    }

    /// A finished delivery queued again (retry, recover): due at its `next_attempt_at`,
    /// at the back of the line at `position`, a fresh number from the delivery sequence.
    pub(crate) fn requeued(
        &mut self,
        number: u32,
        d: &DeliveryRecord,
        position: u64,
    ) -> Result<(), StoreError> {
        self.rescheduled(number, d, None)?;
        self.requeued.insert(d.id.0, position)?;
        self.requeued_at.insert(position, d.seq)?;
        self.line.insert((number, position), ())?;
        Ok(())
    }

    /// The delivery's due time changed from `was` (`None`: it had no entry) to its
    /// `next_attempt_at` (`None`: it leaves due order). Its place in line stays.
    pub(crate) fn rescheduled(
        &mut self,
        number: u32,
        d: &DeliveryRecord,
        was: Option<Millis>,
    ) -> Result<(), StoreError> {
        if let Some(was) = was {
            self.remove_due(number, was.as_key(), d.seq)?;
        }
        if let Some(due) = d.next_attempt_at {
            self.due.insert((number, due.as_key(), d.seq), ())?;
        }
        Ok(())
    }

    /// The pending delivery (its `next_attempt_at` still that of its entry) is no longer
    /// pending: it leaves both orders.
    pub(crate) fn left(&mut self, number: u32, d: &DeliveryRecord) -> Result<(), StoreError> {
        if let Some(due) = d.next_attempt_at {
            self.remove_due(number, due.as_key(), d.seq)?;
        }
        self.left_line(number, d)
    }

    /// The delivery leaves its line (its due entry is moved by [`Queue::rescheduled`]).
    pub(crate) fn left_line(&mut self, number: u32, d: &DeliveryRecord) -> Result<(), StoreError> {
        let position = match self.requeued.remove(d.id.0)? {
            Some(position) => {
                let position = position.value();
                self.requeued_at.remove(position)?;
                position
            }
            None => d.seq,
        };
        self.line.remove((number, position))?;
        Ok(())
    }

    /// Removes one due entry by its key.
    pub(crate) fn remove_due(&mut self, number: u32, due: u64, seq: u64) -> Result<(), StoreError> {
        self.due.remove((number, due, seq))?;
        Ok(())
    }

    /// Up to `limit` of the webhook's due entries, soonest first.
    pub(crate) fn first_due(&self, number: u32, limit: usize) -> Result<Vec<DueKey>, StoreError> {
        self.due
            .range((number, 0u64, 0u64)..=(number, u64::MAX, u64::MAX))?
            .take(limit)
            .map(|e| Ok(e?.0.value()))
            .collect()
    }

    /// Removes up to `limit` entries of whatever is left of a deleted webhook's queue
    /// (its deliveries left it one by one; this only catches entries that outlived them,
    /// which the invariants allow none of). Answers how many it removed. A stray's
    /// `queue_requeued` entry, keyed by the id of a delivery that is gone, cannot be
    /// found from here; nothing reads it but its delivery.
    pub(crate) fn clear(&mut self, number: u32, limit: usize) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self
            .due
            .extract_from_if(
                (number, 0u64, 0u64)..=(number, u64::MAX, u64::MAX),
                |_, _| true,
            )?
            .take(limit)
        {
            entry?;
            removed += 1;
        }
        for entry in self
            .line
            .extract_from_if((number, 0u64)..=(number, u64::MAX), |_, _| true)?
            .take(limit - removed)
        {
            let (_, position) = entry?.0.value();
            self.requeued_at.remove(position)?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// The head of `webhook`'s line: the first pending delivery in queue order and when it
/// is due. `None` when nothing of the webhook's is pending.
pub fn head(
    rtx: &ReadTransaction,
    webhook: WebhookId,
) -> Result<Option<(DeliveryId, Millis)>, StoreError> {
    let Some(number) = number_of(&rtx.open_table(WEBHOOK_NUMBERS)?, webhook)? else {
        return Ok(None);
    };
    let line = rtx.open_table(QUEUE_ORDER)?;
    let requeued_at = rtx.open_table(QUEUE_REQUEUED_AT)?;
    let by_seq = rtx.open_table(DELIVERIES_BY_SEQ)?;
    let deliveries = rtx.open_table(DELIVERIES)?;
    for entry in line
        .range((number, 0u64)..=(number, u64::MAX))?
        .take(MAX_STALE)
    {
        let (_, position) = entry?.0.value();
        let Some(id) = by_seq.get(seq_at(&requeued_at, position)?)? else {
            continue;
        };
        let Some(d) = load_delivery(&deliveries, id.value())? else {
            continue;
        };
        if let (DeliveryStatus::Pending, Some(due)) = (d.status, d.next_attempt_at) {
            return Ok(Some((d.id, due)));
        }
    }
    Ok(None)
}

/// The seq of the delivery at `position` in line: a requeued one's, or the position itself.
pub(crate) fn seq_at(
    requeued_at: &impl ReadableTable<u64, u64>,
    position: u64,
) -> Result<u64, StoreError> {
    Ok(requeued_at
        .get(position)?
        .map_or(position, |seq| seq.value()))
}

/// Run by every open, after the filter index's upgrade (which numbers every webhook).
/// On a store that has the queue's first forms ([`QUEUE_V1`], [`QUEUE_ORDER_V1`]:
/// keyed by ids), moves their entries into [`QUEUE`] and [`QUEUE_ORDER`] and deletes
/// them, so a store has one form or the other and never half of each; an entry whose
/// delivery is gone is dropped, and a requeued delivery's place gets its
/// `queue_requeued_at` entry. Then, once per store ([`QUEUE_ORDER_BUILT`]), gives every
/// pending delivery that has no place in line one at its seq: a store written by a hookd
/// before the line kept none. Answers how many entries moved and how many were placed
/// (0 and 0 once done). One pass in key order, a record read per entry moved: a million
/// pending deliveries take a few seconds, once. Last, [`QUEUE_MOVED`] takes the first
/// form's name, so that an older hookd refuses the file.
pub(crate) fn upgrade(txn: &WriteTransaction) -> Result<(u64, u64), StoreError> {
    let compact = txn.open_table(META)?.get(QUEUE_COMPACT)?.is_some();
    let mut moved = 0;
    if !compact && has_table(txn, QUEUE_V1)? {
        {
            let old = txn.open_table(QUEUE_V1)?;
            let deliveries = txn.open_table(DELIVERIES)?;
            let mut new = txn.open_table(QUEUE)?;
            let mut numbers = Numbers::default();
            for entry in old.iter()? {
                let (webhook, due, id) = entry?.0.value();
                if let Some(d) = load_delivery(&deliveries, id)? {
                    new.insert((numbers.of(txn, webhook)?, due, d.seq), ())?;
                    moved += 1;
                }
            }
        }
        txn.delete_table(QUEUE_V1)?;
    }
    if !compact && has_table(txn, QUEUE_ORDER_V1)? {
        {
            let old = txn.open_table(QUEUE_ORDER_V1)?;
            let deliveries = txn.open_table(DELIVERIES)?;
            let mut new = txn.open_table(QUEUE_ORDER)?;
            let mut requeued_at = txn.open_table(QUEUE_REQUEUED_AT)?;
            let mut numbers = Numbers::default();
            for entry in old.iter()? {
                let (key, id) = entry?;
                let (webhook, position) = key.value();
                if let Some(d) = load_delivery(&deliveries, id.value())? {
                    new.insert((numbers.of(txn, webhook)?, position), ())?;
                    if position != d.seq {
                        requeued_at.insert(position, d.seq)?;
                    }
                    moved += 1;
                }
            }
        }
        txn.delete_table(QUEUE_ORDER_V1)?;
    }
    if !compact {
        txn.open_table(QUEUE_MOVED)?.insert("moved", QUEUE.name())?;
        txn.open_table(META)?.insert(QUEUE_COMPACT, 1)?;
    }
    let mut placed = 0;
    let mut meta = txn.open_table(META)?;
    if meta.get(QUEUE_ORDER_BUILT)?.is_none() {
        let queue = txn.open_table(QUEUE)?;
        let mut line = txn.open_table(QUEUE_ORDER)?;
        for entry in queue.iter()? {
            let (number, _, seq) = entry?.0.value();
            if line.get((number, seq))?.is_none() {
                line.insert((number, seq), ())?;
                placed += 1;
            }
        }
        meta.insert(QUEUE_ORDER_BUILT, 1)?;
    }
    Ok((moved, placed))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::delivery::retry::RetryPolicy;
    use crate::store::RedbStore as Store;
    use crate::store::ops::attempts::{self, Recording, Verdict};
    use crate::store::ops::events;
    use crate::store::records::Attempt;

    /// One attempt per run: a failure ends the delivery `failed`.
    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![Duration::ZERO],
            disable_after: Duration::from_secs(3600),
        }
    }

    fn ingest(store: &Store, id: &str, now: i64) {
        let new = events::test_event(id, Millis(now));
        store
            .write_blocking(move |tx| events::ingest(tx, new, Millis(now)))
            .unwrap();
    }

    /// The webhook's line, as event ids.
    fn line(store: &Store, webhook: WebhookId) -> Vec<String> {
        store
            .read(|r| {
                let deliveries = r.open_table(DELIVERIES)?;
                let by_seq = r.open_table(DELIVERIES_BY_SEQ)?;
                let Some(n) = number_of(&r.open_table(WEBHOOK_NUMBERS)?, webhook)? else {
                    return Ok(Vec::new());
                };
                let requeued_at = r.open_table(QUEUE_REQUEUED_AT)?;
                let mut out = Vec::new();
                for entry in r
                    .open_table(QUEUE_ORDER)?
                    .range((n, 0u64)..=(n, u64::MAX))?
                {
                    let seq = seq_at(&requeued_at, entry?.0.value().1)?;
                    let id = by_seq.get(seq)?.unwrap().value();
                    let d = load_delivery(&deliveries, id)?.unwrap();
                    out.push(event_name(r, &d)?);
                }
                Ok(out)
            })
            .unwrap()
    }

    fn head_event(store: &Store, webhook: WebhookId) -> Option<String> {
        let (id, _) = store.read(|r| head(r, webhook)).unwrap()?;
        store
            .read(|r| {
                let d = crate::store::ops::deliveries::get(r, id)?.unwrap();
                event_name(r, &d)
            })
            .ok()
    }

    /// The id of the event a delivery carries.
    fn event_name(r: &ReadTransaction, d: &DeliveryRecord) -> Result<String, StoreError> {
        let event = crate::store::ops::deliveries::event_of(
            &r.open_table(EVENTS_BY_SEQ)?,
            &r.open_table(EVENTS)?,
            &d.event,
        )?;
        Ok(event.map(|e| e.id.to_string()).unwrap_or_default())
    }

    fn delivery_of(store: &Store, event: &str) -> DeliveryId {
        store
            .read(|r| {
                for entry in r.open_table(DELIVERIES)?.iter()? {
                    let (id, bytes) = entry?;
                    let d = DeliveryRecord::decode(DeliveryId(id.value()), bytes.value())?;
                    if event_name(r, &d)? == event {
                        return Ok(d.id);
                    }
                }
                panic!("no delivery of {event}")
            })
            .unwrap()
    }

    fn record(store: &Store, event: &str, verdict: Verdict, now: i64) {
        let id = delivery_of(store, event);
        let attempt = Attempt {
            at: Millis(now),
            status_code: Some(500),
            duration_ms: 1,
            error: None,
            response_body: None,
        };
        store
            .write_blocking(move |tx| {
                attempts::record(
                    tx,
                    id,
                    verdict,
                    attempt,
                    Recording::First,
                    &policy(),
                    Millis(now),
                )
            })
            .unwrap()
            .unwrap();
    }

    #[test]
    fn a_hookd_from_before_the_compact_queue_refuses_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = redb::Database::create(dir.path().join("hookd.redb")).unwrap();
        crate::store::ops::ensure_tables(&db).unwrap();
        // What such a hookd's open does first with the queue.
        let txn = db.begin_write().unwrap();
        let refused = txn.open_table(QUEUE_V1).map(|_| ()).unwrap_err();
        assert!(
            matches!(refused, redb::TableError::TableTypeMismatch { .. }),
            "{refused}"
        );
    }

    #[test]
    fn a_requeued_delivery_goes_behind_what_is_pending_and_recover_keeps_ingestion_order() {
        let (_dir, store, hook) = super::super::test_store_with_webhook();
        for (i, e) in ["e1", "e2", "e3", "e4"].iter().enumerate() {
            ingest(&store, e, 1_000 + i as i64);
        }
        assert_eq!(line(&store, hook), ["e1", "e2", "e3", "e4"]);
        assert_eq!(head_event(&store, hook).as_deref(), Some("e1"));

        // e1 and e2 end failed; e3 is the head.
        record(&store, "e1", Verdict::Failure { retry_after: None }, 2_000);
        record(&store, "e2", Verdict::Failure { retry_after: None }, 2_001);
        assert_eq!(line(&store, hook), ["e3", "e4"]);
        assert_eq!(head_event(&store, hook).as_deref(), Some("e3"));

        // A manual retry of e2 queues it behind e3 and e4, and ahead of what comes next.
        let e2 = delivery_of(&store, "e2");
        let queued = store
            .write_blocking(move |tx| attempts::retry(tx, "u", hook, e2, Millis(3_000)))
            .unwrap();
        assert_eq!(queued, attempts::Requeue::Queued(Millis(3_000)));
        ingest(&store, "e5", 3_001);
        assert_eq!(line(&store, hook), ["e3", "e4", "e2", "e5"]);

        // Success leaves the line; so does a failure of the requeued one.
        record(&store, "e3", Verdict::Success, 3_002);
        record(&store, "e2", Verdict::Failure { retry_after: None }, 3_003);
        assert_eq!(line(&store, hook), ["e4", "e5"]);

        // A recover of e1 and e2 puts them behind e4 and e5, oldest first.
        let mut queued = 0;
        let mut before = u64::MAX;
        loop {
            let out = store
                .write_blocking(move |tx| {
                    attempts::recover(
                        tx,
                        "u",
                        hook,
                        (Millis(0), Millis(i64::MAX)),
                        Millis(4_000),
                        before,
                    )
                })
                .unwrap()
                .unwrap();
            queued += out.queued;
            match out.next {
                Some(next) => before = next,
                None => break,
            }
        }
        assert_eq!(queued, 2);
        assert_eq!(line(&store, hook), ["e4", "e5", "e1", "e2"]);
        assert_eq!(head_event(&store, hook).as_deref(), Some("e4"));

        // Disabling cancels the whole line; a delete leaves nothing behind either.
        store
            .write_blocking(move |tx| {
                crate::store::ops::webhooks::update(tx, "u", hook, Millis(5_000), |h| {
                    h.enabled = false
                })
            })
            .unwrap();
        assert_eq!(line(&store, hook), Vec::<String>::new());
        assert_eq!(head_event(&store, hook), None);
        store
            .read(|r| {
                assert_eq!(r.open_table(QUEUE_REQUEUED)?.iter()?.count(), 0);
                assert_eq!(r.open_table(QUEUE_REQUEUED_AT)?.iter()?.count(), 0);
                Ok(())
            })
            .unwrap();
        store.close(Duration::ZERO);
    }
}
