//! The PostgreSQL backend (docs/scaling-out.md): one database that any number of hookd
//! nodes share. The schema is in `migrations/` (applied in order at start, or by
//! `hookd migrate`); its tables mirror the redb ones (`store::tables`), with PostgreSQL's
//! indexes in place of the hand-kept index tables.
//!
//! Invariants (the redb ones of `store::tables`, restated for SQL):
//! - A delivery is pending exactly when its `due` is set (`due` = its `next_attempt_at`),
//!   and then its `position` is set too (its seq, or a fresh `delivery_seq` value when a
//!   retry or recover queued it again): `deliveries_queue` is the queue and
//!   `deliveries_line` the FIFO line.
//! - `events.id` is stored once, ever (until retention): ingest idempotency across nodes.
//! - Every write that changes a webhook's status writes its operator notification in
//!   the same transaction.
//! - Each webhook's deliveries are driven by the node holding the lease `webhook:<id>`
//!   (`engine`), one node at a time. Work that must be done once is kept single by the
//!   database, not by leases: retention runs under an advisory lock (`retention`), each
//!   notification is claimed by row (`notifications`), each cleanup locks its
//!   `webhook_cleanup` row (`cleanup`), migrations run under an advisory lock.
//!
//! - Sequence numbers come from PostgreSQL sequences. `delivery_seq` steps by 1024, so
//!   that one `nextval` reserves the consecutive seqs of an event's deliveries
//!   (`EventRecord::first_delivery`) without any lock, and a later `nextval` (a queue
//!   position) is larger than every seq handed out before it.
//! - Counters that every transaction would bump (`attempt_stats`, `attempt_totals`) are
//!   split in shards by backend, so concurrent commits never queue on one row.
//! - A transaction that queues deliveries for a webhook holds its row `FOR KEY SHARE`,
//!   and one that disables or deletes it holds it `FOR UPDATE` before cancelling: a
//!   delivery is never queued behind a cancellation's back. Attempt outcomes lock the row
//!   `FOR NO KEY UPDATE`, which does not conflict with `KEY SHARE`, so ingest and
//!   outcomes do not wait for each other (measured: ingests waited 38 ms each behind
//!   outcomes when both took the row exclusively); an outcome that disables the webhook
//!   takes `FOR UPDATE` before it cancels.
//!
//! Modules: `connect` (URL, TLS, pool, migrations), `rows` (row helpers), `webhooks`,
//! `cleanup`, `events` (ingest, batched), `log` (delivery listings), `stats`,
//! `retention`, `notifications`; `engine` and `lease` are the delivery engine's side.

mod cleanup;
mod connect;
mod engine;
mod events;
mod lease;
mod log;
mod notifications;
mod retention;
mod rows;
mod stats;
mod webhooks;

#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod tests_nodes;

use std::sync::Arc;
use std::time::Duration;

use super::ops::Page;
use super::ops::deliveries::{DeliveryDetail, DeliveryFilter};
use super::ops::events::{Ingested, NewEvent, TestEvent};
use super::ops::notifications::Attempted;
use super::ops::overview::WebhookCursor;
use super::ops::queue::QueueGauges;
use super::ops::retention::Pruned;
use super::ops::stats::MinuteStats;
use super::ops::webhooks::{Created, Deleted};
use super::records::{EventRecord, NotificationRecord, NotificationState, WebhookRecord};
use super::{Fault, Health, StoreError};
use crate::delivery::retry::RetryPolicy;
use crate::model::{DeliveryId, EventPattern, Millis, WebhookId};

pub use connect::{MigrateReport, known_version};

/// Reads `url` as the backend will connect with it (libpq's `sslmode` values, from
/// `disable` to `verify-full`, and `sslrootcert` included): for the config's check and
/// for naming the database in logs. The error is the reason alone, without the URL
/// (which may hold a password).
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    match connect::target(url) {
        Ok(target) => Ok(target.config),
        Err(StoreError::Config(reason)) => Err(reason),
        Err(other) => Err(other.to_string()),
    }
}

