//! Retention: deletes events and deliveries older than `retention.events`, oldest first,
//! in bounded batches (each batch is one small job in the group commit, so ingest is
//! never blocked for long). Pending deliveries are never pruned: the queue is untouched.

use redb::ReadableTable;

use super::{StoreError, load};
use crate::model::{DeliveryStatus, Millis};
use crate::store::Tx;
use crate::store::records::{DeliveryRecord, EventRecord};
use crate::store::tables::*;

/// What one batch removed; `more` when it stopped at the batch size, not at the cutoff.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: usize,
    pub deliveries: usize,
    pub more: bool,
}

/// Removes up to `batch` events and `batch` deliveries created before `cutoff`.
pub fn prune(tx: &mut Tx<'_>, cutoff: Millis, batch: usize) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();

    let mut by_seq = tx.txn.open_table(DELIVERIES_BY_SEQ)?;
    let mut deliveries = tx.txn.open_table(DELIVERIES)?;
    let mut per_webhook = tx.txn.open_table(WEBHOOK_DELIVERIES)?;
    let mut doomed = Vec::new();
    let mut looked_at = 0;
    for entry in by_seq.iter()? {
        let (seq, id) = entry?;
        looked_at += 1;
        if looked_at > batch {
            pruned.more = true;
            break;
        }
        let Some(d) = load::<u128, DeliveryRecord>(&deliveries, id.value())? else {
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
        by_seq.remove(seq)?;
        if let Some(d) = d {
            deliveries.remove(d.id.0)?;
            per_webhook.remove((d.webhook_id.0, d.seq))?;
            pruned.deliveries += 1;
        }
    }
    drop((by_seq, deliveries, per_webhook));

    let mut by_seq = tx.txn.open_table(EVENTS_BY_SEQ)?;
    let mut events = tx.txn.open_table(EVENTS)?;
    let mut per_user = tx.txn.open_table(USER_EVENTS)?;
    let mut doomed = Vec::new();
    for entry in by_seq.iter()? {
        let (seq, id) = entry?;
        if doomed.len() == batch {
            pruned.more = true;
            break;
        }
        let event = load::<&str, EventRecord>(&events, id.value())?;
        if event.as_ref().is_some_and(|e| e.received_at >= cutoff) {
            break;
        }
        doomed.push((seq.value(), event));
    }
    for (seq, event) in doomed {
        by_seq.remove(seq)?;
        if let Some(e) = event {
            events.remove(e.id.as_str())?;
            per_user.remove((e.user.as_str(), e.seq))?;
            pruned.events += 1;
        }
    }
    Ok(pruned)
}
