//! What the scheduler reads on PostgreSQL (the webhooks it drives, a queue's head, what
//! an attempt needs), and what a worker does with a delivery that can no longer be sent.
//! Same answers as redb's `ops::queue` and `ops::attempts`, for the webhooks whose
//! leases this node holds.

use std::collections::HashSet;

use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::super::PgStore;
use super::{TRIES, retryable, save_deliveries, sql_seq, uuid};
use crate::model::{DeliveryId, DeliveryStatus, Millis, Ordering, WebhookId};
use crate::store::StoreError;
use crate::store::codec::decode;
use crate::store::ops::attempts::AttemptInputs;
use crate::store::ops::queue::{Claimed, LookFor, Peek, due_among, head_due};
use crate::store::records::{DeliveryRecord, EventRecord, EventRef, WebhookRecord};

/// The webhook and whether this node's lease on it is live in the database.
const PEEK_WEBHOOK: &str = "SELECT w.record, EXISTS (SELECT 1 FROM leases l \
       WHERE l.name = $2 AND l.node = $3 AND l.expires_at > now()) \
     FROM webhooks w WHERE w.id = $1";
/// The first $2 queue entries, oldest due first (the `deliveries_queue` index). The
/// claimed ones are left out here, not in the statement: `id <> ALL($n)` compares every
/// entry read with every claim, and while outcomes wait for their commit the claims are
/// hundreds, at the head of the queue (pg_stat_statements: 6.5 ms a look at ~1,000).
const PEEK_DUE: &str = "SELECT id, due FROM deliveries \
     WHERE webhook_id = $1 AND due IS NOT NULL ORDER BY due, id LIMIT $2";
/// [`PEEK_DUE`] for sending: the records of the entries due at $3 that are not claimed
/// ($4) come along, with their events, so that an attempt needs no read of its own (a
/// statement per delivery was the one that batched nothing). The limit lets at most
/// `max` + 1 of them through, one more than is sent. Comparing every entry with every
/// claim is the cost [`PEEK_DUE`] avoids, so this one is used only while the claims are
/// few ([`LOAD_WITH_CLAIMS_AT_MOST`]).
const PEEK_DUE_LOADED: &str = "SELECT q.id, q.due, q.record, e.record FROM (\
       SELECT id, due, event_seq, \
         CASE WHEN due <= $3 AND id <> ALL($4) THEN record END AS record \
       FROM deliveries WHERE webhook_id = $1 AND due IS NOT NULL ORDER BY due, id LIMIT $2\
     ) q LEFT JOIN events e ON q.record IS NOT NULL AND e.seq = q.event_seq \
     ORDER BY q.due, q.id";
/// A look reads its deliveries' records only while the webhook has at most this many
/// claims. The cost grows with rows read × claims: ~1,000 × ~1,000 took 6.5 ms a look
/// (`PEEK_DUE`'s note), so ~140 × 128 should take about a tenth of a millisecond (an
/// estimate, not measured). A full-load run of the benchmark reads ~42 rows a look, most
/// of them claimed: the runs measured did not reach the bound.
pub(super) const LOAD_WITH_CLAIMS_AT_MOST: usize = 128;
/// The head of the webhook's line (the `deliveries_line` index).
const PEEK_HEAD: &str = "SELECT id, due FROM deliveries \
     WHERE webhook_id = $1 AND due IS NOT NULL ORDER BY position LIMIT 1";

