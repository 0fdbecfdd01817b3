//! Statistics on PostgreSQL: the `/metrics` gauges, per-webhook attempt statistics by
//! minute and the totals of all webhooks (as `store::ops::stats` and `ops::queue`).
//!
//! Both tables are split in shards (the backend's pid modulo [`SHARDS`]): the engine
//! counts an attempt in the transaction that records it ([`count_attempt`]), and one row
//! per minute would make every such transaction in the cluster wait for the previous
//! one's commit. Readers merge a minute's shards.

use deadpool_postgres::GenericClient;
use tokio_postgres::types::{ToSql, Type};

type Param<'a> = (&'a (dyn ToSql + Sync), Type);

use super::rows::{self, hook_uuid};
use crate::model::{Millis, WebhookId, WebhookStatus};
use crate::store::StoreError;
use crate::store::codec::encode;
use crate::store::ops::queue::QueueGauges;
use crate::store::ops::stats::{KEPT_MINUTES, MinuteStats, Outcome, minute_of};
use crate::store::records::Attempt;

/// Shards per counter (see the module docs).
const SHARDS: i32 = 8;

/// Queue depth (pending deliveries) and webhooks by status.
pub(super) async fn gauges(c: &impl GenericClient) -> Result<QueueGauges, StoreError> {
    let depth = c
        .prepare_cached("SELECT count(*) FROM deliveries WHERE due IS NOT NULL")
        .await?;
    let by_status = c
        .prepare_cached("SELECT status, count(*) FROM webhooks GROUP BY status")
        .await?;
    let (depth, by_status) = tokio::try_join!(c.query_one(&depth, &[]), c.query(&by_status, &[]))?;
    let mut gauges = QueueGauges {
        depth: u64::try_from(depth.try_get::<_, i64>(0)?).unwrap_or(0),
        ..QueueGauges::default()
    };
    for row in by_status {
        let (rank, n): (i16, i64) = (row.try_get(0)?, row.try_get(1)?);
        let n = u64::try_from(n).unwrap_or(0);
        for status in [
            WebhookStatus::Healthy,
            WebhookStatus::Failing,
            WebhookStatus::Disabled,
        ] {
            if rows::status_rank(status) == rank {
                match status {
                    WebhookStatus::Healthy => gauges.healthy = n,
                    WebhookStatus::Failing => gauges.failing = n,
                    WebhookStatus::Disabled => gauges.disabled = n,
                }
            }
        }
    }
    Ok(gauges)
}

fn sql_minute(minute: u64) -> i64 {
    i64::try_from(minute).unwrap_or(i64::MAX)
}

/// `webhook`'s statistics for minutes `first..=last` that saw attempts, oldest first,
/// and when its latest attempt in the day up to `now` started.
pub(super) async fn webhook(
    c: &impl GenericClient,
    webhook: WebhookId,
    first: u64,
    last: u64,
    now: Millis,
) -> Result<(Vec<(u64, MinuteStats)>, Option<Millis>), StoreError> {
    let window = c
        .prepare_cached(
            "SELECT minute, record FROM attempt_stats
             WHERE webhook_id = $1 AND minute BETWEEN $2 AND $3 ORDER BY minute",
        )
        .await?;
    let latest = c
        .prepare_cached(
            "SELECT record FROM attempt_stats WHERE webhook_id = $1 AND minute =
                (SELECT max(minute) FROM attempt_stats
                 WHERE webhook_id = $1 AND minute BETWEEN $2 AND $3)",
        )
        .await?;
    let id = hook_uuid(webhook);
    let current = minute_of(now);
    let (a, b) = (sql_minute(first), sql_minute(last));
    let (c1, c2) = (
        sql_minute(current.saturating_sub(KEPT_MINUTES)),
        sql_minute(current),
    );
    let (p1, p2): ([&(dyn ToSql + Sync); 3], [&(dyn ToSql + Sync); 3]) =
        ([&id, &a, &b], [&id, &c1, &c2]);
    let (found, latest) = tokio::try_join!(c.query(&window, &p1), c.query(&latest, &p2))?;
    let mut out: Vec<(u64, MinuteStats)> = Vec::new();
    for row in &found {
        let minute = u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0);
        let stats: MinuteStats = rows::record(row, 1)?;
        match out.last_mut() {
            Some((m, into)) if *m == minute => into.merge(&stats),
            _ => out.push((minute, stats)),
        }
    }
    let mut last_at = None;
    for row in &latest {
        let stats: MinuteStats = rows::record(row, 0)?;
        last_at = Some(last_at.map_or(stats.last_at, |at: Millis| at.max(stats.last_at)));
    }
    Ok((out, last_at))
}

