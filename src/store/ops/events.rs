//! The event log and ingestion: storing an event together with one pending delivery (and
//! its queue entry) per enabled webhook of the event's user that subscribes to its type.
//! Every event and delivery gets its filter index entry (`user_type_events`,
//! `delivery_filter`) here, so the (filtered) listings read only what they show; the
//! event records where its deliveries' seqs begin, which is how retention finds them.

use redb::{ReadTransaction, Table, WriteTransaction};

use super::filter::FilterIndex;
use super::order::Queue;
use super::{MergeDesc, Page, StoreError, load, meta_get, webhooks::user_hooks};
use crate::model::{
    DeliveryId, DeliveryStatus, EventGroup, EventId, EventPattern, EventType, Millis, WebhookId,
};
use crate::store::Tx;
use crate::store::codec::encode;
use crate::store::records::{DeliveryRecord, EventRecord, EventRef, WebhookRecord};
use crate::store::tables::*;
use crate::trace_context::TraceContext;

/// An event as validated by the API, before it has a sequence number.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct NewEvent {
    pub id: EventId,
    pub user: String,
    pub event_type: EventType,
    pub source: String,
    pub timestamp: String,
    pub payload: String,
    pub received_at: Millis,
    /// The W3C trace the publisher sent it in, if any.
    pub trace: Option<TraceContext>,
}

/// For unit tests: an event `id` of user `u`, type `app:connected`, received at
/// `received_at`, with an empty payload.
#[cfg(test)]
pub(crate) fn test_event(id: &str, received_at: Millis) -> NewEvent {
    NewEvent {
        id: EventId::parse(id).expect("a valid test event id"),
        user: "u".into(),
        event_type: EventType::AppConnected,
        source: "s".into(),
        timestamp: "2024-01-01T00:00:00Z".into(),
        payload: "{}".into(),
        received_at,
        trace: None,
    }
}

#[derive(Debug, PartialEq)]
pub enum Ingested {
    /// Stored; `queued` lists each webhook that got a delivery and when it is due.
    Created {
        deliveries: u32,
        queued: Vec<(WebhookId, Millis)>,
    },
    /// The id was ingested before: the original answer, nothing new queued.
    Duplicate { deliveries: u32 },
}

pub fn ingest(
    tx: &mut Tx<'_>,
    new: NewEvent,
    first_attempt_due: Millis,
) -> Result<Ingested, StoreError> {
    let events = tx.txn.open_table(EVENTS)?;
    if let Some(existing) = load::<&str, EventRecord>(&events, new.id.as_str())? {
        return Ok(Ingested::Duplicate {
            deliveries: existing.deliveries,
        });
    }
    let targets = {
        let hooks = tx.txn.open_table(WEBHOOKS)?;
        let index = tx.txn.open_table(USER_WEBHOOKS)?;
        targets(user_hooks(&index, &hooks, &new.user)?, new.event_type)
    };

    let (deliveries, queued) = store_event(tx, events, new, targets, first_attempt_due)?;
    Ok(Ingested::Created {
        deliveries,
        queued: queued.into_iter().map(|q| (q.webhook, q.due)).collect(),
    })
}

/// What a test event became: its one delivery, or why there is none.
#[derive(Debug, PartialEq, Eq)]
pub enum TestEvent {
    Queued(DeliveryId),
    NoSuchWebhook,
    WebhookDisabled,
}

/// Stores a test event of the webhook's owner with one delivery, to `webhook` only,
/// whatever types the webhook subscribes to. The event is a real event in the log: the
/// delivery goes through the normal path and shows in the webhook's delivery log.
pub fn ingest_test(
    tx: &mut Tx<'_>,
    new: NewEvent,
    webhook: WebhookId,
    first_attempt_due: Millis,
) -> Result<TestEvent, StoreError> {
    let hook = load::<u128, WebhookRecord>(&tx.txn.open_table(WEBHOOKS)?, webhook.0)?;
    if let Some(refusal) = test_refusal(hook.as_ref(), &new.user) {
        return Ok(refusal);
    }
    let events = tx.txn.open_table(EVENTS)?;
    let (_, queued) = store_event(tx, events, new, vec![webhook], first_attempt_due)?;
    match queued.first() {
        Some(q) => Ok(TestEvent::Queued(q.delivery)),
        None => Ok(TestEvent::NoSuchWebhook),
    }
}

