//! Counters and the Prometheus text rendering of `GET /metrics`.
//!
//! Counters that only the running process knows (events ingested, attempts and their
//! durations, finished deliveries) live here as atomics and restart from zero with the
//! process, as Prometheus counters may. Gauges that describe the store (queue depth,
//! webhooks by status, file size) are read at scrape time from what the store keeps
//! counted (`store::tables`): a scrape costs a few point lookups, never a scan, so an
//! unauthenticated `/metrics` cannot be made to cost more as the store grows.
//!
//! The due backlog depends on the time, so the store cannot keep it counted: a
//! background thread ([`DueGauge`]) counts it in bounded steps at most every
//! [`DUE_EVERY`] while `/metrics` is being scraped, and the scrape shows the last count.

use std::fmt::Write;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::clock::now_ms;

use crate::model::{DeliveryStatus, NotificationKind};

/// Upper bounds (seconds) of the attempt-duration histogram buckets.
const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
pub struct Metrics {
    events_ingested: AtomicU64,
    attempts_success: AtomicU64,
    attempts_failure: AtomicU64,
    deliveries_succeeded: AtomicU64,
    deliveries_failed: AtomicU64,
    duration_buckets: [AtomicU64; DURATION_BUCKETS.len()],
    duration_count: AtomicU64,
    duration_sum_micros: AtomicU64,
    /// By [`NotificationKind`] position, then [`NotificationResult`] position.
    notifications: [[AtomicU64; NotificationResult::ALL.len()]; NotificationKind::ALL.len()],
    pub queue_due: DueGauge,
}

/// How an operator notification ended, for `hookd_notifications_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NotificationResult {
    /// Its receiver answered 2xx.
    Sent,
    /// Its retry schedule ran out.
    Failed,
    /// The rate limit dropped it, or a newer one replaced it while it was held.
    Suppressed,
    /// No `notifications.url` is configured.
    Skipped,
}

impl NotificationResult {
    pub const ALL: [NotificationResult; 4] = [
        NotificationResult::Sent,
        NotificationResult::Failed,
        NotificationResult::Suppressed,
        NotificationResult::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationResult::Sent => "sent",
            NotificationResult::Failed => "failed",
            NotificationResult::Suppressed => "suppressed",
            NotificationResult::Skipped => "skipped",
        }
    }
}

/// How often the due backlog is counted while `/metrics` is scraped.
pub const DUE_EVERY: Duration = Duration::from_secs(5);
/// No counting once `/metrics` has not been scraped for this long.
const DUE_IDLE_AFTER: Duration = Duration::from_secs(120);
const NEVER: u64 = u64::MAX;

/// `hookd_queue_due`: the last count of the due backlog, made by a background thread
/// (started by the first scrape) so that a scrape never counts anything.
pub struct DueGauge {
    value: AtomicU64,
    /// [`now_ms`] when the last count finished ([`NEVER`] before the first).
    counted_at: AtomicU64,
    scraped_at: AtomicU64,
    counter: OnceLock<std::thread::Thread>,
}

impl Default for DueGauge {
    fn default() -> Self {
        DueGauge {
            value: AtomicU64::new(0),
            counted_at: AtomicU64::new(NEVER),
            scraped_at: AtomicU64::new(NEVER),
            counter: OnceLock::new(),
        }
    }
}

impl DueGauge {
    /// For a scrape: the last count (`None` before the first). Starts the counting thread
    /// with `start` the first time, and wakes it when the count is overdue (after an
    /// idle spell without scrapes).
    pub fn scrape(&self, start: impl FnOnce() -> std::thread::Thread) -> Option<u64> {
        let now = now_ms();
        self.scraped_at.store(now, Relaxed);
        let counter = self.counter.get_or_init(start);
        let counted_at = self.counted_at.load(Relaxed);
        if counted_at == NEVER || now.saturating_sub(counted_at) > 2 * DUE_EVERY.as_millis() as u64
        {
            counter.unpark();
        }
        (counted_at != NEVER).then(|| self.value.load(Relaxed))
    }

    /// For the counting thread: whether anyone has scraped lately.
    pub fn wanted(&self) -> bool {
        let scraped_at = self.scraped_at.load(Relaxed);
        scraped_at != NEVER
            && now_ms().saturating_sub(scraped_at) < DUE_IDLE_AFTER.as_millis() as u64
    }

    /// For the counting thread: a finished count.
    pub fn set(&self, due: u64) {
        self.value.store(due, Relaxed);
        self.counted_at.store(now_ms(), Relaxed);
    }
}

