//! The work too big for one transaction that a delete or a disable leaves behind
//! (`webhook_cleanup`, as in `store::tables`): a deleted webhook's deliveries are removed,
//! a disabled one's pending deliveries cancelled, [`CLEANUP_CHUNK`] per transaction, so
//! other writes never wait long behind it.
//!
//! Each chunk locks its webhook's `webhook_cleanup` row, so two nodes (or the API and
//! the background sweep of one node) never work on one webhook at once: the API's
//! [`finish`] waits for the lock, the sweep's [`finish_all`] skips a webhook another
//! node is cleaning up.

use std::time::{Duration, Instant};

use deadpool_postgres::{ClientWrapper, GenericClient, Transaction};

use super::rows::{self, hook_uuid, sql_seq};
use crate::model::{DeliveryStatus, WebhookId};
use crate::store::StoreError;
use crate::store::tables::{CLEANUP_CANCEL, CLEANUP_CHUNK};

/// The longest pause between two chunks of a cleanup (as on redb).
const CHUNK_PAUSE_MAX: Duration = Duration::from_millis(50);

fn chunk() -> i64 {
    i64::try_from(CLEANUP_CHUNK).unwrap_or(1000)
}

/// Records that webhook `id` has a cleanup of `kind` under way.
pub(super) async fn mark(tx: &Transaction<'_>, id: WebhookId, kind: u8) -> Result<(), StoreError> {
    let st = tx
        .prepare_cached(
            "INSERT INTO webhook_cleanup (webhook_id, kind) VALUES ($1, $2)
             ON CONFLICT (webhook_id) DO UPDATE SET kind = excluded.kind",
        )
        .await?;
    tx.execute(&st, &[&hook_uuid(id), &i16::from(kind)]).await?;
    Ok(())
}

/// Records that webhook `id`'s cleanup is done.
pub(super) async fn unmark(tx: &Transaction<'_>, id: WebhookId) -> Result<(), StoreError> {
    let st = tx
        .prepare_cached("DELETE FROM webhook_cleanup WHERE webhook_id = $1")
        .await?;
    tx.execute(&st, &[&hook_uuid(id)]).await?;
    Ok(())
}

/// Cancels one chunk of webhook `id`'s pending deliveries; answers whether it is done.
pub(super) async fn cancel_chunk(tx: &Transaction<'_>, id: WebhookId) -> Result<bool, StoreError> {
    // The chunk is found by the queue index (oldest due first) but locked in id order,
    // the order every transaction that locks several deliveries takes them in (a
    // reschedule, a recover), so that two of them never wait for each other in a circle.
    // `due IS NOT NULL` is checked again under the lock: a row an outcome settled while
    // this waited is left alone.
    let pick = tx
        .prepare_cached(
            "SELECT seq FROM deliveries WHERE webhook_id = $1 AND due IS NOT NULL
             ORDER BY due, id LIMIT $2",
        )
        .await?;
    let picked: Vec<i64> = tx
        .query(&pick, &[&hook_uuid(id), &chunk()])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let lock = tx
        .prepare_cached(
            "SELECT seq, record, id FROM deliveries WHERE seq = ANY($1) AND due IS NOT NULL
             ORDER BY id FOR UPDATE",
        )
        .await?;
    let found = tx.query(&lock, &[&picked]).await?;
    let mut seqs = Vec::with_capacity(found.len());
    let mut records = Vec::with_capacity(found.len());
    for row in &found {
        let mut d = rows::delivery(row, 2, 1)?;
        d.status = DeliveryStatus::Cancelled;
        d.next_attempt_at = None;
        super::log::move_inline_attempts(tx, &mut d).await?;
        seqs.push(sql_seq(d.seq));
        records.push(d.encode());
    }
    if !seqs.is_empty() {
        let st = tx
            .prepare_cached(
                "UPDATE deliveries d SET status = $1, due = NULL, position = NULL, record = u.record
                 FROM unnest($2::bigint[], $3::bytea[]) AS u(seq, record) WHERE d.seq = u.seq",
            )
            .await?;
        tx.execute(
            &st,
            &[
                &rows::status_code(DeliveryStatus::Cancelled),
                &seqs,
                &records,
            ],
        )
        .await?;
    }
    Ok(picked.len() < CLEANUP_CHUNK)
}

