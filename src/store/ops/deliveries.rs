//! Delivery logs: a webhook's deliveries newest first, and single deliveries.

use redb::ReadTransaction;

use super::{MergeDesc, Page, StoreError, load, meta_get};
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
/// `before` cursor. A filter reads `delivery_filter`: the ranges of the statuses and event
/// types it allows (one range when it names both, at most 12 otherwise) merged newest
/// first, so a page costs what it shows. Deliveries older than the index's mark (written
/// by an older hookd) are then looked for through `webhook_deliveries`.
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
    let filtered = filter.status.is_some() || filter.event_type.is_some();
    let scan_below = if filtered {
        meta_get(&rtx.open_table(META)?, DELIVERY_FILTER_FROM)?.min(end)
    } else {
        end
    };
    let by_filter = rtx.open_table(DELIVERY_FILTER)?;
    let mut ranges = Vec::new();
    if scan_below < end {
        let statuses = filter
            .status
            .map_or(DeliveryStatus::ALL.to_vec(), |s| vec![s]);
        let types = filter
            .event_type
            .map_or(EventType::ALL.to_vec(), |t| vec![t]);
        for s in &statuses {
            for t in &types {
                let (s, t) = (status_code(*s), type_code(*t));
                let range =
                    by_filter.range((webhook.0, s, t, scan_below)..(webhook.0, s, t, end))?;
                ranges.push(range.rev().map(|e| {
                    let (key, id) = e?;
                    Ok((key.value().3, id.value()))
                }));
            }
        }
    }
    let indexed = MergeDesc::new(ranges).map(|e| e.map(|(_, id)| id));
    let scanned = index
        .range((webhook.0, 0u64)..(webhook.0, scan_below))?
        .rev()
        .map(|e| Ok(e?.1.value()));
    let mut items: Vec<DeliveryRecord> = Vec::with_capacity(limit.min(128));
    let mut next = None;
    for id in indexed.chain(scanned) {
        let id: u128 = id?;
        let Some(delivery) = load::<u128, DeliveryRecord>(&deliveries, id)? else {
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
