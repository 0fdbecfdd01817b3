//! The event log and ingestion on PostgreSQL (as `store::ops::events`).
//!
//! Ingest is batched: API tasks hand their events to [`Ingester`], whose task takes
//! whatever is waiting (up to [`MAX_BATCH`]) into one transaction — a handful of
//! statements whatever the batch size, rows inserted from arrays (`unnest`) — and answers
//! every caller once it is committed. While one batch commits, the next gathers (the
//! same group commit as redb's writer, `store::writer`).
//!
//! Idempotency holds across nodes: an event id is inserted with `ON CONFLICT (id) DO
//! NOTHING`, which waits for a concurrent insert of the same id (on any node) to end;
//! the loser reads the winner's row and answers `Duplicate` with its delivery count, so
//! both answers agree. The target webhooks are read `FOR KEY SHARE`, so a disable or
//! delete (which takes the row `FOR UPDATE` before cancelling) never misses a delivery
//! queued beside it, while an attempt's outcome (`FOR NO KEY UPDATE`) does not wait.
//! The batch `NOTIFY`s [`QUEUED_CHANNEL`] with the webhooks it queued for, so the node
//! holding their leases looks at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deadpool_postgres::{ClientWrapper, GenericClient, Transaction};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio_postgres::types::ToSql;

use super::rows::{self, hook_uuid, seq_of, sql_seq};
use super::{QUEUED_CHANNEL, seen};
use crate::model::{DeliveryId, EventPattern, Millis, WebhookId};
use crate::store::codec::encode;
use crate::store::ops::Page;
use crate::store::ops::events::{
    Ingested, NewEvent, TestEvent, event_record, filter_types, new_delivery, targets,
};
use crate::store::records::{DeliveryRecord, EventRecord, EventRef, WebhookRecord};
use crate::store::{Health, StoreError};

/// At most this many events share one transaction.
const MAX_BATCH: usize = 256;
/// Transactions of batches in flight at once on this node. One: PostgreSQL's cost is
/// per transaction and statement far more than per row, so the fewer and larger the
/// batches, the less it spends per event. Against four (BENCHMARKS.md, "Fewer round
/// trips"), full load went from ~5 to ~16 events a batch and PostgreSQL's CPU per event
/// fell by a quarter, while a 400 events/s stream's ingest p99 rose by about 1–2 ms.
const BATCH_TASKS: usize = 1;
/// `delivery_seq`'s step (migrations/0001_init.sql): one `nextval` reserves this many
/// consecutive seqs.
const SEQ_BLOCK: u64 = 1024;
/// The longest `NOTIFY` payload PostgreSQL takes is 8000 bytes; a webhook id is 37 with
/// its comma.
const IDS_PER_NOTIFY: usize = 200;

struct Job {
    new: NewEvent,
    due: Millis,
    reply: oneshot::Sender<Result<Ingested, StoreError>>,
}

/// Gathers this node's concurrent ingests into shared transactions.
pub(super) struct Ingester {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Ingester {
    /// Starts the batch tasks on the current runtime; they end when the ingester is
    /// dropped (with the store).
    pub(super) fn start(pool: deadpool_postgres::Pool, health: Arc<Health>) -> Ingester {
        let (jobs, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..BATCH_TASKS {
            let (queue, pool, health) = (Arc::clone(&queue), pool.clone(), Arc::clone(&health));
            tokio::spawn(async move {
                while let Some(batch) = next_batch(&queue).await {
                    run(&pool, &health, batch).await;
                }
            });
        }
        Ingester { jobs }
    }

    /// Stores an event and its deliveries, or finds it stored already; answers once the
    /// transaction holding it has committed.
    pub(super) async fn ingest(&self, new: NewEvent, due: Millis) -> Result<Ingested, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { new, due, reply })
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }
}

/// Waits for a job, then takes every job waiting behind it (up to [`MAX_BATCH`]).
async fn next_batch(queue: &Mutex<mpsc::UnboundedReceiver<Job>>) -> Option<Vec<Job>> {
    let mut queue = queue.lock().await;
    let first = queue.recv().await?;
    let mut batch = vec![first];
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    Some(batch)
}

