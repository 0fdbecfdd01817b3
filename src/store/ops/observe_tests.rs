//! The kept counters, the filter indexes, the attempts table and the queue order against
//! full scans: a random sequence of every write that changes them (ingest, test events,
//! outcomes, reschedules, retries, recovers, cancels, webhook create/update/delete and
//! their cleanup chunks, retention, and an upgrade from a store written by an older hookd
//! — version 1 records with their attempts inline, no filter indexes, no queue order),
//! checked after each step; and the filtered listings against the unfiltered listing
//! filtered by hand, page by page.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use redb::{ReadTransaction, ReadableTable};

use super::attempts::{self, Verdict};
use super::deliveries::{self, DeliveryFilter};
use super::events::{self, NewEvent};
use super::{meta_get, queue, retention, webhooks};
use crate::delivery::retry::RetryPolicy;
use crate::model::*;
use crate::store::codec::decode;
use crate::store::records::{Attempt, DeliveryRecord, EventRecord, EventRef, WebhookRecord};
use crate::store::tables::*;
use crate::store::{RedbStore as Store, StoreError};

/// xorshift64*: enough randomness for a test, and every run of a seed is the same.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len())])
    }
}

const USERS: [&str; 2] = ["u0", "u1"];

fn all<T>(
    r: &ReadTransaction,
    table: redb::TableDefinition<u128, &'static [u8]>,
) -> Result<Vec<T>, StoreError>
where
    T: crate::store::codec::Record,
{
    let mut out = Vec::new();
    for entry in r.open_table(table)?.iter()? {
        out.push(decode(entry?.1.value())?);
    }
    Ok(out)
}

/// Every delivery record, each with the id it is stored under.
fn all_deliveries(r: &ReadTransaction) -> Result<Vec<DeliveryRecord>, StoreError> {
    let mut out = Vec::new();
    for entry in r.open_table(DELIVERIES)?.iter()? {
        let (id, bytes) = entry?;
        out.push(DeliveryRecord::decode(
            DeliveryId(id.value()),
            bytes.value(),
        )?);
    }
    Ok(out)
}

