//! The queue order of each webhook's pending deliveries, which a FIFO webhook
//! (`ordering: "fifo"`) is sent in: `queue_order` (see [`crate::store::tables`]).
//!
//! A delivery's place in line is its *position*, a number from the delivery sequence: a
//! new delivery's position is its own seq (ingestion order); a delivery queued again by
//! a manual retry or a recover takes a fresh number from the sequence, which sorts it
//! behind every delivery queued before it and ahead of every one queued after. Such
//! positions are remembered in `queue_requeued`, so that any write can find a
//! delivery's entry from the delivery alone. The head of a webhook's line is its first
//! `queue_order` entry.
//!
//! Every webhook keeps its line, whatever its ordering, so that switching a webhook to
//! `fifo` orders the deliveries it already has without any work, and switching back
//! costs nothing either. The order is in the store, so a restart or a crash keeps it: a
//! head whose attempt was cut short is still the head afterwards.

use redb::{ReadTransaction, ReadableTable, Table, WriteTransaction};

use super::StoreError;
use super::deliveries::load_delivery;
use crate::model::{DeliveryId, DeliveryStatus, Millis, WebhookId};
use crate::store::records::DeliveryRecord;
use crate::store::tables::*;

/// How many stale entries a look at the head steps over at most (with the invariants
/// kept there are none; this only bounds a read of a damaged file).
const MAX_STALE: usize = 64;

/// The two order tables, open in a write transaction.
pub(crate) struct Order<'t> {
    line: Table<'t, (u128, u64), u128>,
    requeued: Table<'t, u128, u64>,
}

impl<'t> Order<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Order<'t>, StoreError> {
        Ok(Order {
            line: txn.open_table(QUEUE_ORDER)?,
            requeued: txn.open_table(QUEUE_REQUEUED)?,
        })
    }

    /// A new pending delivery joins the back of its webhook's line, at its own seq.
    pub(crate) fn created(&mut self, d: &DeliveryRecord) -> Result<(), StoreError> {
        self.line.insert((d.webhook_id.0, d.seq), d.id.0)?;
        Ok(())
    }

    /// A finished delivery queued again (retry, recover) joins the back of the line at
    /// `position`, a fresh number from the delivery sequence.
    pub(crate) fn requeued(&mut self, d: &DeliveryRecord, position: u64) -> Result<(), StoreError> {
        self.requeued.insert(d.id.0, position)?;
        self.line.insert((d.webhook_id.0, position), d.id.0)?;
        Ok(())
    }

    /// The delivery is no longer pending: it leaves the line.
    pub(crate) fn left(&mut self, d: &DeliveryRecord) -> Result<(), StoreError> {
        let position = self.requeued.remove(d.id.0)?.map_or(d.seq, |p| p.value());
        self.line.remove((d.webhook_id.0, position))?;
        Ok(())
    }

    /// Removes whatever is left of a deleted webhook's line (its deliveries left it one
    /// by one; this only catches entries that outlived them).
    pub(crate) fn clear(&mut self, webhook: WebhookId) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in self
            .line
            .extract_from_if((webhook.0, 0u64)..=(webhook.0, u64::MAX), |_, _| true)?
        {
            let (_, delivery) = entry?;
            self.requeued.remove(delivery.value())?;
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
    let line = rtx.open_table(QUEUE_ORDER)?;
    let deliveries = rtx.open_table(DELIVERIES)?;
    for entry in line
        .range((webhook.0, 0u64)..=(webhook.0, u64::MAX))?
        .take(MAX_STALE)
    {
        let (_, id) = entry?;
        let Some(d) = load_delivery(&deliveries, id.value())? else {
            continue;
        };
        if let (DeliveryStatus::Pending, Some(due)) = (d.status, d.next_attempt_at) {
            return Ok(Some((d.id, due)));
        }
    }
    Ok(None)
}

/// Gives every pending delivery that has no place in line one at its seq: once, when
/// this version first opens a store written by an older hookd (which kept no order).
/// Answers how many it placed.
pub(crate) fn place_unordered(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let queue = txn.open_table(QUEUE)?;
    let deliveries = txn.open_table(DELIVERIES)?;
    let mut line = txn.open_table(QUEUE_ORDER)?;
    let mut placed = 0;
    for entry in queue.iter()? {
        let (key, _) = entry?;
        let (webhook, _, id) = key.value();
        if let Some(d) = load_delivery(&deliveries, id)?
            && line.get((webhook, d.seq))?.is_none()
        {
            line.insert((webhook, d.seq), id)?;
            placed += 1;
        }
    }
    Ok(placed)
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
                let mut out = Vec::new();
                for entry in r
                    .open_table(QUEUE_ORDER)?
                    .range((webhook.0, 0u64)..=(webhook.0, u64::MAX))?
                {
                    let d = load_delivery(&deliveries, entry?.1.value())?.unwrap();
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
                Ok(())
            })
            .unwrap();
        store.close(Duration::ZERO);
    }
}
