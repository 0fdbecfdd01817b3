//! Webhook records: per-user listing, creation under the per-user limit, updates, and
//! deletion (which takes the webhook's queue entries and delivery log with it).
//!
//! Deleting or disabling a webhook may concern any number of deliveries, so only the
//! first chunk of that work is done in the job that deletes or disables it; the rest is
//! recorded in `webhook_cleanup` and done by [`finish_cleanup`], at most
//! [`CLEANUP_CHUNK`] deliveries per write job and a few milliseconds of work ([`Chunk`];
//! see [`crate::store::tables`]). The daemon
//! runs [`finish_cleanups`] at startup and then every second, so work interrupted by a
//! crash, or started by an attempt that disabled its webhook, is finished too.

use redb::{ReadTransaction, ReadableTable};

use super::deliveries::{DeliveryTables, load_delivery, save};
use super::filter::{FilterIndex, assign_number, forget_number};
use super::order::Queue;
use super::{Chunk, StoreError, count_webhook, load};
use crate::model::{DeliveryStatus, Millis, WebhookId, WebhookStatus};
use crate::store::codec::encode;
use crate::store::records::WebhookRecord;
use crate::store::tables::*;
use crate::store::{RedbStore, Tx};

pub fn get(rtx: &ReadTransaction, id: WebhookId) -> Result<Option<WebhookRecord>, StoreError> {
    load(&rtx.open_table(WEBHOOKS)?, id.0)
}

/// The webhook if it exists *and belongs to `user`*: another user's webhook is as absent.
pub fn get_owned(
    rtx: &ReadTransaction,
    user: &str,
    id: WebhookId,
) -> Result<Option<WebhookRecord>, StoreError> {
    Ok(get(rtx, id)?.filter(|w| w.user == user))
}

/// The user's webhooks, oldest first.
pub fn list_for_user(rtx: &ReadTransaction, user: &str) -> Result<Vec<WebhookRecord>, StoreError> {
    let hooks = rtx.open_table(WEBHOOKS)?;
    let index = rtx.open_table(USER_WEBHOOKS)?;
    user_hooks(&index, &hooks, user)
}

