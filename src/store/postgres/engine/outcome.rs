//! Attempt outcomes on PostgreSQL: what redb's `ops::attempts::record` does, with the
//! rule itself from `ops::attempts::decide`.
//!
//! Workers hand outcomes over without waiting ([`PgStore::record_attempt`]); one
//! recorder task per node takes every outcome waiting (up to [`MAX_BATCH`]) into one
//! transaction, so a webhook's outcomes share a commit and its row lock instead of
//! queueing for it one commit at a time. Webhooks are locked first, in id order, then
//! each delivery, in (webhook, delivery) order (see `engine`). An outcome that fails on
//! its own (a record that cannot be decoded, a broken row) is taken out and the batch
//! run again without it, so it cannot take the others' outcomes down with it; a lost
//! connection fails the whole batch, and the scheduler records it again later
//! (`Recording::Again`).

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use uuid::Uuid;

use super::super::{FENCE_CHANNEL, Inner, PgStore, QUEUED_CHANNEL};
use super::{TRIES, insert_attempt, retryable, save_deliveries, sql_seq, uuid};
use crate::delivery::retry::RetryPolicy;
use crate::model::{DeliveryId, DeliveryStatus, Millis, WebhookId};
use crate::store::StoreError;
use crate::store::codec::decode;
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

    /// Records outcomes at `now`, in one transaction: each one's answer, in order.
    pub(crate) async fn record_outcomes(
        &self,
        items: &[Item],
        now: Millis,
    ) -> Vec<Result<Option<Recorded>, StoreError>> {
        let mut own: Vec<Option<StoreError>> = vec![None; items.len()];
        let mut tries = 0;
        loop {
            match self.try_batch(items, &own, now).await {
                Ok(results) => {
                    return results
                        .into_iter()
                        .zip(own)
                        .map(|(r, e)| match e {
                            Some(e) => Err(e),
                            None => r,
                        })
                        .collect();
                }
                Err(Failure::Item(i, e)) => own[i] = Some(e),
                Err(Failure::All(e)) if retryable(&e) && tries + 1 < TRIES => tries += 1,
                Err(Failure::All(e)) => {
                    return own
                        .into_iter()
                        .map(|o| Err(o.unwrap_or(e.clone())))
                        .collect();
                }
            }
        }
    }

    /// One run of the batch, leaving out the outcomes that failed on their own.
    async fn try_batch(
        &self,
        items: &[Item],
        own: &[Option<StoreError>],
        now: Millis,
    ) -> Result<Vec<Result<Option<Recorded>, StoreError>>, Failure> {
        let mut client = self.client().await.map_err(Failure::All)?;
        let tx = client
            .transaction()
            .await
            .map_err(|e| Failure::All(StoreError::from(e)))?;
        let live: Vec<usize> = (0..items.len()).filter(|&i| own[i].is_none()).collect();
        let ids: Vec<Uuid> = live.iter().map(|&i| uuid(items[i].id.0)).collect();
        let st = tx
            .prepare_cached("SELECT id, webhook_id FROM deliveries WHERE id = ANY($1)")
            .await
            .map_err(|e| Failure::All(StoreError::from(e)))?;
        let mut webhook_of = HashMap::new();
        for row in tx
            .query(&st, &[&ids])
            .await
            .map_err(|e| Failure::All(StoreError::from(e)))?
        {
            let (d, w): (Uuid, Uuid) = (row.get(0), row.get(1));
            webhook_of.insert(DeliveryId(d.as_u128()), WebhookId(w.as_u128()));
        }
        let mut hooks: Vec<Uuid> = webhook_of.values().map(|w| uuid(w.0)).collect();
        hooks.sort_unstable();
        hooks.dedup();
        let st = tx
            .prepare_cached(
                "SELECT id, record FROM webhooks WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
            )
            .await
            .map_err(|e| Failure::All(StoreError::from(e)))?;
        let mut webhooks = HashMap::new();
        for row in tx
            .query(&st, &[&hooks])
            .await
            .map_err(|e| Failure::All(StoreError::from(e)))?
        {
            let id = WebhookId(row.get::<_, Uuid>(0).as_u128());
            webhooks.insert(
                id,
                decode::<WebhookRecord>(row.get(1)).map_err(StoreError::from),
            );
        }
        let mut order: Vec<(WebhookId, DeliveryId, usize)> = live
            .iter()
            .filter_map(|&i| webhook_of.get(&items[i].id).map(|w| (*w, items[i].id, i)))
            .collect();
        order.sort_unstable();
        // A delivery that no longer exists has nothing to record.
        let mut results: Vec<Result<Option<Recorded>, StoreError>> =
            (0..items.len()).map(|_| Ok(None)).collect();
        for (webhook, _, i) in order {
            let result = self
                .record_one(&tx, &items[i], webhook, &mut webhooks, now)
                .await;
            match result {
                Ok(recorded) => results[i] = Ok(recorded),
                Err(e) if whole_batch(&e) => return Err(Failure::All(e)),
                Err(e) => return Err(Failure::Item(i, e)),
            }
        }
        tx.commit()
            .await
            .map_err(|e| Failure::All(StoreError::from(e)))?;
        Ok(results)
    }

    /// Records one outcome in the batch's transaction (redb: `ops::attempts::record`).
    async fn record_one(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        item: &Item,
        webhook_id: WebhookId,
        webhooks: &mut HashMap<WebhookId, Result<WebhookRecord, StoreError>>,
        now: Millis,
    ) -> Result<Option<Recorded>, StoreError> {
        let st = tx
            .prepare_cached("SELECT record FROM deliveries WHERE id = $1 FOR UPDATE")
            .await?;
        let Some(row) = tx.query_opt(&st, &[&uuid(item.id.0)]).await? else {
            return Ok(None);
        };
        let mut delivery: DeliveryRecord = decode(row.get(0))?;
        if item.recording == Recording::Again
            && already_recorded(last_attempt(tx, &delivery).await?.as_ref(), &item.attempt)
        {
            return Ok(Some(Recorded {
                webhook_disabled: false,
                status: Some(delivery.status),
                notification: None,
            }));
        }
        // Its webhook deleted meanwhile: nothing to record (as on redb).
        let webhook = match webhooks.get_mut(&webhook_id) {
            None => return Ok(None),
            Some(Err(e)) => return Err(e.clone()),
            Some(Ok(w)) => w,
        };
        super::super::stats::count_attempt(tx, webhook_id, &item.attempt).await?;
        let decision = decide(
            &mut delivery,
            webhook,
            item.verdict,
            &item.attempt,
            &item.policy,
            now,
        );
        insert_attempt(tx, delivery.seq, decision.number, &item.attempt, false).await?;
        save_deliveries(tx, std::slice::from_mut(&mut delivery), None).await?;
        let mut recorded = decision.recorded;
        if decision.was == DeliveryStatus::Pending {
            if decision.write_webhook {
                super::super::webhooks::save(tx, webhook).await?;
            }
            if let Some((kind, reason)) = decision.notify {
                let enqueued =
                    super::super::notifications::enqueue(tx, webhook, kind, reason, now).await?;
                recorded.notification = Some(enqueued);
            }
            if recorded.webhook_disabled {
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
            }
        }
        if !self.inner.cluster.holds(webhook_id) {
            // The lease moved while the attempt was under way: the holder looks again
            // (a retry is queued, or the next in line is the head now).
            super::super::rows::notify(tx, QUEUED_CHANNEL, webhook_id).await?;
        }
        Ok(Some(recorded))
    }
}

/// Why a run of the batch failed.
enum Failure {
    /// Outcome `i` failed on its own: the batch runs again without it.
    Item(usize, StoreError),
    /// The transaction failed: every outcome in it fails (or it runs again).
    All(StoreError),
}

/// Whether an error fails the transaction rather than one outcome in it.
fn whole_batch(e: &StoreError) -> bool {
    e.fault().is_some() || retryable(e) || matches!(e, StoreError::Closed | StoreError::Pool(_))
}

/// The delivery's latest attempt, if it has one.
async fn last_attempt(
    tx: &deadpool_postgres::Transaction<'_>,
    d: &DeliveryRecord,
) -> Result<Option<Attempt>, StoreError> {
    if let Some((_, last)) = d.inline_attempts.last() {
        return Ok(Some(last.clone()));
    }
    let st = tx
        .prepare_cached(
            "SELECT record FROM attempts WHERE delivery_seq = $1 ORDER BY number DESC LIMIT 1",
        )
        .await?;
    match tx.query_opt(&st, &[&sql_seq(d.seq)]).await? {
        Some(row) => Ok(Some(decode(row.get(0))?)),
        None => Ok(None),
    }
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
