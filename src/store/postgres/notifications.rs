//! Operator notifications on PostgreSQL (the rules and the record logic are
//! `store::ops::notifications`'; the rate limit is `notify::throttle`).
//!
//! `notifications.due` is set on each webhook's oldest open notification only (redb's
//! `notification_due`), and `open` on every held or pending one (`notification_pending`).
//! Every change to a webhook's notifications first takes the transaction-level advisory
//! lock of that webhook ([`NOTIFY_LOCK`]), so an enqueue on one node and a finish on
//! another never both miss the webhook's next one.
//!
//! In a cluster each node's notifier reads the head of the due list. [`next_due`]
//! *claims* the head it answers once it is due: `claimed_by` this node until
//! [`NOTIFICATION_CLAIM`] from now (database clock). Other nodes skip a claimed row, so
//! two notifiers never send one notification unless the claimant died mid-attempt (then
//! another sends it once the claim runs out: at least once). Recording the attempt
//! ([`finish`]) ends the claim.

use deadpool_postgres::{ClientWrapper, GenericClient};
use tokio_postgres::Transaction;
use tokio_postgres::types::{ToSql, Type};

use super::NOTIFICATION_CLAIM;
use super::rows::{self, hook_uuid, seq_of, sql_seq};
use crate::delivery::retry::RetryPolicy;
use crate::model::{Millis, NotificationId, NotificationKind, WebhookId};
use crate::notify::throttle::{self, Decision};
use crate::store::StoreError;
use crate::store::codec::encode;
use crate::store::ops::notifications::{
    Attempted, Enqueued, Fate, Release, due_key, new_record, outcome_of, release_of, retell,
};
use crate::store::records::{NotificationRecord, NotificationState, NotifyMarks, WebhookRecord};
use crate::store::tables::NOTIFICATIONS_KEPT;

/// Advisory lock class: one webhook's notifications.
const NOTIFY_LOCK: i32 = 0x6e74_0001;

type Param<'a> = (&'a (dyn ToSql + Sync), Type);

fn key(n: &NotificationRecord) -> i64 {
    i64::try_from(due_key(n)).unwrap_or(i64::MAX)
}

async fn lock(tx: &Transaction<'_>, webhook: WebhookId) -> Result<(), StoreError> {
    let (class, key) = rows::lock_key(NOTIFY_LOCK, webhook.0);
    tx.execute_typed(
        "SELECT pg_advisory_xact_lock($1, $2)",
        &[(&class, Type::INT4), (&key, Type::INT4)],
    )
    .await?;
    Ok(())
}

async fn one(
    tx: &Transaction<'_>,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Option<NotificationRecord>, StoreError> {
    match tx.query_typed_opt(sql, params).await? {
        Some(row) => Ok(Some(rows::record(&row, 0)?)),
        None => Ok(None),
    }
}

async fn load(tx: &Transaction<'_>, seq: u64) -> Result<Option<NotificationRecord>, StoreError> {
    let seq = sql_seq(seq);
    one(
        tx,
        "SELECT record FROM notifications WHERE seq = $1",
        &[(&seq, Type::INT8)],
    )
    .await
}

/// Rewrites a notification's record (and whether it is open).
async fn save(tx: &Transaction<'_>, n: &NotificationRecord) -> Result<(), StoreError> {
    let (seq, open, bytes) = (sql_seq(n.seq), n.state.is_open(), encode(n));
    tx.execute_typed(
        "UPDATE notifications SET record = $2, open = $3 WHERE seq = $1",
        &[
            (&seq, Type::INT8),
            (&bytes, Type::BYTEA),
            (&open, Type::BOOL),
        ],
    )
    .await?;
    Ok(())
}

/// The oldest (`first`) or newest open notification of `webhook`.
async fn open_end(
    tx: &Transaction<'_>,
    webhook: WebhookId,
    first: bool,
) -> Result<Option<NotificationRecord>, StoreError> {
    let sql = if first {
        "SELECT record FROM notifications WHERE webhook_id = $1 AND open ORDER BY seq LIMIT 1"
    } else {
        "SELECT record FROM notifications WHERE webhook_id = $1 AND open ORDER BY seq DESC LIMIT 1"
    };
    one(tx, sql, &[(&hook_uuid(webhook), Type::UUID)]).await
}

