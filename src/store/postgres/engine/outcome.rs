//! Attempt outcomes on PostgreSQL: what redb's `ops::attempts::record` does, with the
//! rule itself from `ops::attempts::decide`.
//!
//! Workers hand outcomes over without waiting ([`PgStore::record_attempt`]); one
//! recorder task per node takes every outcome waiting (up to [`MAX_BATCH`]) into one
//! transaction, so a webhook's outcomes share a commit and its row lock instead of
//! queueing for it one commit at a time. Webhooks are locked first, in id order, then
//! the deliveries, in (webhook, delivery) order (see `engine`), both in one round trip;
//! the outcomes are decided in memory ([`Batch`]) and written with one statement per
//! table for the whole batch (attempts, deliveries, statistics), pipelined: a batch
//! costs about five round trips however many outcomes it holds (it cost five per
//! outcome, and the recorder fell so far behind that the scheduler's looks skipped a
//! thousand claims each). An outcome that fails on its own (a record that cannot be
//! decoded, a broken row) is taken out and the batch run again without it; a shared
//! write that fails for a reason of its own has each outcome recorded alone, so it
//! cannot take the others' outcomes down with it; a lost connection fails the whole
//! batch, and the scheduler records it again later (`Recording::Again`).

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Weak};

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::super::stats;
use super::super::{FENCE_CHANNEL, Inner, PgStore, QUEUED_CHANNEL};
use super::{CUSTOM_PLANS, TRIES, retryable, save_deliveries, sql_seq, uuid};
use crate::delivery::retry::RetryPolicy;
use crate::model::{DeliveryId, DeliveryStatus, Millis, WebhookId};
use crate::store::StoreError;
use crate::store::codec::{decode, encode};
use crate::store::ops::attempts::{Recorded, Recording, Verdict, already_recorded, decide};
use crate::store::records::{Attempt, DeliveryRecord, WebhookRecord};

/// At most this many outcomes share a transaction.
const MAX_BATCH: usize = 128;

/// What answers an outcome once it is committed (or failed to be).
type OnCommit = Box<dyn FnOnce(Result<Option<Recorded>, StoreError>) + Send>;

/// An outcome waiting for the recorder, and what it answers.
pub(crate) struct Pending {
    item: Item,
    on_commit: OnCommit,
}

/// An outcome to record.
pub(crate) struct Item {
    id: DeliveryId,
    verdict: Verdict,
    attempt: Attempt,
    recording: Recording,
    policy: Arc<RetryPolicy>,
}

impl PgStore {
    /// Records an attempt's outcome without waiting: `on_commit` runs on the runtime once
    /// it is committed or has failed (see the module docs).
    pub fn record_attempt<C>(
        &self,
        id: DeliveryId,
        verdict: Verdict,
        attempt: Attempt,
        recording: Recording,
        policy: Arc<RetryPolicy>,
        on_commit: C,
    ) where
        C: FnOnce(Result<Option<Recorded>, StoreError>) + Send + 'static,
    {
        let pending = Pending {
            item: Item {
                id,
                verdict,
                attempt,
                recording,
                policy,
            },
            on_commit: Box::new(on_commit),
        };
        let sender = self.inner.cluster.recorder.get_or_init(|| {
            let (tx, rx) = unbounded_channel();
            let weak = Arc::downgrade(&self.inner);
            self.inner.runtime.spawn(recorder(weak, rx));
            tx
        });
        if let Err(unsent) = sender.send(pending) {
            (unsent.0.on_commit)(Err(StoreError::Closed));
        }
    }

    /// Records outcomes at `now`, in one transaction: each one's answer, in order. A lost
    /// database marks the store down here too (`PgStore::seen`).
    pub(crate) async fn record_outcomes(
        &self,
        items: &[Item],
        now: Millis,
    ) -> Vec<Result<Option<Recorded>, StoreError>> {
        let all: Vec<usize> = (0..items.len()).collect();
        match self.record_some(items, &all, now).await {
            Ok(results) => results.into_iter().map(|(_, r)| self.seen(r)).collect(),
            Err(e) => {
                // A write shared by the batch failed for a reason of its own: each
                // outcome alone, so that only the one it belongs to fails.
                tracing::warn!(error = %e, outcomes = items.len(), "outcome batch failed; recording its outcomes one by one");
                let mut answers = Vec::with_capacity(items.len());
                for i in all {
                    answers.push(self.seen(match self.record_some(items, &[i], now).await {
                        Ok(mut r) => r.pop().map_or(Ok(None), |(_, r)| r),
                        Err(e) => Err(e),
                    }));
                }
                answers
            }
        }
    }