impl PgStore {
    /// The webhooks this node drives: those it holds the lease of that are enabled.
    pub async fn enabled_webhooks(&self) -> Result<Vec<WebhookId>, StoreError> {
        let r = async {
            let held: Vec<Uuid> = self
                .inner
                .cluster
                .held()
                .into_iter()
                .map(|w| uuid(w.0))
                .collect();
            if held.is_empty() {
                return Ok(Vec::new());
            }
            let client = self.client().await?;
            let rows = client
                .query(
                    "SELECT id FROM webhooks WHERE id = ANY($1) AND enabled ORDER BY id",
                    &[&held],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| WebhookId(r.get::<_, Uuid>(0).as_u128()))
                .collect())
        };
        self.seen(r.await)
    }

    /// The head of `webhook`'s queue, as redb's `ops::queue::peek` answers it (FIFO by
    /// `position`). When this node does not hold the webhook's lease, `webhook` is `None`
    /// and nothing is due: the scheduler lets the webhook go until the lease comes.
    pub async fn peek(
        &self,
        webhook: WebhookId,
        now: Millis,
        skip: &Claimed,
        max: usize,
        purpose: LookFor,
    ) -> Result<Peek, StoreError> {
        let r = async {
            let nothing = Peek::nothing(None);
            let cluster = &self.inner.cluster;
            if !cluster.holds(webhook) {
                return Ok(nothing);
            }
            let client = self.client().await?;
            let name = super::super::lease::lease_name(webhook);
            let id = uuid(webhook.0);
            // Enough entries for `max` + 1 unclaimed ones even if every claim comes first.
            let limit = i64::try_from(max.saturating_add(skip.len()))
                .unwrap_or(i64::MAX)
                .saturating_add(1);
            let loading =
                purpose == LookFor::Sending && max > 0 && skip.len() <= LOAD_WITH_CLAIMS_AT_MOST;
            let claimed: Vec<Uuid> = if loading {
                skip.ids().map(|d| uuid(d.0)).collect()
            } else {
                Vec::new()
            };
            let (queue_sql, queue_params): (&str, Vec<&(dyn ToSql + Sync)>) = if loading {
                (PEEK_DUE_LOADED, vec![&id, &limit, &now.0, &claimed])
            } else {
                (PEEK_DUE, vec![&id, &limit])
            };
            let (hook_st, queue_st) = tokio::try_join!(
                client.prepare_cached(PEEK_WEBHOOK),
                client.prepare_cached(queue_sql)
            )?;
            let hook_params: [&(dyn ToSql + Sync); 3] = [&id, &name, &cluster.node()];
            // One round trip: the queue is read beside the webhook (pipelined), unless
            // the webhook was FIFO at its last look, whose line is read differently.
            let (hook_row, queue_rows) = if self.was_fifo(webhook) {
                (client.query_opt(&hook_st, &hook_params).await?, None)
            } else {
                let (hook, queue) = tokio::try_join!(
                    client.query_opt(&hook_st, &hook_params),
                    client.query(&queue_st, &queue_params)
                )?;
                (hook, Some(queue))
            };
            let Some(row) = hook_row else {
                self.note_fifo(webhook, false);
                return Ok(nothing);
            };
            if !row.get::<_, bool>(1) {
                return Ok(nothing);
            }
            let record: WebhookRecord = decode(row.get(0))?;
            self.note_fifo(webhook, record.ordering == Ordering::Fifo);
            if record.ordering == Ordering::Fifo {
                let (due, next) = if !skip.is_empty() {
                    // The claimed one's recorded outcome asks for the next look.
                    (Vec::new(), None)
                } else {
                    let st = client.prepare_cached(PEEK_HEAD).await?;
                    let head = client.query_opt(&st, &[&id]).await?;
                    head_due(head.as_ref().map(entry), now, max)
                };
                return Ok(Peek {
                    webhook: Some(record),
                    due,
                    seqs: Vec::new(),
                    next,
                    loaded: Vec::new(),
                });
            }
            let rows = match queue_rows {
                Some(rows) => rows,
                None => client.query(&queue_st, &queue_params).await?,
            };
            let entries = rows.iter().map(|row| Ok::<_, StoreError>(entry(row)));
            let (due, next) = due_among(entries, now, |id| skip.contains(id), max)?;
            let loaded = if loading {
                let sent: HashSet<DeliveryId> = due.iter().copied().collect();
                rows.iter()
                    .filter_map(|row| loaded_with_look(row, &record, &sent))
                    .collect()
            } else {
                Vec::new()
            };
            Ok(Peek {
                webhook: Some(record),
                due,
                seqs: Vec::new(),
                next,
                loaded,
            })
        };
        self.seen(r.await)
    }

    /// Whether `webhook` was FIFO at its last look.
    fn was_fifo(&self, webhook: WebhookId) -> bool {
        (self.inner.fifo.lock()).is_ok_and(|fifo| fifo.contains(&webhook))
    }

    /// Notes whether `webhook` is FIFO (a gone webhook is not).
    fn note_fifo(&self, webhook: WebhookId, fifo: bool) {
        if let Ok(mut set) = self.inner.fifo.lock() {
            if fifo {
                set.insert(webhook);
            } else {
                set.remove(&webhook);
            }
        }
    }

    /// The number of queued deliveries due at `now`, all webhooks (`hookd_queue_due`).
    pub async fn due_count(&self, now: Millis) -> Result<u64, StoreError> {
        let r = async {
            let client = self.client().await?;
            let row = client
                .query_one(
                    "SELECT count(*) FROM deliveries WHERE due IS NOT NULL AND due <= $1",
                    &[&now.0],
                )
                .await?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or(0))
        };
        self.seen(r.await)
    }

    /// What an attempt of `id` needs; `None` when it is no longer to be sent (not
    /// pending, its webhook gone or disabled, its event gone).
    pub async fn load_for_attempt(
        &self,
        id: DeliveryId,
    ) -> Result<Option<AttemptInputs>, StoreError> {
        let r = async {
            let client = self.client().await?;
            let st = client
                .prepare_cached(
                    "SELECT d.record, w.record, e.record FROM deliveries d \
                     JOIN webhooks w ON w.id = d.webhook_id \
                     LEFT JOIN events e ON e.seq = d.event_seq WHERE d.id = $1",
                )
                .await?;
            let Some(row) = client.query_opt(&st, &[&uuid(id.0)]).await? else {
                return Ok(None);
            };
            let delivery = DeliveryRecord::decode(id, row.get(0))?;
            if delivery.status != DeliveryStatus::Pending {
                return Ok(None);
            }
            let webhook: WebhookRecord = decode(row.get(1))?;
            if !webhook.enabled {
                return Ok(None);
            }
            // The join is by the `event_seq` column; the record's own reference decides.
            let joined = match row.get::<_, Option<&[u8]>>(2) {
                Some(bytes) => Some(decode::<EventRecord>(bytes)?),
                None => None,
            };
            let event = match joined {
                Some(e) if delivery.event.names(&e) => Some(e),
                _ => event_by_ref(&client, &delivery.event).await?,
            };
            Ok(event.map(|event| AttemptInputs {
                delivery,
                webhook,
                event,
            }))
        };
        self.seen(r.await)
    }

    /// Cancels a pending delivery that can no longer be sent (its event pruned, its
    /// webhook gone or disabled without the cancellation having reached it); answers
    /// whether it did.
    pub async fn cancel_if_unsendable(&self, id: DeliveryId) -> Result<bool, StoreError> {
        retrying!(self, self.try_cancel_if_unsendable(id))
    }

    async fn try_cancel_if_unsendable(&self, id: DeliveryId) -> Result<bool, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT record FROM deliveries WHERE id = $1 FOR UPDATE",
                &[&uuid(id.0)],
            )
            .await?
        else {
            return Ok(false);
        };
        let mut d = DeliveryRecord::decode(id, row.get(0))?;
        if d.status != DeliveryStatus::Pending {
            return Ok(false);
        }
        let webhook_ok = tx
            .query_opt(
                "SELECT 1 FROM webhooks WHERE id = $1 AND enabled",
                &[&uuid(d.webhook_id.0)],
            )
            .await?
            .is_some();
        let event_ok = event_by_ref(&tx, &d.event).await?.is_some();
        if webhook_ok && event_ok {
            return Ok(false);
        }
        d.status = DeliveryStatus::Cancelled;
        d.next_attempt_at = None;
        save_deliveries(&tx, std::slice::from_mut(&mut d), None).await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// A queue row's delivery id and due time.