/// Gives the oldest open notification of `webhook` its due time (a no-op when it has it).
async fn promote(tx: &Transaction<'_>, webhook: WebhookId) -> Result<(), StoreError> {
    if let Some(next) = open_end(tx, webhook, true).await? {
        let (seq, due) = (sql_seq(next.seq), key(&next));
        tx.execute_typed(
            "UPDATE notifications SET due = $2 WHERE seq = $1 AND due IS DISTINCT FROM $2",
            &[(&seq, Type::INT8), (&due, Type::INT8)],
        )
        .await?;
    }
    Ok(())
}

/// Takes `n` out of its webhook's open notifications (and its due time and claim), then
/// gives the webhook's next one its due time.
async fn close(tx: &Transaction<'_>, n: &NotificationRecord) -> Result<(), StoreError> {
    let seq = sql_seq(n.seq);
    tx.execute_typed(
        "UPDATE notifications SET open = false, due = NULL, claimed_by = NULL,
             claimed_until = NULL WHERE seq = $1",
        &[(&seq, Type::INT8)],
    )
    .await?;
    promote(tx, n.webhook.id).await
}

/// Deletes a held notification that will never be sent.
async fn discard(tx: &Transaction<'_>, n: &NotificationRecord) -> Result<(), StoreError> {
    let seq = sql_seq(n.seq);
    tx.execute_typed(
        "DELETE FROM notifications WHERE seq = $1",
        &[(&seq, Type::INT8)],
    )
    .await?;
    promote(tx, n.webhook.id).await
}

async fn load_marks(tx: &Transaction<'_>, webhook: WebhookId) -> Result<NotifyMarks, StoreError> {
    match tx
        .query_typed_opt(
            "SELECT record FROM notification_marks WHERE webhook_id = $1",
            &[(&hook_uuid(webhook), Type::UUID)],
        )
        .await?
    {
        Some(row) => rows::record(&row, 0),
        None => Ok(NotifyMarks::default()),
    }
}

async fn save_marks(
    tx: &Transaction<'_>,
    webhook: WebhookId,
    marks: &NotifyMarks,
) -> Result<(), StoreError> {
    let bytes = encode(marks);
    tx.execute_typed(
        "INSERT INTO notification_marks (webhook_id, record) VALUES ($1, $2)
         ON CONFLICT (webhook_id) DO UPDATE SET record = excluded.record",
        &[(&hook_uuid(webhook), Type::UUID), (&bytes, Type::BYTEA)],
    )
    .await?;
    Ok(())
}

/// Records that `webhook` (as it is now) changed as `kind` says, for `reason`: queues,
/// holds or drops a notification by the rate limit (`notify::throttle`). Call it in the
/// transaction that writes the change.
pub(super) async fn enqueue(
    tx: &tokio_postgres::Transaction<'_>,
    webhook: &WebhookRecord,
    kind: NotificationKind,
    reason: String,
    now: Millis,
) -> Result<Enqueued, StoreError> {
    lock(tx, webhook.id).await?;
    let mut marks = load_marks(tx, webhook.id).await?;
    let held = open_end(tx, webhook.id, false)
        .await?
        .filter(|n| n.state == NotificationState::Held);
    let dropped = held.as_ref().map(|h| h.kind);
    let fate = match throttle::decide(&marks, kind, now) {
        Decision::Send => {
            if let Some(h) = &held {
                discard(tx, h).await?;
            }
            throttle::told(&mut marks, kind, now);
            save_marks(tx, webhook.id, &marks).await?;
            open(
                tx,
                webhook,
                kind,
                reason,
                now,
                now,
                NotificationState::Pending,
            )
            .await?;
            Fate::Queued
        }
        Decision::Drop => {
            if let Some(h) = &held {
                discard(tx, h).await?;
            }
            Fate::Dropped
        }
        Decision::Hold { until } => {
            match held {
                // The held one now tells the newer state, still in its place.
                Some(mut h) => {
                    retell(&mut h, webhook, kind, reason, now, until);
                    save(tx, &h).await?;
                    // Its due time moves with it if it is the webhook's oldest.
                    promote(tx, webhook.id).await?;
                }
                None => {
                    open(
                        tx,
                        webhook,
                        kind,
                        reason,
                        now,
                        until,
                        NotificationState::Held,
                    )
                    .await?;
                }
            }
            Fate::Held
        }
    };
    Ok(Enqueued {
        kind,
        fate,
        dropped,
    })
}