    /// Records outcomes `of` `items` in one transaction (run again on a deadlock, and
    /// without an outcome that failed on its own); `Err` when a write they share failed
    /// for a reason of its own (and there was more than one).
    async fn record_some(
        &self,
        items: &[Item],
        of: &[usize],
        now: Millis,
    ) -> Result<Vec<(usize, Result<Option<Recorded>, StoreError>)>, StoreError> {
        let mut own: HashMap<usize, StoreError> = HashMap::new();
        let mut tries = 0;
        loop {
            let live: Vec<usize> = of
                .iter()
                .copied()
                .filter(|i| !own.contains_key(i))
                .collect();
            match self.try_batch(items, &live, now).await {
                Ok(mut results) => {
                    results.extend(own.into_iter().map(|(i, e)| (i, Err(e))));
                    results.sort_by_key(|(i, _)| *i);
                    return Ok(results);
                }
                Err(Failure::Item(i, e)) => {
                    own.insert(i, e);
                }
                Err(Failure::All(e)) if retryable(&e) && tries + 1 < TRIES => tries += 1,
                Err(Failure::Shared(e)) if live.len() > 1 => return Err(e),
                Err(Failure::All(e) | Failure::Shared(e)) => {
                    return Ok(of
                        .iter()
                        .map(|&i| (i, Err(own.remove(&i).unwrap_or_else(|| e.clone()))))
                        .collect());
                }
            }
        }
    }

    /// One run of the batch: the outcomes `live` of `items`, each one's answer.
    async fn try_batch(
        &self,
        items: &[Item],
        live: &[usize],
        now: Millis,
    ) -> Result<Vec<(usize, Result<Option<Recorded>, StoreError>)>, Failure> {
        let all = |e: tokio_postgres::Error| Failure::All(StoreError::from(e));
        let mut client = self.client().await.map_err(Failure::All)?;
        let tx = client.transaction().await.map_err(all)?;
        let ids: Vec<Uuid> = live.iter().map(|&i| uuid(items[i].id.0)).collect();
        let (hooks_st, rows_st) = tokio::try_join!(
            tx.prepare_cached(LOCK_WEBHOOKS),
            tx.prepare_cached(LOCK_DELIVERIES)
        )
        .map_err(all)?;
        // One round trip: plans for this batch's ids (`CUSTOM_PLANS`), then the webhooks
        // locked before the deliveries (see `engine`).
        let params: [&(dyn ToSql + Sync); 1] = [&ids];
        let ((), hook_rows, delivery_rows) = tokio::try_join!(
            tx.batch_execute(CUSTOM_PLANS),
            tx.query(&hooks_st, &params),
            tx.query(&rows_st, &params)
        )
        .map_err(all)?;
        let mut batch = Batch::default();
        for row in hook_rows {
            let id = WebhookId(row.get::<_, Uuid>(0).as_u128());
            let record = decode::<WebhookRecord>(row.get(1)).map_err(StoreError::from);
            batch.webhooks.insert(id, record);
        }
        let mut of_delivery: HashMap<DeliveryId, Vec<usize>> = HashMap::new();
        for &i in live {
            of_delivery.entry(items[i].id).or_default().push(i);
        }
        let mut order = Vec::with_capacity(live.len());
        for row in delivery_rows {
            let id = DeliveryId(row.get::<_, Uuid>(0).as_u128());
            let webhook = WebhookId(row.get::<_, Uuid>(1).as_u128());
            batch.seqs.insert(id, row.get::<_, i64>(2));
            batch.stored.insert(id, (webhook, row.get::<_, Vec<u8>>(3)));
            let mine = of_delivery.get(&id).map_or(&[][..], Vec::as_slice);
            order.extend(mine.iter().map(|&i| (webhook, id, i)));
        }
        order.sort_unstable();
        let again: Vec<i64> = order
            .iter()
            .filter(|(_, _, i)| items[*i].recording == Recording::Again)
            .filter_map(|(_, d, _)| batch.seqs.get(d).copied())
            .collect();
        if !again.is_empty() {
            let st = tx.prepare_cached(LAST_ATTEMPTS).await.map_err(all)?;
            for row in tx.query(&st, &[&again]).await.map_err(all)? {
                batch.stored_last.insert(row.get(0), row.get(1));
            }
        }
        // A delivery that no longer exists has nothing to record.
        let mut results: Vec<(usize, Result<Option<Recorded>, StoreError>)> =
            live.iter().map(|&i| (i, Ok(None))).collect();
        let slot_of: HashMap<usize, usize> =
            live.iter().enumerate().map(|(s, &i)| (i, s)).collect();
        for (webhook, _, i) in order {
            let result = self
                .record_one(&tx, &items[i], webhook, &mut batch, now)
                .await;
            match result {
                Ok(recorded) => {
                    if let Some(&slot) = slot_of.get(&i) {
                        results[slot].1 = Ok(recorded);
                    }
                }
                Err(e) if whole_batch(&e) => return Err(Failure::All(e)),
                Err(e) => return Err(Failure::Item(i, e)),
            }
        }
        let shared = |e: StoreError| {
            if whole_batch(&e) {
                Failure::All(e)
            } else {
                Failure::Shared(e)
            }
        };
        batch.flush(&tx).await.map_err(shared)?;
        tx.commit().await.map_err(all)?;
        Ok(results)
    }

