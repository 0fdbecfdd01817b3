//! Delivery logs — a webhook's deliveries newest first, and single deliveries, with their
//! attempts and event ids — and the one place that writes or removes a delivery record
//! together with its attempts and index entries.

use redb::{ReadTransaction, ReadableTable, Table};

use super::filter::{FilterIndex, number_of};
use super::order::Queue;
use super::{MergeDesc, Page, StoreError, load, meta_get};
use crate::model::{DeliveryId, DeliveryStatus, EventId, EventType, WebhookId};
use crate::store::Tx;
use crate::store::codec::{decode, encode};
use crate::store::records::{Attempt, DeliveryRecord, EventRecord, EventRef};
use crate::store::tables::*;

/// The `deliveries` table as writes use it.
pub(crate) type Records<'t> = Table<'t, u128, &'static [u8]>;
/// The `attempts` table as writes use it.
pub(crate) type Attempts<'t> = Table<'t, (u64, u32), &'static [u8]>;

pub fn get(rtx: &ReadTransaction, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
    load_delivery(&rtx.open_table(DELIVERIES)?, id.0)
}

/// The delivery stored under `id` (its key: the record does not hold it).
pub(crate) fn load_delivery(
    records: &impl ReadableTable<u128, &'static [u8]>,
    id: u128,
) -> Result<Option<DeliveryRecord>, StoreError> {
    match records.get(id)? {
        Some(bytes) => Ok(Some(DeliveryRecord::decode(DeliveryId(id), bytes.value())?)),
        None => Ok(None),
    }
}

/// Writes the delivery's record. A record read at version 1 carried its attempts inline;
/// they move into `attempts` here, in the same transaction, so every record written
/// by this version has its attempts in the table (see [`crate::store::tables`]).
pub(crate) fn save(
    records: &mut Records<'_>,
    attempts: &mut Attempts<'_>,
    d: &mut DeliveryRecord,
) -> Result<(), StoreError> {
    for (number, attempt) in std::mem::take(&mut d.inline_attempts) {
        attempts.insert((d.seq, number), encode(&attempt).as_slice())?;
    }
    records.insert(d.id.0, d.encode().as_slice())?;
    Ok(())
}

/// Stores a new attempt of the delivery under `number`.
pub(crate) fn add_attempt(
    attempts: &mut Attempts<'_>,
    d: &DeliveryRecord,
    number: u32,
    attempt: &Attempt,
) -> Result<(), StoreError> {
    attempts.insert((d.seq, number), encode(attempt).as_slice())?;
    Ok(())
}

/// The delivery's attempts, oldest first, with their numbers: one range of `attempts`
/// (or the inline list of a record read at version 1).
pub fn attempts_of(
    attempts: &impl ReadableTable<(u64, u32), &'static [u8]>,
    d: &DeliveryRecord,
) -> Result<Vec<(u32, Attempt)>, StoreError> {
    if !d.inline_attempts.is_empty() {
        return Ok(d.inline_attempts.clone());
    }
    let mut out = Vec::with_capacity(d.attempts as usize);
    for entry in attempts.range((d.seq, 0u32)..=(d.seq, u32::MAX))? {
        let (key, value) = entry?;
        out.push((key.value().1, decode(value.value())?));
    }
    Ok(out)
}

/// The delivery's latest attempt, if it has one.
pub(crate) fn last_attempt(
    attempts: &impl ReadableTable<(u64, u32), &'static [u8]>,
    d: &DeliveryRecord,
) -> Result<Option<Attempt>, StoreError> {
    if let Some((_, last)) = d.inline_attempts.last() {
        return Ok(Some(last.clone()));
    }
    match attempts
        .range((d.seq, 0u32)..=(d.seq, u32::MAX))?
        .next_back()
    {
        Some(entry) => Ok(Some(decode(entry?.1.value())?)),
        None => Ok(None),
    }
}

/// Every table a delivery has rows in, opened for a removal.
pub(crate) struct DeliveryTables<'t> {
    pub records: Records<'t>,
    pub attempts: Attempts<'t>,
    pub by_seq: Table<'t, u64, u128>,
    pub per_webhook: Table<'t, (u128, u64), u128>,
    pub filter: FilterIndex<'t>,
    pub queue: Queue<'t>,
}

impl<'t> DeliveryTables<'t> {
    pub(crate) fn open(tx: &Tx<'t>) -> Result<Self, StoreError> {
        Ok(DeliveryTables {
            records: tx.txn.open_table(DELIVERIES)?,
            attempts: tx.txn.open_table(ATTEMPTS)?,
            by_seq: tx.txn.open_table(DELIVERIES_BY_SEQ)?,
            per_webhook: tx.txn.open_table(WEBHOOK_DELIVERIES)?,
            filter: FilterIndex::open(tx.txn)?,
            queue: Queue::open(tx.txn)?,
        })
    }

    /// Removes the delivery with its attempts and every index and queue entry it has.
    pub(crate) fn remove(&mut self, d: &DeliveryRecord) -> Result<(), StoreError> {
        if d.next_attempt_at.is_some() {
            let number = self.filter.number(d.webhook_id)?;
            self.queue.left(number, d)?;
        }
        self.filter.remove(d)?;
        self.per_webhook.remove((d.webhook_id.0, d.seq))?;
        self.by_seq.remove(d.seq)?;
        self.attempts
            .retain_in((d.seq, 0u32)..=(d.seq, u32::MAX), |_, _| false)?;
        self.records.remove(d.id.0)?;
        Ok(())
    }
}