/// Runs one batch and answers its callers. A batch that fails for a reason of its own
/// (not the database's health) is retried one job per transaction, so that one
/// unstorable event fails alone.
async fn run(pool: &deadpool_postgres::Pool, health: &Health, batch: Vec<Job>) {
    let result = async {
        let mut client = pool.get().await?;
        store_batch(&mut client, &batch).await
    }
    .await;
    match seen(health, result) {
        Ok(answers) => {
            for (job, answer) in batch.into_iter().zip(answers) {
                let _ = job.reply.send(Ok(answer));
            }
        }
        Err(e) if e.fault().is_some() || batch.len() == 1 => {
            for job in batch {
                let _ = job.reply.send(Err(e.clone()));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, events = batch.len(), "ingest batch failed; storing its events one by one");
            for job in batch {
                let result = async {
                    let mut client = pool.get().await?;
                    store_batch(&mut client, std::slice::from_ref(&job)).await
                }
                .await;
                let answer = seen(health, result).map(|mut a| a.remove(0));
                let _ = job.reply.send(answer);
            }
        }
    }
}

/// Where each job's answer comes from.
enum Plan {
    /// Stored by this batch, as the `n`th new event (unless it was stored before, or
    /// another node's insert of the same id won meanwhile: then it is a duplicate).
    New(usize),
    /// The same id as job `i` of this batch.
    Same(usize),
}

/// Stores the jobs' events in one transaction; answers each job (in order).
///
/// Every event is inserted as new: an id stored before (a publisher's repeat) conflicts
/// and is read back, so the usual batch of new ids costs no lookup (it cost a statement
/// per batch, and on a young table its cached plan was a sequential scan).
async fn store_batch(c: &mut ClientWrapper, jobs: &[Job]) -> Result<Vec<Ingested>, StoreError> {
    let tx = c.transaction().await?;
    let mut users: Vec<&str> = jobs.iter().map(|j| j.new.user.as_str()).collect();
    users.sort_unstable();
    users.dedup();
    let known_st = tx
        .prepare_cached("SELECT id, record FROM events WHERE id = ANY($1)")
        .await?;
    let hooks_st = tx
        .prepare_cached(
            "SELECT record FROM webhooks WHERE owner = ANY($1) AND enabled ORDER BY id FOR KEY SHARE",
        )
        .await?;
    let seqs_st = tx
        .prepare_cached(
            "SELECT nextval('event_seq'), nextval('delivery_seq') FROM generate_series(1::bigint, $1::bigint)",
        )
        .await?;
    let fresh = i64::try_from(jobs.len()).unwrap_or(i64::MAX);
    // One round trip: the two are pipelined.
    let p2: [&(dyn ToSql + Sync); 1] = [&users];
    let p3: [&(dyn ToSql + Sync); 1] = [&fresh];
    let (hooks, seqs) = tokio::try_join!(tx.query(&hooks_st, &p2), tx.query(&seqs_st, &p3))?;
    let mut by_user: HashMap<String, Vec<WebhookRecord>> = HashMap::new();
    for row in &hooks {
        let hook: WebhookRecord = rows::record(row, 0)?;
        by_user.entry(hook.user.clone()).or_default().push(hook);
    }
    for list in by_user.values_mut() {
        list.sort_by_key(|w| (w.created_at, w.id));
    }

    let mut plans = Vec::with_capacity(jobs.len());
    let mut first_of: HashMap<&str, usize> = HashMap::new();
    let mut events = Vec::new();
    let mut per_event: Vec<Vec<DeliveryRecord>> = Vec::new();
    for (i, job) in jobs.iter().enumerate() {
        let id = job.new.id.as_str();
        if let Some(&first) = first_of.get(id) {
            plans.push(Plan::Same(first));
            continue;
        }
        first_of.insert(id, i);
        // One row of seqs per job, and at most one event per job.
        let row = seqs.get(events.len()).ok_or_else(|| {
            StoreError::Inconsistent("fewer sequence values than events in a batch".into())
        })?;
        let event_seq = seq_of(row.try_get(0)?);
        let wanted = targets(
            by_user.get(&job.new.user).cloned().unwrap_or_default(),
            job.new.event_type,
        );
        let first = if wanted.len() as u64 <= SEQ_BLOCK {
            seq_of(row.try_get(1)?)
        } else {
            block_of(&tx, wanted.len()).await?
        };
        let new = copy(&job.new);
        let event = event_record(new, event_seq, wanted.len(), first);
        per_event.push(
            wanted
                .into_iter()
                .enumerate()
                .map(|(k, webhook)| {
                    new_delivery(
                        DeliveryId::generate(),
                        &event,
                        webhook,
                        first + k as u64,
                        job.due,
                    )
                })
                .collect(),
        );
        plans.push(Plan::New(events.len()));
        events.push(event);
    }

    let inserted = insert_events(&tx, &events).await?;
    // Ids stored before, or by another node meanwhile: that insert won; answer with
    // its count.
    let lost: Vec<&str> = events
        .iter()
        .filter(|e| !inserted.contains(e.id.as_str()))
        .map(|e| e.id.as_str())
        .collect();
    let mut won_elsewhere: HashMap<String, u32> = HashMap::new();
    if !lost.is_empty() {
        for row in tx.query(&known_st, &[&lost]).await? {
            let event: EventRecord = rows::record(&row, 1)?;
            won_elsewhere.insert(row.try_get::<_, String>(0)?, event.deliveries);
        }
    }
    let mut queued: Vec<Vec<(WebhookId, Millis)>> = Vec::with_capacity(events.len());
    let mut deliveries = Vec::new();
    for (event, mine) in events.iter().zip(per_event) {
        if inserted.contains(event.id.as_str()) {
            queued.push(
                mine.iter()
                    .map(|d| (d.webhook_id, d.next_attempt_at.unwrap_or_default()))
                    .collect(),
            );
            deliveries.extend(mine);
        } else {
            queued.push(Vec::new());
        }
    }
    insert_deliveries(&tx, &deliveries).await?;
    tx.commit().await?;

    let mut answers: Vec<Ingested> = Vec::with_capacity(jobs.len());
    for plan in &plans {
        let answer = match *plan {
            Plan::Same(first) => Ingested::Duplicate {
                deliveries: match &answers[first] {
                    Ingested::Created { deliveries, .. } | Ingested::Duplicate { deliveries } => {
                        *deliveries
                    }
                },
            },
            Plan::New(n) => {
                let event = &events[n];
                match won_elsewhere.get(event.id.as_str()) {
                    Some(&deliveries) => Ingested::Duplicate { deliveries },
                    None if !inserted.contains(event.id.as_str()) => {
                        return Err(StoreError::Inconsistent(format!(
                            "event {} conflicted with a stored one that cannot be read",
                            event.id
                        )));
                    }
                    None => Ingested::Created {
                        deliveries: event.deliveries,
                        queued: std::mem::take(&mut queued[n]),
                    },
                }
            }
        };
        answers.push(answer);
    }
    Ok(answers)
}