/// Every kept counter and index entry equals what a full scan finds.
pub(crate) fn check_counters_and_indexes(store: &Store, step: &str) {
    store
        .read(|r| {
            let g = queue::gauges(r)?;
            let queued = r.open_table(QUEUE)?.iter()?.count() as u64;
            let hooks: Vec<WebhookRecord> = all(r, WEBHOOKS)?;
            let count = |s| hooks.iter().filter(|h| h.status == s).count() as u64;
            assert_eq!(
                (g.depth, g.healthy, g.failing, g.disabled),
                (
                    queued,
                    count(WebhookStatus::Healthy),
                    count(WebhookStatus::Failing),
                    count(WebhookStatus::Disabled)
                ),
                "gauges after {step}"
            );
            let pending = all_deliveries(r)?
                .iter()
                .filter(|d| d.status == DeliveryStatus::Pending)
                .count() as u64;
            assert_eq!(queued, pending, "queue after {step}");

            // Queue order: one entry per pending delivery, at its seq or its requeue
            // position, and nothing else.
            let mut requeued = BTreeMap::new();
            for entry in r.open_table(QUEUE_REQUEUED)?.iter()? {
                let (k, v) = entry?;
                requeued.insert(k.value(), v.value());
            }
            let pending: Vec<DeliveryRecord> = all_deliveries(r)?
                .into_iter()
                .filter(|d| d.status == DeliveryStatus::Pending)
                .collect();
            let numbers = r.open_table(WEBHOOK_NUMBERS)?;
            let number = |d: &DeliveryRecord| -> Result<u32, StoreError> {
                Ok(numbers
                    .get(d.webhook_id.0)?
                    .expect("a queued webhook's number")
                    .value())
            };
            let mut expected = BTreeMap::new();
            let mut expected_due = BTreeSet::new();
            for d in &pending {
                let position = requeued.get(&d.id.0).copied().unwrap_or(d.seq);
                expected.insert((number(d)?, position), d.seq);
                let due = d.next_attempt_at.expect("a pending delivery's due time");
                expected_due.insert((number(d)?, due.as_key(), d.seq));
            }
            let requeued_at = r.open_table(QUEUE_REQUEUED_AT)?;
            let mut actual = BTreeMap::new();
            for entry in r.open_table(QUEUE_ORDER)?.iter()? {
                let (number, position) = entry?.0.value();
                let seq = super::order::seq_at(&requeued_at, position)?;
                actual.insert((number, position), seq);
            }
            assert_eq!(actual, expected, "queue_order after {step}");
            let mut at = BTreeMap::new();
            for entry in requeued_at.iter()? {
                let (k, v) = entry?;
                at.insert(k.value(), v.value());
            }
            let expected_at: BTreeMap<u64, u64> = pending
                .iter()
                .filter_map(|d| requeued.get(&d.id.0).map(|p| (*p, d.seq)))
                .collect();
            assert_eq!(at, expected_at, "queue_requeued_at after {step}");
            let mut actual_due = BTreeSet::new();
            for entry in r.open_table(QUEUE)?.iter()? {
                actual_due.insert(entry?.0.value());
            }
            assert_eq!(actual_due, expected_due, "queue after {step}");
            assert!(
                requeued
                    .keys()
                    .all(|id| pending.iter().any(|d| d.id.0 == *id)),
                "queue_requeued holds only pending deliveries after {step}"
            );

            let meta = r.open_table(META)?;
            // Webhook numbers: every webhook, and every deleted one whose deliveries are
            // still being removed, has one; no two share one; none is above the counter.
            let numbers: BTreeMap<u128, u32> = r
                .open_table(WEBHOOK_NUMBERS)?
                .iter()?
                .map(|e| e.map(|(k, v)| (k.value(), v.value())))
                .collect::<Result<_, _>>()?;
            for h in &hooks {
                assert!(
                    numbers.contains_key(&h.id.0),
                    "{} has a number after {step}",
                    h.id
                );
            }
            let mut cleanups = Vec::new();
            for entry in r.open_table(WEBHOOK_CLEANUP)?.iter()? {
                let webhook = entry?.0.value();
                assert!(
                    numbers.contains_key(&webhook),
                    "cleanup has a number after {step}"
                );
                cleanups.push(webhook);
            }
            // … and a removed webhook's number goes with its last delivery.
            for webhook in numbers.keys() {
                assert!(
                    hooks.iter().any(|h| h.id.0 == *webhook) || cleanups.contains(webhook),
                    "a number outlives its webhook after {step}"
                );
            }
            let distinct: std::collections::BTreeSet<u32> = numbers.values().copied().collect();
            assert_eq!(
                distinct.len(),
                numbers.len(),
                "numbers are unique after {step}"
            );
            let counter = meta_get(&meta, WEBHOOK_NUMBER)?;
            assert!(
                distinct.iter().all(|n| u64::from(*n) <= counter),
                "after {step}"
            );

            let mark = meta_get(&meta, DELIVERY_FILTER_FROM)?;
            let expected: BTreeMap<_, _> = all_deliveries(r)?
                .into_iter()
                .filter(|d| d.seq >= mark)
                .map(|d| {
                    (
                        (
                            numbers.get(&d.webhook_id.0).copied().unwrap_or(u32::MAX),
                            status_code(d.status),
                            type_code(d.event_type),
                            d.seq,
                        ),
                        d.id.0,
                    )
                })
                .collect();
            // Each entry is a key alone; `deliveries_by_seq` names its delivery.
            let by_seq = r.open_table(DELIVERIES_BY_SEQ)?;
            let mut actual = BTreeMap::new();
            for entry in r.open_table(DELIVERY_FILTER)?.iter()? {
                let key = entry?.0.value();
                let named = by_seq.get(key.3)?.map_or(0, |id| id.value());
                actual.insert(key, named);
            }
            assert_eq!(actual, expected, "delivery_filter after {step}");

            // Attempts: the rows of each delivery are numbered 1..=attempts (none while
            // a record read at version 1 still holds them inline); no row outlives its
            // delivery; a delivery that names its event by seq finds it.
            let ds = all_deliveries(r)?;
            let mut rows: BTreeMap<u64, Vec<u32>> = BTreeMap::new();
            for entry in r.open_table(ATTEMPTS)?.iter()? {
                let (seq, number) = entry?.0.value();
                rows.entry(seq).or_default().push(number);
            }
            let events_by_seq = r.open_table(EVENTS_BY_SEQ)?;
            for d in &ds {
                let numbers = rows.remove(&d.seq).unwrap_or_default();
                let inline: Vec<u32> = d.inline_attempts.iter().map(|a| a.0).collect();
                assert!(
                    inline.is_empty() || numbers.is_empty(),
                    "{} both after {step}",
                    d.id
                );
                let all_numbers = if inline.is_empty() { numbers } else { inline };
                assert_eq!(
                    all_numbers,
                    (1..=d.attempts).collect::<Vec<_>>(),
                    "attempts of {} after {step}",
                    d.id
                );
                if let EventRef::Seq(seq) = d.event {
                    assert!(
                        events_by_seq.get(seq)?.is_some(),
                        "event of {} after {step}",
                        d.id
                    );
                }
            }
            assert!(
                rows.is_empty(),
                "attempts without a delivery after {step}: {rows:?}"
            );
            let by_seq: BTreeMap<u64, u128> = r
                .open_table(DELIVERIES_BY_SEQ)?
                .iter()?
                .map(|e| e.map(|(k, v)| (k.value(), v.value())))
                .collect::<Result<_, _>>()?;
            let expected: BTreeMap<u64, u128> = ds.iter().map(|d| (d.seq, d.id.0)).collect();
            assert_eq!(by_seq, expected, "deliveries_by_seq after {step}");

            let mark = meta_get(&meta, EVENT_FILTER_FROM)?;
            let mut expected = BTreeMap::new();
            let mut stored = BTreeMap::new();
            for entry in r.open_table(EVENTS)?.iter()? {
                let e: EventRecord = decode(entry?.1.value())?;
                stored.insert((e.user.clone(), e.seq), e.id.to_string());
                if e.seq >= mark {
                    expected.insert(
                        (e.user.clone(), type_code(e.event_type), e.seq),
                        e.id.to_string(),
                    );
                }
            }
            let mut actual = BTreeMap::new();
            for entry in r.open_table(USER_TYPE_EVENTS)?.iter()? {
                let (k, v) = entry?;
                let (user, t, seq) = k.value();
                actual.insert((user.to_owned(), t, seq), v.value().to_owned());
            }
            assert_eq!(actual, expected, "user_type_events after {step}");
            // `user_events`: every event below the mark, and no event that is gone (events
            // from the mark on are there only if an older hookd wrote them).
            let mut per_user = BTreeMap::new();
            for entry in r.open_table(USER_EVENTS)?.iter()? {
                let (k, v) = entry?;
                let (user, seq) = k.value();
                per_user.insert((user.to_owned(), seq), v.value().to_owned());
            }
            for (key, id) in &per_user {
                assert_eq!(
                    stored.get(key),
                    Some(id),
                    "user_events {key:?} after {step}"
                );
            }
            for (key, id) in stored.iter().filter(|(k, _)| k.1 < mark) {
                assert_eq!(
                    per_user.get(key),
                    Some(id),
                    "user_events {key:?} after {step}"
                );
            }

            let expected: Vec<(u8, u128)> = {
                let mut keys: Vec<_> = hooks
                    .iter()
                    .map(|h| (status_rank(h.status), h.id.0))
                    .collect();
                keys.sort();
                keys
            };
            let mut actual = Vec::new();
            for entry in r.open_table(WEBHOOKS_BY_STATUS)?.iter()? {
                actual.push(entry?.0.value());
            }
            assert_eq!(actual, expected, "webhooks_by_status after {step}");
            Ok(())
        })
        .unwrap();
}

