//! Retention: deletes events and deliveries older than `retention.events`, oldest first,
//! in bounded batches (each batch is one small job in the group commit, so ingest is
//! never blocked for long). A delivery goes with its attempts and index entries.
//! Pending deliveries are never pruned: the queue is untouched. Nor is an event while
//! any of its deliveries is stored (found from its `first_delivery` seq): they name it
//! by its seq, and a pending (or in-flight) one still needs it to be sent. It is pruned
//! by a later pass once they are gone. An event stored at version 1 is kept while a
//! delivery listed in `event_deliveries` is pending (its deliveries name it by id);
//! events stored before that table existed are pruned by age alone, as before.

use redb::ReadableTable;

use super::deliveries::{DeliveryTables, load_delivery};
use super::{CHUNK_MIN, CHUNK_TIME, StoreError, load};
use crate::model::{DeliveryStatus, Millis};
use crate::store::Tx;
use crate::store::records::EventRecord;
use crate::store::tables::*;

/// How many index entries one batch reads at most (old pending deliveries are read and
/// skipped, so a batch may delete fewer than it reads).
const MAX_SCAN: usize = 10_000;

/// How long one batch may spend finding what to delete (once it has [`CHUNK_MIN`]):
/// the deletes then take about as long again, so the batch stays within a chunk's time
/// and the commit it shares with ingest stays short.
const SCAN_TIME: std::time::Duration = CHUNK_TIME.checked_div(4).unwrap();

/// What one batch removed; `more` when it stopped at the batch size, not at the cutoff.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: usize,
    pub deliveries: usize,
    pub more: bool,
}

/// Removes up to `batch` events and `batch` deliveries created before `cutoff` (fewer when
/// finding them takes longer than [`SCAN_TIME`]).
pub fn prune(tx: &mut Tx<'_>, cutoff: Millis, batch: usize) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    let started = std::time::Instant::now();

    let mut tables = DeliveryTables::open(tx)?;
    let mut doomed = Vec::new();
    let mut looked_at = 0;
    for entry in tables.by_seq.iter()? {
        let (seq, id) = entry?;
        // Old pending deliveries are skipped, not deleted; bound the scan past them.
        looked_at += 1;
        if doomed.len() == batch || looked_at > MAX_SCAN {
            pruned.more = doomed.len() == batch;
            break;
        }
        if doomed.len() >= CHUNK_MIN && started.elapsed() >= SCAN_TIME {
            pruned.more = true;
            break;
        }
        let Some(d) = load_delivery(&tables.records, id.value())? else {
            doomed.push((seq.value(), None));
            continue;
        };
        if d.created_at >= cutoff {
            break;
        }
        if d.status != DeliveryStatus::Pending {
            doomed.push((seq.value(), Some(d)));
        }
    }
    for (seq, d) in doomed {
        match d {
            Some(d) => {
                tables.remove(&d)?;
                pruned.deliveries += 1;
            }
            None => {
                tables.by_seq.remove(seq)?;
            }
        }
    }
    drop(tables);

    let mut by_seq = tx.txn.open_table(EVENTS_BY_SEQ)?;
    let mut events = tx.txn.open_table(EVENTS)?;
    let mut per_user = tx.txn.open_table(USER_EVENTS)?;
    let mut per_type = tx.txn.open_table(USER_TYPE_EVENTS)?;
    let mut per_event = tx.txn.open_table(EVENT_DELIVERIES)?;
    let delivery_ids = tx.txn.open_table(DELIVERIES_BY_SEQ)?;
    let deliveries = tx.txn.open_table(DELIVERIES)?;
    let mut doomed = Vec::new();
    let mut looked_at = 0;
    for entry in by_seq.iter()? {
        let (seq, id) = entry?;
        // Events kept for their pending deliveries are skipped; bound the scan past them.
        looked_at += 1;
        if doomed.len() == batch || looked_at > MAX_SCAN {
            pruned.more |= doomed.len() == batch;
            break;
        }
        if doomed.len() >= CHUNK_MIN && started.elapsed() >= SCAN_TIME {
            pruned.more = true;
            break;
        }
        let event = load::<&str, EventRecord>(&events, id.value())?;
        if event.as_ref().is_some_and(|e| e.received_at >= cutoff) {
            break;
        }
        if let Some(e) = &event
            && still_needed(&per_event, &delivery_ids, &deliveries, e)?
        {
            continue;
        }
        doomed.push((seq.value(), event));
    }
    for (seq, event) in doomed {
        by_seq.remove(seq)?;
        if let Some(e) = event {
            events.remove(e.id.as_str())?;
            per_user.remove((e.user.as_str(), e.seq))?;
            per_type.remove((e.user.as_str(), type_code(e.event_type), e.seq))?;
            per_event.retain_in((e.seq, 0u64)..=(e.seq, u64::MAX), |_, _| false)?;
            pruned.events += 1;
        }
    }
    Ok(pruned)
}

