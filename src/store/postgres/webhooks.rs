//! Webhook records on PostgreSQL: lookups, per-user listing, creation under the
//! per-user limit, updates (a disable starts the cancellation of the queue), deletion
//! (the delivery log goes chunk by chunk, `cleanup`), and the operator view's list by
//! status. Mirrors `store::ops::webhooks` and `store::ops::overview`.

use deadpool_postgres::{ClientWrapper, GenericClient, Transaction};

use super::rows::{self, hook_uuid, record};
use super::{FENCE_CHANNEL, cleanup};
use crate::model::{Millis, WebhookId};
use crate::store::StoreError;
use crate::store::codec::encode;
use crate::store::ops::overview::WebhookCursor;
use crate::store::ops::webhooks::{Created, Deleted};
use crate::store::records::WebhookRecord;
use crate::store::tables::{CLEANUP_CANCEL, CLEANUP_REMOVE};

/// Advisory lock class: one user's webhook creations, so that two nodes creating at
/// once still respect `max_webhooks_per_user`.
const OWNER_LOCK: i32 = 0x6877_0001;

/// Webhook `id`, if it exists (and belongs to `owner`, when given: another user's
/// webhook is as absent).
pub(super) async fn get(
    c: &impl GenericClient,
    id: WebhookId,
    owner: Option<&str>,
) -> Result<Option<WebhookRecord>, StoreError> {
    let st = c
        .prepare_cached("SELECT record FROM webhooks WHERE id = $1")
        .await?;
    let Some(row) = c.query_opt(&st, &[&hook_uuid(id)]).await? else {
        return Ok(None);
    };
    let hook: WebhookRecord = record(&row, 0)?;
    Ok(owner.map_or(Some(hook.clone()), |user| {
        (hook.user == user).then_some(hook)
    }))
}

/// The user's webhooks, oldest first (then by id, as redb orders them).
pub(super) async fn of_user(
    c: &impl GenericClient,
    user: &str,
) -> Result<Vec<WebhookRecord>, StoreError> {
    let st = c
        .prepare_cached("SELECT record FROM webhooks WHERE owner = $1 ORDER BY created_at, id")
        .await?;
    c.query(&st, &[&user])
        .await?
        .iter()
        .map(|row| record(row, 0))
        .collect()
}

pub(super) async fn create(
    c: &mut ClientWrapper,
    hook: WebhookRecord,
    max_per_user: usize,
) -> Result<Created, StoreError> {
    let tx = c.transaction().await?;
    let (class, key) = owner_lock(&hook.user);
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock($1, $2)")
        .await?;
    tx.execute(&lock, &[&class, &key]).await?;
    let count = tx
        .prepare_cached("SELECT count(*) FROM webhooks WHERE owner = $1")
        .await?;
    let owned: i64 = tx.query_one(&count, &[&hook.user]).await?.try_get(0)?;
    if usize::try_from(owned).unwrap_or(usize::MAX) >= max_per_user {
        return Ok(Created::LimitReached);
    }
    let insert = tx
        .prepare_cached(
            "INSERT INTO webhooks (id, owner, created_at, status, enabled, record)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    tx.execute(
        &insert,
        &[
            &hook_uuid(hook.id),
            &hook.user,
            &hook.created_at.0,
            &rows::status_rank(hook.status),
            &hook.enabled,
            &encode(&hook),
        ],
    )
    .await?;
    tx.commit().await?;
    Ok(Created::Created(Box::new(hook)))
}

fn owner_lock(user: &str) -> (i32, i32) {
    // FNV-1a: a stable spread of user names over the lock keys.
    let mut h: u32 = 0x811c_9dc5;
    for b in user.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    (OWNER_LOCK, h as i32)
}

/// Rewrites a webhook row from its record.
pub(super) async fn save(tx: &Transaction<'_>, hook: &WebhookRecord) -> Result<(), StoreError> {
    let st = tx
        .prepare_cached("UPDATE webhooks SET status = $2, enabled = $3, record = $4 WHERE id = $1")
        .await?;
    tx.execute(
        &st,
        &[
            &hook_uuid(hook.id),
            &rows::status_rank(hook.status),
            &hook.enabled,
            &encode(hook),
        ],
    )
    .await?;
    Ok(())
}

/// Locks the user's webhook `id` for a change and reads it.
async fn lock_owned(
    tx: &Transaction<'_>,
    user: &str,
    id: WebhookId,
) -> Result<Option<WebhookRecord>, StoreError> {
    let st = tx
        .prepare_cached("SELECT record FROM webhooks WHERE id = $1 AND owner = $2 FOR UPDATE")
        .await?;
    match tx.query_opt(&st, &[&hook_uuid(id), &user]).await? {
        Some(row) => Ok(Some(record(&row, 0)?)),
        None => Ok(None),
    }
}