/// Why a test event cannot go to `hook` (for both backends): it is not `user`'s (or
/// does not exist), or it is disabled.
pub(crate) fn test_refusal(hook: Option<&WebhookRecord>, user: &str) -> Option<TestEvent> {
    match hook {
        Some(h) if h.user == user && h.enabled => None,
        Some(h) if h.user == user => Some(TestEvent::WebhookDisabled),
        _ => Some(TestEvent::NoSuchWebhook),
    }
}

/// One delivery queued by a new event.
struct Queued {
    webhook: WebhookId,
    delivery: DeliveryId,
    due: Millis,
}

/// Writes a new event, its indexes, and one pending delivery per target webhook. The
/// deliveries get consecutive seqs (nothing else runs inside a write job), which the
/// event records as `first_delivery`: retention finds them from there.
/// Answers the number of deliveries and the deliveries queued.
fn store_event(
    tx: &mut Tx<'_>,
    mut events: Table<'_, &'static str, &'static [u8]>,
    new: NewEvent,
    targets: Vec<WebhookId>,
    first_attempt_due: Millis,
) -> Result<(u32, Vec<Queued>), StoreError> {
    let seqs: Vec<u64> = targets.iter().map(|_| tx.next_delivery_seq()).collect();
    let first = seqs.first().copied().unwrap_or(0);
    let event = event_record(new, tx.next_event_seq(), targets.len(), first);
    events.insert(event.id.as_str(), encode(&event).as_slice())?;
    EventIndexes::open(tx.txn)?.insert(&event)?;
    let mut by_seq = tx.txn.open_table(DELIVERIES_BY_SEQ)?;

    let mut deliveries = tx.txn.open_table(DELIVERIES)?;
    let mut filter = FilterIndex::open(tx.txn)?;
    let mut queue = Queue::open(tx.txn)?;
    let mut queued = Vec::with_capacity(targets.len());
    for (webhook_id, seq) in targets.into_iter().zip(seqs) {
        let id = DeliveryId(tx.fresh_id());
        let delivery = new_delivery(id, &event, webhook_id, seq, first_attempt_due);
        deliveries.insert(delivery.id.0, delivery.encode().as_slice())?;
        let number = filter.insert(&delivery)?;
        by_seq.insert(delivery.seq, delivery.id.0)?;
        queue.entered(number, &delivery)?;
        queued.push(Queued {
            webhook: webhook_id,
            delivery: delivery.id,
            due: first_attempt_due,
        });
    }
    Ok((event.deliveries, queued))
}

/// The tables that find a new event by something other than its id (`store::tables`):
/// its seq, and its user's log of its type, which is its user's log too. New events and
/// store copy write them through here. (`user_events` lists only events stored before
/// the type index existed.)
pub(crate) struct EventIndexes<'t> {
    by_seq: Table<'t, u64, &'static str>,
    per_type: Table<'t, (&'static str, u8, u64), &'static str>,
}

impl<'t> EventIndexes<'t> {
    pub(crate) fn open(txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        Ok(EventIndexes {
            by_seq: txn.open_table(EVENTS_BY_SEQ)?,
            per_type: txn.open_table(USER_TYPE_EVENTS)?,
        })
    }

    pub(crate) fn insert(&mut self, event: &EventRecord) -> Result<(), StoreError> {
        let (user, id) = (event.user.as_str(), event.id.as_str());
        self.by_seq.insert(event.seq, id)?;
        self.per_type
            .insert((user, type_code(event.event_type), event.seq), id)?;
        Ok(())
    }
}

/// The webhooks (all of the event's user, oldest first) that get a delivery of an
/// event of `event_type`: the enabled ones subscribed to it. Both backends ask this.
pub(crate) fn targets(hooks: Vec<WebhookRecord>, event_type: EventType) -> Vec<WebhookId> {
    hooks
        .into_iter()
        .filter(|w| w.wants(event_type))
        .map(|w| w.id)
        .collect()
}