/// Pages through a listing with `limit`, checking each page's `next` against what the
/// whole expected list says, and answers the items.
fn paged<T, F>(limit: usize, expected: &[u64], mut page: F, what: &str) -> Vec<u64>
where
    F: FnMut(Option<u64>) -> super::Page<T>,
    T: Seq,
{
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let p = page(after);
        assert!(p.items.len() <= limit, "{what}: page too long");
        got.extend(p.items.iter().map(Seq::seq));
        let more = expected.len() > got.len();
        assert_eq!(
            p.next,
            more.then(|| *got.last().unwrap()),
            "{what}: next after {got:?} of {expected:?}"
        );
        match p.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(got, expected, "{what}");
    got
}

trait Seq {
    fn seq(&self) -> u64;
}
impl Seq for DeliveryRecord {
    fn seq(&self) -> u64 {
        self.seq
    }
}
impl Seq for EventRecord {
    fn seq(&self) -> u64 {
        self.seq
    }
}

/// Filtered listings equal the unfiltered listing filtered by hand, across pages.
fn check_listings(store: &Store, hooks: &[WebhookId], rng: &mut Rng, step: &str) {
    let limit = 1 + rng.below(4);
    store
        .read(|r| {
            for &w in hooks {
                let everything =
                    deliveries::list_for_webhook(r, w, DeliveryFilter::default(), 100_000, None)?
                        .items;
                let mut filters = vec![];
                for &s in DeliveryStatus::ALL {
                    filters.push(DeliveryFilter {
                        status: Some(s),
                        event_type: None,
                    });
                }
                for _ in 0..3 {
                    let t = rng.pick(EventType::ALL);
                    filters.push(DeliveryFilter {
                        status: None,
                        event_type: t,
                    });
                    filters.push(DeliveryFilter {
                        status: rng.pick(DeliveryStatus::ALL),
                        event_type: t,
                    });
                }
                for f in filters {
                    let expected: Vec<u64> = everything
                        .iter()
                        .filter(|d| f.status.is_none_or(|s| s == d.status))
                        .filter(|d| f.event_type.is_none_or(|t| t == d.event_type))
                        .map(|d| d.seq)
                        .collect();
                    paged(
                        limit,
                        &expected,
                        |after| deliveries::list_for_webhook(r, w, f, limit, after).unwrap(),
                        &format!("deliveries {f:?} after {step}"),
                    );
                }
            }
            for user in USERS {
                let everything = events::list_for_user(r, user, None, 100_000, None)?.items;
                let mut patterns = vec![
                    EventPattern::All,
                    EventPattern::Group(EventGroup::App),
                    EventPattern::Group(EventGroup::Message),
                    EventPattern::Group(EventGroup::Agent),
                ];
                patterns.extend(rng.pick(EventType::ALL).map(EventPattern::Exact));
                for p in patterns {
                    let expected: Vec<u64> = everything
                        .iter()
                        .filter(|e| p.matches(e.event_type))
                        .map(|e| e.seq)
                        .collect();
                    paged(
                        limit,
                        &expected,
                        |after| events::list_for_user(r, user, Some(p), limit, after).unwrap(),
                        &format!("events {p} after {step}"),
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}

/// Makes the store look like one written by an older hookd — before the counters and
/// filter indexes existed, with every delivery and event record at version 1 (attempts
/// inline, the event by id), `webhook_deliveries` and `event_deliveries` entries for
/// all, no `attempts` rows — and opens it again.
fn downgrade_and_reopen(store: Store, path: &std::path::Path) -> Store {
    use crate::store::records::v1::{AttemptV1, DeliveryRecordV1, EventRecordV1};
    store
        .write_blocking(|tx| {
            let ds: Vec<DeliveryRecord> = tx
                .txn
                .open_table(DELIVERIES)?
                .iter()?
                .map(|e| {
                    e.map_err(StoreError::from).and_then(|(k, v)| {
                        Ok(DeliveryRecord::decode(DeliveryId(k.value()), v.value())?)
                    })
                })
                .collect::<Result<_, _>>()?;
            let mut attempts = tx.txn.open_table(ATTEMPTS)?;
            let mut per_webhook = tx.txn.open_table(WEBHOOK_DELIVERIES)?;
            let mut per_event = tx.txn.open_table(EVENT_DELIVERIES)?;
            let mut records = tx.txn.open_table(DELIVERIES)?;
            let events_by_seq = tx.txn.open_table(EVENTS_BY_SEQ)?;
            for d in ds {
                let inline = deliveries::attempts_of(&attempts, &d)?;
                attempts.retain_in((d.seq, 0u32)..=(d.seq, u32::MAX), |_, _| false)?;
                let event_id = match &d.event {
                    EventRef::Id(id) => id.clone(),
                    EventRef::Seq(seq) => {
                        let id = events_by_seq.get(*seq)?.unwrap();
                        per_event.insert((*seq, d.seq), ())?;
                        EventId::parse(id.value()).unwrap()
                    }
                };
                per_webhook.insert((d.webhook_id.0, d.seq), d.id.0)?;
                let old = DeliveryRecordV1 {
                    id: d.id,
                    seq: d.seq,
                    webhook_id: d.webhook_id,
                    event_id,
                    event_type: d.event_type,
                    status: d.status,
                    attempts: inline
                        .into_iter()
                        .map(|(number, a)| AttemptV1 {
                            number,
                            at: a.at,
                            status_code: a.status_code,
                            duration_ms: a.duration_ms,
                            error: a.error,
                            response_body: a.response_body,
                        })
                        .collect(),
                    next_attempt_at: d.next_attempt_at,
                    created_at: d.created_at,
                    schedule_base: d.schedule_base,
                };
                records.insert(d.id.0, crate::store::codec::encode_at(1, &old).as_slice())?;
            }
            drop((attempts, per_webhook, per_event, records, events_by_seq));
            let mut events = tx.txn.open_table(EVENTS)?;
            let es: Vec<EventRecord> = events
                .iter()?
                .map(|e| {
                    e.map_err(StoreError::from)
                        .and_then(|(_, v)| Ok(decode(v.value())?))
                })
                .collect::<Result<_, _>>()?;
            // An older hookd listed every event in `user_events`.
            let mut per_user = tx.txn.open_table(USER_EVENTS)?;
            for e in &es {
                per_user.insert((e.user.as_str(), e.seq), e.id.as_str())?;
            }
            drop(per_user);
            for e in es {
                let old = EventRecordV1 {
                    id: e.id.clone(),
                    seq: e.seq,
                    user: e.user,
                    event_type: e.event_type,
                    source: e.source,
                    timestamp: e.timestamp,
                    payload: e.payload,
                    received_at: e.received_at,
                    deliveries: e.deliveries,
                };
                events.insert(
                    e.id.as_str(),
                    crate::store::codec::encode_at(1, &old).as_slice(),
                )?;
            }
            drop(events);
            tx.txn.open_table(DELIVERY_FILTER)?.retain(|_, _| false)?;
            forget_numbers(tx)?;
            tx.txn.open_table(USER_TYPE_EVENTS)?.retain(|_, _| false)?;
            tx.txn.open_table(QUEUE_ORDER_V1)?.retain(|_, _| false)?;
            tx.txn.open_table(QUEUE_REQUEUED)?.retain(|_, _| false)?;
            // A wrong entry too: the rebuild must not keep it.
            let mut by_status = tx.txn.open_table(WEBHOOKS_BY_STATUS)?;
            by_status.retain(|_, _| false)?;
            by_status.insert((0, 42), ())?;
            drop(by_status);
            let mut meta = tx.txn.open_table(META)?;
            for key in [DELIVERY_FILTER_FROM, EVENT_FILTER_FROM, QUEUE_ORDER_BUILT] {
                meta.remove(key)?;
            }
            for key in [WEBHOOKS_HEALTHY, WEBHOOKS_FAILING, WEBHOOKS_DISABLED] {
                meta.insert(key, 999)?;
            }
            Ok(())
        })
        .unwrap();
    store.close(Duration::ZERO);
    Store::open(path).unwrap()
}

/// Puts the delivery filter and the queue back in their first forms, as a hookd before the
/// compact index and queue left them (every entry in `delivery_filter`, `queue` and
/// `queue_order`, keyed by webhook id and naming deliveries by id; no `delivery_filter2`,
/// `queue2` or `queue_order2`, no webhook numbers), and opens the store again, which
/// numbers the webhooks and moves the entries.
fn filter_v1_and_reopen(store: Store, path: &std::path::Path) -> Store {
    store
        .write_blocking(|tx| {
            forget_numbers(tx)?;
            Ok(())
        })
        .unwrap();
    store.close(Duration::ZERO);
    Store::open(path).unwrap()
}

/// Rewrites the delivery filter and the queue in their first forms and drops the webhook
/// numbers.
pub(crate) fn forget_numbers(tx: &mut crate::store::Tx<'_>) -> Result<(), StoreError> {
    let webhooks: BTreeMap<u32, u128> = tx
        .txn
        .open_table(WEBHOOK_NUMBERS)?
        .iter()?
        .map(|e| e.map(|(k, v)| (v.value(), k.value())))
        .collect::<Result<_, _>>()?;
    let by_seq = tx.txn.open_table(DELIVERIES_BY_SEQ)?;
    let mut old = tx.txn.open_table(DELIVERY_FILTER_V1)?;
    for entry in tx.txn.open_table(DELIVERY_FILTER)?.iter()? {
        let (number, status, event_type, seq) = entry?.0.value();
        let id = by_seq.get(seq)?.map_or(0, |id| id.value());
        let webhook = webhooks.get(&number).copied().unwrap_or(0);
        old.insert((webhook, status, event_type, seq), id)?;
    }
    drop(old);
    // The queue's first forms too (`ops::order::upgrade`), in place of the marker.
    tx.txn.delete_table(QUEUE_MOVED)?;
    tx.txn.open_table(META)?.remove(QUEUE_COMPACT)?;
    let mut old = tx.txn.open_table(QUEUE_V1)?;
    for entry in tx.txn.open_table(QUEUE)?.iter()? {
        let (number, due, seq) = entry?.0.value();
        let id = by_seq.get(seq)?.map_or(0, |id| id.value());
        old.insert((webhooks.get(&number).copied().unwrap_or(0), due, id), ())?;
    }
    drop(old);
    let mut old = tx.txn.open_table(QUEUE_ORDER_V1)?;
    let requeued_at = tx.txn.open_table(QUEUE_REQUEUED_AT)?;
    for entry in tx.txn.open_table(QUEUE_ORDER)?.iter()? {
        let (number, position) = entry?.0.value();
        let seq = super::order::seq_at(&requeued_at, position)?;
        let id = by_seq.get(seq)?.map_or(0, |id| id.value());
        old.insert((webhooks.get(&number).copied().unwrap_or(0), position), id)?;
    }
    drop((old, by_seq, requeued_at));
    tx.txn.delete_table(QUEUE)?;
    tx.txn.delete_table(QUEUE_ORDER)?;
    tx.txn.delete_table(QUEUE_REQUEUED_AT)?;
    tx.txn.delete_table(DELIVERY_FILTER)?;
    tx.txn.delete_table(WEBHOOK_NUMBERS)?;
    tx.txn.open_table(META)?.remove(WEBHOOK_NUMBER)?;
    Ok(())
}

/// Runs `steps` random writes from `seed`, checking after each; answers the store file
/// (closed) and the temp dir that holds it (`store::copy` copies such stores).
pub(crate) fn run(seed: u64, steps: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.redb");
    let mut store = Store::open(&path).unwrap();
    let mut rng = Rng(seed);
    let policy = RetryPolicy {
        schedule: vec![
            Duration::ZERO,
            Duration::from_millis(3),
            Duration::from_millis(6),
        ],
        disable_after: Duration::from_millis(60),
    };
    let mut hooks: Vec<(String, WebhookId)> = Vec::new();
    let mut clock = 1_000i64;
    let mut upgraded = false;
    for step in 0..steps {
        clock += 1;
        let now = Millis(clock);
        if step == steps * 2 / 3 {
            store = filter_v1_and_reopen(store, &path);
            let names: Vec<String> = store
                .read(|r| {
                    use redb::TableHandle;
                    Ok(r.list_tables()?.map(|t| t.name().to_owned()).collect())
                })
                .unwrap();
            for old in ["delivery_filter", "queue_order"] {
                assert!(!names.iter().any(|n| n == old), "{names:?}");
            }
            // `queue` is the marker that keeps an older hookd off the file.
            let marker = store
                .read(|r| {
                    Ok(r.open_table(QUEUE_MOVED)?
                        .get("moved")?
                        .map(|v| v.value().to_owned()))
                })
                .unwrap();
            assert_eq!(marker.as_deref(), Some("queue2"));
            check_counters_and_indexes(&store, &format!("step {step} (filter moved), seed {seed}"));
            continue;
        }
        let op = rng.below(14);
        let hook = rng.pick(&hooks.iter().map(|h| h.1).collect::<Vec<_>>());
        let owner = |id: WebhookId| hooks.iter().find(|h| h.1 == id).unwrap().0.clone();
        let (queued, failed, any): (Vec<DeliveryId>, Vec<DeliveryRecord>, Vec<DeliveryId>) = store
            .read(|r| {
                let ds = all_deliveries(r)?;
                Ok((
                    ds.iter()
                        .filter(|d| d.status == DeliveryStatus::Pending)
                        .map(|d| d.id)
                        .collect(),
                    ds.iter()
                        .filter(|d| d.status == DeliveryStatus::Failed)
                        .cloned()
                        .collect(),
                    ds.iter().map(|d| d.id).collect(),
                ))
            })
            .unwrap();
        let name = match op {
            0 if hooks.len() < 6 => {
                let user = USERS[rng.below(2)].to_owned();
                let pattern = match rng.below(3) {
                    0 => EventPattern::All,
                    1 => EventPattern::Group(
                        [EventGroup::App, EventGroup::Message, EventGroup::Agent][rng.below(3)],
                    ),
                    _ => EventPattern::Exact(rng.pick(EventType::ALL).unwrap()),
                };
                let record = WebhookRecord::new(
                    user.clone(),
                    "n".into(),
                    "https://example.com/".into(),
                    vec![pattern],
                    None,
                    now,
                );
                hooks.push((user, record.id));
                store
                    .write_blocking(move |tx| webhooks::create(tx, record, 10).map(|_| ()))
                    .unwrap();
                "create"
            }
            0..=3 => {
                let new = NewEvent {
                    id: EventId::parse(&format!("e{step}")).unwrap(),
                    user: USERS[rng.below(2)].into(),
                    event_type: rng.pick(EventType::ALL).unwrap(),
                    source: "s".into(),
                    timestamp: "2024-01-01T00:00:00Z".into(),
                    payload: "{}".into(),
                    received_at: now,
                    trace: None,
                };
                store
                    .write_blocking(move |tx| events::ingest(tx, new, now).map(|_| ()))
                    .unwrap();
                "ingest"
            }
            4 => {
                let Some(w) = hook else { continue };
                let new = NewEvent {
                    id: EventId::parse(&format!("t{step}")).unwrap(),
                    user: owner(w),
                    event_type: rng.pick(EventType::ALL).unwrap(),
                    source: "hookd-test".into(),
                    timestamp: "2024-01-01T00:00:00Z".into(),
                    payload: "{}".into(),
                    received_at: now,
                    trace: None,
                };
                store
                    .write_blocking(move |tx| events::ingest_test(tx, new, w, now).map(|_| ()))
                    .unwrap();
                "test event"
            }
            5..=7 => {
                let Some(d) = rng.pick(&queued) else { continue };
                let verdict = match rng.below(10) {
                    0..=4 => Verdict::Success,
                    5..=8 => Verdict::Failure { retry_after: None },
                    _ => Verdict::Gone,
                };
                let attempt = Attempt {
                    at: now,
                    status_code: Some(200),
                    duration_ms: step as u64,
                    error: None,
                    response_body: None,
                };
                let policy = policy.clone();
                store
                    .write_blocking(move |tx| {
                        attempts::record(
                            tx,
                            d,
                            verdict,
                            attempt,
                            attempts::Recording::First,
                            &policy,
                            now,
                        )
                        .map(|_| ())
                    })
                    .unwrap();
                "record"
            }
            8 => {
                let Some(d) = rng.pick(&queued) else { continue };
                let w = store.read(|r| deliveries::get(r, d)).unwrap().unwrap();
                let due = Millis(clock + rng.below(20) as i64);
                store
                    .write_blocking(move |tx| {
                        attempts::reschedule(tx, w.webhook_id, &[(d, due)]).map(|_| ())
                    })
                    .unwrap();
                "reschedule"
            }
            9 => {
                let Some(d) = failed.get(rng.below(failed.len())).cloned() else {
                    continue;
                };
                let Some((user, _)) = hooks.iter().find(|h| h.1 == d.webhook_id).cloned() else {
                    continue;
                };
                if rng.below(2) == 0 {
                    store
                        .write_blocking(move |tx| {
                            attempts::retry(tx, &user, d.webhook_id, d.id, now).map(|_| ())
                        })
                        .unwrap();
                    "retry"
                } else {
                    let mut before = u64::MAX;
                    loop {
                        let user = user.clone();
                        let out = store
                            .write_blocking(move |tx| {
                                attempts::recover(
                                    tx,
                                    &user,
                                    d.webhook_id,
                                    (Millis(0), Millis(i64::MAX)),
                                    now,
                                    before,
                                )
                            })
                            .unwrap();
                        match out {
                            Ok(r) if r.next.is_some() => before = r.next.unwrap(),
                            _ => break,
                        }
                    }
                    "recover"
                }
            }
            10 => {
                let Some(w) = hook else { continue };
                let user = owner(w);
                let enable = rng.below(2) == 0;
                store
                    .write_blocking(move |tx| {
                        webhooks::update(tx, &user, w, now, |h| h.enabled = enable).map(|_| ())
                    })
                    .unwrap();
                "update"
            }
            11 => {
                let Some(w) = hook else { continue };
                let user = owner(w);
                hooks.retain(|h| h.1 != w);
                store
                    .write_blocking(move |tx| webhooks::delete(tx, &user, w).map(|_| ()))
                    .unwrap();
                "delete"
            }
            12 => {
                for w in store.read(webhooks::unfinished_cleanups).unwrap() {
                    store
                        .write_blocking(move |tx| webhooks::cleanup_step(tx, w).map(|_| ()))
                        .unwrap();
                }
                let Some(d) = rng.pick(&any) else { continue };
                store
                    .write_blocking(move |tx| attempts::cancel_if_unsendable(tx, d).map(|_| ()))
                    .unwrap();
                "cleanup steps, cancel if unsendable"
            }
            13 if !upgraded && step > steps / 3 => {
                upgraded = true;
                store = downgrade_and_reopen(store, &path);
                "upgrade from an older store"
            }
            _ => {
                let cutoff = Millis(clock - rng.below(60) as i64);
                let batch = 1 + rng.below(5);
                store
                    .write_blocking(move |tx| retention::prune(tx, cutoff, batch).map(|_| ()))
                    .unwrap();
                "retention"
            }
        };
        let label = format!("step {step} ({name}), seed {seed}");
        check_counters_and_indexes(&store, &label);
        if step % 5 == 0 || step + 1 == steps {
            let ids: Vec<WebhookId> = hooks.iter().map(|h| h.1).collect();
            check_listings(&store, &ids, &mut rng, &label);
        }
    }
    assert!(upgraded || steps < 100, "the upgrade step ran");
    store.close(Duration::ZERO);
    (dir, path)
}

#[test]
fn kept_counters_and_filter_indexes_equal_a_full_scan_after_every_write() {
    for seed in [0x9e37_79b9_7f4a_7c15, 7, 1_234_567, 42] {
        run(seed, 400);
    }
}