/// Removes one chunk of (deleted) webhook `id`'s deliveries, with their attempts
/// (`ON DELETE CASCADE`); answers whether it is done.
pub(super) async fn remove_chunk(tx: &Transaction<'_>, id: WebhookId) -> Result<bool, StoreError> {
    let st = tx
        .prepare_cached(
            "DELETE FROM deliveries WHERE seq IN
                (SELECT seq FROM deliveries WHERE webhook_id = $1 LIMIT $2 FOR UPDATE)",
        )
        .await?;
    let removed = tx.execute(&st, &[&hook_uuid(id), &chunk()]).await?;
    Ok(removed < CLEANUP_CHUNK as u64)
}

/// Whether webhook `id` has a removal or cancellation under way.
pub(super) async fn unfinished(c: &impl GenericClient, id: WebhookId) -> Result<bool, StoreError> {
    let st = c
        .prepare_cached("SELECT 1 FROM webhook_cleanup WHERE webhook_id = $1")
        .await?;
    Ok(c.query_opt(&st, &[&hook_uuid(id)]).await?.is_some())
}

/// One chunk of webhook `id`'s cleanup, if any (`wait`: for another node's chunk to
/// end, else skip the webhook while it is busy). Answers whether more remains.
async fn step(c: &mut ClientWrapper, id: WebhookId, wait: bool) -> Result<bool, StoreError> {
    let tx = c.transaction().await?;
    let st = tx
        .prepare_cached(if wait {
            "SELECT c.kind, w.enabled FROM webhook_cleanup c LEFT JOIN webhooks w ON w.id = c.webhook_id
             WHERE c.webhook_id = $1 FOR UPDATE OF c"
        } else {
            "SELECT c.kind, w.enabled FROM webhook_cleanup c LEFT JOIN webhooks w ON w.id = c.webhook_id
             WHERE c.webhook_id = $1 FOR UPDATE OF c SKIP LOCKED"
        })
        .await?;
    let Some(row) = tx.query_opt(&st, &[&hook_uuid(id)]).await? else {
        return Ok(false);
    };
    let kind: i16 = row.try_get(0)?;
    let enabled: Option<bool> = row.try_get(1)?;
    let cancel = i16::from(CLEANUP_CANCEL);
    let done = match (kind, enabled) {
        // Enabled again since: what is still queued goes out after all.
        (k, Some(true)) if k == cancel => true,
        (k, Some(false)) if k == cancel => cancel_chunk(&tx, id).await?,
        // Removed, or (defensively) a cancellation whose webhook is gone.
        _ => remove_chunk(&tx, id).await?,
    };
    if done {
        unmark(&tx, id).await?;
    }
    tx.commit().await?;
    Ok(!done)
}

/// Runs webhook `id`'s unfinished removal or cancellation to its end, chunk by chunk,
/// pausing between chunks as long as the chunk took (at most [`CHUNK_PAUSE_MAX`]).
pub(super) async fn finish(c: &mut ClientWrapper, id: WebhookId) -> Result<(), StoreError> {
    loop {
        let started = Instant::now();
        if !step(c, id, true).await? {
            return Ok(());
        }
        tokio::time::sleep(started.elapsed().min(CHUNK_PAUSE_MAX)).await;
    }
}

/// Finishes every unfinished removal and cancellation that no other node is working
/// on; answers how many webhooks had one.
pub(super) async fn finish_all(c: &mut ClientWrapper) -> Result<usize, StoreError> {
    let st = c
        .prepare_cached("SELECT webhook_id FROM webhook_cleanup")
        .await?;
    let ids: Vec<WebhookId> = c
        .query(&st, &[])
        .await?
        .iter()
        .map(|row| Ok(WebhookId(row.try_get::<_, uuid::Uuid>(0)?.as_u128())))
        .collect::<Result<_, StoreError>>()?;
    for &id in &ids {
        loop {
            let started = Instant::now();
            if !step(c, id, false).await? {
                break;
            }
            tokio::time::sleep(started.elapsed().min(CHUNK_PAUSE_MAX)).await;
        }
    }
    Ok(ids.len())
}
