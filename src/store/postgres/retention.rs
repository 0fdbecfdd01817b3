//! Retention on PostgreSQL, as `store::ops::retention`: the oldest events and deliveries
//! older than the cutoff go in bounded batches; pending deliveries are never pruned, nor
//! an event while any of its deliveries is stored (its `first_delivery..+deliveries`
//! seqs, a primary key range). A delivery's attempts go with it (`ON DELETE CASCADE`).
//!
//! One node prunes at a time: a batch runs only if it gets the transaction-level
//! advisory lock [`RETENTION_LOCK`] at once; otherwise another node is pruning, and this
//! one answers that it pruned nothing.

use deadpool_postgres::ClientWrapper;

use crate::model::Millis;
use crate::store::StoreError;
use crate::store::ops::retention::Pruned;

/// Advisory lock: the one node pruning.
const RETENTION_LOCK: i64 = 0x686f_6f6b_6400_0002;
/// How many rows one batch looks at most (old pending deliveries, and events kept for
/// them, are read and skipped), as on redb.
const MAX_SCAN: usize = 10_000;
/// Rows read per statement while looking.
const PAGE: i64 = 1_000;

/// Removes up to `batch` events and `batch` deliveries created before `cutoff`.
pub(super) async fn prune(
    c: &mut ClientWrapper,
    cutoff: Millis,
    batch: usize,
) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    let tx = c.transaction().await?;
    let lock = tx
        .prepare_cached("SELECT pg_try_advisory_xact_lock($1)")
        .await?;
    if !tx
        .query_one(&lock, &[&RETENTION_LOCK])
        .await?
        .try_get::<_, bool>(0)?
    {
        return Ok(pruned);
    }

    // Deliveries, oldest first: stop at the first one too young, skip pending ones.
    let page = tx
        .prepare_cached(
            "SELECT seq, created_at, due IS NOT NULL FROM deliveries
             WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .await?;
    let mut doomed: Vec<i64> = Vec::new();
    let (mut after, mut looked_at) = (0i64, 0usize);
    'deliveries: loop {
        let rows = tx.query(&page, &[&after, &PAGE]).await?;
        for row in &rows {
            let (seq, created, pending): (i64, i64, bool) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            looked_at += 1;
            if doomed.len() == batch || looked_at > MAX_SCAN {
                pruned.more = doomed.len() == batch;
                break 'deliveries;
            }
            if created >= cutoff.0 {
                break 'deliveries;
            }
            if !pending {
                doomed.push(seq);
            }
            after = seq;
        }
        if rows.len() < PAGE as usize {
            break;
        }
    }
    if !doomed.is_empty() {
        let delete = tx
            .prepare_cached("DELETE FROM deliveries WHERE seq = ANY($1) AND due IS NULL")
            .await?;
        pruned.deliveries = tx.execute(&delete, &[&doomed]).await? as usize;
    }

    // Events, oldest first: stop at the first one too young, keep those whose
    // deliveries are still stored.
    let page = tx
        .prepare_cached(
            "SELECT e.seq, e.received_at, EXISTS (SELECT 1 FROM deliveries d
                 WHERE d.seq >= e.first_delivery AND d.seq < e.first_delivery + e.deliveries)
             FROM events e WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
        )
        .await?;
    let mut doomed: Vec<i64> = Vec::new();
    let (mut after, mut looked_at) = (0i64, 0usize);
    'events: loop {
        let rows = tx.query(&page, &[&after, &PAGE]).await?;
        for row in &rows {
            let (seq, received, needed): (i64, i64, bool) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            looked_at += 1;
            if doomed.len() == batch || looked_at > MAX_SCAN {
                pruned.more |= doomed.len() == batch;
                break 'events;
            }
            if received >= cutoff.0 {
                break 'events;
            }
            if !needed {
                doomed.push(seq);
            }
            after = seq;
        }
        if rows.len() < PAGE as usize {
            break;
        }
    }
    if !doomed.is_empty() {
        let delete = tx
            .prepare_cached("DELETE FROM events WHERE seq = ANY($1)")
            .await?;
        pruned.events = tx.execute(&delete, &[&doomed]).await? as usize;
    }
    tx.commit().await?;
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::RETENTION_LOCK;
    use crate::model::{EventType, Millis};
    use crate::store::postgres::PgStore;
    use crate::store::postgres::connect::connect_one;
    use crate::store::postgres::tests::{event, fresh_url, settings};

    /// While another node holds the lock, a batch prunes nothing and says there is no
    /// more; once the lock is free, the same batch prunes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_node_prunes_at_a_time() {
        let Some(url) = fresh_url().await else {
            return;
        };
        let pg = PgStore::connect(settings(&url, "a")).await.unwrap();
        for i in 0..3 {
            let old = event(&format!("old{i}"), "u", EventType::AppConnected, 1_000);
            pg.ingest(old, Millis(1_000)).await.unwrap();
        }
        let other = connect_one(&url).await.unwrap();
        other
            .execute("SELECT pg_advisory_lock($1)", &[&RETENTION_LOCK])
            .await
            .unwrap();
        let waited = pg.prune(Millis(5_000), 100).await.unwrap();
        assert_eq!(
            (waited.events, waited.deliveries, waited.more),
            (0, 0, false)
        );
        other
            .execute("SELECT pg_advisory_unlock($1)", &[&RETENTION_LOCK])
            .await
            .unwrap();
        let pruned = pg.prune(Millis(5_000), 100).await.unwrap();
        assert_eq!(pruned.events, 3);
    }
}
