//! The delivery log's index (`delivery_filter`, see [`crate::store::tables`]) and the
//! webhook numbers its keys use.
//!
//! An entry is `(webhook number, status code, type code, delivery seq)` and nothing
//! else: `deliveries_by_seq` names the delivery, and the webhook is named by a 4-byte
//! number instead of its 16-byte id. At fan-out 10 that is 140 bytes an event instead of
//! 420, in pages that stay about half full (every webhook's ranges grow at once): on disk,
//! `bench b` measured 308 bytes an event less for the value and 279 for the numbers
//! (issue 13's store row; BENCHMARKS.md).
//!
//! Webhook numbers (`webhook_numbers`) are given from one counter in `meta` that only
//! grows, so a number is never reused: a webhook gets one when it is created (or, for a
//! store written before numbers, at the first open), and keeps it until the last of its
//! deliveries is gone after its deletion.

use redb::{ReadableTable, Table, WriteTransaction};

use super::StoreError;
use crate::model::{DeliveryStatus, WebhookId};
use crate::store::records::DeliveryRecord;
use crate::store::tables::*;

/// A `delivery_filter` key.
pub(crate) type FilterKey = (u32, u8, u8, u64);

/// The webhook's number, if it has one.
pub(crate) fn number_of(
    numbers: &impl ReadableTable<u128, u32>,
    webhook: WebhookId,
) -> Result<Option<u32>, StoreError> {
    Ok(numbers.get(webhook.0)?.map(|n| n.value()))
}

/// Gives `webhook` a number unless it has one, and answers it.
pub(crate) fn assign_number(txn: &WriteTransaction, webhook: WebhookId) -> Result<u32, StoreError> {
    let mut numbers = txn.open_table(WEBHOOK_NUMBERS)?;
    if let Some(n) = number_of(&numbers, webhook)? {
        return Ok(n);
    }
    let mut meta = txn.open_table(META)?;
    let last = super::meta_get(&meta, WEBHOOK_NUMBER)?;
    let n = u32::try_from(last.saturating_add(1)).map_err(|_| {
        StoreError::Inconsistent("every webhook number (2^32 of them) has been given".into())
    })?;
    meta.insert(WEBHOOK_NUMBER, u64::from(n))?;
    numbers.insert(webhook.0, n)?;
    Ok(n)
}

/// The deleted webhook's number goes: its last delivery is gone, so no entry names it.
pub(crate) fn forget_number(txn: &WriteTransaction, webhook: WebhookId) -> Result<(), StoreError> {
    txn.open_table(WEBHOOK_NUMBERS)?.remove(webhook.0)?;
    Ok(())
}

/// The index as writes use it: its keys, and the numbers they are made with. (A write
/// that holds one does not open `webhook_numbers` otherwise: redb opens a table once per
/// transaction at a time.)
pub(crate) struct FilterIndex<'t> {
    keys: Table<'t, FilterKey, ()>,
    numbers: Table<'t, u128, u32>,
}

impl<'t> FilterIndex<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(FilterIndex {
            keys: txn.open_table(DELIVERY_FILTER)?,
            numbers: txn.open_table(WEBHOOK_NUMBERS)?,
        })
    }

    /// The number of the webhook, which every one of its entries begins with (and its
    /// queue entries: `ops::order`). Every webhook has one, and so does a deleted webhook
    /// until its last delivery is gone.
    pub(crate) fn number(&self, webhook: WebhookId) -> Result<u32, StoreError> {
        number_of(&self.numbers, webhook)?
            .ok_or_else(|| StoreError::Inconsistent(format!("webhook {webhook} has no number")))
    }

    /// A new delivery's entry. Answers its webhook's number, which its queue entries
    /// take too.
    pub(crate) fn insert(&mut self, d: &DeliveryRecord) -> Result<u32, StoreError> {
        let number = self.number(d.webhook_id)?;
        self.keys.insert(key(number, d, d.status), ())?;
        Ok(number)
    }

    /// Moves the delivery's entry from status `was` to its current one. A delivery
    /// written before the index existed has none and gets none.
    pub(crate) fn moved(
        &mut self,
        d: &DeliveryRecord,
        was: DeliveryStatus,
    ) -> Result<(), StoreError> {
        if was == d.status {
            return Ok(());
        }
        let number = self.number(d.webhook_id)?;
        if self.keys.remove(key(number, d, was))?.is_some() {
            self.keys.insert(key(number, d, d.status), ())?;
        }
        Ok(())
    }

    /// Removes the delivery's entry along with the delivery.
    pub(crate) fn remove(&mut self, d: &DeliveryRecord) -> Result<(), StoreError> {
        let key = key(self.number(d.webhook_id)?, d, d.status);
        self.keys.remove(key)?;
        Ok(())
    }

    /// Up to `limit` keys of the webhook's entries, in key order.
    pub(crate) fn first_of(
        &self,
        webhook: WebhookId,
        limit: usize,
    ) -> Result<Vec<FilterKey>, StoreError> {
        let Some(n) = number_of(&self.numbers, webhook)? else {
            return Ok(Vec::new());
        };
        self.keys
            .range((n, 0u8, 0u8, 0u64)..=(n, u8::MAX, u8::MAX, u64::MAX))?
            .take(limit)
            .map(|e| Ok(e?.0.value()))
            .collect()
    }

    /// Removes one entry by its key (an entry whose delivery is gone).
    pub(crate) fn remove_key(&mut self, key: FilterKey) -> Result<(), StoreError> {
        self.keys.remove(key)?;
        Ok(())
    }
}