    /// Records one outcome in the batch (redb: `ops::attempts::record`); its writes wait
    /// in `batch` for [`Batch::flush`].
    async fn record_one(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        item: &Item,
        webhook_id: WebhookId,
        batch: &mut Batch,
        now: Millis,
    ) -> Result<Option<Recorded>, StoreError> {
        let Some(mut delivery) = batch.take(item.id)? else {
            return Ok(None);
        };
        if item.recording == Recording::Again
            && already_recorded(batch.last_attempt(&delivery)?.as_ref(), &item.attempt)
        {
            let status = delivery.status;
            batch.put(delivery, false);
            return Ok(Some(Recorded {
                webhook_disabled: false,
                status: Some(status),
                notification: None,
            }));
        }
        // Its webhook deleted meanwhile: nothing to record (as on redb).
        let webhook = match batch.webhooks.get_mut(&webhook_id) {
            None => {
                batch.put(delivery, false);
                return Ok(None);
            }
            Some(Err(e)) => return Err(e.clone()),
            Some(Ok(w)) => w,
        };
        let decision = decide(
            &mut delivery,
            webhook,
            item.verdict,
            &item.attempt,
            &item.policy,
            now,
        );
        batch.counted.push((webhook_id, item.attempt.clone()));
        batch.add_attempt(delivery.seq, decision.number, &item.attempt);
        batch.put(delivery, true);
        let mut recorded = decision.recorded;
        if decision.was == DeliveryStatus::Pending {
            if decision.write_webhook {
                batch.hooks_to_save.insert(webhook_id);
            }
            if let Some((kind, reason)) = decision.notify {
                let webhook = batch.webhook(webhook_id)?;
                let enqueued =
                    super::super::notifications::enqueue(tx, webhook, kind, reason, now).await?;
                recorded.notification = Some(enqueued);
            }
            if recorded.webhook_disabled {
                let webhook = batch.webhook(webhook_id)?.clone();
                // What the cancellation reads must be written first.
                batch.flush_rows(tx).await?;
                batch.hooks_to_save.remove(&webhook_id);
                super::super::webhooks::save(tx, &webhook).await?;
                // The row's strongest lock first: it waits for the ingests that hold it
                // `FOR KEY SHARE` (queueing deliveries to it), so the cancellation below
                // sees every one of them (the invariant of `postgres/mod.rs`).
                tx.execute(
                    "SELECT 1 FROM webhooks WHERE id = $1 FOR UPDATE",
                    &[&uuid(webhook_id.0)],
                )
                .await?;
                // The first chunk now; a bigger backlog is finished by the cleanup sweep.
                super::super::webhooks::start_cancel(tx, webhook_id).await?;
                super::super::rows::notify(tx, FENCE_CHANNEL, webhook_id).await?;
                // The batch's later outcomes for it see what the cancellation wrote.
                batch.read_again(tx, webhook_id).await?;
            }
        }
        if !self.inner.cluster.holds(webhook_id) {
            // The lease moved while the attempt was under way: the holder looks again
            // (a retry is queued, or the next in line is the head now).
            batch.wake.insert(webhook_id);
        }
        Ok(Some(recorded))
    }
}

/// Locks the batch's webhooks, in id order (their ids read from the deliveries, whose
/// `webhook_id` never changes).
const LOCK_WEBHOOKS: &str = "SELECT id, record FROM webhooks \
     WHERE id IN (SELECT webhook_id FROM deliveries WHERE id = ANY($1)) \
     ORDER BY id FOR NO KEY UPDATE";
/// Locks the batch's deliveries, in (webhook, delivery) order.
const LOCK_DELIVERIES: &str = "SELECT id, webhook_id, seq, record FROM deliveries \
     WHERE id = ANY($1) ORDER BY webhook_id, id FOR UPDATE";