/// `NewEvent` is not `Clone` (its owner's file); the batch keeps the job's for a retry.
fn copy(new: &NewEvent) -> NewEvent {
    NewEvent {
        id: new.id.clone(),
        user: new.user.clone(),
        event_type: new.event_type,
        source: new.source.clone(),
        timestamp: new.timestamp.clone(),
        payload: new.payload.clone(),
        received_at: new.received_at,
        trace: new.trace.clone(),
    }
}

/// `n` (more than [`SEQ_BLOCK`]) consecutive delivery seqs: as many blocks as that
/// takes, taken again until they are adjacent (another node's `nextval` may fall
/// between them; only an event for more than 1024 webhooks ever needs this).
async fn block_of(tx: &Transaction<'_>, n: usize) -> Result<u64, StoreError> {
    let blocks = i64::try_from((n as u64).div_ceil(SEQ_BLOCK)).unwrap_or(i64::MAX);
    let st = tx
        .prepare_cached(
            "SELECT nextval('delivery_seq') FROM generate_series(1::bigint, $1::bigint)",
        )
        .await?;
    for _ in 0..100 {
        let got: Vec<i64> = tx
            .query(&st, &[&blocks])
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<_, _>>()?;
        if got.windows(2).all(|w| w[1] - w[0] == SEQ_BLOCK as i64) {
            return Ok(got.first().map_or(0, |&s| seq_of(s)));
        }
    }
    Err(StoreError::Inconsistent(
        "could not reserve consecutive delivery seqs in 100 tries".into(),
    ))
}

