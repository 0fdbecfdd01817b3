//! The cluster against a real database: leases split fairly, a dead node's taken after
//! the lease, a clean leave handed over, `LISTEN` wake-ups.

use std::sync::Mutex;

use super::*;
use crate::store::codec::encode;
use crate::store::postgres::engine::testing::{fresh_db, server, store_on};
use crate::store::records::WebhookRecord;

/// What the engine heard from the cluster.
#[derive(Default)]
struct Heard {
    queued: Mutex<Vec<WebhookId>>,
    taken: Mutex<Vec<(WebhookId, Vec<Millis>)>>,
    fenced: Mutex<Vec<WebhookId>>,
}

impl ClusterLink for Heard {
    fn queued(&self, webhook: WebhookId, _due: Millis) {
        self.queued.lock().unwrap().push(webhook);
    }
    fn taken(&self, webhook: WebhookId, recent_starts: Vec<Millis>) {
        self.taken.lock().unwrap().push((webhook, recent_starts));
    }
    fn fence(&self, webhook: WebhookId) {
        self.fenced.lock().unwrap().push(webhook);
    }
}

async fn add_webhooks(store: &PgStore, n: usize) -> Vec<WebhookId> {
    let client = store.inner.pool.get().await.unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let hook = WebhookRecord::new(
            "u".into(),
            format!("w{i}"),
            "https://example.com/".into(),
            vec![crate::model::EventPattern::All],
            None,
            Millis(i as i64),
        );
        client
            .execute(
                "INSERT INTO webhooks (id, owner, created_at, status, enabled, record) \
                 VALUES ($1, 'u', $2, 2, true, $3)",
                &[
                    &Uuid::from_u128(hook.id.0),
                    &hook.created_at.0,
                    &encode(&hook),
                ],
            )
            .await
            .unwrap();
        ids.push(hook.id);
    }
    ids
}

/// Waits (up to `limit`) until `done` holds.
async fn until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

