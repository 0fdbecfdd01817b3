//! The delivery engine's side of the PostgreSQL store: queue heads (`queue`), attempt
//! outcomes (`outcome`), rescheduling, retry and recover (`requeue`), on the webhooks
//! whose leases this node holds (`lease`). The rules are the redb backend's, from the
//! pure functions of `store::ops` (`attempts::decide`, `attempts::restart`, …); what is
//! here is how rows are read, locked and written.
//!
//! Locks are taken in one order everywhere here, so these transactions cannot deadlock
//! among themselves: a webhook's row before its deliveries' rows, several webhooks or
//! several deliveries in id order. A deadlock or serialization failure against some
//! other transaction is retried ([`retryable`]).

/// Runs the transaction `$op` again (a few times) when it fails on a deadlock or a
/// serialization failure ([`retryable`]), and notes its final outcome in the store's
/// health ([`PgStore::seen`](super::PgStore::seen)), as every operation of the seam does.
macro_rules! retrying {
    ($store:expr, $op:expr) => {{
        let mut tries = 0;
        let result = loop {
            match $op.await {
                Err(e) if retryable(&e) && tries + 1 < TRIES => tries += 1,
                other => break other,
            }
        };
        $store.seen(result)
    }};
}

pub(super) mod outcome;
mod queue;
mod requeue;

use uuid::Uuid;

pub(super) use super::rows::{sql_seq, status_code, uuid};
use crate::model::Millis;
use crate::store::StoreError;
use crate::store::codec::encode;
use crate::store::records::{Attempt, DeliveryRecord};

/// Whether the error is a deadlock or a serialization failure: the transaction may
/// simply be run again.
pub(super) fn retryable(e: &StoreError) -> bool {
    matches!(e, StoreError::Postgres(e)
        if e.code().is_some_and(|c| matches!(c.code(), "40P01" | "40001")))
}

/// Transactions that hit [`retryable`] errors are run this many times at most.
pub(super) const TRIES: usize = 4;

/// Sent first in a transaction whose statements find deliveries by a batch of ids
/// (`id = ANY($1)`) and that runs often: an outcome batch, a rate limit's reschedule.
/// Each statement is planned for the ids it is given, not once for all. A cached
/// generic plan is made after a statement's fifth run on a connection, from the table's
/// size then; on a young table (autovacuum has not analysed it yet) that plan is a
/// sequential scan, and it stays while the table grows: the outcome batches of a
/// minute-old database each scanned every delivery three times, the recorder fell
/// behind, and the claims every look skips piled up (BENCHMARKS.md, "Fewer round
/// trips"). Planning a batch's few statements costs far less.
pub(super) const CUSTOM_PLANS: &str = "SET LOCAL plan_cache_mode = force_custom_plan";

/// A due time as the `due` column holds it.
pub(super) fn due_col(due: Option<Millis>) -> Option<i64> {
    due.map(|d| d.0)
}

/// `d.id = ANY($1)` repeats the join's condition as an index condition: without it the
/// plan cached on a young table (before autovacuum's first ANALYZE) was a hash join over
/// a sequential scan of every delivery, for each batch of outcomes.
const SAVE_DELIVERIES: &str = "UPDATE deliveries d SET status = u.status, due = u.due, \
       position = CASE WHEN u.due IS NULL THEN NULL ELSE COALESCE(u.position, d.position, d.seq) END, \
       record = u.record \
     FROM unnest($1::uuid[], $2::int2[], $3::int8[], $4::int8[], $5::bytea[]) \
       AS u(id, status, due, position, record) \
     WHERE d.id = ANY($1) AND d.id = u.id";

