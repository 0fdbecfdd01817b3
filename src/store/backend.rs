//! The store seam: the one interface the API, the delivery engine, the notifier and the
//! background jobs use, over the two backends.
//!
//! - [`RedbStore`] (`embedded`): one redb file, the default. Its operations are the
//!   functions of [`super::ops`], run in a read snapshot or in one job of the writer's
//!   group commit.
//! - [`PgStore`] (`postgres`): a PostgreSQL database that several hookd nodes may share
//!   (docs/scaling-out.md).
//!
//! Every operation here is named for what it does to hookd's data, and takes and returns
//! hookd's own types (`records`, `model`): neither a redb transaction nor SQL crosses
//! this line. It is an enum rather than a trait object so that the redb path costs what
//! it cost before the seam (no boxed futures, no virtual calls): an `async` operation on
//! redb reads its snapshot at once, and only writes wait (for their group commit).
//!
//! Operations come in two kinds: `async` for tokio tasks (the API, the scheduler, the
//! background jobs), and blocking ones (named so in their docs) for the worker and
//! notifier threads, which are not on the runtime.

use std::path::Path;
use std::sync::Arc;

use super::ops::Page;
use super::ops::attempts::{self, AttemptInputs, Recorded, Recording, Recovered, Requeue, Verdict};
use super::ops::deliveries::{self, DeliveryDetail, DeliveryFilter};
use super::ops::events::{self, Ingested, NewEvent, TestEvent};
use super::ops::logged;
use super::ops::notifications::{self, Attempted};
use super::ops::overview::{self, WebhookCursor};
use super::ops::queue::{self, Claimed, LookFor, Peek, QueueGauges};
use super::ops::retention::{self, Pruned};
use super::ops::stats::{self, MinuteStats};
use super::ops::webhooks::{self, Created, Deleted};
use super::postgres::{PgSettings, PgStore};
use super::records::{Attempt, EventRecord, NotificationRecord, NotificationState, WebhookRecord};
use super::redo::RedoLog;
use super::{Health, RedbStore, StoreError};
use crate::config::{Backend, Config};
use crate::delivery::retry::RetryPolicy;
use crate::model::{DeliveryId, EventPattern, Millis, WebhookId};

/// At most this many queue entries are read per read transaction of a due count on redb.
const DUE_STEP: usize = 10_000;

/// The store, on whichever backend the config names; cheap to clone.
#[derive(Clone)]
pub enum Store {
    Redb(RedbStore),
    Postgres(PgStore),
}

/// The PostgreSQL settings the config names, if its backend is PostgreSQL.
pub fn pg_settings(config: &Config) -> Option<PgSettings> {
    let url = match config.store.backend {
        Backend::Redb => return None,
        Backend::Postgres => config.store.postgres_url.clone()?,
    };
    Some(PgSettings {
        url,
        pool_size: config.store.pool_size,
        node_id: config.cluster.node_name(),
        lease: config.cluster.lease,
    })
}

/// Where the config's store is, for logs and messages: the redb file, or the database's
/// host and name (never the URL, which may hold a password).
pub fn describe(config: &Config) -> String {
    match config.store.backend {
        Backend::Redb => config.db_path().display().to_string(),
        Backend::Postgres => {
            let parsed = config
                .store
                .postgres_url
                .as_deref()
                .and_then(|url| super::postgres::parse_url(url).ok());
            match parsed {
                Some(pg) => {
                    let hosts: Vec<String> = pg
                        .get_hosts()
                        .iter()
                        .map(|h| match h {
                            tokio_postgres::config::Host::Tcp(name) => name.clone(),
                            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
                        })
                        .collect();
                    format!(
                        "postgres database {:?} on {}",
                        pg.get_dbname().unwrap_or("(default)"),
                        hosts.join(",")
                    )
                }
                None => "postgres (no URL)".to_owned(),
            }
        }
    }
}

