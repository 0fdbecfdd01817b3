//! Moving queued deliveries in time (the rate limit's slots), and starting failed ones
//! again (manual retry, recover) on PostgreSQL: redb's `ops::attempts::{reschedule,
//! retry, recover}`, with the record changes from `ops::attempts::{restart,
//! retry_refusal, recover_pick}`. Retry and recover tell the webhook's lease holder, on
//! whichever node, through `NOTIFY hookd_queued`.

use std::collections::HashMap;

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::super::rows::{self, notify};
use super::super::{PgStore, QUEUED_CHANNEL};
use super::{CUSTOM_PLANS, TRIES, retryable, save_deliveries, sql_seq, status_code, uuid};
use crate::model::{DeliveryId, DeliveryStatus, EventType, Millis, WebhookId};
use crate::store::StoreError;
use crate::store::codec::decode;
use crate::store::ops::attempts::{Pick, Recovered, Requeue, recover_pick, restart, retry_refusal};
use crate::store::records::{DeliveryRecord, WebhookRecord};
use crate::store::tables::{CLEANUP_CHUNK, type_code};

impl PgStore {
    /// Moves pending deliveries of `webhook` to new due times; those no longer pending
    /// (or not the webhook's) are skipped. Answers how many moved.
    pub async fn reschedule(
        &self,
        webhook: WebhookId,
        moves: &[(DeliveryId, Millis)],
    ) -> Result<usize, StoreError> {
        retrying!(self, self.try_reschedule(webhook, moves))
    }