pub(super) fn user_hooks(
    index: &impl ReadableTable<(&'static str, u128), ()>,
    hooks: &impl ReadableTable<u128, &'static [u8]>,
    user: &str,
) -> Result<Vec<WebhookRecord>, StoreError> {
    let mut out = Vec::new();
    for entry in index.range((user, 0u128)..=(user, u128::MAX))? {
        let (key, _) = entry?;
        let (_, id) = key.value();
        if let Some(hook) = load::<u128, WebhookRecord>(hooks, id)? {
            out.push(hook);
        }
    }
    out.sort_by_key(|w| (w.created_at, w.id));
    Ok(out)
}

pub enum Created {
    Created(Box<WebhookRecord>),
    LimitReached,
}

pub fn create(
    tx: &mut Tx<'_>,
    hook: WebhookRecord,
    max_per_user: usize,
) -> Result<Created, StoreError> {
    let mut index = tx.txn.open_table(USER_WEBHOOKS)?;
    let owned = index
        .range((hook.user.as_str(), 0u128)..=(hook.user.as_str(), u128::MAX))?
        .count();
    if owned >= max_per_user {
        return Ok(Created::LimitReached);
    }
    let mut hooks = tx.txn.open_table(WEBHOOKS)?;
    hooks.insert(hook.id.0, encode(&hook).as_slice())?;
    index.insert((hook.user.as_str(), hook.id.0), ())?;
    count_webhook(tx, hook.id, None, Some(hook.status))?;
    assign_number(tx.txn, hook.id)?;
    Ok(Created::Created(Box::new(hook)))
}

/// Applies `change` to the user's webhook and stores it. Keeps `status` consistent with
/// `enabled`; disabling starts cancelling the pending deliveries (the first chunk in this
/// job, the rest by [`finish_cleanup`]). `None`: no such webhook for `user`.
pub fn update(
    tx: &mut Tx<'_>,
    user: &str,
    id: WebhookId,
    now: Millis,
    change: impl FnOnce(&mut WebhookRecord),
) -> Result<Option<WebhookRecord>, StoreError> {
    let mut hooks = tx.txn.open_table(WEBHOOKS)?;
    let Some(mut hook) = load::<u128, WebhookRecord>(&hooks, id.0)?.filter(|w| w.user == user)
    else {
        return Ok(None);
    };
    let before = apply_change(&mut hook, now, change);
    hooks.insert(id.0, encode(&hook).as_slice())?;
    drop(hooks);
    count_webhook(tx, id, Some(before.status), Some(hook.status))?;
    if before.enabled && !hook.enabled {
        start_cancel(tx, id, Chunk::start())?;
    } else if hook.enabled {
        // Enabled again: a cancellation still under way ends here (the API finishes it
        // before re-enabling, so this only matters for a concurrent disable).
        let mut cleanup = tx.txn.open_table(WEBHOOK_CLEANUP)?;
        if cleanup
            .get(id.0)?
            .is_some_and(|k| k.value() == CLEANUP_CANCEL)
        {
            cleanup.remove(id.0)?;
        }
    }
    Ok(Some(hook))
}

/// Applies an API change to a webhook, for both backends: `status` follows `enabled`
/// (a disable makes it `disabled`, a re-enable of a disabled one `healthy` with its
/// failure cleared), and `updated_at` moves only when something changed. Answers the
/// record as it was.
pub(crate) fn apply_change(
    hook: &mut WebhookRecord,
    now: Millis,
    change: impl FnOnce(&mut WebhookRecord),
) -> WebhookRecord {
    let before = hook.clone();
    change(hook);
    match (before.enabled, hook.enabled) {
        (true, false) => hook.status = WebhookStatus::Disabled,
        (_, true) if hook.status == WebhookStatus::Disabled => {
            hook.status = WebhookStatus::Healthy;
            hook.failing_since = None;
        }
        _ => {}
    }
    if *hook != before {
        hook.updated_at = now;
    }
    before
}

/// What a delete did.
#[derive(Debug, PartialEq, Eq)]
pub enum Deleted {
    /// No such webhook for `user`.
    NotFound,
    /// Gone; `more`: deliveries remain for [`finish_cleanup`] to remove.
    Deleted { more: bool },
}

/// Deletes the user's webhook: its record and index entry at once, with its statistics
/// and the first chunk of its deliveries; the rest of its delivery log and queue is
/// removed by [`finish_cleanup`], chunk by chunk (`tables`: `webhook_cleanup`).
pub fn delete(tx: &mut Tx<'_>, user: &str, id: WebhookId) -> Result<Deleted, StoreError> {
    let mut hooks = tx.txn.open_table(WEBHOOKS)?;
    let Some(hook) = load::<u128, WebhookRecord>(&hooks, id.0)?.filter(|w| w.user == user) else {
        return Ok(Deleted::NotFound);
    };
    hooks.remove(id.0)?;
    tx.txn
        .open_table(USER_WEBHOOKS)?
        .remove((hook.user.as_str(), id.0))?;
    drop(hooks);
    count_webhook(tx, id, Some(hook.status), None)?;
    super::stats::forget(tx, id)?;
    super::notifications::forget(tx, id)?;
    let more = !remove_chunk(tx, id)?;
    let mut cleanup = tx.txn.open_table(WEBHOOK_CLEANUP)?;
    if more {
        cleanup.insert(id.0, CLEANUP_REMOVE)?;
    } else {
        cleanup.remove(id.0)?;
        forget_number(tx.txn, id)?;
    }
    Ok(Deleted::Deleted { more })
}

/// Starts cancelling the pending deliveries of a webhook that was just disabled: the
/// first `chunk` now, the rest through `webhook_cleanup` by [`finish_cleanup`]. Answers
/// whether deliveries remain to be cancelled.
pub(crate) fn start_cancel(
    tx: &mut Tx<'_>,
    id: WebhookId,
    chunk: Chunk,
) -> Result<bool, StoreError> {
    let more = !cancel_chunk(tx, id, chunk)?;
    let mut cleanup = tx.txn.open_table(WEBHOOK_CLEANUP)?;
    let kind = cleanup.get(id.0)?.map(|k| k.value());
    match (more, kind) {
        // A removal already under way covers the cancellation.
        (_, Some(CLEANUP_REMOVE)) => {}
        (true, _) => {
            cleanup.insert(id.0, CLEANUP_CANCEL)?;
        }
        (false, Some(_)) => {
            cleanup.remove(id.0)?;
        }
        (false, None) => {}
    }
    Ok(more)
}

/// Removes one chunk of the (deleted) webhook's deliveries, each with its attempts, index
/// and queue entries. Its deliveries are found through `delivery_filter` (every status
/// and type: one range) and, for those written by an older hookd, `webhook_deliveries`.
/// Answers whether it is done (nothing of the webhook's is left).
fn remove_chunk(tx: &mut Tx<'_>, id: WebhookId) -> Result<bool, StoreError> {
    let mut chunk = Chunk::start();
    let mut tables = DeliveryTables::open(tx)?;
    let mut found = Vec::with_capacity(CLEANUP_CHUNK);
    for key in tables.filter.first_of(id, CLEANUP_CHUNK)? {
        let delivery = tables.by_seq.get(key.3)?.map(|id| id.value());
        found.push((key.3, delivery, Some(key)));
    }
    for entry in tables
        .per_webhook
        .range((id.0, 0u64)..=(id.0, u64::MAX))?
        .take(CLEANUP_CHUNK - found.len())
    {
        let (key, delivery) = entry?;
        found.push((key.value().1, Some(delivery.value()), None));
    }
    let full = found.len() == CLEANUP_CHUNK;
    for (seq, delivery_id, filter_key) in found {
        if !chunk.room() {
            return Ok(false);
        }
        let record = match delivery_id {
            Some(id) => load_delivery(&tables.records, id)?,
            None => None,
        };
        match record {
            Some(d) => tables.remove(&d)?,
            // Already removed through another entry (a delivery written by an older hookd
            // may be in both indexes), or an entry without its record: the entry goes.
            None => {
                if let Some(key) = filter_key {
                    tables.filter.remove_key(key)?;
                }
                tables.per_webhook.remove((id.0, seq))?;
                tables.by_seq.remove(seq)?;
            }
        }
        chunk.did();
    }
    if full {
        return Ok(false);
    }
    // Every queue entry belongs to an indexed delivery, so these ranges are empty; a
    // stray entry would otherwise outlive its webhook.
    let strays = tables
        .queue
        .clear(tables.filter.number(id)?, CLEANUP_CHUNK)?;
    Ok(strays < CLEANUP_CHUNK)
}

/// Cancels one chunk of the webhook's pending deliveries. Answers whether it is done.
fn cancel_chunk(tx: &mut Tx<'_>, id: WebhookId, mut chunk: Chunk) -> Result<bool, StoreError> {
    let mut deliveries = tx.txn.open_table(DELIVERIES)?;
    let mut attempts = tx.txn.open_table(ATTEMPTS)?;
    let by_seq = tx.txn.open_table(DELIVERIES_BY_SEQ)?;
    let mut filter = FilterIndex::open(tx.txn)?;
    let mut queue = Queue::open(tx.txn)?;
    let number = filter.number(id)?;
    let entries = queue.first_due(number, CLEANUP_CHUNK)?;
    let full = entries.len() == CLEANUP_CHUNK;
    for (_, due, seq) in entries {
        if !chunk.room() {
            return Ok(false);
        }
        // The entry goes, with its delivery if it has one (with the invariants kept, it has).
        queue.remove_due(number, due, seq)?;
        if let Some(id) = by_seq.get(seq)?
            && let Some(mut d) = load_delivery(&deliveries, id.value())?
        {
            let was = d.status;
            queue.left_line(number, &d)?;
            d.status = DeliveryStatus::Cancelled;
            d.next_attempt_at = None;
            save(&mut deliveries, &mut attempts, &mut d)?;
            filter.moved(&d, was)?;
        }
        chunk.did();
    }
    Ok(!full)
}

/// The webhooks with a removal or cancellation under way.
pub fn unfinished_cleanups(rtx: &ReadTransaction) -> Result<Vec<WebhookId>, StoreError> {
    let mut ids = Vec::new();
    for entry in rtx.open_table(WEBHOOK_CLEANUP)?.iter()? {
        ids.push(WebhookId(entry?.0.value()));
    }
    Ok(ids)
}

/// Whether the webhook has a removal or cancellation under way.
pub fn cleanup_unfinished(rtx: &ReadTransaction, id: WebhookId) -> Result<bool, StoreError> {
    Ok(rtx.open_table(WEBHOOK_CLEANUP)?.get(id.0)?.is_some())
}

/// One chunk of the webhook's unfinished removal or cancellation, if any. Answers
/// whether more remains.
pub fn cleanup_step(tx: &mut Tx<'_>, id: WebhookId) -> Result<bool, StoreError> {
    let Some(kind) = tx
        .txn
        .open_table(WEBHOOK_CLEANUP)?
        .get(id.0)?
        .map(|k| k.value())
    else {
        return Ok(false);
    };
    let hook = load::<u128, WebhookRecord>(&tx.txn.open_table(WEBHOOKS)?, id.0)?;
    let removed = hook.is_none();
    let done = match (kind, hook) {
        // Enabled again since: what is still queued goes out after all.
        (CLEANUP_CANCEL, Some(h)) if h.enabled => true,
        (CLEANUP_CANCEL, Some(_)) => cancel_chunk(tx, id, Chunk::start())?,
        // Removed, or (defensively) a cancellation whose webhook is gone.
        _ => remove_chunk(tx, id)?,
    };
    if done {
        tx.txn.open_table(WEBHOOK_CLEANUP)?.remove(id.0)?;
        if removed {
            forget_number(tx.txn, id)?;
        }
    }
    Ok(!done)
}

/// Serialises the chunks of every cleanup, so that two drivers of the same work (the API
/// and the background sweep) never put two chunks into one transaction.
static CLEANUP_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The longest pause between two chunks of a cleanup.
const CHUNK_PAUSE_MAX: std::time::Duration = std::time::Duration::from_millis(50);

/// Runs the webhook's unfinished removal or cancellation to its end, one chunk per write
/// job, so that other writes (ingest above all) commit between the chunks.
pub async fn finish_cleanup(store: &RedbStore, id: WebhookId) -> Result<(), StoreError> {
    loop {
        let started = std::time::Instant::now();
        let more = {
            let _turn = CLEANUP_TURN.lock().await;
            store.write(move |tx| cleanup_step(tx, id)).await?
        };
        if !more {
            return Ok(());
        }
        // Leave the writer to everything else for as long as the chunk took (its work
        // and commit), so cleaning up takes at most about half of the writer's time and
        // a write that arrives meanwhile mostly finds no chunk in its way.
        tokio::time::sleep(started.elapsed().min(CHUNK_PAUSE_MAX)).await;
    }
}

/// Finishes every unfinished removal and cancellation (after a restart, or after a
/// webhook was disabled by its receiver). Answers how many webhooks it finished.
pub async fn finish_cleanups(store: &RedbStore) -> Result<usize, StoreError> {
    let ids = store.read(unfinished_cleanups)?;
    for &id in &ids {
        finish_cleanup(store, id).await?;
    }
    Ok(ids.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ops::events;
    use redb::ReadableTableMetadata;

    fn count_for(store: &RedbStore, id: WebhookId) -> (usize, usize, u64, u64, u64) {
        store
            .read(|r| {
                // A removed webhook's number goes with its last delivery.
                let (index, queued) = match r.open_table(WEBHOOK_NUMBERS)?.get(id.0)? {
                    Some(n) => {
                        let n = n.value();
                        let index = r
                            .open_table(DELIVERY_FILTER)?
                            .range((n, 0u8, 0u8, 0u64)..=(n, u8::MAX, u8::MAX, u64::MAX))?
                            .count();
                        let queued = r
                            .open_table(QUEUE)?
                            .range((n, 0u64, 0u64)..=(n, u64::MAX, u64::MAX))?
                            .count();
                        (index, queued)
                    }
                    None => (0, 0),
                };
                Ok((
                    index,
                    queued,
                    r.open_table(DELIVERIES)?.len()?,
                    r.open_table(DELIVERIES_BY_SEQ)?.len()?,
                    r.open_table(WEBHOOK_CLEANUP)?.len()?,
                ))
            })
            .unwrap()
    }

    #[test]
    fn a_big_delete_goes_in_chunks_keeping_the_indexes_in_step() {
        let (_dir, store, id) = super::super::test_store_with_webhook();
        let n = CLEANUP_CHUNK + 500;
        store
            .write_blocking(move |tx| {
                for i in 0..n {
                    let new = events::test_event(&format!("e{i}"), Millis(1_000));
                    events::ingest(tx, new, Millis(2_000))?;
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(count_for(&store, id), (n, n, n as u64, n as u64, 0));

        let deleted = store.write_blocking(move |tx| delete(tx, "u", id)).unwrap();
        assert_eq!(deleted, Deleted::Deleted { more: true });
        assert!(
            store.read(|r| get(r, id)).unwrap().is_none(),
            "gone at once"
        );
        let (index, queued, deliveries, by_seq, cleanup) = count_for(&store, id);
        assert!(index < n && index > 0, "a first chunk only: {index}");
        assert_eq!(
            (queued, deliveries, by_seq),
            (index, index as u64, index as u64)
        );
        assert_eq!(cleanup, 1);

        // Each step leaves the indexes in step with the rows, however many it takes (a
        // chunk is bounded by time too, so a fast build may need only one).
        loop {
            let more = store
                .write_blocking(move |tx| cleanup_step(tx, id))
                .unwrap();
            let (index, queued, deliveries, by_seq, _) = count_for(&store, id);
            assert_eq!(
                (queued, deliveries, by_seq),
                (index, index as u64, index as u64)
            );
            if !more {
                break;
            }
        }
        assert_eq!(count_for(&store, id), (0, 0, 0, 0, 0));
        store.close(std::time::Duration::ZERO);
    }
}