/// The `first_delivery` and `deliveries` columns of an event's row: where its
/// deliveries' seqs are (retention keeps the event while one of them is stored).
/// `hookd store copy` fills them with this too.
pub(crate) fn deliveries_columns(e: &EventRecord) -> (Option<i64>, i32) {
    (
        e.first_delivery.map(sql_seq),
        i32::try_from(e.deliveries).unwrap_or(i32::MAX),
    )
}

/// Inserts the events (in id order, so that concurrent batches lock ids in one order);
/// answers the ids inserted (the others were stored by someone else meanwhile).
async fn insert_events(
    tx: &Transaction<'_>,
    events: &[EventRecord],
) -> Result<HashSet<String>, StoreError> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let mut order: Vec<&EventRecord> = events.iter().collect();
    order.sort_by(|a, b| a.id.cmp(&b.id));
    let seqs: Vec<i64> = order.iter().map(|e| sql_seq(e.seq)).collect();
    let ids: Vec<&str> = order.iter().map(|e| e.id.as_str()).collect();
    let owners: Vec<&str> = order.iter().map(|e| e.user.as_str()).collect();
    let types: Vec<i16> = order
        .iter()
        .map(|e| rows::type_code(e.event_type))
        .collect();
    let received: Vec<i64> = order.iter().map(|e| e.received_at.0).collect();
    let (firsts, counts): (Vec<Option<i64>>, Vec<i32>) =
        order.iter().map(|e| deliveries_columns(e)).unzip();
    let records: Vec<Vec<u8>> = order.iter().map(|e| encode(*e)).collect();
    let st = tx
        .prepare_cached(
            "INSERT INTO events (seq, id, owner, type, received_at, first_delivery, deliveries,
                                 record)
             SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::smallint[],
                                  $5::bigint[], $6::bigint[], $7::integer[], $8::bytea[])
             ON CONFLICT (id) DO NOTHING RETURNING id",
        )
        .await?;
    let rows = tx
        .query(
            &st,
            &[
                &seqs, &ids, &owners, &types, &received, &firsts, &counts, &records,
            ],
        )
        .await?;
    rows.iter()
        .map(|r| Ok(r.try_get::<_, String>(0)?))
        .collect()
}

