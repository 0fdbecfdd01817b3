//! Operator notifications (`[notifications]`): hookd tells the operator's endpoint when a
//! webhook becomes `failing`, is disabled by hookd (`410 Gone`, `disable_after`), or
//! recovers to `healthy`.
//!
//! How a notification flows: the transaction that changes the webhook's status queues it
//! (`attempts::record` calls `store::ops::notifications::enqueue`), subject to the rate
//! limit of [`throttle`], so a notification exists exactly when its change was committed
//! and survives a crash. Once that commit is durable, the delivery worker tells the
//! [`Notifier`] ([`Notifier::committed`]), whose one OS thread sends the notifications
//! due, one at a time, oldest first, each webhook's in order — with the delivery engine's
//! HTTP client (destination guard included), its retry schedule and Standard Webhooks
//! signatures ([`message`]). It never holds up a delivery worker. Whatever was not
//! recorded as sent when hookd stopped or was killed is sent after the restart: at least
//! once, so receivers deduplicate on `webhook-id`.
//!
//! Without `notifications.url`, notifications are still recorded (the operator view lists
//! them) and finish as `skipped` when their turn comes.

pub mod message;
pub mod throttle;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::Thread;
use std::time::Duration;

use crate::config::{Config, NotificationSecret};
use crate::delivery::destination;
use crate::delivery::http::HttpSender;
use crate::delivery::retry::RetryPolicy;
use crate::metrics::{Metrics, NotificationResult};
use crate::model::Millis;
use crate::store::ops::attempts::Verdict;
use crate::store::ops::notifications::{Attempted, Enqueued, Fate};
use crate::store::records::{NotificationRecord, NotificationState};
use crate::store::{Store, StoreError};

/// With nothing due, the sender still looks this often (a safety net: every commit that
/// queues a notification wakes it).
const IDLE_LOOK: Duration = Duration::from_secs(30);
/// After a store error, the sender tries again this much later.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// The handle on the sender thread.
pub struct Notifier {
    thread: Option<Thread>,
    stop: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl Notifier {
    /// Starts the sender thread.
    pub fn start(
        store: Store,
        config: &Config,
        policy: Arc<RetryPolicy>,
        metrics: Arc<Metrics>,
    ) -> Notifier {
        let stop = Arc::new(AtomicBool::new(false));
        let target = config.notifications.url.clone().map(|url| Target {
            url,
            secret: config.notifications.secret.clone(),
            // One notification at a time: one pooled connection is all it needs.
            http: HttpSender::new(
                config.delivery.timeout,
                destination::Policy::from_config(&config.delivery),
                1,
                // Through the egress proxy too, under the same guard as deliveries.
                config.delivery.proxy.clone(),
            ),
        });
        let sender = Sender {
            store,
            target,
            policy,
            metrics: Arc::clone(&metrics),
            stop: Arc::clone(&stop),
        };
        let thread = std::thread::Builder::new()
            .name("hookd-notify".into())
            .spawn(move || sender.run())
            .map(|handle| handle.thread().clone())
            .map_err(|e| {
                tracing::error!(error = %e, "cannot start the notification sender; notifications wait in the store")
            })
            .ok();
        Notifier {
            thread,
            stop,
            metrics,
        }
    }

    /// A commit that queued, held or dropped a notification is durable: counts what was
    /// dropped and wakes the sender.
    pub fn committed(&self, enqueued: Enqueued) {
        if let Some(kind) = enqueued.dropped {
            self.metrics
                .notification(kind, NotificationResult::Suppressed);
        }
        if enqueued.fate == Fate::Dropped {
            self.metrics
                .notification(enqueued.kind, NotificationResult::Suppressed);
        }
        self.wake();
    }

    fn wake(&self) {
        if let Some(thread) = &self.thread {
            thread.unpark();
        }
    }

    /// Asks the sender to stop after the notification it is sending, if any (an attempt
    /// cut short by the exit is made again after the restart).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        self.wake();
    }
}

/// Where notifications go.
struct Target {
    url: String,
    secret: Option<NotificationSecret>,
    http: HttpSender,
}

