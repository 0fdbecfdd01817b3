//! The delivery engine: drains the store's durable queue to the receivers.
//!
//! Data flows one way: the API commits deliveries to the store and tells the
//! [`scheduler`] (a tokio task) that work is queued; the scheduler hands due deliveries to
//! the [`worker`] threads; a worker makes the attempt ([`http`], body from [`payload`],
//! signature from [`signing`]) and hands its outcome to the store's group commit
//! ([`retry`] decides the next attempt); the scheduler hears when the slot is free and
//! again when the outcome is durable. [`destination`] guards where requests may go and
//! [`ratelimit`] how often they may start.

pub mod ahead;
pub mod destination;
pub mod fence;
pub mod http;
pub mod payload;
pub mod proxy;
pub mod ratelimit;
pub mod retry;
pub mod scheduler;
pub mod signing;
pub mod turns;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::model::{Millis, WebhookId};
use crate::store::Store;
use fence::Fences;
use retry::RetryPolicy;

/// What the scheduler hears about.
#[derive(Debug)]
pub enum Message {
    /// A delivery of this webhook is due at this time (ingest, retry, recover).
    Queued(WebhookId, Millis),
    /// A worker is through with a job's HTTP exchange (or found nothing to send): its
    /// worker and webhook slot are free. The delivery stays claimed until `Done`.
    Sent(WebhookId, Freed),
    /// A job's outcome is durably recorded (or failed to be): its claim ends.
    Done(worker::Done),
    /// This node took over the webhook's queue (a PostgreSQL cluster lease): look at it
    /// now, with its rate limit counting these recent attempt starts made by whichever
    /// node drove it before.
    Taken(WebhookId, Vec<Millis>),
}

/// How a job's slot came to be free ([`Message::Sent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freed {
    /// Right after a successful exchange: nothing it did changed the webhook, so what
    /// the scheduler read ahead may go ([`ahead`]).
    BySuccess,
    /// After any other end: a failure once its record (which may pause or disable the
    /// webhook) is committed, a job that found nothing to send or could not be prepared.
    Otherwise,
}

/// What a store shared by several nodes tells this node's engine (the PostgreSQL
/// cluster, `store::postgres::lease`).
pub trait ClusterLink: Send + Sync {
    /// Deliveries of `webhook` are due at `due`: look at its queue.
    fn queued(&self, webhook: WebhookId, due: Millis);
    /// This node now drives `webhook`'s queue; `recent_starts` are the attempt starts of
    /// the last minute, cluster-wide, for its rate limit.
    fn taken(&self, webhook: WebhookId, recent_starts: Vec<Millis>);
    /// `webhook` was disabled or deleted on another node: stop what was dispatched and
    /// has not started sending (see [`fence`]).
    fn fence(&self, webhook: WebhookId);
}

impl ClusterLink for DeliveryHandle {
    fn queued(&self, webhook: WebhookId, due: Millis) {
        DeliveryHandle::queued(self, webhook, due);
    }

    fn taken(&self, webhook: WebhookId, recent_starts: Vec<Millis>) {
        // A send error means the engine has stopped.
        let _ = self.inbox.send(Message::Taken(webhook, recent_starts));
    }

    fn fence(&self, webhook: WebhookId) {
        self.fences.close(webhook);
    }
}

/// The API's handle on the engine.
#[derive(Clone)]
pub struct DeliveryHandle {
    inbox: UnboundedSender<Message>,
    fences: Arc<Fences>,
    pub policy: Arc<RetryPolicy>,
    /// Where webhooks may point; the API checks new URLs against it.
    pub destination: Arc<destination::Policy>,
    /// The longest an attempt can be writing or waiting for its answer.
    quiesce_limit: Duration,
}

impl DeliveryHandle {
    /// Tells the scheduler a delivery of `webhook` was committed, due at `due`.
    pub fn queued(&self, webhook: WebhookId, due: Millis) {
        // A send error means the engine has stopped; the delivery waits in the store.
        let _ = self.inbox.send(Message::Queued(webhook, due));
    }