/// `NOTIFY` channel: deliveries were queued; the payload is the webhook ids (hyphenated
/// UUIDs), comma-separated. The node holding a webhook's lease looks at its queue at once.
pub(super) const QUEUED_CHANNEL: &str = "hookd_queued";
/// `NOTIFY` channel: a webhook was disabled or deleted; the payload is its id. The node
/// holding its lease closes its cancellation fence (`delivery::fence`).
pub(super) const FENCE_CHANNEL: &str = "hookd_fence";

/// What `[store]` and `[cluster]` say about the database and this node.
#[derive(Clone, Debug)]
pub struct PgSettings {
    /// `postgres_url` (or `HOOKD_POSTGRES_URL`).
    pub url: String,
    /// Connections in this node's pool.
    pub pool_size: usize,
    /// This node's name in `nodes` and `leases`.
    pub node_id: String,
    /// How long a lease lasts without renewal: how long a dead node's webhooks wait.
    pub lease: Duration,
}

/// What a PostgreSQL error means for the store's health: a lost or refused connection
/// and an out-of-resources server pass (the API answers 503); anything else is an error
/// of the statement.
pub fn fault_of(e: &tokio_postgres::Error) -> Option<Fault> {
    match e.code().map(|c| c.code()) {
        None => Some(Fault::Unavailable),
        Some("53100") => Some(Fault::Full),
        Some(c) if c.starts_with("08") || c.starts_with("53") || c.starts_with("57P") => {
            Some(Fault::Unavailable)
        }
        Some(_) => None,
    }
}

/// A handle to the PostgreSQL store; cheap to clone.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<Inner>,
}

struct Inner {
    settings: PgSettings,
    health: Arc<Health>,
    /// This node's connections.
    pool: deadpool_postgres::Pool,
    /// This node's place in the cluster: its leases and wake-ups (`lease`).
    cluster: lease::Cluster,
    /// The runtime the pool's connections live on: the worker and notifier threads run
    /// their operations on it ([`PgStore::block_on`]).
    runtime: tokio::runtime::Handle,
    /// Gathers concurrent ingests into shared transactions (`events`).
    ingester: events::Ingester,
    /// The webhooks that were FIFO at their last look (`engine::queue`): a look reads
    /// their line's head after their record, the others' queue beside it.
    fifo: std::sync::Mutex<std::collections::HashSet<crate::model::WebhookId>>,
}

// What `hookd store copy` shares with the backend, so one place owns each rule: the
// columns an event row derives from its record, and how a minute's shards merge.
pub(crate) use events::deliveries_columns as event_deliveries_columns;

/// One connection outside any pool, speaking TLS as the URL's `sslmode` says (see
/// [`connect`]); its driver runs on a task of the current runtime. For `hookd store
/// copy`, which reads or fills a database in one long transaction.
pub(crate) async fn connect_one(url: &str) -> Result<tokio_postgres::Client, StoreError> {
    connect::connect_one(url).await
}

/// Brings the schema of `client`'s database up to date, refusing one newer than this
/// hookd knows ([`StoreError::SchemaTooNew`]), as [`migrate`] does on its own connection.
pub(crate) async fn migrate_on(
    client: &mut tokio_postgres::Client,
) -> Result<MigrateReport, StoreError> {
    connect::migrate(client).await
}

/// Brings the database's schema up to date (`hookd migrate`): see [`connect`].
pub async fn migrate(settings: &PgSettings) -> Result<MigrateReport, StoreError> {
    let mut client = connect::connect_one(&settings.url).await?;
    connect::migrate(&mut client).await
}