/// The store's kept counters (`store::tables`).
pub struct StoreCounts {
    pub queue_depth: u64,
    pub webhooks_healthy: u64,
    pub webhooks_failing: u64,
    pub webhooks_disabled: u64,
}

/// What the store says at scrape time.
pub struct StoreGauges {
    /// The gauges read from the store; `None` while it cannot be read (it is being
    /// reopened after an I/O error): their samples are left out, the rest still renders.
    pub counts: Option<StoreCounts>,
    /// `None` until the first background count.
    pub queue_due: Option<u64>,
    pub store_bytes: u64,
    /// Whether the store can commit (see `store::health`).
    pub store_up: bool,
    /// Failed commits and failed reopens since start.
    pub store_errors: u64,
    /// Free bytes on the store's file system at the last reading.
    pub store_free_bytes: u64,
    /// Free space is below `store.min_free_space`: new events are refused.
    pub store_space_low: bool,
    /// Operator notifications still to be sent (`None` while the store cannot be read).
    pub notifications_open: Option<u64>,
}

impl Metrics {
    pub fn event_ingested(&self) {
        self.events_ingested.fetch_add(1, Relaxed);
    }

    /// One attempt finished with `success` after `duration`, leaving the delivery in `status`.
    pub fn attempt(&self, success: bool, duration: Duration, status: Option<DeliveryStatus>) {
        let counter = if success {
            &self.attempts_success
        } else {
            &self.attempts_failure
        };
        counter.fetch_add(1, Relaxed);
        let secs = duration.as_secs_f64();
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.duration_buckets) {
            if secs <= *bound {
                bucket.fetch_add(1, Relaxed);
            }
        }
        self.duration_count.fetch_add(1, Relaxed);
        self.duration_sum_micros.fetch_add(
            u64::try_from(duration.as_micros()).unwrap_or(u64::MAX),
            Relaxed,
        );
        match status {
            Some(DeliveryStatus::Succeeded) => self.deliveries_succeeded.fetch_add(1, Relaxed),
            Some(DeliveryStatus::Failed) => self.deliveries_failed.fetch_add(1, Relaxed),
            _ => 0,
        };
    }

    /// An operator notification of `kind` ended as `result`.
    pub fn notification(&self, kind: NotificationKind, result: NotificationResult) {
        let k = NotificationKind::ALL.iter().position(|x| *x == kind);
        let r = NotificationResult::ALL.iter().position(|x| *x == result);
        if let (Some(k), Some(r)) = (k, r) {
            self.notifications[k][r].fetch_add(1, Relaxed);
        }
    }

    pub fn render(&self, store: &StoreGauges) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let get = |c: &AtomicU64| c.load(Relaxed) as f64;
        metric(
            "hookd_events_ingested_total",
            "counter",
            "Events accepted by POST /api/hooks/events (repeats excluded).",
            &[("", get(&self.events_ingested))],
        );
        metric(
            "hookd_attempts_total",
            "counter",
            "Delivery attempts by result.",
            &[
                ("{result=\"success\"}", get(&self.attempts_success)),
                ("{result=\"failure\"}", get(&self.attempts_failure)),
            ],
        );
        metric(
            "hookd_deliveries_finished_total",
            "counter",
            "Deliveries that reached a final state through an attempt.",
            &[
                ("{status=\"succeeded\"}", get(&self.deliveries_succeeded)),
                ("{status=\"failed\"}", get(&self.deliveries_failed)),
            ],
        );
        metric(
            "hookd_queue_depth",
            "gauge",
            "Pending deliveries in the durable queue.",
            &store
                .counts
                .as_ref()
                .map(|c| vec![("", c.queue_depth as f64)])
                .unwrap_or_default(),
        );
        let due: &[(&str, f64)] = match store.queue_due {
            Some(due) => &[("", due as f64)],
            None => &[],
        };
        metric(
            "hookd_queue_due",
            "gauge",
            "Pending deliveries already due but not yet sent (backlog), as counted in the background every 5 s while scraped: up to about 5 s old, absent until the first count.",
            due,
        );
        metric(
            "hookd_webhooks",
            "gauge",
            "Webhooks by status.",
            &store
                .counts
                .as_ref()
                .map(|c| {
                    vec![
                        ("{status=\"healthy\"}", c.webhooks_healthy as f64),
                        ("{status=\"failing\"}", c.webhooks_failing as f64),
                        ("{status=\"disabled\"}", c.webhooks_disabled as f64),
                    ]
                })
                .unwrap_or_default(),
        );
        metric(
            "hookd_store_bytes",
            "gauge",
            "Disk space the store takes in bytes: the blocks of the redb file and its redo log, or pg_database_size on PostgreSQL.",
            &[("", store.store_bytes as f64)],
        );
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        metric(
            "hookd_store_up",
            "gauge",
            "1 while the store can commit; 0 while hookd reopens it after an I/O error (redb) or cannot reach the database (PostgreSQL).",
            &[("", flag(store.store_up))],
        );
        metric(
            "hookd_store_errors_total",
            "counter",
            "Failed store commits and failed attempts to reopen the store.",
            &[("", store.store_errors as f64)],
        );
        metric(
            "hookd_store_free_bytes",
            "gauge",
            "Free bytes on the store's file system (redb; 0 on PostgreSQL).",
            &[("", store.store_free_bytes as f64)],
        );
        metric(
            "hookd_store_space_low",
            "gauge",
            "1 while free space is below store.min_free_space (new events are refused).",
            &[("", flag(store.store_space_low))],
        );

        let labels: Vec<(String, f64)> = NotificationKind::ALL
            .iter()
            .zip(&self.notifications)
            .flat_map(|(kind, results)| {
                NotificationResult::ALL
                    .iter()
                    .zip(results)
                    .map(|(result, n)| {
                        (
                            format!(
                                "{{type=\"{}\",result=\"{}\"}}",
                                kind.as_str(),
                                result.as_str()
                            ),
                            get(n),
                        )
                    })
            })
            .collect();
        let samples: Vec<(&str, f64)> = labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        metric(
            "hookd_notifications_total",
            "counter",
            "Operator notifications by type and how they ended.",
            &samples,
        );
        metric(
            "hookd_notifications_pending",
            "gauge",
            "Operator notifications not yet sent (held back by the rate limit included).",
            &store
                .notifications_open
                .map(|n| vec![("", n as f64)])
                .unwrap_or_default(),
        );

        let _ = writeln!(
            out,
            "# HELP hookd_attempt_duration_seconds Duration of delivery attempts.\n# TYPE hookd_attempt_duration_seconds histogram"
        );
        for (bound, bucket) in DURATION_BUCKETS.iter().zip(&self.duration_buckets) {
            let _ = writeln!(
                out,
                "hookd_attempt_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Relaxed)
            );
        }
        let count = self.duration_count.load(Relaxed);
        let _ = writeln!(
            out,
            "hookd_attempt_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "hookd_attempt_duration_seconds_sum {}",
            self.duration_sum_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "hookd_attempt_duration_seconds_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_cumulative_buckets_and_counters() {
        let m = Metrics::default();
        m.event_ingested();
        m.attempt(
            true,
            Duration::from_millis(3),
            Some(DeliveryStatus::Succeeded),
        );
        m.attempt(
            false,
            Duration::from_millis(700),
            Some(DeliveryStatus::Pending),
        );
        m.notification(NotificationKind::Failing, NotificationResult::Sent);
        let text = m.render(&StoreGauges {
            counts: Some(StoreCounts {
                queue_depth: 4,
                webhooks_healthy: 2,
                webhooks_failing: 1,
                webhooks_disabled: 0,
            }),
            queue_due: Some(1),
            store_bytes: 4096,
            store_up: false,
            store_errors: 3,
            store_free_bytes: 1024,
            store_space_low: true,
            notifications_open: Some(2),
        });
        for line in [
            "hookd_events_ingested_total 1",
            "hookd_attempts_total{result=\"success\"} 1",
            "hookd_attempts_total{result=\"failure\"} 1",
            "hookd_deliveries_finished_total{status=\"succeeded\"} 1",
            "hookd_queue_depth 4",
            "hookd_queue_due 1",
            "hookd_webhooks{status=\"failing\"} 1",
            "hookd_attempt_duration_seconds_bucket{le=\"0.005\"} 1",
            "hookd_attempt_duration_seconds_bucket{le=\"0.5\"} 1",
            "hookd_attempt_duration_seconds_bucket{le=\"1\"} 2",
            "hookd_attempt_duration_seconds_bucket{le=\"+Inf\"} 2",
            "hookd_attempt_duration_seconds_count 2",
            "hookd_store_up 0",
            "hookd_store_errors_total 3",
            "hookd_store_space_low 1",
            "hookd_notifications_total{type=\"webhook.failing\",result=\"sent\"} 1",
            "hookd_notifications_total{type=\"webhook.recovered\",result=\"suppressed\"} 0",
            "hookd_notifications_pending 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }
}