/// Inserts new pending deliveries (each at the end of its webhook's line: position =
/// seq) and wakes the nodes driving their webhooks.
async fn insert_deliveries(
    tx: &Transaction<'_>,
    deliveries: &[DeliveryRecord],
) -> Result<(), StoreError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let seqs: Vec<i64> = deliveries.iter().map(|d| sql_seq(d.seq)).collect();
    let ids: Vec<uuid::Uuid> = deliveries.iter().map(|d| rows::uuid(d.id.0)).collect();
    let hooks: Vec<uuid::Uuid> = deliveries.iter().map(|d| hook_uuid(d.webhook_id)).collect();
    let events: Vec<i64> = deliveries
        .iter()
        .map(|d| match d.event {
            EventRef::Seq(s) => sql_seq(s),
            EventRef::Id(_) => 0,
        })
        .collect();
    let statuses: Vec<i16> = deliveries
        .iter()
        .map(|d| rows::status_code(d.status))
        .collect();
    let types: Vec<i16> = deliveries
        .iter()
        .map(|d| rows::type_code(d.event_type))
        .collect();
    let created: Vec<i64> = deliveries.iter().map(|d| d.created_at.0).collect();
    let due: Vec<Option<i64>> = deliveries
        .iter()
        .map(|d| d.next_attempt_at.map(|m| m.0))
        .collect();
    let records: Vec<Vec<u8>> = deliveries.iter().map(DeliveryRecord::encode).collect();
    let st = tx
        .prepare_cached(
            "INSERT INTO deliveries (seq, id, webhook_id, event_seq, status, type, created_at, due,
                                     position, record)
             SELECT s, i, w, e, st, t, c, d, s, r FROM unnest($1::bigint[], $2::uuid[], $3::uuid[],
                 $4::bigint[], $5::smallint[], $6::smallint[], $7::bigint[], $8::bigint[],
                 $9::bytea[]) AS u(s, i, w, e, st, t, c, d, r)",
        )
        .await?;
    let notify_st = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
    let mut woken: Vec<WebhookId> = deliveries.iter().map(|d| d.webhook_id).collect();
    woken.sort_unstable();
    woken.dedup();
    let payloads: Vec<String> = woken
        .chunks(IDS_PER_NOTIFY)
        .map(|ids| {
            ids.iter()
                .map(|id| hook_uuid(*id).to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let params: [&(dyn ToSql + Sync); 9] = [
        &seqs, &ids, &hooks, &events, &statuses, &types, &created, &due, &records,
    ];
    let insert = tx.execute(&st, &params);
    let notify = async {
        for payload in &payloads {
            tx.execute(&notify_st, &[&QUEUED_CHANNEL, payload]).await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    tokio::try_join!(insert, notify)?;
    Ok(())
}

/// Stores a test event of the webhook's owner with one delivery, to `webhook` only
/// (as `ops::events::ingest_test`).
pub(super) async fn ingest_test(
    c: &mut ClientWrapper,
    new: NewEvent,
    webhook: WebhookId,
    due: Millis,
) -> Result<TestEvent, StoreError> {
    let tx = c.transaction().await?;
    let st = tx
        .prepare_cached("SELECT record FROM webhooks WHERE id = $1 FOR KEY SHARE")
        .await?;
    let hook: Option<WebhookRecord> = match tx.query_opt(&st, &[&hook_uuid(webhook)]).await? {
        Some(row) => Some(rows::record(&row, 0)?),
        None => None,
    };
    if let Some(refusal) = crate::store::ops::events::test_refusal(hook.as_ref(), &new.user) {
        return Ok(refusal);
    }
    let seqs_st = tx
        .prepare_cached(
            "SELECT nextval('event_seq'), nextval('delivery_seq') FROM generate_series(1::bigint, $1::bigint)",
        )
        .await?;
    let row = tx.query_one(&seqs_st, &[&1i64]).await?;
    let (event_seq, first) = (seq_of(row.try_get(0)?), seq_of(row.try_get(1)?));
    let event = event_record(new, event_seq, 1, first);
    let delivery = new_delivery(DeliveryId::generate(), &event, webhook, first, due);
    let inserted = insert_events(&tx, std::slice::from_ref(&event)).await?;
    if inserted.is_empty() {
        // The API gives a test event a fresh id; a clash is not a repeat to answer.
        return Err(StoreError::Inconsistent(format!(
            "test event id {} is taken",
            event.id
        )));
    }
    insert_deliveries(&tx, std::slice::from_ref(&delivery)).await?;
    tx.commit().await?;
    Ok(TestEvent::Queued(delivery.id))
}

pub(super) async fn get(
    c: &impl GenericClient,
    id: &str,
) -> Result<Option<EventRecord>, StoreError> {
    let st = c
        .prepare_cached("SELECT record FROM events WHERE id = $1")
        .await?;
    match c.query_opt(&st, &[&id]).await? {
        Some(row) => Ok(Some(rows::record(&row, 0)?)),
        None => Ok(None),
    }
}

/// The user's events, newest first, of the types `filter` allows, older than `before`:
/// one range of `events_by_owner_type` per type, merged in the statement.
pub(super) async fn of_user(
    c: &impl GenericClient,
    user: &str,
    filter: Option<EventPattern>,
    limit: usize,
    before: Option<u64>,
) -> Result<Page<EventRecord>, StoreError> {
    let codes = rows::type_codes(filter_types(filter));
    let end = before.map_or(i64::MAX, sql_seq);
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let st = c
        .prepare_cached(
            "WITH page AS (
                 SELECT x.seq FROM unnest($2::smallint[]) AS t(type)
                 CROSS JOIN LATERAL (
                     SELECT seq FROM events WHERE owner = $1 AND type = t.type AND seq < $3
                     ORDER BY seq DESC LIMIT $4) AS x
                 ORDER BY x.seq DESC LIMIT $4)
             SELECT e.record FROM page JOIN events e ON e.seq = page.seq ORDER BY e.seq DESC",
        )
        .await?;
    let found = c.query(&st, &[&user, &codes, &end, &fetch]).await?;
    let mut items = Vec::with_capacity(limit.min(found.len()));
    let mut next = None;
    for row in &found {
        if items.len() == limit {
            next = items.last().map(|e: &EventRecord| e.seq);
            break;
        }
        items.push(rows::record(row, 0)?);
    }
    Ok(Page { items, next })
}