struct Sender {
    store: Store,
    target: Option<Target>,
    policy: Arc<RetryPolicy>,
    metrics: Arc<Metrics>,
    stop: Arc<AtomicBool>,
}

impl Sender {
    fn run(self) {
        while !self.stop.load(Ordering::Relaxed) {
            let now = Millis::now();
            let wait = match self.store.next_notification() {
                Ok(None) => IDLE_LOOK,
                Ok(Some((at, _))) if at > now => {
                    Duration::from_millis(at.0.abs_diff(now.0)).min(IDLE_LOOK)
                }
                Ok(Some((at, seq))) => match self.send(at, seq) {
                    Ok(()) => continue,
                    Err(StoreError::Closed) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, "notifications: store error; trying again");
                        STORE_RETRY
                    }
                },
                Err(StoreError::Closed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "notifications: cannot read the store; trying again");
                    STORE_RETRY
                }
            };
            std::thread::park_timeout(wait);
        }
    }

    /// Makes one attempt at notification `seq` (due now, at `at`) and records its outcome.
    fn send(&self, at: Millis, seq: u64) -> Result<(), StoreError> {
        let found = self.store.notification(seq)?;
        let n = match found {
            Some(n) if n.state == NotificationState::Pending => n,
            Some(n) if n.state == NotificationState::Held => {
                let now = Millis::now();
                match self.store.release_notification(seq, now)? {
                    Some(n) => n,
                    None => return Ok(()),
                }
            }
            // A due entry that names nothing to send: never leave it to be read again.
            _ => {
                tracing::warn!(seq, "notifications: a stale due entry; removed");
                return self.store.unlink_notification(at, seq);
            }
        };
        let outcome = match &self.target {
            None => Attempted::Skipped,
            Some(target) => target.attempt(&n),
        };
        let policy = Arc::clone(&self.policy);
        let failed = match &outcome {
            Attempted::Failed { error, .. } => Some(error.clone()),
            _ => None,
        };
        let state = self
            .store
            .finish_notification(seq, outcome, policy, Millis::now())?;
        let (kind, id, webhook) = (n.kind.as_str(), n.id, n.webhook.id);
        match (state, failed) {
            (Some(NotificationState::Sent), _) => {
                self.metrics.notification(n.kind, NotificationResult::Sent);
                tracing::info!(notification = %id, kind, webhook = %webhook, "notification sent");
            }
            (Some(NotificationState::Skipped), _) => {
                self.metrics
                    .notification(n.kind, NotificationResult::Skipped);
            }
            (Some(NotificationState::Failed), error) => {
                self.metrics
                    .notification(n.kind, NotificationResult::Failed);
                tracing::error!(notification = %id, kind, webhook = %webhook, error = error.as_deref(), "notification given up: its retry schedule is used up");
            }
            (_, Some(error)) => {
                tracing::warn!(notification = %id, kind, webhook = %webhook, error, "notification attempt failed; it will be retried");
            }
            _ => {}
        }
        Ok(())
    }
}

impl Target {
    fn attempt(&self, n: &NotificationRecord) -> Attempted {
        let body = message::body(n);
        // Receivers check the signed timestamp against their own clock (as for deliveries).
        let timestamp = crate::clock::system_unix_secs();
        let secret = self.secret.as_ref().map(NotificationSecret::expose);
        let headers = message::headers(n, secret, timestamp, &body);
        let outcome = self.http.send(&self.url, &headers, body.as_bytes());
        let retry_after = match outcome.verdict {
            Verdict::Success => return Attempted::Sent,
            Verdict::Failure { retry_after } => retry_after,
            Verdict::Gone => None,
        };
        // A 410 means nothing special here (the delivery engine's error text for it
        // speaks of disabling a webhook): it is a status like any other.
        let error = match (outcome.status_code, outcome.error) {
            (Some(code), None) | (Some(code @ 410), _) => format!("HTTP {code}"),
            (_, Some(error)) => error,
            (None, None) => "no answer".to_owned(),
        };
        Attempted::Failed { error, retry_after }
    }
}