/// Whether the event must stay for its deliveries. Deliveries already pruned or removed
/// with their webhook do not count.
/// - Stored at version 2 on: while any of its deliveries (its consecutive seqs from
///   `first_delivery`) is stored, since they name it by seq. These are the oldest
///   deliveries too, so the pass over deliveries before this one has pruned them unless
///   they are pending or that pass stopped short (then `more` says another batch follows).
/// - Stored at version 1: while any delivery `event_deliveries` lists for it is pending
///   (queued, or claimed by a worker: a claimed delivery stays pending until its outcome
///   is recorded); its deliveries name it by id.
fn still_needed(
    per_event: &impl ReadableTable<(u64, u64), ()>,
    delivery_ids: &impl ReadableTable<u64, u128>,
    deliveries: &impl ReadableTable<u128, &'static [u8]>,
    event: &EventRecord,
) -> Result<bool, StoreError> {
    if event.deliveries == 0 {
        return Ok(false);
    }
    if let Some(seqs) = event.delivery_seqs() {
        for seq in seqs {
            if delivery_ids.get(seq)?.is_some() {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    for entry in per_event.range((event.seq, 0u64)..=(event.seq, u64::MAX))? {
        let (key, _) = entry?;
        let Some(id) = delivery_ids.get(key.value().1)? else {
            continue;
        };
        if load_delivery(deliveries, id.value())?
            .is_some_and(|d| d.status == DeliveryStatus::Pending)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::*;
    use crate::store::ops::events;

    #[test]
    fn old_pending_deliveries_are_kept_and_do_not_keep_the_job_busy() {
        let (_dir, store, _) = super::super::test_store_with_webhook();
        // Alternately an event with a pending delivery (user `u` has the webhook) and
        // one without deliveries (user `v` has none).
        for i in 0..60 {
            let new = events::NewEvent {
                user: if i % 2 == 0 { "u" } else { "v" }.into(),
                ..events::test_event(&format!("e{i}"), Millis(1_000 + i))
            };
            store
                .write_blocking(move |tx| events::ingest(tx, new, Millis(10_000)))
                .unwrap();
        }
        // Batches of 10: the 30 events without deliveries go in three full batches; the
        // 30 pending deliveries and their events stay and never make a batch "full".
        let mut rounds = Vec::new();
        loop {
            let pruned = store
                .write_blocking(|tx| prune(tx, Millis(5_000), 10))
                .unwrap();
            rounds.push((pruned.events, pruned.deliveries));
            if !pruned.more {
                break;
            }
        }
        assert_eq!(rounds, [(10, 0), (10, 0), (10, 0)]);
        let (deliveries, events) = store
            .read(|r| {
                Ok((
                    r.open_table(DELIVERIES_BY_SEQ)?.iter()?.count(),
                    r.open_table(EVENTS_BY_SEQ)?.iter()?.count(),
                ))
            })
            .unwrap();
        assert_eq!(deliveries, 30, "pending deliveries are never pruned");
        assert_eq!(events, 30, "nor are their events");
        store.close(std::time::Duration::ZERO);
    }
}