/// The latest attempt of each delivery (for the outcomes recorded again).
const LAST_ATTEMPTS: &str = "SELECT DISTINCT ON (delivery_seq) delivery_seq, record \
     FROM attempts WHERE delivery_seq = ANY($1) ORDER BY delivery_seq, number DESC";
const INSERT_ATTEMPTS: &str = "INSERT INTO attempts (delivery_seq, number, record) \
     SELECT * FROM unnest($1::bigint[], $2::integer[], $3::bytea[])";
const READ_AGAIN: &str = "SELECT id, record FROM deliveries WHERE id = ANY($1)";

/// A batch's rows as read, and its writes until they are flushed: one statement per
/// table for the whole batch, rather than a round trip per outcome and table.
#[derive(Default)]
struct Batch {
    webhooks: HashMap<WebhookId, Result<WebhookRecord, StoreError>>,
    /// Each delivery's seq and its record as stored (until taken).
    seqs: HashMap<DeliveryId, i64>,
    stored: HashMap<DeliveryId, (WebhookId, Vec<u8>)>,
    /// The latest stored attempt of the deliveries recorded again.
    stored_last: HashMap<i64, Vec<u8>>,
    /// Records taken and put back (changed or not), and the attempts made in the batch.
    current: HashMap<DeliveryId, DeliveryRecord>,
    last: HashMap<u64, Attempt>,
    /// What [`Batch::flush`] writes.
    dirty: Vec<DeliveryId>,
    attempts: (Vec<i64>, Vec<i32>, Vec<Vec<u8>>),
    counted: Vec<(WebhookId, Attempt)>,
    hooks_to_save: BTreeSet<WebhookId>,
    wake: BTreeSet<WebhookId>,
}

impl Batch {
    /// A webhook of the batch, as changed so far.
    fn webhook(&self, id: WebhookId) -> Result<&WebhookRecord, StoreError> {
        match self.webhooks.get(&id) {
            Some(Ok(w)) => Ok(w),
            Some(Err(e)) => Err(e.clone()),
            None => Err(StoreError::Inconsistent(format!(
                "webhook {id} left the outcome batch"
            ))),
        }
    }

    /// The delivery's record, as the batch has it now.
    fn take(&mut self, id: DeliveryId) -> Result<Option<DeliveryRecord>, StoreError> {
        if let Some(d) = self.current.remove(&id) {
            return Ok(Some(d));
        }
        match self.stored.remove(&id) {
            None => Ok(None),
            Some((webhook, bytes)) => match DeliveryRecord::decode(id, &bytes) {
                Ok(d) => Ok(Some(d)),
                Err(e) => {
                    self.stored.insert(id, (webhook, bytes));
                    Err(e.into())
                }
            },
        }
    }

    /// Puts a taken record back; `changed`: to be written.
    fn put(&mut self, d: DeliveryRecord, changed: bool) {
        if changed && !self.dirty.contains(&d.id) {
            self.dirty.push(d.id);
        }
        self.current.insert(d.id, d);
    }

    /// The delivery's latest attempt, if it has one.
    fn last_attempt(&self, d: &DeliveryRecord) -> Result<Option<Attempt>, StoreError> {
        if let Some(a) = self.last.get(&d.seq) {
            return Ok(Some(a.clone()));
        }
        if let Some((_, last)) = d.inline_attempts.last() {
            return Ok(Some(last.clone()));
        }
        match self.stored_last.get(&sql_seq(d.seq)) {
            Some(bytes) => Ok(Some(decode(bytes)?)),
            None => Ok(None),
        }
    }

    fn add_attempt(&mut self, seq: u64, number: u32, attempt: &Attempt) {
        self.attempts.0.push(sql_seq(seq));
        self.attempts
            .1
            .push(i32::try_from(number).unwrap_or(i32::MAX));
        self.attempts.2.push(encode(attempt));
        self.last.insert(seq, attempt.clone());
    }

    /// The changed records, taken out to be written (put back by [`Batch::written`]).
    fn changed(&mut self) -> Vec<DeliveryRecord> {
        std::mem::take(&mut self.dirty)
            .into_iter()
            .filter_map(|id| self.current.remove(&id))
            .collect()
    }

    fn written(&mut self, records: Vec<DeliveryRecord>) {
        for d in records {
            self.current.insert(d.id, d);
        }
    }

