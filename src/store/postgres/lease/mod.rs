//! The cluster: which node drives which webhook's queue, and what wakes this node.
//!
//! - Every node keeps its row in `nodes` alive (`expires_at` = the database's `now()` +
//!   `cluster.lease`), and holds leases `webhook:<id>` in `leases`, renewed every
//!   lease / 3. A node takes its fair share, ceil(enabled webhooks / live nodes): free or
//!   expired leases first (`INSERT … ON CONFLICT … WHERE expires_at < now()`, so two
//!   nodes never both win one), and lets surplus go when more nodes are live, so the
//!   queues spread over the cluster. A node that dies loses its leases when they expire;
//!   one that leaves cleanly ([`PgStore::leave`]) deletes them at once.
//! - A lease this node holds is valid here until the renewal's start + the lease (the
//!   database set `now()` + lease at or after that), less a margin for clock rates; past
//!   that, or once it is let go, [`Cluster::holds`] says no and `peek` answers nothing
//!   due, so the scheduler stops dispatching it. Attempts already under way finish and
//!   are recorded (at-least-once). A lease let go for a rebalance is not deleted but left
//!   to expire, which gives those attempts time to finish before another node starts.
//! - When this node takes a lease, it tells the engine ([`ClusterLink::taken`]) with
//!   the attempts of the last minute (from `attempt_stats`), so the rate limit holds
//!   across the hand-over.
//! - A dedicated connection (outside the pool) `LISTEN`s on `hookd_queued` (wake the
//!   scheduler for the webhooks this node holds; try to take an unleased one) and
//!   `hookd_fence` (close the local cancellation fence of a webhook disabled or deleted
//!   elsewhere). It reconnects with backoff; while it is down, every held webhook gets a
//!   look every second instead.
//!
//! The per-webhook rules (in-flight cap, rate limit, `Retry-After`, FIFO, fences) live in
//! the scheduler of the node that drives the webhook: with one lease holder per webhook
//! they hold cluster-wide, except for the moments of a hand-over (an attempt of the old
//! holder still under way while the new one starts, and attempts made but not yet
//! recorded, which the rate limit's seed cannot see).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_postgres::AsyncMessage;
use uuid::Uuid;

use super::{FENCE_CHANNEL, Inner, PgSettings, PgStore, QUEUED_CHANNEL};
use crate::delivery::ClusterLink;
use crate::model::{Millis, WebhookId};
use crate::store::StoreError;
use crate::store::codec::decode;
use crate::store::ops::stats::{MinuteStats, minute_of};

/// A webhook's lease name.
pub(super) fn lease_name(webhook: WebhookId) -> String {
    format!("webhook:{}", Uuid::from_u128(webhook.0).hyphenated())
}

fn webhook_of(name: &str) -> Option<WebhookId> {
    let id = Uuid::try_parse(name.strip_prefix("webhook:")?).ok()?;
    Some(WebhookId(id.as_u128()))
}

/// Looks at every held webhook this often while the `LISTEN` connection is down.
const BACKSTOP: Duration = Duration::from_secs(1);
/// A quick round (an unleased webhook was queued) runs at most this often.
const QUICK_ROUND: Duration = Duration::from_millis(250);
/// The `LISTEN` connection's reconnect backoff.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(5));
/// The `LISTEN` connection is pinged this often (a dead peer shows within this).
const PING: Duration = Duration::from_secs(5);
/// Rows of nodes and leases expired this long ago are deleted (dead nodes' leftovers).
const FORGET_AFTER_SECS: f64 = 24.0 * 3600.0;

/// This node's place in the cluster (kept in the store's `Inner`).
pub(super) struct Cluster {
    node: String,
    lease: Duration,
    state: Mutex<State>,
    /// Asks the lease loop for a quick round (webhooks in `State::wanted`).
    poke: Notify,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The attempt-outcome recorder (`outcome`), started with the first outcome.
    pub(super) recorder:
        OnceLock<tokio::sync::mpsc::UnboundedSender<super::engine::outcome::Pending>>,
}