/// The entry of the delivery, of the webhook numbered `number`, under `status`.
fn key(number: u32, d: &DeliveryRecord, status: DeliveryStatus) -> FilterKey {
    (number, status_code(status), type_code(d.event_type), d.seq)
}

/// Run by every open. On a store written before webhook numbers (no [`WEBHOOK_NUMBER`]
/// counter in `meta`), gives one to every webhook and to every deleted webhook whose
/// deliveries are still being removed, and sets the counter; from then on creation gives
/// them, so later opens skip this. Then moves the index's first form
/// ([`DELIVERY_FILTER_V1`]: keyed by webhook id, the delivery id as its value) into
/// [`DELIVERY_FILTER`] and deletes it, so a store has one form or the other and never
/// half of each. Answers how many entries moved (0 once done). One pass in key order: a
/// million entries take about a second, once.
pub(crate) fn upgrade(txn: &WriteTransaction) -> Result<u64, StoreError> {
    if txn.open_table(META)?.get(WEBHOOK_NUMBER)?.is_none() {
        let mut known: Vec<WebhookId> = Vec::new();
        for entry in txn.open_table(WEBHOOKS)?.iter()? {
            known.push(WebhookId(entry?.0.value()));
        }
        for entry in txn.open_table(WEBHOOK_CLEANUP)?.iter()? {
            known.push(WebhookId(entry?.0.value()));
        }
        for webhook in known {
            assign_number(txn, webhook)?;
        }
        // A store with no webhook at all is numbered too: its counter starts at 0.
        let mut meta = txn.open_table(META)?;
        if meta.get(WEBHOOK_NUMBER)?.is_none() {
            meta.insert(WEBHOOK_NUMBER, 0)?;
        }
    }
    if !super::has_table(txn, DELIVERY_FILTER_V1)? {
        return Ok(0);
    }
    let mut moved = 0;
    {
        let old = txn.open_table(DELIVERY_FILTER_V1)?;
        let mut new = txn.open_table(DELIVERY_FILTER)?;
        let mut numbers = Numbers::default();
        for entry in old.iter()? {
            let (webhook, status, event_type, seq) = entry?.0.value();
            new.insert((numbers.of(txn, webhook)?, status, event_type, seq), ())?;
            moved += 1;
        }
    }
    txn.delete_table(DELIVERY_FILTER_V1)?;
    Ok(moved)
}

/// Webhook numbers for an upgrade that moves entries keyed by webhook id, one webhook's
/// after another: the number of the last one is remembered.
#[derive(Default)]
pub(crate) struct Numbers {
    last: Option<(u128, u32)>,
}

impl Numbers {
    pub(crate) fn of(&mut self, txn: &WriteTransaction, webhook: u128) -> Result<u32, StoreError> {
        match self.last {
            Some((w, n)) if w == webhook => Ok(n),
            // A webhook gone without its cleanup entry (no write leaves one) still gets a
            // number, so that its entries move with the rest.
            _ => {
                let n = assign_number(txn, WebhookId(webhook))?;
                self.last = Some((webhook, n));
                Ok(n)
            }
        }
    }
}
