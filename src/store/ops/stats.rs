//! Per-webhook attempt statistics for the dashboard: one small record per webhook and
//! minute (`attempt_stats`), updated in the same transaction that records the attempt.
//!
//! Reading a window of `n` minutes is one range over `n` keys of one webhook, so its cost
//! depends on the window, never on how many events or deliveries the store holds.
//! Buckets older than [`KEPT_MINUTES`] are dropped when a webhook opens a new minute, so
//! the table holds at most a day's worth of minutes per webhook.

use redb::{ReadTransaction, ReadableTable};
use serde::{Deserialize, Serialize};

use super::{StoreError, load};
use crate::model::{Millis, WebhookId};
use crate::store::Tx;
use crate::store::codec::{Record, decode, encode};
use crate::store::records::Attempt;
use crate::store::tables::{ATTEMPT_STATS, ATTEMPT_TOTALS};

/// The longest window a query may ask for, in minutes (a day).
pub const MAX_WINDOW_MINUTES: u64 = 24 * 60;
/// How long buckets are kept: the longest window plus the minute in progress.
pub const KEPT_MINUTES: u64 = MAX_WINDOW_MINUTES + 1;

/// What an attempt came to, as the dashboard counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver answered 2xx.
    Succeeded,
    /// The receiver answered, with anything but 2xx.
    Failed,
    /// No HTTP answer: connection error, timeout, or a destination the guard refused.
    Errored,
}

impl Outcome {
    pub fn of(attempt: &Attempt) -> Outcome {
        match attempt.status_code {
            Some(code) if (200..300).contains(&code) => Outcome::Succeeded,
            Some(_) => Outcome::Failed,
            None => Outcome::Errored,
        }
    }
}

/// Attempt latencies in logarithmic buckets: exact below 16 ms, then 8 buckets per
/// doubling (at most 12.5 % wide), up to 2²⁴ ms (4.6 hours, far beyond any timeout).
pub mod latency {
    const EXACT: u64 = 16;
    const PER_DOUBLING: u64 = 8;
    const MAX_MS: u64 = (1 << 24) - 1;
    /// Number of buckets.
    pub const BUCKETS: usize = 16 + 20 * 8;

    pub fn bucket(ms: u64) -> u16 {
        let ms = ms.min(MAX_MS);
        if ms < EXACT {
            return ms as u16;
        }
        let doubling = 63 - u64::from(ms.leading_zeros()); // ≥ 4
        let shift = doubling - 3;
        let sub = (ms >> shift) - PER_DOUBLING;
        (EXACT + (doubling - 4) * PER_DOUBLING + sub) as u16
    }

    /// The value a bucket stands for: exact below 16 ms, else the middle of its range.
    pub fn representative(bucket: u16) -> u64 {
        let b = u64::from(bucket);
        if b < EXACT {
            return b;
        }
        let doubling = (b - EXACT) / PER_DOUBLING + 4;
        let sub = (b - EXACT) % PER_DOUBLING;
        let shift = doubling - 3;
        let low = (PER_DOUBLING + sub) << shift;
        let high = ((PER_DOUBLING + sub + 1) << shift) - 1;
        (low + high) / 2
    }
}

/// One webhook's attempts in one minute.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct MinuteStats {
    pub succeeded: u32,
    pub failed: u32,
    pub errored: u32,
    /// When the minute's latest attempt started.
    pub last_at: Millis,
    /// `(latency bucket, attempts)`, sorted by bucket; only buckets that were hit.
    pub latency: Vec<(u16, u32)>,
}

impl Record for MinuteStats {
    const NAME: &'static str = "attempt statistics";
    const VERSION: u8 = 1;
}

impl MinuteStats {
    /// One attempt's statistics.
    pub(crate) fn of(attempt: &Attempt) -> MinuteStats {
        let mut stats = MinuteStats::default();
        stats.add(attempt);
        stats
    }

    /// Adds `other` into these: one minute's statistics from two places (PostgreSQL
    /// keeps a minute in shards; `hookd store copy` merges them).
    pub(crate) fn merge(&mut self, other: &MinuteStats) {
        self.succeeded = self.succeeded.saturating_add(other.succeeded);
        self.failed = self.failed.saturating_add(other.failed);
        self.errored = self.errored.saturating_add(other.errored);
        self.last_at = self.last_at.max(other.last_at);
        for &(bucket, n) in &other.latency {
            match self.latency.binary_search_by_key(&bucket, |&(b, _)| b) {
                Ok(i) => self.latency[i].1 = self.latency[i].1.saturating_add(n),
                Err(i) => self.latency.insert(i, (bucket, n)),
            }
        }
    }

    pub(crate) fn add(&mut self, attempt: &Attempt) {
        let counter = match Outcome::of(attempt) {
            Outcome::Succeeded => &mut self.succeeded,
            Outcome::Failed => &mut self.failed,
            Outcome::Errored => &mut self.errored,
        };
        *counter = counter.saturating_add(1);
        self.last_at = self.last_at.max(attempt.at);
        let bucket = latency::bucket(attempt.duration_ms);
        match self.latency.binary_search_by_key(&bucket, |&(b, _)| b) {
            Ok(i) => self.latency[i].1 = self.latency[i].1.saturating_add(1),
            Err(i) => self.latency.insert(i, (bucket, 1)),
        }
    }
}