/// The record of a new event with `seq` and `deliveries` deliveries, the first of which
/// has seq `first_delivery` (the others follow it).
pub(crate) fn event_record(
    new: NewEvent,
    seq: u64,
    deliveries: usize,
    first_delivery: u64,
) -> EventRecord {
    EventRecord {
        seq,
        deliveries: u32::try_from(deliveries).unwrap_or(u32::MAX),
        first_delivery: Some(first_delivery),
        id: new.id,
        user: new.user,
        event_type: new.event_type,
        source: new.source,
        timestamp: new.timestamp,
        payload: new.payload,
        received_at: new.received_at,
        trace: new.trace,
    }
}

/// A new pending delivery `id` of `event` to `webhook`, due at `due`.
pub(crate) fn new_delivery(
    id: DeliveryId,
    event: &EventRecord,
    webhook: WebhookId,
    seq: u64,
    due: Millis,
) -> DeliveryRecord {
    DeliveryRecord {
        id,
        seq,
        webhook_id: webhook,
        event: EventRef::Seq(event.seq),
        event_type: event.event_type,
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: Some(due),
        created_at: event.received_at,
        schedule_base: 0,
        inline_attempts: Vec::new(),
    }
}

/// The event types an event log filter reads (all of them for no filter).
pub(crate) fn filter_types(filter: Option<EventPattern>) -> Vec<EventType> {
    match filter {
        None | Some(EventPattern::All) => EventType::ALL.to_vec(),
        Some(EventPattern::Exact(t)) => vec![t],
        Some(EventPattern::Group(g)) => group_types(g),
    }
}

pub fn get(rtx: &ReadTransaction, id: &str) -> Result<Option<EventRecord>, StoreError> {
    load(&rtx.open_table(EVENTS)?, id)
}

/// The user's events, newest first, optionally of matching types, older than `before`.
/// From the index's mark on, the log is `user_type_events` (an exact type: one range; a
/// group: its types' ranges merged; no filter: all of them), so a page costs what it
/// shows; events older than the mark (written by an older hookd) are then looked for
/// through `user_events`.
pub fn list_for_user(
    rtx: &ReadTransaction,
    user: &str,
    filter: Option<EventPattern>,
    limit: usize,
    before: Option<u64>,
) -> Result<Page<EventRecord>, StoreError> {
    let index = rtx.open_table(USER_EVENTS)?;
    let events = rtx.open_table(EVENTS)?;
    let end = before.unwrap_or(u64::MAX);
    let types = filter_types(filter);
    let scan_below = meta_get(&rtx.open_table(META)?, EVENT_FILTER_FROM)?.min(end);
    let by_type = rtx.open_table(USER_TYPE_EVENTS)?;
    let mut ranges = Vec::with_capacity(types.len());
    if scan_below < end {
        for t in &types {
            let code = type_code(*t);
            let range = by_type.range((user, code, scan_below)..(user, code, end))?;
            ranges.push(range.rev().map(|e| {
                let (key, id) = e?;
                Ok((key.value().2, id.value().to_owned()))
            }));
        }
    }
    let indexed = MergeDesc::new(ranges).map(|e| e.map(|(_, id)| id));
    let scanned = index
        .range((user, 0u64)..(user, scan_below))?
        .rev()
        .map(|e| Ok(e?.1.value().to_owned()));
    let mut items = Vec::with_capacity(limit.min(128));
    let mut next = None;
    for id in indexed.chain(scanned) {
        let id: String = id?;
        let Some(event) = load::<&str, EventRecord>(&events, id.as_str())? else {
            continue;
        };
        if filter.is_some_and(|f| !f.matches(event.event_type)) {
            continue;
        }
        if items.len() == limit {
            next = items.last().map(|e: &EventRecord| e.seq);
            break;
        }
        items.push(event);
    }
    Ok(Page { items, next })
}

/// The event types of a group (`message:*`).
fn group_types(group: EventGroup) -> Vec<EventType> {
    EventType::ALL
        .iter()
        .copied()
        .filter(|t| t.group() == group)
        .collect()
}