pub(super) async fn update(
    c: &mut ClientWrapper,
    user: &str,
    id: WebhookId,
    now: Millis,
    change: impl FnOnce(&mut WebhookRecord),
) -> Result<Option<WebhookRecord>, StoreError> {
    let tx = c.transaction().await?;
    let Some(mut hook) = lock_owned(&tx, user, id).await? else {
        return Ok(None);
    };
    let was_enabled = crate::store::ops::webhooks::apply_change(&mut hook, now, change).enabled;
    save(&tx, &hook).await?;
    if was_enabled && !hook.enabled {
        start_cancel(&tx, id).await?;
        rows::notify(&tx, FENCE_CHANNEL, id).await?;
    } else if hook.enabled {
        // Enabled again: a cancellation still under way ends here (the API finishes it
        // before re-enabling, so this only matters for a concurrent disable).
        let st = tx
            .prepare_cached("DELETE FROM webhook_cleanup WHERE webhook_id = $1 AND kind = $2")
            .await?;
        tx.execute(&st, &[&hook_uuid(id), &i16::from(CLEANUP_CANCEL)])
            .await?;
    }
    tx.commit().await?;
    Ok(Some(hook))
}

/// Starts cancelling the pending deliveries of a webhook just disabled (its row locked
/// by `tx`): the first chunk now, the rest through `webhook_cleanup`, as
/// `ops::webhooks::start_cancel`. Answers whether deliveries remain to be cancelled.
pub(super) async fn start_cancel(tx: &Transaction<'_>, id: WebhookId) -> Result<bool, StoreError> {
    let more = !cleanup::cancel_chunk(tx, id).await?;
    let st = tx
        .prepare_cached("SELECT kind FROM webhook_cleanup WHERE webhook_id = $1")
        .await?;
    let kind: Option<i16> = match tx.query_opt(&st, &[&hook_uuid(id)]).await? {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    };
    let remove = i16::from(CLEANUP_REMOVE);
    match (more, kind) {
        // A removal already under way covers the cancellation.
        (_, Some(k)) if k == remove => {}
        (true, _) => cleanup::mark(tx, id, CLEANUP_CANCEL).await?,
        (false, Some(_)) => cleanup::unmark(tx, id).await?,
        (false, None) => {}
    }
    Ok(more)
}

/// Deletes the user's webhook: its record, statistics and notification marks at once,
/// with the first chunk of its deliveries; the rest by `cleanup` (`CLEANUP_REMOVE`).
pub(super) async fn delete(
    c: &mut ClientWrapper,
    user: &str,
    id: WebhookId,
) -> Result<Deleted, StoreError> {
    let tx = c.transaction().await?;
    if lock_owned(&tx, user, id).await?.is_none() {
        return Ok(Deleted::NotFound);
    }
    let uuid = hook_uuid(id);
    for sql in [
        "DELETE FROM webhooks WHERE id = $1",
        "DELETE FROM attempt_stats WHERE webhook_id = $1",
        "DELETE FROM notification_marks WHERE webhook_id = $1",
    ] {
        let st = tx.prepare_cached(sql).await?;
        tx.execute(&st, &[&uuid]).await?;
    }
    let more = !cleanup::remove_chunk(&tx, id).await?;
    if more {
        cleanup::mark(&tx, id, CLEANUP_REMOVE).await?;
    } else {
        cleanup::unmark(&tx, id).await?;
    }
    rows::notify(&tx, FENCE_CHANNEL, id).await?;
    tx.commit().await?;
    Ok(Deleted::Deleted { more })
}

/// Up to `limit` webhooks after `after`, failing first, then disabled, then healthy,
/// each group by id (oldest first); and the cursor of the next page, as
/// `ops::overview::webhooks`.
pub(super) async fn by_status(
    c: &impl GenericClient,
    after: Option<WebhookCursor>,
    limit: usize,
) -> Result<(Vec<WebhookRecord>, Option<WebhookCursor>), StoreError> {
    let (rank, id) = after.map_or((-1i16, uuid::Uuid::nil()), |(rank, id)| {
        (i16::from(rank), rows::uuid(id))
    });
    let st = c
        .prepare_cached(
            "SELECT status, id, record FROM webhooks WHERE (status, id) > ($1, $2)
             ORDER BY status, id LIMIT $3",
        )
        .await?;
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let found = c.query(&st, &[&rank, &id, &fetch]).await?;
    let mut out = Vec::with_capacity(limit.min(found.len()));
    let mut last = None;
    for row in &found {
        if out.len() == limit {
            return Ok((out, last));
        }
        let rank: i16 = row.try_get(0)?;
        let id: uuid::Uuid = row.try_get(1)?;
        out.push(record(row, 2)?);
        last = Some((u8::try_from(rank).unwrap_or(u8::MAX), id.as_u128()));
    }
    Ok((out, None))
}