/// All webhooks' attempts per minute for minutes `first..=last`, oldest first.
pub(super) async fn totals(
    c: &impl GenericClient,
    first: u64,
    last: u64,
) -> Result<Vec<(u64, MinuteStats)>, StoreError> {
    let st = c
        .prepare_cached(
            "SELECT minute, sum(succeeded)::bigint, sum(failed)::bigint, sum(errored)::bigint
             FROM attempt_totals WHERE minute BETWEEN $1 AND $2 GROUP BY minute ORDER BY minute",
        )
        .await?;
    let clamp = |n: i64| u32::try_from(n).unwrap_or(if n < 0 { 0 } else { u32::MAX });
    c.query(&st, &[&sql_minute(first), &sql_minute(last)])
        .await?
        .iter()
        .map(|row| {
            Ok((
                u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0),
                MinuteStats {
                    succeeded: clamp(row.try_get(1)?),
                    failed: clamp(row.try_get(2)?),
                    errored: clamp(row.try_get(3)?),
                    ..MinuteStats::default()
                },
            ))
        })
        .collect()
}

/// Counts one attempt of `webhook` in its statistics and in the totals of all webhooks,
/// as `ops::stats::count`: a minute opened drops that webhook's (or the totals') minutes
/// older than [`KEPT_MINUTES`]. For the engine's attempt-outcome transaction; each
/// statement is one round trip (`query_typed`, no prepare).
pub(super) async fn count_attempt(
    tx: &tokio_postgres::Transaction<'_>,
    webhook: WebhookId,
    attempt: &Attempt,
) -> Result<(), StoreError> {
    let minute = minute_of(attempt.at);
    let sql_min = sql_minute(minute);
    let id = hook_uuid(webhook);
    let outcome = Outcome::of(attempt);
    let (s, f, e) = match outcome {
        Outcome::Succeeded => (1i64, 0i64, 0i64),
        Outcome::Failed => (0, 1, 0),
        Outcome::Errored => (0, 0, 1),
    };
    let shard_sql = format!("(pg_backend_pid() % {SHARDS})::smallint");
    let read = format!(
        "SELECT record FROM attempt_stats
         WHERE webhook_id = $1 AND minute = $2 AND shard = {shard_sql} FOR UPDATE"
    );
    let total = format!(
        "INSERT INTO attempt_totals (minute, shard, succeeded, failed, errored)
         VALUES ($1, {shard_sql}, $2, $3, $4)
         ON CONFLICT (minute, shard) DO UPDATE SET
             succeeded = attempt_totals.succeeded + excluded.succeeded,
             failed = attempt_totals.failed + excluded.failed,
             errored = attempt_totals.errored + excluded.errored
         RETURNING (xmax = 0)"
    );
    let key: [Param<'_>; 2] = [(&id, Type::UUID), (&sql_min, Type::INT8)];
    let counts: [Param<'_>; 4] = [
        (&sql_min, Type::INT8),
        (&s, Type::INT8),
        (&f, Type::INT8),
        (&e, Type::INT8),
    ];
    let (existing, opened_total) = tokio::try_join!(
        tx.query_typed_opt(&read, &key),
        tx.query_typed_one(&total, &counts),
    )?;
    let update = format!(
        "UPDATE attempt_stats SET record = $3
         WHERE webhook_id = $1 AND minute = $2 AND shard = {shard_sql}"
    );
    let insert = format!(
        "INSERT INTO attempt_stats (webhook_id, minute, shard, record)
         VALUES ($1, $2, {shard_sql}, $3) ON CONFLICT DO NOTHING RETURNING true"
    );
    let mut existing = existing;
    let mut opened = false;
    loop {
        match &existing {
            Some(row) => {
                let mut stats: MinuteStats = rows::record(row, 0)?;
                stats.add(attempt);
                let bytes = encode(&stats);
                tx.execute_typed(
                    &update,
                    &[
                        (&id, Type::UUID),
                        (&sql_min, Type::INT8),
                        (&bytes, Type::BYTEA),
                    ],
                )
                .await?;
                break;
            }
            None => {
                let bytes = encode(&MinuteStats::of(attempt));
                let inserted = tx
                    .query_typed_opt(
                        &insert,
                        &[
                            (&id, Type::UUID),
                            (&sql_min, Type::INT8),
                            (&bytes, Type::BYTEA),
                        ],
                    )
                    .await?;
                if inserted.is_some() {
                    opened = true;
                    break;
                }
                // Another connection of the same shard opened the minute meanwhile.
                existing = tx.query_typed_opt(&read, &key).await?;
                if existing.is_none() {
                    return Err(StoreError::Inconsistent(
                        "an attempt statistics row vanished while it was counted".into(),
                    ));
                }
            }
        }
    }
    if minute > KEPT_MINUTES {
        let cutoff = sql_minute(minute - KEPT_MINUTES);
        if opened {
            tx.execute_typed(
                "DELETE FROM attempt_stats WHERE webhook_id = $1 AND minute < $2",
                &[(&id, Type::UUID), (&cutoff, Type::INT8)],
            )
            .await?;
        }
        if opened_total.try_get::<_, bool>(0)? {
            tx.execute_typed(
                "DELETE FROM attempt_totals WHERE minute < $1",
                &[(&cutoff, Type::INT8)],
            )
            .await?;
        }
    }
    Ok(())
}