    /// Stops attempts to `webhook` that were dispatched but have not started sending.
    /// Call it before committing a delete or disable, then [`DeliveryHandle::quiesce`].
    pub fn cancel(&self, webhook: WebhookId) {
        self.fences.close(webhook);
    }

    /// Call after the commit that deletes or disables `webhook`: closes its fence again
    /// and waits (bounded by the attempt timeout) until no attempt of it is writing to its
    /// receiver, so that an answer sent after this is a true fence (see [`fence`]).
    ///
    /// The second close matters: a job the scheduler stamped while the commit was under
    /// way carries the epoch of the first close, and its worker may have read the webhook
    /// as it was before the commit. After this close it can no longer enter; a job stamped
    /// later was planned from a read that already sees the commit.
    pub async fn quiesce(&self, webhook: WebhookId) {
        self.fences.close(webhook);
        if !self.fences.wait_quiet(webhook, self.quiesce_limit).await {
            tracing::warn!(webhook = %webhook, "an attempt outlived its timeout while the webhook was being fenced");
        }
    }
}

pub struct Engine {
    pub handle: DeliveryHandle,
    /// Beats while the scheduler's loop is responsive.
    pub alive: Arc<crate::clock::Beat>,
    stop: oneshot::Sender<()>,
    scheduler: JoinHandle<()>,
    /// Operator notifications (`crate::notify`), sent by their own thread.
    notifier: Arc<crate::notify::Notifier>,
}

impl Engine {
    /// Starts the worker threads and the scheduler task (call within the runtime).
    pub fn start(store: Store, config: &Config, metrics: Arc<crate::metrics::Metrics>) -> Engine {
        let d = &config.delivery;
        let policy = Arc::new(RetryPolicy {
            schedule: d.retry_schedule.clone(),
            disable_after: d.disable_after,
        });
        let destination = destination::Policy::from_config(d);
        if let Some(proxy) = &d.proxy {
            tracing::info!(proxy = %proxy, "deliveries go through the egress proxy");
        }
        let fences = Arc::new(Fences::default());
        let (inbox_tx, inbox_rx) = unbounded_channel();
        let (jobs_tx, jobs_rx) = std::sync::mpsc::sync_channel(d.workers);
        let ctx = Arc::new(worker::WorkerContext {
            store: store.clone(),
            http: http::HttpSender::new(d.timeout, destination.clone(), d.workers, d.proxy.clone()),
            policy: Arc::clone(&policy),
            fences: Arc::clone(&fences),
            notifier: Arc::new(crate::notify::Notifier::start(
                store.clone(),
                config,
                Arc::clone(&policy),
                Arc::clone(&metrics),
            )),
            metrics,
            destination: destination.clone(),
        });
        // Detached: a worker stuck in a receiver's deadline must not hold up shutdown.
        let _workers = worker::spawn(d.workers, jobs_rx, Arc::clone(&ctx), inbox_tx.clone());
        let limits = scheduler::Limits {
            workers: d.workers,
            per_webhook: d.max_in_flight_per_webhook,
            per_minute: config.limits.events_per_minute_per_webhook,
        };
        let drain = (d.timeout + Duration::from_secs(1)).min(Duration::from_secs(20));
        let (stop, stop_rx) = oneshot::channel();
        let alive = Arc::new(crate::clock::Beat::default());
        alive.beat();
        let notifier = Arc::clone(&ctx.notifier);
        let scheduler = scheduler::Scheduler::new(
            Arc::clone(&alive),
            ctx,
            inbox_tx.clone(),
            limits,
            jobs_tx,
            inbox_rx,
        );
        let scheduler = tokio::spawn(scheduler.run(stop_rx, drain));
        let handle = DeliveryHandle {
            inbox: inbox_tx,
            fences,
            policy,
            destination: Arc::new(destination),
            quiesce_limit: d.timeout + Duration::from_secs(1),
        };
        store.attach(Arc::new(handle.clone()));
        Engine {
            handle,
            alive,
            stop,
            scheduler,
            notifier,
        }
    }

    /// Stops dispatching and waits (bounded) for the attempts under way to be recorded.
    pub async fn shutdown(self) {
        self.notifier.stop();
        let _ = self.stop.send(());
        let _ = self.scheduler.await;
    }
}