/// The minute a time falls in, as the table's key.
pub fn minute_of(at: Millis) -> u64 {
    at.as_key() / 60_000
}

/// Counts one attempt of `webhook`, and in the totals of all webhooks.
pub fn count(tx: &mut Tx<'_>, webhook: WebhookId, attempt: &Attempt) -> Result<(), StoreError> {
    count_total(tx, attempt)?;
    let mut table = tx.txn.open_table(ATTEMPT_STATS)?;
    let minute = minute_of(attempt.at);
    let existing = load::<(u128, u64), MinuteStats>(&table, (webhook.0, minute))?;
    let new_minute = existing.is_none();
    let mut stats = existing.unwrap_or_default();
    stats.add(attempt);
    table.insert((webhook.0, minute), encode(&stats).as_slice())?;
    if new_minute && minute > KEPT_MINUTES {
        let cutoff = minute - KEPT_MINUTES;
        table.retain_in((webhook.0, 0)..(webhook.0, cutoff), |_, _| false)?;
    }
    Ok(())
}

/// Adds one attempt to `attempt_totals`: three counters per minute, so the operator view
/// reads a day of all webhooks' attempts in at most [`KEPT_MINUTES`] rows.
fn count_total(tx: &mut Tx<'_>, attempt: &Attempt) -> Result<(), StoreError> {
    let mut totals = tx.txn.open_table(ATTEMPT_TOTALS)?;
    let minute = minute_of(attempt.at);
    let existing = totals.get(minute)?.map(|v| v.value());
    let (mut succeeded, mut failed, mut errored) = existing.unwrap_or_default();
    match Outcome::of(attempt) {
        Outcome::Succeeded => succeeded += 1,
        Outcome::Failed => failed += 1,
        Outcome::Errored => errored += 1,
    }
    totals.insert(minute, (succeeded, failed, errored))?;
    if existing.is_none() && minute > KEPT_MINUTES {
        totals.retain_in(..minute - KEPT_MINUTES, |_, _| false)?;
    }
    Ok(())
}

/// All webhooks' attempts per minute for minutes `first..=last` that saw any, oldest
/// first, as counts without latencies.
pub fn totals(
    rtx: &ReadTransaction,
    first: u64,
    last: u64,
) -> Result<Vec<(u64, MinuteStats)>, StoreError> {
    let table = rtx.open_table(ATTEMPT_TOTALS)?;
    let mut out = Vec::new();
    for entry in table.range(first..=last)? {
        let (minute, counts) = entry?;
        let (succeeded, failed, errored) = counts.value();
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        out.push((
            minute.value(),
            MinuteStats {
                succeeded: clamp(succeeded),
                failed: clamp(failed),
                errored: clamp(errored),
                ..MinuteStats::default()
            },
        ));
    }
    Ok(out)
}

/// Drops every bucket of a deleted webhook.
pub fn forget(tx: &mut Tx<'_>, webhook: WebhookId) -> Result<(), StoreError> {
    tx.txn
        .open_table(ATTEMPT_STATS)?
        .retain_in((webhook.0, 0)..=(webhook.0, u64::MAX), |_, _| false)?;
    Ok(())
}

/// The buckets of `webhook` for minutes `first..=last` that saw attempts, oldest first.
pub fn window(
    rtx: &ReadTransaction,
    webhook: WebhookId,
    first: u64,
    last: u64,
) -> Result<Vec<(u64, MinuteStats)>, StoreError> {
    let table = rtx.open_table(ATTEMPT_STATS)?;
    let mut out = Vec::new();
    for entry in table.range((webhook.0, first)..=(webhook.0, last))? {
        let (key, value) = entry?;
        out.push((key.value().1, decode(value.value())?));
    }
    Ok(out)
}

/// When the webhook's latest attempt in the day up to `now` started, if any. (An idle
/// webhook's old buckets are only dropped when it opens a new minute, so the range
/// starts a day back rather than at the table's first key.)
pub fn last_attempt_at(
    rtx: &ReadTransaction,
    webhook: WebhookId,
    now: Millis,
) -> Result<Option<Millis>, StoreError> {
    let table = rtx.open_table(ATTEMPT_STATS)?;
    let current = minute_of(now);
    let first = current.saturating_sub(KEPT_MINUTES);
    let Some(entry) = table
        .range((webhook.0, first)..=(webhook.0, current))?
        .next_back()
    else {
        return Ok(None);
    };
    let (_, value) = entry?;
    let stats: MinuteStats = decode(value.value())?;
    Ok(Some(stats.last_at))
}

#[cfg(test)]
mod tests {
    use super::latency::*;

    #[test]
    fn latency_buckets_are_ordered_and_tight() {
        let mut previous = 0;
        for ms in 0..200_000u64 {
            let b = bucket(ms);
            assert!(b >= previous && usize::from(b) < BUCKETS, "{ms}");
            previous = b;
            let r = representative(b);
            // Within 12.5 % (exact below 16 ms).
            assert!(r.abs_diff(ms) * 8 <= ms.max(1), "{ms} -> {b} -> {r}");
        }
        assert_eq!(bucket(7), 7);
        assert_eq!(representative(bucket(7)), 7);
        assert_eq!(usize::from(bucket(u64::MAX)), BUCKETS - 1);
    }
}