fn entry(row: &tokio_postgres::Row) -> (DeliveryId, Millis) {
    (
        DeliveryId(row.get::<_, Uuid>(0).as_u128()),
        Millis(row.get::<_, i64>(1)),
    )
}

/// What the attempt of a [`PEEK_DUE_LOADED`] row needs, when the row is one of `sent`
/// and is as [`PgStore::load_for_attempt`] would find it: pending, its webhook enabled,
/// the joined event the one it carries. Anything else (a record that does not decode
/// included) is left for the worker's own read, which decides and reports it.
fn loaded_with_look(
    row: &tokio_postgres::Row,
    webhook: &WebhookRecord,
    sent: &HashSet<DeliveryId>,
) -> Option<AttemptInputs> {
    let (id, _) = entry(row);
    if !sent.contains(&id) || !webhook.enabled {
        return None;
    }
    let delivery = DeliveryRecord::decode(id, row.get::<_, Option<&[u8]>>(2)?).ok()?;
    let event = decode::<EventRecord>(row.get::<_, Option<&[u8]>>(3)?).ok()?;
    let carried = delivery.event.names(&event);
    (delivery.status == DeliveryStatus::Pending && carried).then(|| AttemptInputs {
        delivery,
        webhook: webhook.clone(),
        event,
    })
}

/// The event a delivery carries, if it is still stored.
async fn event_by_ref(
    client: &impl deadpool_postgres::GenericClient,
    event: &EventRef,
) -> Result<Option<EventRecord>, StoreError> {
    let row = match event {
        EventRef::Seq(seq) => {
            client
                .query_opt(
                    "SELECT record FROM events WHERE seq = $1",
                    &[&sql_seq(*seq)],
                )
                .await?
        }
        EventRef::Id(id) => {
            client
                .query_opt("SELECT record FROM events WHERE id = $1", &[&id.as_str()])
                .await?
        }
    };
    match row {
        Some(row) => Ok(Some(decode(row.get(0))?)),
        None => Ok(None),
    }
}
