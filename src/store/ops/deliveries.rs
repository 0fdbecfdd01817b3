//! Delivery logs: a webhook's deliveries newest first, and single deliveries.

use redb::ReadTransaction;

use super::{Page, StoreError, load};
use crate::model::{DeliveryId, DeliveryStatus, EventType, WebhookId};
use crate::store::records::DeliveryRecord;
use crate::store::tables::*;

pub fn get(rtx: &ReadTransaction, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
    load(&rtx.open_table(DELIVERIES)?, id.0)
}

/// Which deliveries a log listing shows; `None` fields match everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<EventType>,
}

impl DeliveryFilter {
    fn matches(&self, d: &DeliveryRecord) -> bool {
        self.status.is_none_or(|s| s == d.status)
            && self.event_type.is_none_or(|t| t == d.event_type)
    }
}

/// The webhook's deliveries that pass `filter`, newest first, created before the
/// `before` cursor.
pub fn list_for_webhook(
    rtx: &ReadTransaction,
    webhook: WebhookId,
    filter: DeliveryFilter,
    limit: usize,
    before: Option<u64>,
) -> Result<Page<DeliveryRecord>, StoreError> {
    let index = rtx.open_table(WEBHOOK_DELIVERIES)?;
    let deliveries = rtx.open_table(DELIVERIES)?;
    let end = before.unwrap_or(u64::MAX);
    let mut items: Vec<DeliveryRecord> = Vec::with_capacity(limit.min(128));
    let mut next = None;
    for entry in index.range((webhook.0, 0u64)..(webhook.0, end))?.rev() {
        let (_, id) = entry?;
        let Some(delivery) = load::<u128, DeliveryRecord>(&deliveries, id.value())? else {
            continue;
        };
        if !filter.matches(&delivery) {
            continue;
        }
        if items.len() == limit {
            next = items.last().map(|d| d.seq);
            break;
        }
        items.push(delivery);
    }
    Ok(Page { items, next })
}