/// Writes delivery records with their `status` and `due` columns; `position`s (one per
/// record) for those queued again at the back of their line, else a pending delivery
/// keeps its place and one that is not pending leaves the line. A record read at
/// version 1 carried its attempts inline: they move into `attempts` here, as on redb.
pub(super) async fn save_deliveries(
    tx: &deadpool_postgres::Transaction<'_>,
    ds: &mut [DeliveryRecord],
    positions: Option<&[i64]>,
) -> Result<(), StoreError> {
    if ds.is_empty() {
        return Ok(());
    }
    for d in ds.iter_mut() {
        for (number, attempt) in std::mem::take(&mut d.inline_attempts) {
            insert_attempt(tx, d.seq, number, &attempt, true).await?;
        }
    }
    let ids: Vec<Uuid> = ds.iter().map(|d| uuid(d.id.0)).collect();
    let statuses: Vec<i16> = ds.iter().map(|d| status_code(d.status)).collect();
    let dues: Vec<Option<i64>> = ds.iter().map(|d| due_col(d.next_attempt_at)).collect();
    let positions: Vec<Option<i64>> = match positions {
        Some(p) => p.iter().copied().map(Some).collect(),
        None => vec![None; ds.len()],
    };
    let records: Vec<Vec<u8>> = ds.iter().map(DeliveryRecord::encode).collect();
    let st = tx.prepare_cached(SAVE_DELIVERIES).await?;
    tx.execute(&st, &[&ids, &statuses, &dues, &positions, &records])
        .await?;
    Ok(())
}

/// Stores attempt `number` of the delivery with seq `seq`; `moved`: an attempt moving
/// out of a version 1 record, which may be in the table already.
pub(super) async fn insert_attempt(
    tx: &deadpool_postgres::Transaction<'_>,
    seq: u64,
    number: u32,
    attempt: &Attempt,
    moved: bool,
) -> Result<(), StoreError> {
    let sql = if moved {
        "INSERT INTO attempts (delivery_seq, number, record) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING"
    } else {
        "INSERT INTO attempts (delivery_seq, number, record) VALUES ($1, $2, $3)"
    };
    let st = tx.prepare_cached(sql).await?;
    let number = i32::try_from(number).unwrap_or(i32::MAX);
    tx.execute(&st, &[&sql_seq(seq), &number, &encode(attempt)])
        .await?;
    Ok(())
}

/// Test support: a fresh database per test on the server `HOOKD_TEST_POSTGRES_URL`
/// names, and a store on it built without the data side's `PgStore::connect`.
#[cfg(test)]
pub(super) mod testing {
    use std::time::Duration;

    use tokio_postgres::NoTls;

    use super::super::{PgSettings, PgStore};

    /// The test server's URL; `None` (with a notice) when unset, a failure under CI.
    pub fn server() -> Option<String> {
        match std::env::var("HOOKD_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "HOOKD_TEST_POSTGRES_URL must name a PostgreSQL server under CI=true"
                );
                eprintln!("skipped: set HOOKD_TEST_POSTGRES_URL to run the PostgreSQL tests");
                None
            }
        }
    }

    /// A fresh, empty database on the test server: its URL.
    pub async fn fresh_db(server: &str) -> String {
        let (client, conn) = tokio_postgres::connect(server, NoTls).await.unwrap();
        tokio::spawn(conn);
        let name = format!("hookd_engine_{}", uuid::Uuid::new_v4().simple());
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let (base, query) = server.split_once('?').unwrap_or((server, ""));
        let (host, _) = base.rsplit_once('/').unwrap();
        if query.is_empty() {
            format!("{host}/{name}")
        } else {
            format!("{host}/{name}?{query}")
        }
    }

    /// A store on `url` as node `node` (its schema made by `connect`).
    pub async fn store_on(url: &str, node: &str, lease: Duration) -> PgStore {
        let settings = PgSettings {
            url: url.to_owned(),
            pool_size: 4,
            node_id: node.to_owned(),
            lease,
        };
        PgStore::connect(settings).await.unwrap()
    }
}

/// The engine's operations on PostgreSQL answer and write what they do on redb.
#[cfg(test)]
mod tests;