/// Stores a new open notification behind the webhook's others.
async fn open(
    tx: &Transaction<'_>,
    webhook: &WebhookRecord,
    kind: NotificationKind,
    reason: String,
    now: Millis,
    not_before: Millis,
    state: NotificationState,
) -> Result<(), StoreError> {
    let seq: i64 = tx
        .query_typed_one("SELECT nextval('notification_seq')", &[])
        .await?
        .try_get(0)?;
    let n = new_record(
        (NotificationId::generate(), seq_of(seq)),
        webhook,
        kind,
        reason,
        now,
        not_before,
        state,
    );
    let bytes = encode(&n);
    tx.execute_typed(
        "INSERT INTO notifications (seq, webhook_id, open, record) VALUES ($1, $2, true, $3)",
        &[
            (&seq, Type::INT8),
            (&hook_uuid(webhook.id), Type::UUID),
            (&bytes, Type::BYTEA),
        ],
    )
    .await?;
    promote(tx, webhook.id).await?;
    prune(tx).await
}

/// Deletes the oldest finished notifications beyond [`NOTIFICATIONS_KEPT`] (a couple
/// per call, as on redb).
async fn prune(tx: &Transaction<'_>) -> Result<(), StoreError> {
    let total: i64 = tx
        .query_typed_one("SELECT count(*) FROM notifications", &[])
        .await?
        .try_get(0)?;
    let excess = u64::try_from(total)
        .unwrap_or(0)
        .saturating_sub(NOTIFICATIONS_KEPT);
    if excess == 0 {
        return Ok(());
    }
    let limit = i64::try_from(excess.min(2)).unwrap_or(2);
    tx.execute_typed(
        "DELETE FROM notifications WHERE seq IN (SELECT seq FROM
             (SELECT seq, open FROM notifications ORDER BY seq LIMIT 8) AS first
             WHERE NOT open ORDER BY seq LIMIT $1)",
        &[(&limit, Type::INT8)],
    )
    .await?;
    Ok(())
}

/// The head of the due list that no other node has claimed: when it may be attempted,
/// and which it is. A head that is due now is claimed for this node (module docs).
pub(super) async fn next_due(
    c: &impl GenericClient,
    node: &str,
) -> Result<Option<(Millis, u64)>, StoreError> {
    let st = c
        .prepare_cached(
            "WITH head AS (
                 SELECT seq, due FROM notifications
                 WHERE due IS NOT NULL
                   AND (claimed_until IS NULL OR claimed_until < now() OR claimed_by = $1)
                 ORDER BY due, seq LIMIT 1 FOR UPDATE SKIP LOCKED)
             UPDATE notifications n SET
                 claimed_by = CASE WHEN head.due <= $2 THEN $1 ELSE n.claimed_by END,
                 claimed_until = CASE WHEN head.due <= $2
                     THEN now() + make_interval(secs => $3) ELSE n.claimed_until END
             FROM head WHERE n.seq = head.seq RETURNING head.due, head.seq",
        )
        .await?;
    let claim = NOTIFICATION_CLAIM.as_secs_f64();
    match c.query_opt(&st, &[&node, &Millis::now().0, &claim]).await? {
        Some(row) => Ok(Some((Millis(row.try_get(0)?), seq_of(row.try_get(1)?)))),
        None => Ok(None),
    }
}

pub(super) async fn get(
    c: &impl GenericClient,
    seq: u64,
) -> Result<Option<NotificationRecord>, StoreError> {
    let st = c
        .prepare_cached("SELECT record FROM notifications WHERE seq = $1")
        .await?;
    match c.query_opt(&st, &[&sql_seq(seq)]).await? {
        Some(row) => Ok(Some(rows::record(&row, 0)?)),
        None => Ok(None),
    }
}

/// Opens a transaction holding the lock of notification `seq`'s webhook, with the
/// notification as it is under the lock (`None`: there is no such notification).
async fn locked<'c>(
    c: &'c mut ClientWrapper,
    seq: u64,
) -> Result<
    (
        deadpool_postgres::Transaction<'c>,
        Option<NotificationRecord>,
    ),
    StoreError,
