//! Statistics on PostgreSQL: the `/metrics` gauges, per-webhook attempt statistics by
//! minute and the totals of all webhooks (as `store::ops::stats` and `ops::queue`).
//!
//! Both tables are split in shards (the backend's pid modulo [`SHARDS`]): the engine
//! counts a batch's attempts in the transaction that records them ([`count_attempts`]), and
//! one row per minute would make every such transaction in the cluster wait for the previous
//! one's commit. Readers merge a minute's shards.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashSet};

use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

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

/// This connection's shard, in SQL ([`SHARDS`] = 8).
macro_rules! shard {
    () => {
        "(pg_backend_pid() % 8)::smallint"
    };
}
const _: () = assert!(SHARDS == 8, "shard! must use SHARDS");

/// This shard's rows of the (webhook, minute) pairs given, locked.
const READ_STATS: &str = concat!(
    "SELECT a.webhook_id, a.minute, a.record FROM attempt_stats a
     JOIN unnest($1::uuid[], $2::bigint[]) AS k(w, m) ON a.webhook_id = k.w AND a.minute = k.m
     WHERE a.shard = ",
    shard!(),
    " ORDER BY a.webhook_id, a.minute FOR UPDATE OF a"
);
const ADD_TOTALS: &str = concat!(
    "INSERT INTO attempt_totals (minute, shard, succeeded, failed, errored)
     SELECT m, ",
    shard!(),
    ", s, f, e FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bigint[])
         AS u(m, s, f, e)
     ON CONFLICT (minute, shard) DO UPDATE SET
         succeeded = attempt_totals.succeeded + excluded.succeeded,
         failed = attempt_totals.failed + excluded.failed,
         errored = attempt_totals.errored + excluded.errored
     RETURNING minute, (xmax = 0)"
);
const UPDATE_STATS: &str = concat!(
    "UPDATE attempt_stats a SET record = u.r
     FROM unnest($1::uuid[], $2::bigint[], $3::bytea[]) AS u(w, m, r)
     WHERE a.webhook_id = u.w AND a.minute = u.m AND a.shard = ",
    shard!()
);
const INSERT_STATS: &str = concat!(
    "INSERT INTO attempt_stats (webhook_id, minute, shard, record)
     SELECT w, m, ",
    shard!(),
    ", r FROM unnest($1::uuid[], $2::bigint[], $3::bytea[]) AS u(w, m, r)
     ON CONFLICT DO NOTHING RETURNING webhook_id, minute"
);
const PRUNE_STATS: &str = "DELETE FROM attempt_stats a
     USING unnest($1::uuid[], $2::bigint[]) AS u(w, cutoff)
     WHERE a.webhook_id = u.w AND a.minute < u.cutoff";
const PRUNE_TOTALS: &str = "DELETE FROM attempt_totals WHERE minute < $1";

/// Counts one attempt of `webhook` (see [`count_attempts`]): the tests compare it with redb.
#[cfg(test)]
pub(super) async fn count_attempt(
    tx: &deadpool_postgres::Transaction<'_>,
    webhook: WebhookId,
    attempt: &Attempt,
) -> Result<(), StoreError> {
    count_attempts(tx, &[(webhook, attempt)]).await
}

