//! Webhook records: per-user listing, creation under the per-user limit, updates, and
//! deletion (which takes the webhook's queue entries and delivery log with it).

use redb::{ReadTransaction, ReadableTable, Table};

use super::{StoreError, load};
use crate::model::{DeliveryStatus, Millis, WebhookId, WebhookStatus};
use crate::store::Tx;
use crate::store::codec::encode;
use crate::store::records::{DeliveryRecord, WebhookRecord};
use crate::store::tables::*;

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
    Ok(Created::Created(Box::new(hook)))
}

/// Applies `change` to the user's webhook and stores it. Keeps `status` consistent with
/// `enabled`; disabling cancels the pending deliveries. `None`: no such webhook for `user`.
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
    let was_enabled = hook.enabled;
    let before = hook.clone();
    change(&mut hook);
    match (was_enabled, hook.enabled) {
        (true, false) => hook.status = WebhookStatus::Disabled,
        (_, true) if hook.status == WebhookStatus::Disabled => {
            hook.status = WebhookStatus::Healthy;
            hook.failing_since = None;
        }
        _ => {}
    }
    if hook != before {
        hook.updated_at = now;
    }
    hooks.insert(id.0, encode(&hook).as_slice())?;
    drop(hooks);
    if was_enabled && !hook.enabled {
        cancel_pending(tx, id)?;
    }
    Ok(Some(hook))
}

/// Deletes the user's webhook, its queue entries and its delivery log. `false`: no such
/// webhook for `user`.
pub fn delete(tx: &mut Tx<'_>, user: &str, id: WebhookId) -> Result<bool, StoreError> {
    let mut hooks = tx.txn.open_table(WEBHOOKS)?;
    let Some(hook) = load::<u128, WebhookRecord>(&hooks, id.0)?.filter(|w| w.user == user) else {
        return Ok(false);
    };
    hooks.remove(id.0)?;
    tx.txn
        .open_table(USER_WEBHOOKS)?
        .remove((hook.user.as_str(), id.0))?;
    let mut queue = tx.txn.open_table(QUEUE)?;
    queue.retain_in((id.0, 0u64, 0u128)..=(id.0, u64::MAX, u128::MAX), |_, _| {
        false
    })?;
    let mut index = tx.txn.open_table(WEBHOOK_DELIVERIES)?;
    let mut deliveries = tx.txn.open_table(DELIVERIES)?;
    let mut by_seq = tx.txn.open_table(DELIVERIES_BY_SEQ)?;
    for entry in index.extract_from_if((id.0, 0u64)..=(id.0, u64::MAX), |_, _| true)? {
        let (key, delivery) = entry?;
        deliveries.remove(delivery.value())?;
        by_seq.remove(key.value().1)?;
    }
    drop((index, deliveries, by_seq));
    super::stats::forget(tx, id)?;
    Ok(true)
}

/// Marks every pending delivery of the webhook `cancelled` and empties its queue.
pub fn cancel_pending(tx: &mut Tx<'_>, id: WebhookId) -> Result<usize, StoreError> {
    let mut queue = tx.txn.open_table(QUEUE)?;
    let mut deliveries = tx.txn.open_table(DELIVERIES)?;
    let mut cancelled = 0;
    for entry in queue
        .extract_from_if((id.0, 0u64, 0u128)..=(id.0, u64::MAX, u128::MAX), |_, _| {
            true
        })?
    {
        let (key, _) = entry?;
        let (_, _, delivery_id) = key.value();
        cancel_delivery(&mut deliveries, delivery_id)?;
        cancelled += 1;
    }
    Ok(cancelled)
}

fn cancel_delivery(
    deliveries: &mut Table<'_, u128, &'static [u8]>,
    id: u128,
) -> Result<(), StoreError> {
    if let Some(mut delivery) = load::<u128, DeliveryRecord>(deliveries, id)? {
        delivery.status = DeliveryStatus::Cancelled;
        delivery.next_attempt_at = None;
        deliveries.insert(id, encode(&delivery).as_slice())?;
    }
    Ok(())
}