    /// Writes the attempts and the changed deliveries.
    async fn flush_rows(
        &mut self,
        tx: &deadpool_postgres::Transaction<'_>,
    ) -> Result<(), StoreError> {
        let mut records = self.changed();
        let attempts = std::mem::take(&mut self.attempts);
        let result = write_rows(tx, &mut records, &attempts).await;
        self.written(records);
        result
    }

    /// Everything the batch still has to write: rows, statistics, webhooks, wake-ups, in
    /// one round trip (two for the statistics).
    async fn flush(&mut self, tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
        let mut records = self.changed();
        let attempts = std::mem::take(&mut self.attempts);
        let counted: Vec<(WebhookId, &Attempt)> =
            self.counted.iter().map(|(w, a)| (*w, a)).collect();
        let hooks: Vec<&WebhookRecord> = self
            .hooks_to_save
            .iter()
            .filter_map(|w| self.webhooks.get(w).and_then(|r| r.as_ref().ok()))
            .collect();
        let wake = &self.wake;
        let others = async {
            for hook in hooks {
                super::super::webhooks::save(tx, hook).await?;
            }
            for webhook in wake {
                super::super::rows::notify(tx, QUEUED_CHANNEL, *webhook).await?;
            }
            Ok::<_, StoreError>(())
        };
        tokio::try_join!(
            write_rows(tx, &mut records, &attempts),
            stats::count_attempts(tx, &counted),
            others
        )?;
        Ok(())
    }

    /// Reads again the batch's deliveries of `webhook` not yet recorded (its
    /// cancellation rewrote them).
    async fn read_again(
        &mut self,
        tx: &deadpool_postgres::Transaction<'_>,
        webhook: WebhookId,
    ) -> Result<(), StoreError> {
        let ids: Vec<Uuid> = self
            .stored
            .iter()
            .map(|(id, (w, _))| (id, w))
            .chain(self.current.iter().map(|(id, d)| (id, &d.webhook_id)))
            .filter(|(_, w)| **w == webhook)
            .map(|(id, _)| uuid(id.0))
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let st = tx.prepare_cached(READ_AGAIN).await?;
        for row in tx.query(&st, &[&ids]).await? {
            let id = DeliveryId(row.get::<_, Uuid>(0).as_u128());
            self.current.remove(&id);
            self.stored.insert(id, (webhook, row.get::<_, Vec<u8>>(1)));
        }
        Ok(())
    }
}

/// Inserts attempts (seqs, numbers, records) and writes delivery records: one statement
/// each, pipelined.
async fn write_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    records: &mut [DeliveryRecord],
    attempts: &(Vec<i64>, Vec<i32>, Vec<Vec<u8>>),
) -> Result<(), StoreError> {
    let insert = async {
        if !attempts.0.is_empty() {
            let st = tx.prepare_cached(INSERT_ATTEMPTS).await?;
            tx.execute(&st, &[&attempts.0, &attempts.1, &attempts.2])
                .await?;
        }
        Ok::<_, StoreError>(())
    };
    tokio::try_join!(insert, save_deliveries(tx, records, None))?;
    Ok(())
}

/// Why a run of the batch failed.
enum Failure {
    /// Outcome `i` failed on its own: the batch runs again without it.
    Item(usize, StoreError),
    /// A write the outcomes share failed for a reason of its own: each is recorded alone.
    Shared(StoreError),
    /// The transaction failed: every outcome in it fails (or it runs again).
    All(StoreError),
}

/// Whether an error fails the transaction rather than one outcome in it.
fn whole_batch(e: &StoreError) -> bool {
    e.fault().is_some() || retryable(e) || matches!(e, StoreError::Closed | StoreError::Pool(_))
}

/// The recorder task: one batch at a time, every outcome waiting in it.
async fn recorder(weak: Weak<Inner>, mut rx: UnboundedReceiver<Pending>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(_) => break,
            }
        }
        let (items, answers): (Vec<Item>, Vec<OnCommit>) =
            batch.into_iter().map(|p| (p.item, p.on_commit)).unzip();
        let results = match weak.upgrade() {
            Some(inner) => {
                let store = PgStore { inner };
                store.record_outcomes(&items, Millis::now()).await
            }
            None => items.iter().map(|_| Err(StoreError::Closed)).collect(),
        };
        for (answer, result) in answers.into_iter().zip(results) {
            answer(result);
        }
    }
}

#[cfg(test)]
impl Item {
    /// An outcome for the tests.
    pub(crate) fn new(
        id: DeliveryId,
        verdict: Verdict,
        attempt: Attempt,
        recording: Recording,
        policy: Arc<RetryPolicy>,
    ) -> Item {
        Item {
            id,
            verdict,
            attempt,
            recording,
            policy,
        }
    }
}