/// Counts attempts of webhooks in their statistics and in the totals of all webhooks, as
/// `ops::stats::count` does one by one: a minute opened drops that webhook's (or the
/// totals') minutes older than [`KEPT_MINUTES`]. For the engine's attempt-outcome
/// transaction: the attempts are summed per (webhook, minute) first, so a batch of
/// outcomes costs two round trips here however many it holds (three when a minute
/// opens), each statement prepared once per connection.
pub(super) async fn count_attempts(
    tx: &deadpool_postgres::Transaction<'_>,
    attempts: &[(WebhookId, &Attempt)],
) -> Result<(), StoreError> {
    if attempts.is_empty() {
        return Ok(());
    }
    let mut groups: BTreeMap<(uuid::Uuid, i64), MinuteStats> = BTreeMap::new();
    let mut totals: BTreeMap<i64, [i64; 3]> = BTreeMap::new();
    for (webhook, attempt) in attempts {
        let minute = sql_minute(minute_of(attempt.at));
        match groups.entry((hook_uuid(*webhook), minute)) {
            Entry::Occupied(mut stats) => stats.get_mut().add(attempt),
            Entry::Vacant(slot) => {
                slot.insert(MinuteStats::of(attempt));
            }
        }
        let slot = match Outcome::of(attempt) {
            Outcome::Succeeded => 0,
            Outcome::Failed => 1,
            Outcome::Errored => 2,
        };
        totals.entry(minute).or_default()[slot] += 1;
    }
    let (hooks, minutes): (Vec<uuid::Uuid>, Vec<i64>) = groups.keys().copied().unzip();
    let total_minutes: Vec<i64> = totals.keys().copied().collect();
    let [s, f, e] = [0, 1, 2].map(|k| totals.values().map(|t| t[k]).collect::<Vec<i64>>());
    let (read, add) =
        tokio::try_join!(tx.prepare_cached(READ_STATS), tx.prepare_cached(ADD_TOTALS))?;
    let p1: [&(dyn ToSql + Sync); 2] = [&hooks, &minutes];
    let p2: [&(dyn ToSql + Sync); 4] = [&total_minutes, &s, &f, &e];
    // One round trip: the two are pipelined.
    let (existing, opened_totals) = tokio::try_join!(tx.query(&read, &p1), tx.query(&add, &p2))?;
    let mut found: BTreeMap<(uuid::Uuid, i64), MinuteStats> = BTreeMap::new();
    for row in &existing {
        let key = (row.try_get(0)?, row.try_get(1)?);
        found.insert(key, rows::record(row, 2)?);
    }
    let mut update: (Vec<uuid::Uuid>, Vec<i64>, Vec<Vec<u8>>) = Default::default();
    let mut insert: (Vec<uuid::Uuid>, Vec<i64>, Vec<Vec<u8>>) = Default::default();
    for (key, delta) in &groups {
        let into = match found.get_mut(key) {
            Some(stats) => {
                stats.merge(delta);
                &mut update
            }
            None => &mut insert,
        };
        let stats = found.get(key).unwrap_or(delta);
        into.0.push(key.0);
        into.1.push(key.1);
        into.2.push(encode(stats));
    }
    let mut totals_cutoff = None;
    for row in &opened_totals {
        let (minute, opened): (i64, bool) = (row.try_get(0)?, row.try_get(1)?);
        if opened && minute > KEPT_MINUTES as i64 {
            let cutoff = minute - KEPT_MINUTES as i64;
            totals_cutoff = Some(totals_cutoff.map_or(cutoff, |c: i64| c.max(cutoff)));
        }
    }
    let (update_st, insert_st) = tokio::try_join!(
        tx.prepare_cached(UPDATE_STATS),
        tx.prepare_cached(INSERT_STATS)
    )?;
    let updated = async {
        if !update.0.is_empty() {
            tx.execute(&update_st, &[&update.0, &update.1, &update.2])
                .await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    let inserted = async {
        if insert.0.is_empty() {
            return Ok(Vec::new());
        }
        tx.query(&insert_st, &[&insert.0, &insert.1, &insert.2])
            .await
    };
    let pruned = async {
        if let Some(cutoff) = totals_cutoff {
            tx.execute(PRUNE_TOTALS, &[&cutoff]).await?;
        }
        Ok::<_, tokio_postgres::Error>(())
    };
    let ((), inserted, ()) = tokio::try_join!(updated, inserted, pruned)?;
    // Minutes opened here drop the webhook's old ones.
    let mut opened: (Vec<uuid::Uuid>, Vec<i64>) = Default::default();
    let mut won = HashSet::new();
    for row in &inserted {
        let key: (uuid::Uuid, i64) = (row.try_get(0)?, row.try_get(1)?);
        won.insert(key);
        if key.1 > KEPT_MINUTES as i64 {
            opened.0.push(key.0);
            opened.1.push(key.1 - KEPT_MINUTES as i64);
        }
    }
    if !opened.0.is_empty() {
        tx.execute(PRUNE_STATS, &[&opened.0, &opened.1]).await?;
    }
    // Another connection of the same shard opened one of these minutes meanwhile (rare):
    // add into its row.
    for key in insert.0.iter().copied().zip(insert.1.iter().copied()) {
        if won.contains(&key) {
            continue;
        }
        let row = tx
            .query_opt(&read, &[&vec![key.0], &vec![key.1]])
            .await?
            .ok_or_else(|| {
                StoreError::Inconsistent(
                    "an attempt statistics row vanished while it was counted".into(),
                )
            })?;
        let mut stats: MinuteStats = rows::record(&row, 2)?;
        stats.merge(&groups[&key]);
        tx.execute(
            &update_st,
            &[&vec![key.0], &vec![key.1], &vec![encode(&stats)]],
        )
        .await?;
    }
    Ok(())
}