/// The event a delivery carries, if it is still stored.
pub fn event_of(
    events_by_seq: &impl ReadableTable<u64, &'static str>,
    events: &impl ReadableTable<&'static str, &'static [u8]>,
    event: &EventRef,
) -> Result<Option<EventRecord>, StoreError> {
    match event {
        EventRef::Seq(seq) => match events_by_seq.get(*seq)? {
            Some(id) => load::<&str, EventRecord>(events, id.value()),
            None => Ok(None),
        },
        EventRef::Id(id) => load::<&str, EventRecord>(events, id.as_str()),
    }
}

/// A delivery as the API shows it: the record, its event's id and its attempts.
#[derive(Debug)]
pub struct DeliveryDetail {
    pub record: DeliveryRecord,
    pub event_id: EventId,
    pub attempts: Vec<(u32, Attempt)>,
}

/// Completes records read in `rtx` into what the API shows: one range of `attempts` and
/// (for a record that names its event by seq) one `events_by_seq` entry each.
pub fn details(
    rtx: &ReadTransaction,
    records: Vec<DeliveryRecord>,
) -> Result<Vec<DeliveryDetail>, StoreError> {
    let attempts = rtx.open_table(ATTEMPTS)?;
    let events_by_seq = rtx.open_table(EVENTS_BY_SEQ)?;
    records
        .into_iter()
        .map(|record| {
            let event_id = match &record.event {
                EventRef::Id(id) => id.clone(),
                // Retention keeps an event while any of its deliveries exists.
                EventRef::Seq(seq) => match events_by_seq.get(*seq)? {
                    Some(id) => EventId::parse(id.value()).map_err(|e| {
                        StoreError::Inconsistent(format!(
                            "event seq {seq} has an id that is not one: {e}"
                        ))
                    })?,
                    None => {
                        return Err(StoreError::Inconsistent(format!(
                            "delivery {} names event seq {seq}, which is gone",
                            record.id
                        )));
                    }
                },
            };
            Ok(DeliveryDetail {
                attempts: attempts_of(&attempts, &record)?,
                event_id,
                record,
            })
        })
        .collect()
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

/// The `delivery_filter` ranges of the webhook numbered `number` (none if it has no
/// number) for the statuses and types `filter` allows, for seqs in `seqs`, merged newest
/// first into (seq, delivery id): one range when the filter names both, at most 48 (every
/// status and type) when it names neither. Each entry's id is its `deliveries_by_seq`
/// entry; an entry without one (a delivery gone without its entry, which no write
/// leaves) is passed over, as a missing record is.
pub(crate) fn indexed_newest_first<'a>(
    index: &'a impl ReadableTable<(u32, u8, u8, u64), ()>,
    by_seq: &'a impl ReadableTable<u64, u128>,
    number: Option<u32>,
    filter: DeliveryFilter,
    seqs: std::ops::Range<u64>,
) -> Result<impl Iterator<Item = Result<(u64, u128), StoreError>> + 'a, StoreError> {
    let statuses = filter
        .status
        .map_or(DeliveryStatus::ALL.to_vec(), |s| vec![s]);
    let types = filter
        .event_type
        .map_or(EventType::ALL.to_vec(), |t| vec![t]);
    let mut ranges = Vec::with_capacity(statuses.len() * types.len());
    if let Some(n) = number
        && seqs.start < seqs.end
    {
        for s in &statuses {
            for t in &types {
                let (s, t) = (status_code(*s), type_code(*t));
                let range = index.range((n, s, t, seqs.start)..(n, s, t, seqs.end))?;
                ranges.push(range.rev().map(|e| Ok((e?.0.value().3, ()))));
            }
        }
    }
    Ok(MergeDesc::new(ranges).filter_map(move |entry| {
        let found = entry.and_then(|(seq, ())| Ok(by_seq.get(seq)?.map(|id| (seq, id.value()))));
        found.transpose()
    }))
}

/// The webhook's deliveries that pass `filter`, newest first, created before the
/// `before` cursor. Deliveries from the index's mark on are all in `delivery_filter`:
/// the ranges of the statuses and event types the filter allows are merged newest first,
/// so a page costs what it shows (plus one seek per range). Deliveries older than the
/// mark (written by an older hookd) are then looked for through `webhook_deliveries`.
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
    let mark = meta_get(&rtx.open_table(META)?, DELIVERY_FILTER_FROM)?.min(end);
    let by_filter = rtx.open_table(DELIVERY_FILTER)?;
    let by_seq = rtx.open_table(DELIVERIES_BY_SEQ)?;
    let number = number_of(&rtx.open_table(WEBHOOK_NUMBERS)?, webhook)?;
    let indexed = indexed_newest_first(&by_filter, &by_seq, number, filter, mark..end)?
        .map(|e| e.map(|(_, id)| id));
    let scanned = index
        .range((webhook.0, 0u64)..(webhook.0, mark))?
        .rev()
        .map(|e| Ok(e?.1.value()));
    let mut items: Vec<DeliveryRecord> = Vec::with_capacity(limit.min(128));
    let mut next = None;
    for id in indexed.chain(scanned) {
        let id: u128 = id?;
        let Some(delivery) = load_delivery(&deliveries, id)? else {
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
