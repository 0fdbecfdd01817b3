//! What the scheduler reads: which webhooks exist, and a webhook's next queue entries.

use std::collections::HashSet;

use redb::{ReadTransaction, ReadableTable};

use super::{StoreError, load};
use crate::model::{DeliveryId, Millis, WebhookId};
use crate::store::records::WebhookRecord;
use crate::store::tables::*;

/// Every enabled webhook (the scheduler's starting point after a restart).
pub fn enabled_webhooks(rtx: &ReadTransaction) -> Result<Vec<WebhookId>, StoreError> {
    let hooks = rtx.open_table(WEBHOOKS)?;
    let mut ids = Vec::new();
    for entry in hooks.iter()? {
        let (id, _) = entry?;
        if let Some(hook) = load::<u128, WebhookRecord>(&hooks, id.value())?
            && hook.enabled
        {
            ids.push(hook.id);
        }
    }
    Ok(ids)
}

/// A look at the head of one webhook's queue.
pub struct Peek {
    /// `None` when the webhook no longer exists.
    pub webhook: Option<WebhookRecord>,
    /// Up to `max` deliveries due at `now`, oldest due first, not in `skip`.
    pub due: Vec<DeliveryId>,
    /// The due time of the first entry after those: in the future, or `now` when `max`
    /// cut the list short.
    pub next: Option<Millis>,
}

pub fn peek(
    rtx: &ReadTransaction,
    webhook: WebhookId,
    now: Millis,
    skip: &HashSet<DeliveryId>,
    max: usize,
) -> Result<Peek, StoreError> {
    let record = load::<u128, WebhookRecord>(&rtx.open_table(WEBHOOKS)?, webhook.0)?;
    let queue = rtx.open_table(QUEUE)?;
    let mut due = Vec::new();
    let mut next = None;
    for entry in queue.range((webhook.0, 0u64, 0u128)..=(webhook.0, u64::MAX, u128::MAX))? {
        let (key, _) = entry?;
        let (_, at, id) = key.value();
        let id = DeliveryId(id);
        if skip.contains(&id) {
            continue;
        }
        if at > now.as_key() {
            next = Some(Millis(i64::try_from(at).unwrap_or(i64::MAX)));
            break;
        }
        if due.len() == max {
            next = Some(now);
            break;
        }
        due.push(id);
    }
    Ok(Peek {
        webhook: record,
        due,
        next,
    })
}

/// Gauges for `/metrics`: queue depth, due backlog, and webhooks by status.
pub struct QueueGauges {
    pub depth: u64,
    pub due: u64,
    pub healthy: u64,
    pub failing: u64,
    pub disabled: u64,
}

pub fn gauges(rtx: &ReadTransaction, now: Millis) -> Result<QueueGauges, StoreError> {
    use crate::model::WebhookStatus;
    use redb::ReadableTableMetadata;
    let queue = rtx.open_table(QUEUE)?;
    let hooks = rtx.open_table(WEBHOOKS)?;
    let mut g = QueueGauges {
        depth: queue.len()?,
        due: 0,
        healthy: 0,
        failing: 0,
        disabled: 0,
    };
    for entry in hooks.iter()? {
        let (id, _) = entry?;
        let Some(hook) = load::<u128, WebhookRecord>(&hooks, id.value())? else {
            continue;
        };
        match hook.status {
            WebhookStatus::Healthy => g.healthy += 1,
            WebhookStatus::Failing => g.failing += 1,
            WebhookStatus::Disabled => g.disabled += 1,
        }
        let due = queue.range((hook.id.0, 0u64, 0u128)..=(hook.id.0, now.as_key(), u128::MAX))?;
        g.due += due.count() as u64;
    }
    Ok(g)
}