#[derive(Default)]
struct State {
    /// Held leases, each valid here until its instant.
    held: HashMap<WebhookId, Instant>,
    /// Leases let go for a rebalance, left to expire (not renewed, not taken back) until
    /// their instant.
    lapsing: HashMap<WebhookId, Instant>,
    /// Unleased webhooks that were queued: a quick round tries to take them.
    wanted: HashSet<WebhookId>,
    link: Option<Arc<dyn ClusterLink>>,
    /// Whether the `LISTEN` connection is up.
    listening: bool,
}

impl Cluster {
    pub(super) fn new(settings: &PgSettings) -> Cluster {
        Cluster {
            node: settings.node_id.clone(),
            lease: settings.lease,
            state: Mutex::new(State::default()),
            poke: Notify::new(),
            stop: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
            recorder: OnceLock::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Plain sets and maps: a panic elsewhere cannot leave them inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn node(&self) -> &str {
        &self.node
    }

    /// Whether this node holds `webhook`'s lease now (and has not let it go).
    pub(super) fn holds(&self, webhook: WebhookId) -> bool {
        self.lock()
            .held
            .get(&webhook)
            .is_some_and(|until| *until > Instant::now())
    }

    /// The webhooks whose leases this node holds now.
    pub(super) fn held(&self) -> Vec<WebhookId> {
        let now = Instant::now();
        let state = self.lock();
        state
            .held
            .iter()
            .filter(|(_, until)| **until > now)
            .map(|(w, _)| *w)
            .collect()
    }

    fn link(&self) -> Option<Arc<dyn ClusterLink>> {
        self.lock().link.clone()
    }

    fn secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    /// How long a renewal started at `at` keeps a lease valid here: the lease, less a
    /// twentieth for the nodes' clocks running at slightly different rates.
    fn valid_until(&self, at: Instant) -> Instant {
        at + self.lease - self.lease / 20
    }

    /// Wakes the scheduler for every held webhook (after a reconnect, or as the backstop
    /// while notifications cannot arrive).
    fn wake_all(&self) {
        if let Some(link) = self.link() {
            let now = Millis::now();
            for webhook in self.held() {
                link.queued(webhook, now);
            }
        }
    }

    /// A `NOTIFY` arrived.
    fn notified(&self, channel: &str, payload: &str) {
        let Some(link) = self.link() else { return };
        let ids = payload
            .split(',')
            .filter_map(|s| Uuid::try_parse(s.trim()).ok())
            .map(|u| WebhookId(u.as_u128()));
        if channel == FENCE_CHANNEL {
            ids.for_each(|webhook| link.fence(webhook));
            return;
        }
        let now = Millis::now();
        let instant = Instant::now();
        let mut poke = false;
        let mut state = self.lock();
        for webhook in ids {
            if state
                .held
                .get(&webhook)
                .is_some_and(|until| *until > instant)
            {
                link.queued(webhook, now);
            } else if !state.lapsing.contains_key(&webhook) {
                // Maybe nobody drives it yet (a new webhook). The share known from the
                // last round does not count it yet, so the quick round (at most every
                // QUICK_ROUND) reckons the share afresh before taking it.
                poke |= state.wanted.insert(webhook);
            }
        }
        drop(state);
        if poke {
            self.poke.notify_one();
        }
    }
}

impl PgStore {
    /// Joins the cluster on behalf of this node's delivery engine: starts the lease loop,
    /// the `LISTEN` connection and its backstop; `link` hears which webhooks this node
    /// drives and what other nodes ask of it. Call once, from within the runtime.
    pub fn attach(&self, link: Arc<dyn ClusterLink>) {
        let cluster = &self.inner.cluster;
        cluster.lock().link = Some(link);
        let weak = Arc::downgrade(&self.inner);
        let stop = cluster.stop.subscribe();
        let tasks = [
            tokio::spawn(lease_loop(weak.clone(), stop.clone())),
            tokio::spawn(listen_loop(weak.clone(), stop.clone())),
            tokio::spawn(backstop_loop(weak, stop)),
        ];
        cluster
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(tasks);
    }

    /// Leaves the cluster at shutdown (after the engine has stopped): stops the lease
    /// loop and the `LISTEN` connection, and deletes this node's leases and its `nodes`
    /// row at once, so other nodes take its webhooks over without waiting for the leases
    /// to expire.
    pub async fn leave(&self) {
        let cluster = &self.inner.cluster;
        cluster.stop.send_replace(true);
        let tasks = std::mem::take(&mut *cluster.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
        {
            let mut state = cluster.lock();
            state.held.clear();
            state.lapsing.clear();
            state.link = None;
        }
        let left = async {
            let client = self.client().await?;
            client
                .execute("DELETE FROM leases WHERE node = $1", &[&cluster.node])
                .await?;
            client
                .execute("DELETE FROM nodes WHERE id = $1", &[&cluster.node])
                .await?;
            Ok::<(), StoreError>(())
        };
        match left.await {
            Ok(()) => {
                tracing::info!(node = %cluster.node, "left the cluster; its webhooks go to the other nodes")
            }
            Err(e) => {
                tracing::warn!(node = %cluster.node, error = %e, "could not leave the cluster; its leases expire instead")
            }
        }
    }
}

/// Waits `d`, or until stopped; `false` when stopped.
async fn pause(stop: &mut watch::Receiver<bool>, d: Duration) -> bool {
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        _ = stop.changed() => false,
    }
}

/// Renews, takes and lets go of leases every lease / 3; a quick round when poked.
async fn lease_loop(weak: Weak<Inner>, mut stop: watch::Receiver<bool>) {
    let mut rounds: u64 = 0;
    // When the last quick round started. A poke runs one at once unless one ran within
    // QUICK_ROUND: a new webhook's first deliveries wait for its lease, so waiting
    // before the first quick round delayed them by QUICK_ROUND (bench a's e2e p99 of
    // ~500 ms on PostgreSQL, BENCHMARKS.md).
    let mut last_quick: Option<tokio::time::Instant> = None;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let store = PgStore { inner };
        let cluster = &store.inner.cluster;
        let period = cluster.lease / 3;
        if let Err(e) = round(&store, rounds.is_multiple_of(20)).await {
            tracing::warn!(error = %e, "cluster: cannot renew leases; retrying");
        }
        rounds += 1;
        let next = tokio::time::Instant::now() + period;
        // Quick rounds until the next full one.
        loop {
            let poked = tokio::select! {
                () = cluster.poke.notified() => true,
                () = tokio::time::sleep_until(next) => false,
                _ = stop.changed() => return,
            };
            if !poked {
                break;
            }
            let wait = last_quick.map_or(Duration::ZERO, |at| {
                (at + QUICK_ROUND).saturating_duration_since(tokio::time::Instant::now())
            });
            if !wait.is_zero() && !pause(&mut stop, wait).await {
                return;
            }
            last_quick = Some(tokio::time::Instant::now());
            if let Err(e) = quick_round(&store).await {
                tracing::warn!(error = %e, "cluster: cannot take leases");
            }
        }
        drop(store);
        if *stop.borrow() {
            return;
        }
    }
}

const HEARTBEAT: &str = "INSERT INTO nodes (id, expires_at) \
     VALUES ($1, now() + $2::float8 * interval '1 second') \
     ON CONFLICT (id) DO UPDATE SET expires_at = EXCLUDED.expires_at";
/// Lets go of the leases of webhooks deleted or disabled.
const DROP_GONE: &str = "DELETE FROM leases l WHERE l.node = $1 AND l.name LIKE 'webhook:%' \
     AND NOT EXISTS (SELECT 1 FROM webhooks w WHERE w.enabled AND w.id = \
       CASE WHEN l.name LIKE 'webhook:%' THEN substr(l.name, 9)::uuid END)";
const RENEW: &str = "UPDATE leases SET expires_at = now() + $2::float8 * interval '1 second' \
     WHERE node = $1 AND name LIKE 'webhook:%' AND expires_at > now() \
       AND name <> ALL($3::text[]) RETURNING name";
const COUNTS: &str = "SELECT (SELECT count(*) FROM nodes WHERE expires_at > now()), \
     (SELECT count(*) FROM webhooks WHERE enabled)";
/// Takes up to $3 free or expired leases of enabled webhooks ($4: only these, if set).
const ACQUIRE: &str = "INSERT INTO leases (name, node, expires_at) \
     SELECT 'webhook:' || w.id::text, $1, now() + $2::float8 * interval '1 second' \
     FROM webhooks w WHERE w.enabled AND ($4::uuid[] IS NULL OR w.id = ANY($4)) \
       AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.name = 'webhook:' || w.id::text \
                       AND l.expires_at >= now()) \
     ORDER BY random() LIMIT $3 \
     ON CONFLICT (name) DO UPDATE SET node = EXCLUDED.node, expires_at = EXCLUDED.expires_at \
       WHERE leases.expires_at < now() \
     RETURNING name";
const FORGET: &str = "WITH n AS (DELETE FROM nodes \
       WHERE expires_at < now() - $1::float8 * interval '1 second') \
     DELETE FROM leases WHERE expires_at < now() - $1::float8 * interval '1 second'";

/// One full round: heartbeat, renewal, the fair share, and taking or letting go.
async fn round(store: &PgStore, forget: bool) -> Result<(), StoreError> {
    let cluster = &store.inner.cluster;
    let started = Instant::now();
    let client = store.client().await?;
    let (node, secs) = (cluster.node.as_str(), cluster.secs());
    client.execute(HEARTBEAT, &[&node, &secs]).await?;
    if forget {
        client.execute(FORGET, &[&FORGET_AFTER_SECS]).await?;
    }
    client.execute(DROP_GONE, &[&node]).await?;
    let lapsing: Vec<String> = {
        let mut state = cluster.lock();
        state.lapsing.retain(|_, until| *until > started);
        state.lapsing.keys().map(|w| lease_name(*w)).collect()
    };
    let renewed: HashSet<WebhookId> = client
        .query(RENEW, &[&node, &secs, &lapsing])
        .await?
        .iter()
        .filter_map(|r| webhook_of(r.get(0)))
        .collect();
    let share = fair_share(&client).await?;
    let mut held: Vec<WebhookId> = renewed.into_iter().collect();
    let mut let_go = Vec::new();
    if held.len() > share {
        // Over the share (more nodes are live now): let the surplus expire.
        let_go = held.split_off(share);
    } else if held.len() < share {
        let want = i64::try_from(share - held.len()).unwrap_or(i64::MAX);
        let none: Option<Vec<Uuid>> = None;
        let taken = client.query(ACQUIRE, &[&node, &secs, &want, &none]).await?;
        held.extend(taken.iter().filter_map(|r| webhook_of(r.get(0))));
    }
    let until = cluster.valid_until(started);
    let newly = {
        let mut state = cluster.lock();
        for webhook in &let_go {
            // Kept out of renewals and quick takes until its row has surely expired.
            state.lapsing.insert(*webhook, started + 2 * cluster.lease);
        }
        let before = std::mem::take(&mut state.held);
        let mut newly = Vec::new();
        for webhook in held {
            if before.get(&webhook).is_none_or(|u| *u <= started) {
                newly.push(webhook);
            }
            state.held.insert(webhook, until);
        }
        let State { wanted, held, .. } = &mut *state;
        wanted.retain(|w| !held.contains_key(w));
        newly
    };
    if !let_go.is_empty() {
        tracing::info!(
            count = let_go.len(),
            share,
            "cluster: letting leases go to other nodes"
        );
    }
    tell_taken(&client, cluster, newly).await
}

/// ceil(enabled webhooks / live nodes), at least 1 once there is any webhook.
async fn fair_share(client: &deadpool_postgres::Object) -> Result<usize, StoreError> {
    let row = client.query_one(COUNTS, &[]).await?;
    let (live, enabled): (i64, i64) = (row.get(0), row.get(1));
    let live = u64::try_from(live).unwrap_or(0).max(1);
    let enabled = u64::try_from(enabled).unwrap_or(0);
    Ok(usize::try_from(enabled.div_ceil(live)).unwrap_or(usize::MAX))
}

/// Tries to take the wanted webhooks (queued, held by nobody known), within the share.
async fn quick_round(store: &PgStore) -> Result<(), StoreError> {
    let cluster = &store.inner.cluster;
    let started = Instant::now();
    let wanted: Vec<Uuid> = {
        let mut state = cluster.lock();
        std::mem::take(&mut state.wanted)
            .into_iter()
            .map(|w| Uuid::from_u128(w.0))
            .collect()
    };
    if wanted.is_empty() {
        return Ok(());
    }
    let client = store.client().await?;
    let share = fair_share(&client).await?;
    let room = share.saturating_sub(cluster.lock().held.len());
    if room == 0 {
        return Ok(());
    }
    let (node, secs) = (cluster.node.as_str(), cluster.secs());
    let want = i64::try_from(room).unwrap_or(i64::MAX);
    let taken: Vec<WebhookId> = client
        .query(ACQUIRE, &[&node, &secs, &want, &Some(wanted)])
        .await?
        .iter()
        .filter_map(|r| webhook_of(r.get(0)))
        .collect();
    let until = cluster.valid_until(started);
    {
        let mut state = cluster.lock();
        for webhook in &taken {
            state.held.insert(*webhook, until);
        }
    }
    tell_taken(&client, cluster, taken).await
}

/// Tells the engine of leases just taken, with each webhook's attempt starts of the last
/// minute. `attempt_stats` keeps counts per minute and the minute's latest start, so the
/// starts are put at that latest start: later than they were, which holds back a little
/// more than needed and never less.
async fn tell_taken(
    client: &deadpool_postgres::Object,
    cluster: &Cluster,
    taken: Vec<WebhookId>,
) -> Result<(), StoreError> {
    if taken.is_empty() {
        return Ok(());
    }
    let Some(link) = cluster.link() else {
        return Ok(());
    };
    let now = Millis::now();
    let ids: Vec<Uuid> = taken.iter().map(|w| Uuid::from_u128(w.0)).collect();
    let since = i64::try_from(minute_of(now).saturating_sub(1)).unwrap_or(i64::MAX);
    let rows = client
        .query(
            "SELECT webhook_id, record FROM attempt_stats \
             WHERE webhook_id = ANY($1) AND minute >= $2",
            &[&ids, &since],
        )
        .await?;
    let mut starts: HashMap<WebhookId, Vec<Millis>> = HashMap::new();
    for row in rows {
        let webhook = WebhookId(row.get::<_, Uuid>(0).as_u128());
        let stats: MinuteStats = decode(row.get(1))?;
        let count = stats.succeeded as usize + stats.failed as usize + stats.errored as usize;
        starts
            .entry(webhook)
            .or_default()
            .extend(std::iter::repeat_n(stats.last_at, count.min(100_000)));
    }
    tracing::info!(count = taken.len(), "cluster: took over webhooks");
    for webhook in taken {
        link.taken(webhook, starts.remove(&webhook).unwrap_or_default());
    }
    Ok(())
}

/// Keeps a `LISTEN` connection, reconnecting with backoff.
async fn listen_loop(weak: Weak<Inner>, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF.0;
    loop {
        let Some(inner) = weak.upgrade() else { return };
        let url = inner.settings.url.clone();
        drop(inner);
        match listen(&weak, &url, &mut stop).await {
            Ok(true) => backoff = BACKOFF.0,
            Ok(false) => return, // stopped
            Err(e) => {
                tracing::warn!(error = %e, "cluster: LISTEN connection lost; polling meanwhile")
            }
        }
        if let Some(inner) = weak.upgrade() {
            inner.cluster.lock().listening = false;
        }
        if !pause(&mut stop, backoff).await {
            return;
        }
        backoff = (backoff * 2).min(BACKOFF.1);
    }
}

/// One `LISTEN` connection's life: `Ok(true)` when it ended after working, `Ok(false)`
/// when stopped.
async fn listen(
    weak: &Weak<Inner>,
    url: &str,
    stop: &mut watch::Receiver<bool>,
) -> Result<bool, StoreError> {
    let (client, mut connection) = listener_connect(url).await?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if tx.send(n).is_err() {
                        return Ok(());
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    });
    let result = async {
        client
            .batch_execute(&format!("LISTEN {QUEUED_CHANNEL}; LISTEN {FENCE_CHANNEL}"))
            .await?;
        {
            let Some(inner) = weak.upgrade() else {
                return Ok(false);
            };
            inner.cluster.lock().listening = true;
            // Anything queued while nobody listened gets its look now.
            inner.cluster.wake_all();
        }
        let mut ping = tokio::time::interval(PING);
        ping.tick().await;
        loop {
            tokio::select! {
                n = rx.recv() => match n {
                    Some(n) => match weak.upgrade() {
                        Some(inner) => inner.cluster.notified(n.channel(), n.payload()),
                        None => return Ok(false),
                    },
                    None => return Ok(true), // the connection ended
                },
                _ = ping.tick() => {
                    match tokio::time::timeout(PING, client.simple_query("SELECT 1")).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => return Err(StoreError::from(e)),
                        Err(_) => return Ok(true),
                    }
                }
                _ = stop.changed() => return Ok(false),
            }
        }
    }
    .await;
    driver.abort();
    result
}