impl PgStore {
    /// Connects to the database, migrating its schema first; the store's connections
    /// live on the current tokio runtime.
    pub async fn connect(settings: PgSettings) -> Result<PgStore, StoreError> {
        let report = migrate(&settings).await?;
        let target = connect::target(&settings.url)?;
        tracing::info!(
            from = report.from,
            to = report.to,
            node = %settings.node_id,
            tls = ?target.mode,
            "connected to PostgreSQL"
        );
        let pool = connect::pool(&settings, target)?;
        let health = Arc::new(Health::default());
        let ingester = events::Ingester::start(pool.clone(), Arc::clone(&health));
        Ok(PgStore {
            inner: Arc::new(Inner {
                cluster: lease::Cluster::new(&settings),
                settings,
                health,
                pool,
                runtime: tokio::runtime::Handle::current(),
                ingester,
                fifo: Default::default(),
            }),
        })
    }

    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// Runs `f` to completion from a thread outside the runtime (workers, notifier).
    pub fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.inner.runtime.block_on(f)
    }

    pub fn close(self) {
        self.inner.pool.close();
    }

    /// A connection from the pool (waits a few seconds at most).
    pub(super) async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.inner.pool.get().await?)
    }

    /// Notes what an operation's outcome says about the database's health: a lost
    /// connection or an exhausted server marks the store down (503), and the next
    /// success marks it up again. Every operation of the store seam passes through it,
    /// inside this module: the seam (`store::backend`) never marks health itself.
    pub(in crate::store) fn seen<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        seen(&self.inner.health, result)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let r = async {
            self.client().await?.simple_query("SELECT 1").await?;
            Ok(())
        };
        self.seen(r.await)
    }
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        let r = async {
            let row = self
                .client()
                .await?
                .query_one("SELECT pg_database_size(current_database())", &[])
                .await?;
            Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
        };
        self.seen(r.await)
    }
    pub async fn webhook(&self, id: WebhookId) -> Result<Option<WebhookRecord>, StoreError> {
        let r = async { webhooks::get(&self.client().await?, id, None).await };
        self.seen(r.await)
    }
    pub async fn webhook_owned(
        &self,
        user: &str,
        id: WebhookId,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        let r = async { webhooks::get(&self.client().await?, id, Some(user)).await };
        self.seen(r.await)
    }
    pub async fn webhooks_of(&self, user: &str) -> Result<Vec<WebhookRecord>, StoreError> {
        let r = async { webhooks::of_user(&self.client().await?, user).await };
        self.seen(r.await)
    }
    pub async fn create_webhook(
        &self,
        hook: WebhookRecord,
        max_per_user: usize,
    ) -> Result<Created, StoreError> {
        let r = async { webhooks::create(&mut *self.client().await?, hook, max_per_user).await };
        self.seen(r.await)
    }
    pub async fn update_webhook<F>(
        &self,
        user: &str,
        id: WebhookId,
        now: Millis,
        change: F,
    ) -> Result<Option<WebhookRecord>, StoreError>
    where
        F: FnOnce(&mut WebhookRecord) + Send + 'static,
    {
        let r = async { webhooks::update(&mut *self.client().await?, user, id, now, change).await };
        self.seen(r.await)
    }
    pub async fn delete_webhook(&self, user: &str, id: WebhookId) -> Result<Deleted, StoreError> {
        let r = async { webhooks::delete(&mut *self.client().await?, user, id).await };
        self.seen(r.await)
    }
    pub async fn cleanup_unfinished(&self, id: WebhookId) -> Result<bool, StoreError> {
        let r = async { cleanup::unfinished(&self.client().await?, id).await };
        self.seen(r.await)
    }
    pub async fn finish_cleanup(&self, id: WebhookId) -> Result<(), StoreError> {
        let r = async { cleanup::finish(&mut *self.client().await?, id).await };
        self.seen(r.await)
    }
    pub async fn finish_cleanups(&self) -> Result<usize, StoreError> {
        let r = async { cleanup::finish_all(&mut *self.client().await?).await };
        self.seen(r.await)
    }
    pub async fn webhooks_by_status(
        &self,
        after: Option<WebhookCursor>,
        limit: usize,
    ) -> Result<(Vec<WebhookRecord>, Option<WebhookCursor>), StoreError> {
        let r = async { webhooks::by_status(&self.client().await?, after, limit).await };
        self.seen(r.await)
    }
    pub async fn ingest(&self, new: NewEvent, due: Millis) -> Result<Ingested, StoreError> {
        // The batch task marks the health itself (it answers many callers at once).
        self.inner.ingester.ingest(new, due).await
    }
    pub async fn ingest_test(
        &self,
        new: NewEvent,
        webhook: WebhookId,
        due: Millis,
    ) -> Result<TestEvent, StoreError> {
        let r = async { events::ingest_test(&mut *self.client().await?, new, webhook, due).await };
        self.seen(r.await)
    }
    pub async fn event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        let r = async { events::get(&self.client().await?, id).await };
        self.seen(r.await)
    }
    pub async fn events_of(
        &self,
        user: &str,
        filter: Option<EventPattern>,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Page<EventRecord>, StoreError> {
        let r = async { events::of_user(&self.client().await?, user, filter, limit, before).await };
        self.seen(r.await)
    }
    pub async fn delivery_page(
        &self,
        webhook: WebhookId,
        filter: DeliveryFilter,
        limit: usize,
        before: Option<u64>,
    ) -> Result<(Vec<DeliveryDetail>, Option<u64>), StoreError> {
        let r = async { log::page(&self.client().await?, webhook, filter, limit, before).await };
        self.seen(r.await)
    }
    pub async fn delivery(
        &self,
        webhook: WebhookId,
        id: DeliveryId,
    ) -> Result<Option<DeliveryDetail>, StoreError> {
        let r = async { log::one(&self.client().await?, webhook, id).await };
        self.seen(r.await)
    }
    pub async fn gauges(&self) -> Result<QueueGauges, StoreError> {
        let r = async { stats::gauges(&self.client().await?).await };
        self.seen(r.await)
    }
    pub async fn webhook_stats(
        &self,
        webhook: WebhookId,
        first: u64,
        last: u64,
        now: Millis,
    ) -> Result<(Vec<(u64, MinuteStats)>, Option<Millis>), StoreError> {
        let r = async { stats::webhook(&self.client().await?, webhook, first, last, now).await };
        self.seen(r.await)
    }
    pub async fn attempt_totals(
        &self,
        first: u64,
        last: u64,
    ) -> Result<Vec<(u64, MinuteStats)>, StoreError> {
        let r = async { stats::totals(&self.client().await?, first, last).await };
        self.seen(r.await)
    }
    pub async fn prune(&self, cutoff: Millis, batch: usize) -> Result<Pruned, StoreError> {
        let r = async { retention::prune(&mut *self.client().await?, cutoff, batch).await };
        self.seen(r.await)
    }
    pub async fn next_notification(&self) -> Result<Option<(Millis, u64)>, StoreError> {
        let r = async {
            notifications::next_due(&self.client().await?, &self.inner.settings.node_id).await
        };
        self.seen(r.await)
    }
    pub async fn notification(&self, seq: u64) -> Result<Option<NotificationRecord>, StoreError> {
        let r = async { notifications::get(&self.client().await?, seq).await };
        self.seen(r.await)
    }
    pub async fn release_notification(
        &self,
        seq: u64,
        now: Millis,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        let r = async { notifications::release(&mut *self.client().await?, seq, now).await };
        self.seen(r.await)
    }
    pub async fn unlink_notification(&self, at: Millis, seq: u64) -> Result<(), StoreError> {
        let r = async { notifications::unlink_due(&mut *self.client().await?, at, seq).await };
        self.seen(r.await)
    }
    pub async fn finish_notification(
        &self,
        seq: u64,
        outcome: Attempted,
        policy: &RetryPolicy,
        now: Millis,
    ) -> Result<Option<NotificationState>, StoreError> {
        let r = async {
            notifications::finish(&mut *self.client().await?, seq, outcome, policy, now).await
        };
        self.seen(r.await)
    }
    pub async fn recent_notifications(
        &self,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        let r = async { notifications::recent(&self.client().await?, limit).await };
        self.seen(r.await)
    }
    pub async fn open_notifications(&self) -> Result<u64, StoreError> {
        let r = async { notifications::open_count(&self.client().await?).await };
        self.seen(r.await)
    }
}

/// See [`PgStore::seen`].
fn seen<T>(health: &Health, result: Result<T, StoreError>) -> Result<T, StoreError> {
    match &result {
        Ok(_) => {
            if health.commit_fault().is_some() {
                health.recovered();
            }
        }
        Err(e) => {
            if let Some(fault) = e.fault() {
                health.failed(fault);
            }
        }
    }
    result
}

/// How long a claim on a notification lasts (`notifications::next_due`): longer than
/// any attempt to send one, so two nodes never send the same notification unless the
/// claiming node died mid-attempt.
const NOTIFICATION_CLAIM: Duration = Duration::from_secs(60);