> {
    let tx = c.transaction().await?;
    let Some(n) = load(&tx, seq).await? else {
        return Ok((tx, None));
    };
    lock(&tx, n.webhook.id).await?;
    let n = load(&tx, seq).await?;
    Ok((tx, n))
}

/// Turns a held notification whose window has ended into a pending one (the rate limit
/// notes it as told), as `ops::notifications::release`.
pub(super) async fn release(
    c: &mut ClientWrapper,
    seq: u64,
    now: Millis,
) -> Result<Option<NotificationRecord>, StoreError> {
    let (tx, n) = locked(c, seq).await?;
    let Some(mut n) = n else {
        return Ok(None);
    };
    match release_of(&n, now) {
        Release::Send => return Ok(Some(n)),
        Release::Now => {}
        Release::Not => return Ok(None),
    }
    // The marks go with their webhook: a deleted one's held notification is still sent,
    // but leaves no marks behind.
    let exists = tx
        .query_typed_opt(
            "SELECT 1 FROM webhooks WHERE id = $1",
            &[(&hook_uuid(n.webhook.id), Type::UUID)],
        )
        .await?
        .is_some();
    if exists {
        let mut marks = load_marks(&tx, n.webhook.id).await?;
        throttle::told(&mut marks, n.kind, now);
        save_marks(&tx, n.webhook.id, &marks).await?;
    }
    n.state = NotificationState::Pending;
    save(&tx, &n).await?;
    tx.commit().await?;
    Ok(Some(n))
}

/// Drops the due time `at` of notification `seq` (which names nothing to send), and
/// gives its webhook's oldest open notification its due time.
pub(super) async fn unlink_due(
    c: &mut ClientWrapper,
    at: Millis,
    seq: u64,
) -> Result<(), StoreError> {
    let (tx, n) = locked(c, seq).await?;
    let sql_seq = sql_seq(seq);
    tx.execute_typed(
        "UPDATE notifications SET due = NULL, claimed_by = NULL, claimed_until = NULL
         WHERE seq = $1 AND due = $2",
        &[(&sql_seq, Type::INT8), (&at.0, Type::INT8)],
    )
    .await?;
    if let Some(n) = n {
        promote(&tx, n.webhook.id).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Records an attempt's outcome (as `ops::notifications::finish`) and ends the claim.
pub(super) async fn finish(
    c: &mut ClientWrapper,
    seq: u64,
    outcome: Attempted,
    policy: &RetryPolicy,
    now: Millis,
) -> Result<Option<NotificationState>, StoreError> {
    let (tx, n) = locked(c, seq).await?;
    let Some(mut n) = n.filter(|n| n.state == NotificationState::Pending) else {
        return Ok(None);
    };
    match outcome_of(&mut n, outcome, policy, now) {
        Some(_) => {
            save(&tx, &n).await?;
            close(&tx, &n).await?;
            prune(&tx).await?;
        }
        None => {
            save(&tx, &n).await?;
            let (seq, due) = (sql_seq(n.seq), key(&n));
            tx.execute_typed(
                "UPDATE notifications SET due = $2, claimed_by = NULL, claimed_until = NULL
                 WHERE seq = $1",
                &[(&seq, Type::INT8), (&due, Type::INT8)],
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(Some(n.state))
}

/// The newest `limit` notifications, newest first.
pub(super) async fn recent(
    c: &impl GenericClient,
    limit: usize,
) -> Result<Vec<NotificationRecord>, StoreError> {
    let st = c
        .prepare_cached("SELECT record FROM notifications ORDER BY seq DESC LIMIT $1")
        .await?;
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    c.query(&st, &[&limit])
        .await?
        .iter()
        .map(|row| rows::record(row, 0))
        .collect()
}

/// How many notifications are still to be sent (held ones included).
pub(super) async fn open_count(c: &impl GenericClient) -> Result<u64, StoreError> {
    let st = c
        .prepare_cached("SELECT count(*) FROM notifications WHERE open")
        .await?;
    let n: i64 = c.query_one(&st, &[]).await?.try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}