impl Store {
    /// Opens the store the config names: the redb file in `data_dir` (created with its
    /// directory if missing), or a connection pool to PostgreSQL, whose schema is brought
    /// up to date first.
    pub async fn open(config: &Config) -> Result<Store, StoreError> {
        match pg_settings(config) {
            None => {
                std::fs::create_dir_all(&config.data_dir)
                    .map_err(|e| StoreError::io("create data_dir", e))?;
                Ok(Store::Redb(RedbStore::open(&config.db_path())?))
            }
            Some(settings) => Ok(Store::Postgres(PgStore::connect(settings).await?)),
        }
    }

    /// Lets the store tell the delivery engine what other nodes change: on PostgreSQL
    /// this node joins the cluster, and its leases decide which queues it drives (their
    /// changes and other nodes' wake-ups reach the scheduler through `link`). On redb,
    /// one process owns every queue and nothing else writes: nothing to tell.
    pub fn attach(&self, link: Arc<dyn crate::delivery::ClusterLink>) {
        if let Store::Postgres(p) = self {
            p.attach(link);
        }
    }

    /// Whether the store can commit, and free space (see [`super::health`]).
    pub fn health(&self) -> &Health {
        match self {
            Store::Redb(s) => s.health(),
            Store::Postgres(p) => p.health(),
        }
    }

    /// Reads the free space of the store's file system and refuses new events below
    /// `reserve` bytes (redb; a database server minds its own disk).
    pub fn check_space(&self, reserve: u64) {
        if let Store::Redb(s) = self {
            s.check_space(reserve);
        }
    }