/// The `LISTEN` connection, made as the pool's are (`connect::target`: the URL's
/// `sslmode` and roots), outside the pool because it stays open.
async fn listener_connect(
    url: &str,
) -> Result<
    (
        tokio_postgres::Client,
        tokio_postgres::Connection<
            tokio_postgres::Socket,
            <tokio_postgres_rustls::MakeRustlsConnect as tokio_postgres::tls::MakeTlsConnect<
                tokio_postgres::Socket,
            >>::Stream,
        >,
    ),
    StoreError,
> {
    let target = super::connect::target(url)?;
    target
        .config
        .connect(target.tls)
        .await
        .map_err(StoreError::from)
}

/// While the `LISTEN` connection is down, every held webhook gets a look each second.
async fn backstop_loop(weak: Weak<Inner>, mut stop: watch::Receiver<bool>) {
    while pause(&mut stop, BACKSTOP).await {
        let Some(inner) = weak.upgrade() else { return };
        let down = !inner.cluster.lock().listening;
        if down {
            inner.cluster.wake_all();
        }
    }
}

#[cfg(test)]
impl PgStore {
    /// One full lease round now (tests drive the cluster without its loop).
    pub(super) async fn lease_round(&self) -> Result<(), StoreError> {
        round(self, false).await
    }

    /// Stops this node's loops as if it had died: no heartbeat, no renewal, nothing
    /// deleted.
    fn die(&self) {
        let cluster = &self.inner.cluster;
        cluster.stop.send_replace(true);
        for task in std::mem::take(&mut *cluster.tasks.lock().unwrap()) {
            task.abort();
        }
    }

    fn listening(&self) -> bool {
        self.inner.cluster.lock().listening
    }
}

#[cfg(test)]
mod tests;