    async fn try_reschedule(
        &self,
        webhook: WebhookId,
        moves: &[(DeliveryId, Millis)],
    ) -> Result<usize, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let ids: Vec<Uuid> = moves.iter().map(|(d, _)| uuid(d.0)).collect();
        let st = tx
            .prepare_cached(
                "SELECT record, id FROM deliveries WHERE id = ANY($1) AND webhook_id = $2 \
                 ORDER BY id FOR UPDATE",
            )
            .await?;
        let mut found: HashMap<DeliveryId, DeliveryRecord> = HashMap::new();
        // One round trip: plans for these ids (`CUSTOM_PLANS`), then the locked read.
        let params: [&(dyn ToSql + Sync); 2] = [&ids, &uuid(webhook.0)];
        let ((), locked) =
            tokio::try_join!(tx.batch_execute(CUSTOM_PLANS), tx.query(&st, &params))?;
        for row in locked {
            let d = rows::delivery(&row, 1, 0)?;
            found.insert(d.id, d);
        }
        let mut moved = 0;
        for &(id, due) in moves {
            let Some(d) = found.get_mut(&id) else {
                continue;
            };
            if d.status != DeliveryStatus::Pending || d.webhook_id != webhook {
                continue;
            }
            d.next_attempt_at = Some(due);
            moved += 1;
        }
        let mut changed: Vec<DeliveryRecord> = found
            .into_values()
            .filter(|d| d.status == DeliveryStatus::Pending)
            .collect();
        save_deliveries(&tx, &mut changed, None).await?;
        tx.commit().await?;
        Ok(moved)
    }

    /// Manual retry: a failed delivery of `user`'s webhook starts the schedule again
    /// from `due`, at the back of its webhook's line.
    pub async fn retry(
        &self,
        user: &str,
        webhook: WebhookId,
        id: DeliveryId,
        due: Millis,
    ) -> Result<Requeue, StoreError> {
        retrying!(self, self.try_retry(user, webhook, id, due))
    }

    async fn try_retry(
        &self,
        user: &str,
        webhook: WebhookId,
        id: DeliveryId,
        due: Millis,
    ) -> Result<Requeue, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(hook) = owned_webhook(&tx, user, webhook).await? else {
            return Ok(Requeue::NotFound);
        };
        let Some(row) = tx
            .query_opt(
                "SELECT record, id FROM deliveries WHERE id = $1 AND webhook_id = $2 FOR UPDATE",
                &[&uuid(id.0), &uuid(webhook.0)],
            )
            .await?
        else {
            return Ok(Requeue::NotFound);
        };
        let mut d = rows::delivery(&row, 1, 0)?;
        if d.webhook_id != webhook {
            return Ok(Requeue::NotFound);
        }
        if let Some(refusal) = retry_refusal(&d, &hook) {
            return Ok(refusal);
        }
        let position = next_positions(&tx, 1).await?;
        restart(&mut d, due);
        save_deliveries(&tx, std::slice::from_mut(&mut d), Some(&position)).await?;
        notify(&tx, QUEUED_CHANNEL, webhook).await?;
        tx.commit().await?;
        Ok(Requeue::Queued(due))
    }

    /// One chunk of a recover (see redb's `ops::attempts::recover`): up to
    /// [`CLEANUP_CHUNK`] of the webhook's failed deliveries below the seq `before`,
    /// newest first; those created in `window` are queued again from `due`, oldest first.
    pub async fn recover(
        &self,
        user: &str,
        webhook: WebhookId,
        window: (Millis, Millis),
        due: Millis,
        before: u64,
    ) -> Result<Result<Recovered, Requeue>, StoreError> {
        retrying!(self, self.try_recover(user, webhook, window, due, before))
    }

    async fn try_recover(
        &self,
        user: &str,
        webhook: WebhookId,
        window: (Millis, Millis),
        due: Millis,
        before: u64,
    ) -> Result<Result<Recovered, Requeue>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(hook) = owned_webhook(&tx, user, webhook).await? else {
            return Ok(Err(Requeue::NotFound));
        };
        if !hook.enabled {
            return Ok(Err(Requeue::WebhookDisabled));
        }
        // Newest first across the event types, each one range of `deliveries_log`.
        let types: Vec<i16> = EventType::ALL
            .iter()
            .map(|t| i16::from(type_code(*t)))
            .collect();
        let limit = i64::try_from(CLEANUP_CHUNK + 1).unwrap_or(i64::MAX);
        let failed = status_code(DeliveryStatus::Failed);
        let candidates = tx
            .query(
                "SELECT c.seq, c.id FROM unnest($3::int2[]) AS t(code), LATERAL ( \
                   SELECT seq, id FROM deliveries WHERE webhook_id = $1 AND status = $2 \
                     AND type = t.code AND seq < $4 ORDER BY seq DESC LIMIT $5) c \
                 ORDER BY c.seq DESC LIMIT $5",
                &[&uuid(webhook.0), &failed, &types, &sql_seq(before), &limit],
            )
            .await?;
        let ids: Vec<Uuid> = candidates.iter().map(|r| r.get(1)).collect();
        let mut records: HashMap<Uuid, DeliveryRecord> = HashMap::new();
        for row in tx
            .query(
                "SELECT id, record FROM deliveries WHERE id = ANY($1) ORDER BY id FOR UPDATE",
                &[&ids],
            )
            .await?
        {
            records.insert(row.get(0), rows::delivery(&row, 0, 1)?);
        }
        let mut next = None;
        let mut found = Vec::new();
        for (n, row) in candidates.iter().enumerate() {
            let seq = u64::try_from(row.get::<_, i64>(0)).unwrap_or(0);
            if n == CLEANUP_CHUNK {
                next = Some(seq + 1);
                break;
            }
            let Some(d) = records.remove(&row.get::<_, Uuid>(1)) else {
                continue;
            };
            match recover_pick(&d, window) {
                Pick::Stop => break,
                Pick::Skip => continue,
                Pick::Take => found.push(d),
            }
        }
        // Oldest first into the line, so they keep their ingestion order there.
        found.reverse();
        let positions = next_positions(&tx, found.len()).await?;
        for d in &mut found {
            restart(d, due);
        }
        save_deliveries(&tx, &mut found, Some(&positions)).await?;
        if !found.is_empty() {
            notify(&tx, QUEUED_CHANNEL, webhook).await?;
        }
        tx.commit().await?;
        Ok(Ok(Recovered {
            queued: found.len(),
            next,
        }))
    }
}

/// `user`'s webhook `webhook`, read under a share lock (a disable or an outcome waits).
async fn owned_webhook(
    tx: &deadpool_postgres::Transaction<'_>,
    user: &str,
    webhook: WebhookId,
) -> Result<Option<WebhookRecord>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT record FROM webhooks WHERE id = $1 FOR KEY SHARE",
            &[&uuid(webhook.0)],
        )
        .await?;
    match row {
        Some(row) => Ok(Some(decode::<WebhookRecord>(row.get(0))?).filter(|w| w.user == user)),
        None => Ok(None),
    }
}

/// `n` fresh places at the back of lines, from the delivery sequence, in order.
async fn next_positions(
    tx: &deadpool_postgres::Transaction<'_>,
    n: usize,
) -> Result<Vec<i64>, StoreError> {
    if n == 0 {
        return Ok(Vec::new());
    }
    let count = i64::try_from(n).unwrap_or(i64::MAX);
    let rows = tx
        .query(
            "SELECT nextval('delivery_seq') FROM generate_series(1, $1::int8)",
            &[&count],
        )
        .await?;
    let mut positions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    positions.sort_unstable();
    Ok(positions)
}