    /// Whether the store answers a read now (`/healthz`).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| Ok(r.open_table(super::tables::META).map(|_| ())?)),
            Store::Postgres(p) => p.ping().await,
        }
    }

    /// The size of the store on disk, for `/metrics` and the operator view: on redb the
    /// disk its file and its redo log take ([`super::space::disk_bytes`]), not their
    /// lengths.
    pub async fn size_bytes(&self) -> Option<u64> {
        match self {
            Store::Redb(s) => {
                let log = super::space::disk_bytes(&RedoLog::path_for(s.path())).unwrap_or(0);
                super::space::disk_bytes(s.path())
                    .ok()
                    .map(|file| file + log)
            }
            Store::Postgres(p) => p.size_bytes().await.ok(),
        }
    }

    /// Whether hookd can back this store up itself ([`Store::backup_to`]): PostgreSQL is
    /// backed up with its own tools (docs/scaling-out.md), so it answers
    /// [`StoreError::Unsupported`] saying so.
    pub fn can_back_up(&self) -> Result<(), StoreError> {
        match self {
            Store::Redb(_) => Ok(()),
            Store::Postgres(_) => Err(StoreError::Unsupported(
                "hookd does not back up a PostgreSQL store: use the database's own backups \
                 (pg_dump, base backups, replication; see docs/scaling-out.md)",
            )),
        }
    }

    /// Writes a consistent copy of the whole store to `dest` (blocking).
    pub fn backup_to(&self, dest: &Path) -> Result<u64, StoreError> {
        match self {
            Store::Redb(s) => s.backup_to(dest),
            Store::Postgres(_) => self.can_back_up().map(|()| 0),
        }
    }

    /// Leaves the cluster: hands this node's leases back at once so that the other
    /// nodes take its webhooks over without waiting for them to expire (PostgreSQL; call
    /// it once the delivery engine has stopped). Nothing to do on redb.
    pub async fn leave(&self) {
        if let Store::Postgres(p) = self {
            p.leave().await;
        }
    }

    /// Closes the store once everything submitted is committed (blocking).
    pub fn close(self, wait: std::time::Duration) {
        match self {
            Store::Redb(s) => s.close(wait),
            Store::Postgres(p) => p.close(),
        }
    }

    // --- webhooks ---

    /// A webhook by id, whoever owns it.
    pub async fn webhook(&self, id: WebhookId) -> Result<Option<WebhookRecord>, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| webhooks::get(r, id)),
            Store::Postgres(p) => p.webhook(id).await,
        }
    }

    /// A webhook, if it exists and belongs to `user`.
    pub async fn webhook_owned(
        &self,
        user: &str,
        id: WebhookId,
    ) -> Result<Option<WebhookRecord>, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| webhooks::get_owned(r, user, id)),
            Store::Postgres(p) => p.webhook_owned(user, id).await,
        }
    }

    /// Every webhook of `user`, oldest first.
    pub async fn webhooks_of(&self, user: &str) -> Result<Vec<WebhookRecord>, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| webhooks::list_for_user(r, user)),
            Store::Postgres(p) => p.webhooks_of(user).await,
        }
    }

    /// Stores a new webhook unless its owner already has `max_per_user`.
    pub async fn create_webhook(
        &self,
        hook: WebhookRecord,
        max_per_user: usize,
    ) -> Result<Created, StoreError> {
        match self {
            Store::Redb(s) => {
                s.write(move |tx| webhooks::create(tx, hook, max_per_user))
                    .await
            }
            Store::Postgres(p) => p.create_webhook(hook, max_per_user).await,
        }
    }

    /// Applies `change` to `user`'s webhook `id` (a disable starts the cancellation of
    /// its queue, a re-enable ends it); `None` when there is no such webhook.
    pub async fn update_webhook<F>(
        &self,
        user: String,
        id: WebhookId,
        now: Millis,
        change: F,
    ) -> Result<Option<WebhookRecord>, StoreError>
    where
        F: FnOnce(&mut WebhookRecord) + Send + 'static,
    {
        match self {
            Store::Redb(s) => {
                s.write(move |tx| webhooks::update(tx, &user, id, now, change))
                    .await
            }
            Store::Postgres(p) => p.update_webhook(&user, id, now, change).await,
        }
    }

    /// Deletes `user`'s webhook `id`; its deliveries go in chunks afterwards.
    pub async fn delete_webhook(&self, user: String, id: WebhookId) -> Result<Deleted, StoreError> {
        match self {
            Store::Redb(s) => s.write(move |tx| webhooks::delete(tx, &user, id)).await,
            Store::Postgres(p) => p.delete_webhook(&user, id).await,
        }
    }

    /// Whether webhook `id`'s removal or cancellation is still under way.
    pub async fn cleanup_unfinished(&self, id: WebhookId) -> Result<bool, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| webhooks::cleanup_unfinished(r, id)),
            Store::Postgres(p) => p.cleanup_unfinished(id).await,
        }
    }

    /// Finishes webhook `id`'s removal or cancellation, chunk by chunk.
    pub async fn finish_cleanup(&self, id: WebhookId) -> Result<(), StoreError> {
        match self {
            Store::Redb(s) => webhooks::finish_cleanup(s, id).await,
            Store::Postgres(p) => p.finish_cleanup(id).await,
        }
    }

    /// Finishes every unfinished removal and cancellation; answers how many.
    pub async fn finish_cleanups(&self) -> Result<usize, StoreError> {
        match self {
            Store::Redb(s) => webhooks::finish_cleanups(s).await,
            Store::Postgres(p) => p.finish_cleanups().await,
        }
    }

    /// The operator view's figures: a page of every user's webhooks (failing and
    /// disabled first), the queue gauges, the attempt totals and the newest
    /// notifications. One snapshot on redb; on PostgreSQL four concurrent reads, each
    /// of them current (the view is a glance, not an audit).
    pub async fn overview(
        &self,
        q: overview::OverviewQuery,
    ) -> Result<overview::OverviewFigures, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| overview::read(r, &q)),
            Store::Postgres(p) => {
                // Four reads on connections of their own: at once, not one after another.
                let ((page, next), gauges, totals, recent) = tokio::try_join!(
                    p.webhooks_by_status(q.after, q.limit),
                    p.gauges(),
                    p.attempt_totals(q.first, q.last),
                    p.recent_notifications(q.recent),
                )?;
                Ok(overview::OverviewFigures {
                    page,
                    next,
                    gauges,
                    totals,
                    recent,
                })
            }
        }
    }

    /// Every webhook, failing and disabled first, for the operator view.
    pub async fn webhooks_by_status(
        &self,
        after: Option<WebhookCursor>,
        limit: usize,
    ) -> Result<(Vec<WebhookRecord>, Option<WebhookCursor>), StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| overview::webhooks(r, after, limit)),
            Store::Postgres(p) => p.webhooks_by_status(after, limit).await,
        }
    }

    // --- events ---

    /// Stores an event and its deliveries (or finds it stored already: idempotency).
    pub async fn ingest(&self, new: NewEvent, due: Millis) -> Result<Ingested, StoreError> {
        match self {
            Store::Redb(s) => s.write_logged(logged::ingest(new, due)).await,
            Store::Postgres(p) => p.ingest(new, due).await,
        }
    }

    /// Stores a test event with one delivery, to `webhook` only.
    pub async fn ingest_test(
        &self,
        new: NewEvent,
        webhook: WebhookId,
        due: Millis,
    ) -> Result<TestEvent, StoreError> {
        match self {
            Store::Redb(s) => {
                s.write(move |tx| events::ingest_test(tx, new, webhook, due))
                    .await
            }
            Store::Postgres(p) => p.ingest_test(new, webhook, due).await,
        }
    }

    /// An event by id.
    pub async fn event(&self, id: &str) -> Result<Option<EventRecord>, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| events::get(r, id)),
            Store::Postgres(p) => p.event(id).await,
        }
    }

    /// A page of `user`'s events, newest first, below the cursor `before`.
    pub async fn events_of(
        &self,
        user: &str,
        filter: Option<EventPattern>,
        limit: usize,
        before: Option<u64>,
    ) -> Result<Page<EventRecord>, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| events::list_for_user(r, user, filter, limit, before)),
            Store::Postgres(p) => p.events_of(user, filter, limit, before).await,
        }
    }

    // --- deliveries ---

    /// A page of `webhook`'s delivery log, newest first, with each delivery's attempts
    /// and event id (one snapshot); and the cursor of the next page.
    pub async fn delivery_page(
        &self,
        webhook: WebhookId,
        filter: DeliveryFilter,
        limit: usize,
        before: Option<u64>,
    ) -> Result<(Vec<DeliveryDetail>, Option<u64>), StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| {
                let page = deliveries::list_for_webhook(r, webhook, filter, limit, before)?;
                Ok((deliveries::details(r, page.items)?, page.next))
            }),
            Store::Postgres(p) => p.delivery_page(webhook, filter, limit, before).await,
        }
    }

    /// One delivery of `webhook`, with its attempts and event id.
    pub async fn delivery(
        &self,
        webhook: WebhookId,
        id: DeliveryId,
    ) -> Result<Option<DeliveryDetail>, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| {
                let record = deliveries::get(r, id)?.filter(|d| d.webhook_id == webhook);
                Ok(deliveries::details(r, record.into_iter().collect())?.pop())
            }),
            Store::Postgres(p) => p.delivery(webhook, id).await,
        }
    }

    /// Queues a failed delivery again (manual retry).
    pub async fn retry(
        &self,
        user: String,
        webhook: WebhookId,
        id: DeliveryId,
        due: Millis,
    ) -> Result<Requeue, StoreError> {
        match self {
            Store::Redb(s) => {
                s.write(move |tx| attempts::retry(tx, &user, webhook, id, due))
                    .await
            }
            Store::Postgres(p) => p.retry(&user, webhook, id, due).await,
        }
    }

    /// Queues again one chunk of `webhook`'s failed deliveries created in `window`, below
    /// the cursor `before` (recover; the API calls it until it is done).
    pub async fn recover(
        &self,
        user: String,
        webhook: WebhookId,
        window: (Millis, Millis),
        due: Millis,
        before: u64,
    ) -> Result<Result<Recovered, Requeue>, StoreError> {
        match self {
            Store::Redb(s) => {
                s.write(move |tx| attempts::recover(tx, &user, webhook, window, due, before))
                    .await
            }
            Store::Postgres(p) => p.recover(&user, webhook, window, due, before).await,
        }
    }

    // --- the delivery engine ---

    /// The webhooks whose queues the scheduler drives: every enabled one on redb; on
    /// PostgreSQL, those this node holds the lease of.
    pub async fn enabled_webhooks(&self) -> Result<Vec<WebhookId>, StoreError> {
        match self {
            Store::Redb(s) => s.read(queue::enabled_webhooks),
            Store::Postgres(p) => p.enabled_webhooks().await,
        }
    }

    /// The head of `webhook`'s queue: up to `max` deliveries due at `now` and not in
    /// `skip`, and when the next one is due; `purpose` says whether they are to be sent.
    pub async fn peek(
        &self,
        webhook: WebhookId,
        now: Millis,
        skip: &Claimed,
        max: usize,
        purpose: LookFor,
    ) -> Result<Peek, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| queue::peek(r, webhook, now, skip, max)),
            Store::Postgres(p) => p.peek(webhook, now, skip, max, purpose).await,
        }
    }

    /// Whether a look at a queue ([`Store::peek`]) is a round trip to a server, so that
    /// the scheduler reads ahead to make fewer (`delivery::ahead`): on PostgreSQL. On redb
    /// a look reads the file in place, and reading ahead measured no gain there
    /// (BENCHMARKS.md, "Read-ahead").
    pub fn looks_are_round_trips(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// Moves queued deliveries to new due times (the rate limit's slots).
    pub async fn reschedule(
        &self,
        webhook: WebhookId,
        moves: Vec<(DeliveryId, Millis)>,
    ) -> Result<usize, StoreError> {
        match self {
            Store::Redb(s) => {
                s.write(move |tx| attempts::reschedule(tx, webhook, &moves))
                    .await
            }
            Store::Postgres(p) => p.reschedule(webhook, &moves).await,
        }
    }

    /// Blocking: what an attempt of `delivery` needs, or `None` when it is no longer to
    /// be sent.
    pub fn load_for_attempt(&self, id: DeliveryId) -> Result<Option<AttemptInputs>, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| attempts::load_for_attempt(r, id)),
            Store::Postgres(p) => p.block_on(p.load_for_attempt(id)),
        }
    }

    /// Blocking: cancels a pending delivery that can no longer be sent; answers whether
    /// it did.
    pub fn cancel_if_unsendable(&self, id: DeliveryId) -> Result<bool, StoreError> {
        match self {
            Store::Redb(s) => s.write_blocking(move |tx| attempts::cancel_if_unsendable(tx, id)),
            Store::Postgres(p) => p.block_on(p.cancel_if_unsendable(id)),
        }
    }

    /// Records an attempt's outcome without waiting for it: `on_commit` runs once it is
    /// durable or has failed (on redb it may wait briefly to share another write's
    /// commit, see the writer's docs).
    pub fn record_attempt<C>(
        &self,
        id: DeliveryId,
        verdict: Verdict,
        attempt: Attempt,
        recording: Recording,
        policy: Arc<RetryPolicy>,
        on_commit: C,
    ) -> Result<(), StoreError>
    where
        C: FnOnce(Result<Option<Recorded>, StoreError>) + Send + 'static,
    {
        match self {
            Store::Redb(s) => s.write_riding(
                logged::record(id, verdict, attempt, recording, policy, Millis::now()),
                on_commit,
            ),
            Store::Postgres(p) => {
                p.record_attempt(id, verdict, attempt, recording, policy, on_commit);
                Ok(())
            }
        }
    }

    /// Blocking: the number of queued deliveries due at `now` (`hookd_queue_due`). On
    /// redb it reads the queue in bounded steps, each its own snapshot.
    pub fn due_count(&self, now: Millis) -> Result<u64, StoreError> {
        match self {
            Store::Redb(s) => {
                let mut total = 0;
                let mut cursor = Some((0, 0, 0));
                while let Some(from) = cursor {
                    let (due, next) = s.read(|r| queue::count_due(r, now, from, DUE_STEP))?;
                    total += due;
                    cursor = next;
                }
                Ok(total)
            }
            Store::Postgres(p) => p.block_on(p.due_count(now)),
        }
    }

    /// The queue depth and the webhooks by status.
    pub async fn gauges(&self) -> Result<QueueGauges, StoreError> {
        match self {
            Store::Redb(s) => s.read(queue::gauges),
            Store::Postgres(p) => p.gauges().await,
        }
    }

    // --- statistics ---

    /// `webhook`'s attempt statistics for minutes `first..=last`, and when its last
    /// attempt started.
    pub async fn webhook_stats(
        &self,
        webhook: WebhookId,
        first: u64,
        last: u64,
        now: Millis,
    ) -> Result<(Vec<(u64, MinuteStats)>, Option<Millis>), StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| {
                Ok((
                    stats::window(r, webhook, first, last)?,
                    stats::last_attempt_at(r, webhook, now)?,
                ))
            }),
            Store::Postgres(p) => p.webhook_stats(webhook, first, last, now).await,
        }
    }

    /// The attempts of all webhooks by minute, `first..=last`.
    pub async fn attempt_totals(
        &self,
        first: u64,
        last: u64,
    ) -> Result<Vec<(u64, MinuteStats)>, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| stats::totals(r, first, last)),
            Store::Postgres(p) => p.attempt_totals(first, last).await,
        }
    }

    // --- retention ---

    /// Deletes up to `batch` of the oldest events (and their deliveries) older than
    /// `cutoff`.
    pub async fn prune(&self, cutoff: Millis, batch: usize) -> Result<Pruned, StoreError> {
        match self {
            Store::Redb(s) => s.write(move |tx| retention::prune(tx, cutoff, batch)).await,
            Store::Postgres(p) => p.prune(cutoff, batch).await,
        }
    }

    // --- operator notifications (the notifier's thread: blocking) ---

    /// Blocking: when the next notification may go, and which.
    pub fn next_notification(&self) -> Result<Option<(Millis, u64)>, StoreError> {
        match self {
            Store::Redb(s) => s.read(notifications::next_due),
            Store::Postgres(p) => p.block_on(p.next_notification()),
        }
    }

    /// Blocking: notification `seq`.
    pub fn notification(&self, seq: u64) -> Result<Option<NotificationRecord>, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| notifications::get(r, seq)),
            Store::Postgres(p) => p.block_on(p.notification(seq)),
        }
    }

    /// Blocking: releases held notification `seq` to be sent.
    pub fn release_notification(
        &self,
        seq: u64,
        now: Millis,
    ) -> Result<Option<NotificationRecord>, StoreError> {
        match self {
            Store::Redb(s) => s.write_blocking(move |tx| notifications::release(tx, seq, now)),
            Store::Postgres(p) => p.block_on(p.release_notification(seq, now)),
        }
    }

    /// Blocking: drops a due entry that names nothing to send.
    pub fn unlink_notification(&self, at: Millis, seq: u64) -> Result<(), StoreError> {
        match self {
            Store::Redb(s) => s.write_blocking(move |tx| notifications::unlink_due(tx, at, seq)),
            Store::Postgres(p) => p.block_on(p.unlink_notification(at, seq)),
        }
    }

    /// Blocking: records notification `seq`'s attempt.
    pub fn finish_notification(
        &self,
        seq: u64,
        outcome: Attempted,
        policy: Arc<RetryPolicy>,
        now: Millis,
    ) -> Result<Option<NotificationState>, StoreError> {
        match self {
            Store::Redb(s) => {
                s.write_blocking(move |tx| notifications::finish(tx, seq, outcome, &policy, now))
            }
            Store::Postgres(p) => p.block_on(p.finish_notification(seq, outcome, &policy, now)),
        }
    }

    /// The latest `limit` notifications, newest first.
    pub async fn recent_notifications(
        &self,
        limit: usize,
    ) -> Result<Vec<NotificationRecord>, StoreError> {
        match self {
            Store::Redb(s) => s.read(|r| notifications::recent(r, limit)),
            Store::Postgres(p) => p.recent_notifications(limit).await,
        }
    }

    /// How many notifications are open (held or pending).
    pub async fn open_notifications(&self) -> Result<u64, StoreError> {
        match self {
            Store::Redb(s) => s.read(notifications::open_count),
            Store::Postgres(p) => p.open_notifications().await,
        }
    }
}
