//! `GET /api/hooks/webhooks/:id/stats?window=1h`: what the dashboard charts — attempts
//! per minute by outcome, success rate and latency percentiles over a recent window.
//!
//! The numbers come from the per-minute buckets of [`crate::store::ops::stats`]: one
//! range read of at most a day of minutes, whatever the size of the store.

use hyper::StatusCode;
use serde::Serialize;

use super::AppState;
use super::auth::Principal;
use super::deliveries::owned_webhook;
use super::error::{ApiError, HttpResponse, json};
use super::request::query_pairs;
use crate::model::Millis;
use crate::store::ops::stats::{self as ops, MAX_WINDOW_MINUTES, MinuteStats, latency};

const DEFAULT_WINDOW_MINUTES: u64 = 60;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    webhook_id: String,
    window: String,
    bucket_seconds: u32,
    from: String,
    until: String,
    attempts: u64,
    succeeded: u64,
    failed: u64,
    errored: u64,
    success_rate: Option<f64>,
    latency_ms: Option<Percentiles>,
    last_attempt_at: Option<String>,
    series: Vec<Minute>,
}

#[derive(Serialize)]
struct Percentiles {
    p50: u64,
    p99: u64,
}

/// One minute of a series: attempts by outcome.
#[derive(Serialize)]
pub(super) struct Minute {
    at: String,
    succeeded: u32,
    failed: u32,
    errored: u32,
}

/// A dense per-minute series over the minutes `first..=last` and its totals.
pub(super) struct Series {
    pub minutes: Vec<Minute>,
    pub succeeded: u64,
    pub failed: u64,
    pub errored: u64,
}

/// The series from sparse `(minute, stats)` buckets in minute order (what the store's
/// range reads answer): a minute without a bucket counts zero. `each` sees every bucket
/// (the webhook stats sum their latency histogram from them).
pub(super) fn series(
    first: u64,
    last: u64,
    buckets: Vec<(u64, MinuteStats)>,
    mut each: impl FnMut(&MinuteStats),
) -> Series {
    let mut out = Series {
        minutes: Vec::with_capacity(usize::try_from(last + 1 - first).unwrap_or(0)),
        succeeded: 0,
        failed: 0,
        errored: 0,
    };
    let mut buckets = buckets.into_iter().peekable();
    for m in first..=last {
        let stats = match buckets.peek() {
            Some((bm, _)) if *bm == m => buckets.next().map(|(_, s)| s).unwrap_or_default(),
            _ => MinuteStats::default(),
        };
        each(&stats);
        out.succeeded += u64::from(stats.succeeded);
        out.failed += u64::from(stats.failed);
        out.errored += u64::from(stats.errored);
        out.minutes.push(Minute {
            at: minute_start(m).to_rfc3339(),
            succeeded: stats.succeeded,
            failed: stats.failed,
            errored: stats.errored,
        });
    }
    out
}

/// When minute `m` (minutes since the Unix epoch) begins.
pub(super) fn minute_start(m: u64) -> Millis {
    Millis(i64::try_from(m * 60_000).unwrap_or(i64::MAX))
}

/// `<n>m` or `<n>h`, one minute to a day; answers the window in minutes.
fn parse_window(s: &str) -> Result<u64, ApiError> {
    let invalid = || {
        ApiError::bad_request(format!(
            "`window` must be minutes or hours such as \"15m\" or \"1h\", from 1m to 24h; got \"{}\"",
            s.escape_debug()
        ))
    };
    let (number, per_unit) = if let Some(n) = s.strip_suffix('m') {
        (n, 1)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 60)
    } else {
        return Err(invalid());
    };
    if number.is_empty() || number.len() > 4 || !number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let minutes = number.parse::<u64>().map_err(|_| invalid())? * per_unit;
    if !(1..=MAX_WINDOW_MINUTES).contains(&minutes) {
        return Err(invalid());
    }
    Ok(minutes)
}

fn window_label(minutes: u64) -> String {
    if minutes.is_multiple_of(60) {
        format!("{}h", minutes / 60)
    } else {
        format!("{minutes}m")
    }
}

/// The value below which a fraction `q` of the counted latencies lie.
fn percentile(histogram: &[u64], total: u64, q: f64) -> u64 {
    let rank = ((q * total as f64).ceil() as u64).max(1);
    let mut seen = 0;
    for (bucket, &n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return latency::representative(bucket as u16);
        }
    }
    0
}

pub async fn get(
    state: &AppState,
    who: &Principal,
    id: &str,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let mut minutes = DEFAULT_WINDOW_MINUTES;
    for (key, value) in query_pairs(query)? {
        if key == "window" {
            minutes = parse_window(&value)?;
        }
    }
    let hook = owned_webhook(state, who, id).await?;
    let now = Millis::now();
    // The window is `minutes` whole minutes, the current one included.
    let last = ops::minute_of(now);
    let first = last + 1 - minutes.min(last + 1);
    let (buckets, last_attempt_at) = state.store.webhook_stats(hook.id, first, last, now).await?;

    let mut histogram = vec![0u64; latency::BUCKETS];
    let Series {
        minutes: series,
        succeeded,
        failed,
        errored,
    } = self::series(first, last, buckets, |stats| {
        for &(bucket, n) in &stats.latency {
            if let Some(slot) = histogram.get_mut(usize::from(bucket)) {
                *slot += u64::from(n);
            }
        }
    });
    let attempts = succeeded + failed + errored;
    let counted: u64 = histogram.iter().sum();
    json(
        StatusCode::OK,
        &Stats {
            webhook_id: hook.id.to_string(),
            window: window_label(minutes),
            bucket_seconds: 60,
            from: minute_start(first).to_rfc3339(),
            until: minute_start(last + 1).to_rfc3339(),
            attempts,
            succeeded,
            failed,
            errored,
            success_rate: (attempts > 0).then(|| succeeded as f64 / attempts as f64),
            latency_ms: (counted > 0).then(|| Percentiles {
                p50: percentile(&histogram, counted, 0.50),
                p99: percentile(&histogram, counted, 0.99),
            }),
            last_attempt_at: last_attempt_at.map(Millis::to_rfc3339),
            series,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_minutes_or_hours_up_to_a_day() {
        assert_eq!(parse_window("1h").unwrap(), 60);
        assert_eq!(parse_window("15m").unwrap(), 15);
        assert_eq!(parse_window("24h").unwrap(), 1440);
        for bad in [
            "",
            "h",
            "0m",
            "25h",
            "1441m",
            "1d",
            "-1h",
            "1.5h",
            "99999999999h",
        ] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
        assert_eq!(window_label(90), "90m");
        assert_eq!(window_label(120), "2h");
    }

    #[test]
    fn percentiles_walk_the_histogram() {
        let mut h = vec![0u64; latency::BUCKETS];
        h[usize::from(latency::bucket(3))] = 98;
        h[usize::from(latency::bucket(500))] = 2;
        assert_eq!(percentile(&h, 100, 0.5), 3);
        let p99 = percentile(&h, 100, 0.99);
        assert!(p99.abs_diff(500) <= 500 / 8, "{p99}");
    }
}
