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
//!   (`engine`), one node at a time; jobs that must run once (retention, notifications,
//!   cleanup) hold `job:<name>` leases.
//!
//! SKELETON — being filled in; operations not yet written answer `Unsupported`.

#![allow(dead_code)] // SKELETON: removed once every operation is written

mod engine;
mod lease;
mod notifications;

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

const TODO: StoreError = StoreError::Unsupported("not yet implemented on PostgreSQL");

/// `NOTIFY` channel: deliveries were queued; the payload is the webhook ids (hyphenated
/// UUIDs), comma-separated. The node holding a webhook's lease looks at its queue at once.
pub(super) const QUEUED_CHANNEL: &str = "hookd_queued";
/// `NOTIFY` channel: a webhook was disabled or deleted; the payload is its id. The node
/// holding its lease closes its cancellation fence (`delivery::fence`).
pub(super) const FENCE_CHANNEL: &str = "hookd_fence";

/// What `hookd migrate` did: the schema version found and the one left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MigrateReport {
    pub from: u32,
    pub to: u32,
}

/// Brings the database's schema up to the version this binary knows.
pub async fn migrate(_settings: &PgSettings) -> Result<MigrateReport, StoreError> {
    Err(TODO)
}

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
    health: Health,
    /// This node's connections.
    pool: deadpool_postgres::Pool,
    /// This node's place in the cluster: its leases and wake-ups (`lease`).
    cluster: lease::Cluster,
    /// The runtime the pool's connections live on: the worker and notifier threads run
    /// their operations on it ([`PgStore::block_on`]).
    runtime: tokio::runtime::Handle,
}

impl PgStore {
    /// Connects, brings the schema up to date, and joins the cluster.
    pub async fn connect(_settings: PgSettings) -> Result<PgStore, StoreError> {
        Err(TODO)
    }

    /// This node's settings.
    pub fn settings(&self) -> &PgSettings {
        &self.inner.settings
    }

    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// Runs `f` to completion from a thread outside the runtime (workers, notifier).
    pub fn block_on<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        self.inner.runtime.block_on(f)
    }

    pub fn close(self) {}

    pub async fn ping(&self) -> Result<(), StoreError> {
        Err(TODO)
    }
    pub async fn size_bytes(&self) -> Result<u64, StoreError> {
        Err(TODO)
    }
    pub async fn webhook(&self, _id: WebhookId) -> Result<Option<WebhookRecord>, StoreError> {
        Err(TODO)
    }
    pub async fn webhook_owned(
        &self,
        _user: &str,
        _id: WebhookId,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        Err(TODO)
    }
    pub async fn webhooks_of(&self, _user: &str) -> Result<Vec<WebhookRecord>, StoreError> {
        Err(TODO)
    }
    pub async fn create_webhook(
        &self,
        _hook: WebhookRecord,
        _max_per_user: usize,
    ) -> Result<Created, StoreError> {
        Err(TODO)
    }
    pub async fn update_webhook<F>(
        &self,
        _user: &str,
        _id: WebhookId,
        _now: Millis,
        _change: F,
    ) -> Result<Option<WebhookRecord>, StoreError>
    where
        F: FnOnce(&mut WebhookRecord) + Send + 'static,
    {
        Err(TODO)
    }
    pub async fn delete_webhook(&self, _user: &str, _id: WebhookId) -> Result<Deleted, StoreError> {
        Err(TODO)
    }
    pub async fn cleanup_unfinished(&self, _id: WebhookId) -> Result<bool, StoreError> {
        Err(TODO)
    }
    pub async fn finish_cleanup(&self, _id: WebhookId) -> Result<(), StoreError> {
        Err(TODO)
    }
    pub async fn finish_cleanups(&self) -> Result<usize, StoreError> {
        Err(TODO)
    }
    pub async fn webhooks_by_status(
        &self,
        _after: Option<WebhookCursor>,
        _limit: usize,
    ) -> Result<(Vec<WebhookRecord>, Option<WebhookCursor>), StoreError> {
        Err(TODO)
    }
    pub async fn ingest(&self, _new: NewEvent, _due: Millis) -> Result<Ingested, StoreError> {
        Err(TODO)
    }
    pub async fn ingest_test(
        &self,
        _new: NewEvent,
        _webhook: WebhookId,
        _due: Millis,
    ) -> Result<TestEvent, StoreError> {
        Err(TODO)
    }
    pub async fn event(&self, _id: &str) -> Result<Option<EventRecord>, StoreError> {
        Err(TODO)
    }
    pub async fn events_of(
        &self,
        _user: &str,
        _filter: Option<EventPattern>,
        _limit: usize,
        _before: Option<u64>,
    ) -> Result<Page<EventRecord>, StoreError> {
        Err(TODO)
    }
    pub async fn delivery_page(
        &self,
        _webhook: WebhookId,
        _filter: DeliveryFilter,
        _limit: usize,
        _before: Option<u64>,
    ) -> Result<(Vec<DeliveryDetail>, Option<u64>), StoreError> {
        Err(TODO)
    }
    pub async fn delivery(
        &self,
        _webhook: WebhookId,
        _id: DeliveryId,
    ) -> Result<Option<DeliveryDetail>, StoreError> {
        Err(TODO)
    }
    pub async fn gauges(&self) -> Result<QueueGauges, StoreError> {
        Err(TODO)
    }
    pub async fn webhook_stats(
        &self,
        _webhook: WebhookId,
        _first: u64,
        _last: u64,
        _now: Millis,
    ) -> Result<(Vec<(u64, MinuteStats)>, Option<Millis>), StoreError> {
        Err(TODO)
    }
    pub async fn attempt_totals(
        &self,
        _first: u64,
        _last: u64,
    ) -> Result<Vec<(u64, MinuteStats)>, StoreError> {
        Err(TODO)
    }
    pub async fn prune(&self, _cutoff: Millis, _batch: usize) -> Result<Pruned, StoreError> {
        Err(TODO)
    }
    pub async fn next_notification(&self) -> Result<Option<(Millis, u64)>, StoreError> {
        Err(TODO)
    }
    pub async fn notification(&self, _seq: u64) -> Result<Option<NotificationRecord>, StoreError> {
        Err(TODO)
    }
    pub async fn release_notification(
        &self,
        _seq: u64,
        _now: Millis,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        Err(TODO)
    }
    pub async fn unlink_notification(&self, _at: Millis, _seq: u64) -> Result<(), StoreError> {
        Err(TODO)
    }
    pub async fn finish_notification(
        &self,
        _seq: u64,
        _outcome: Attempted,
        _policy: &RetryPolicy,
        _now: Millis,
    ) -> Result<Option<NotificationState>, StoreError> {
        Err(TODO)
    }
    pub async fn recent_notifications(
        &self,
        _limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        Err(TODO)
    }
    pub async fn open_notifications(&self) -> Result<u64, StoreError> {
        Err(TODO)
    }
}