fn disjoint(a: &PgStore, b: &PgStore) -> bool {
    let a: HashSet<WebhookId> = a.inner.cluster.held().into_iter().collect();
    b.inner.cluster.held().iter().all(|w| !a.contains(w))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_split_the_leases_and_a_dead_ones_go_over_after_the_lease() {
    let Some(server) = server() else { return };
    let url = fresh_db(&server).await;
    let lease = Duration::from_millis(1500);
    let (n1, n2) = (
        store_on(&url, "n1", lease).await,
        store_on(&url, "n2", lease).await,
    );
    let hooks = add_webhooks(&n1, 6).await;
    // The rate limit's memory: 5 attempts of hooks[0] in this minute.
    let now = Millis::now();
    let stats = MinuteStats {
        succeeded: 3,
        failed: 2,
        last_at: Millis(now.0 - 1_000),
        ..MinuteStats::default()
    };
    let minute = i64::try_from(minute_of(now)).unwrap();
    n1.inner
        .pool
        .get()
        .await
        .unwrap()
        .execute(
            "INSERT INTO attempt_stats (webhook_id, minute, shard, record) VALUES ($1, $2, 0, $3)",
            &[&Uuid::from_u128(hooks[0].0), &minute, &encode(&stats)],
        )
        .await
        .unwrap();
    let (h1, h2) = (Arc::new(Heard::default()), Arc::new(Heard::default()));
    n1.attach(h1.clone());
    assert!(
        until(lease, || n1.inner.cluster.held().len() == 6).await,
        "alone, n1 drives all"
    );
    // A lease round marks what it took as held, then reads those webhooks' recent
    // attempts and only then tells the engine: the telling comes a query later.
    let heard_of = |w: WebhookId| {
        let taken = h1.taken.lock().unwrap();
        taken.iter().find(|(t, _)| *t == w).map(|(_, s)| s.clone())
    };
    assert!(until(lease, || heard_of(hooks[0]).is_some()).await);
    assert_eq!(heard_of(hooks[0]), Some(vec![stats.last_at; 5]));

    n2.attach(h2.clone());
    let fair = || n1.inner.cluster.held().len() == 3 && n2.inner.cluster.held().len() == 3;
    let mut overlap = false;
    let split = until(lease * 5, || {
        overlap |= !disjoint(&n1, &n2);
        fair()
    })
    .await;
    assert!(
        split,
        "3 and 3: {:?} {:?}",
        n1.inner.cluster.held(),
        n2.inner.cluster.held()
    );
    assert!(!overlap, "no webhook was driven by both nodes at once");
    let heard = || h2.taken.lock().unwrap().len();
    assert!(
        until(lease, || heard() >= 3).await,
        "n2 heard of each one it took"
    );
    assert_eq!(heard(), 3, "n2 heard of each one it took, once");

    // n2 dies: its leases are taken over once they expire, not before.
    n2.die();
    let died = Instant::now();
    assert!(until(lease * 4, || n1.inner.cluster.held().len() == 6).await);
    assert!(
        died.elapsed() >= lease / 2,
        "taken over after {:?}",
        died.elapsed()
    );
    n1.leave().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_clean_leave_hands_the_leases_over_at_once() {
    let Some(server) = server() else { return };
    let url = fresh_db(&server).await;
    // A long lease: waiting for it to expire would fail the test.
    let lease = Duration::from_secs(6);
    let (n1, n2) = (
        store_on(&url, "n1", lease).await,
        store_on(&url, "n2", lease).await,
    );
    add_webhooks(&n1, 4).await;
    n2.lease_round().await.unwrap(); // n2 alone: takes all 4
    assert_eq!(n2.inner.cluster.held().len(), 4);
    n1.lease_round().await.unwrap();
    assert!(n1.inner.cluster.held().is_empty(), "all are leased to n2");
    n2.leave().await;
    assert!(n2.inner.cluster.held().is_empty());
    n1.lease_round().await.unwrap();
    assert_eq!(n1.inner.cluster.held().len(), 4, "n1 takes them at once");
    assert!(n1.enabled_webhooks().await.unwrap().len() == 4);
    assert!(n2.enabled_webhooks().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notifications_wake_the_holder_and_close_fences() {
    let Some(server) = server() else { return };
    let url = fresh_db(&server).await;
    let lease = Duration::from_secs(3);
    let (n1, n2) = (
        store_on(&url, "n1", lease).await,
        store_on(&url, "n2", lease).await,
    );
    let hooks = add_webhooks(&n1, 2).await;
    let (h1, h2) = (Arc::new(Heard::default()), Arc::new(Heard::default()));
    n1.attach(h1.clone());
    assert!(
        until(lease, || n1.inner.cluster.held().len() == 2
            && n1.listening())
        .await
    );
    n2.attach(h2.clone());
    assert!(until(lease, || n2.listening()).await);
    h1.queued.lock().unwrap().clear();
    let client = n2.inner.pool.get().await.unwrap();
    let payload = format!(
        "{},{}",
        Uuid::from_u128(hooks[0].0),
        Uuid::from_u128(hooks[1].0)
    );
    client
        .execute("SELECT pg_notify('hookd_queued', $1)", &[&payload])
        .await
        .unwrap();
    assert!(
        until(Duration::from_millis(800), || {
            let q = h1.queued.lock().unwrap();
            q.contains(&hooks[0]) && q.contains(&hooks[1])
        })
        .await
    );
    assert!(h2.queued.lock().unwrap().is_empty(), "n2 holds neither");
    let one = Uuid::from_u128(hooks[1].0).to_string();
    client
        .execute("SELECT pg_notify('hookd_fence', $1)", &[&one])
        .await
        .unwrap();
    assert!(
        until(Duration::from_millis(800), || h1
            .fenced
            .lock()
            .unwrap()
            .contains(&hooks[1]))
        .await
    );
    n1.leave().await;
    n2.leave().await;
}
