//! Tests of the PostgreSQL backend against a real database: `HOOKD_TEST_POSTGRES_URL`
//! names a server and a user that may create databases; each test makes its own
//! database there. Unset, the tests print a notice and pass — except under `CI=true`,
//! where they fail. The strongest of them run one sequence of operations through the
//! `Store` seam on redb and on PostgreSQL and compare the answers.

use std::time::Duration;

use super::*;
use crate::model::{DeliveryStatus, EventId, EventType, NotificationKind, WebhookStatus};
use crate::store::Store;
use crate::store::ops::notifications::Fate;
use crate::store::records::Attempt;

/// A fresh database on the test server, or `None` (with a notice) when there is none.
async fn fresh_url() -> Option<String> {
    let Ok(admin) = std::env::var("HOOKD_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "HOOKD_TEST_POSTGRES_URL is not set, and CI=true: the PostgreSQL tests must run"
        );
        eprintln!("skipped: set HOOKD_TEST_POSTGRES_URL to run the PostgreSQL tests");
        return None;
    };
    let name = format!("hookd_t_{:x}", uuid::Uuid::now_v7().as_u128() as u64);
    let client = connect::connect_one(&admin).await.unwrap();
    client
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (base, query) = admin.split_once('?').unwrap_or((&admin, ""));
    let (server, _) = base.rsplit_once('/').unwrap();
    Some(if query.is_empty() {
        format!("{server}/{name}")
    } else {
        format!("{server}/{name}?{query}")
    })
}

fn settings(url: &str, node: &str) -> PgSettings {
    PgSettings {
        url: url.into(),
        pool_size: 8,
        node_id: node.into(),
        lease: Duration::from_secs(10),
    }
}

fn hook(user: &str, name: &str, types: &[&str], at: i64) -> WebhookRecord {
    WebhookRecord::new(
        user.into(),
        name.into(),
        "https://example.com/h".into(),
        types.iter().map(|t| t.parse().unwrap()).collect(),
        None,
        Millis(at),
    )
}

fn event(id: &str, user: &str, t: EventType, at: i64) -> NewEvent {
    NewEvent {
        id: EventId::parse(id).unwrap(),
        user: user.into(),
        event_type: t,
        source: "s".into(),
        timestamp: "2024-01-01T00:00:00Z".into(),
        payload: format!(r#"{{"n":"{id}"}}"#),
        received_at: Millis(at),
        trace: None,
    }
}

/// Both backends, fresh.
async fn both() -> Option<(tempfile::TempDir, Store, Store)> {
    let url = fresh_url().await?;
    let dir = tempfile::tempdir().unwrap();
    let redb = Store::Redb(crate::store::RedbStore::open(&dir.path().join("t.redb")).unwrap());
    let pg = Store::Postgres(PgStore::connect(settings(&url, "a")).await.unwrap());
    Some((dir, redb, pg))
}

/// What of a page both backends must agree on (seqs, cursors and delivery ids differ).
fn events_view(page: &Page<EventRecord>) -> (Vec<String>, bool) {
    let ids = page.items.iter().map(|e| e.id.to_string()).collect();
    (ids, page.next.is_some())
}

type DeliveryView = (
    Vec<(String, WebhookId, DeliveryStatus, EventType, usize)>,
    bool,
);

fn deliveries_view(page: &(Vec<DeliveryDetail>, Option<u64>)) -> DeliveryView {
    let items = page
        .0
        .iter()
        .map(|d| {
            (
                d.event_id.to_string(),
                d.record.webhook_id,
                d.record.status,
                d.record.event_type,
                d.attempts.len(),
            )
        })
        .collect();
    (items, page.1.is_some())
}

/// Every page of the user's events under `filter`, as both backends answer them.
async fn all_events(
    s: &Store,
    user: &str,
    filter: Option<EventPattern>,
) -> Vec<(Vec<String>, bool)> {
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = s.events_of(user, filter, 7, before).await.unwrap();
        pages.push(events_view(&page));
        match page.next {
            Some(next) => before = Some(next),
            None => return pages,
        }
    }
}

async fn all_deliveries(
    s: &Store,
    webhook: WebhookId,
    filter: DeliveryFilter,
) -> Vec<DeliveryView> {
    let mut pages = Vec::new();
    let mut before = None;
    loop {
        let page = s.delivery_page(webhook, filter, 5, before).await.unwrap();
        pages.push(deliveries_view(&page));
        match page.1 {
            Some(next) => before = Some(next),
            None => return pages,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redb_and_postgres_answer_one_sequence_alike() {
    let Some((_dir, redb, pg)) = both().await else {
        return;
    };
    let hooks = [
        hook("u", "all", &["*"], 1),
        hook("u", "messages", &["message:*"], 2),
        hook("u", "connected", &["app:connected"], 3),
        hook("v", "other", &["*"], 4),
    ];
    for s in [&redb, &pg] {
        for h in &hooks {
            assert!(matches!(
                s.create_webhook(h.clone(), 3).await.unwrap(),
                Created::Created(_)
            ));
        }
        let extra = hook("u", "fourth", &["*"], 5);
        assert!(matches!(
            s.create_webhook(extra, 3).await.unwrap(),
            Created::LimitReached
        ));
    }
    let types = [
        EventType::AppConnected,
        EventType::MessageSent,
        EventType::AgentError,
        EventType::MessageReceived,
    ];
    let mut answers = [Vec::new(), Vec::new()];
    for (k, s) in [&redb, &pg].into_iter().enumerate() {
        for i in 0..40 {
            let user = if i % 5 == 4 { "v" } else { "u" };
            let e = event(&format!("e{i}"), user, types[i % 4], 1_000 + i as i64);
            answers[k].push(s.ingest(e, Millis(2_000)).await.unwrap());
            if i == 20 {
                // Disabled half way: its queue is cancelled, later events skip it.
                let changed = s
                    .update_webhook("u".into(), hooks[1].id, Millis(3), |h| h.enabled = false)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(changed.status, WebhookStatus::Disabled);
                s.finish_cleanups().await.unwrap();
            }
        }
        let again = s
            .ingest(event("e3", "u", types[3], 5), Millis(9))
            .await
            .unwrap();
        answers[k].push(again);
    }
    let counts = |a: &Vec<Ingested>| -> Vec<(bool, u32)> {
        a.iter()
            .map(|x| match x {
                Ingested::Created { deliveries, queued } => {
                    assert_eq!(queued.len() as u32, *deliveries);
                    (true, *deliveries)
                }
                Ingested::Duplicate { deliveries } => (false, *deliveries),
            })
            .collect()
    };
    assert_eq!(counts(&answers[0]), counts(&answers[1]));
    assert_eq!(
        answers[1].last(),
        Some(&Ingested::Duplicate { deliveries: 2 })
    );

    let filters = [
        None,
        Some(EventPattern::All),
        Some(EventPattern::Exact(EventType::MessageSent)),
        Some("message:*".parse().unwrap()),
        Some(EventPattern::Exact(EventType::AppHealthCheck)),
    ];
    for f in filters {
        for user in ["u", "v", "nobody"] {
            assert_eq!(
                all_events(&redb, user, f).await,
                all_events(&pg, user, f).await,
                "{user} {f:?}"
            );
        }
    }
    let e = (
        redb.event("e7").await.unwrap().unwrap(),
        pg.event("e7").await.unwrap().unwrap(),
    );
    assert_eq!(
        (e.0.id, e.0.payload, e.0.deliveries),
        (e.1.id, e.1.payload, e.1.deliveries)
    );
    assert!(pg.event("nope").await.unwrap().is_none());

    let delivery_filters = [
        DeliveryFilter::default(),
        DeliveryFilter {
            status: Some(DeliveryStatus::Cancelled),
            event_type: None,
        },
        DeliveryFilter {
            status: Some(DeliveryStatus::Pending),
            event_type: Some(EventType::MessageSent),
        },
        DeliveryFilter {
            status: None,
            event_type: Some(EventType::AgentError),
        },
    ];
    for h in &hooks {
        for f in delivery_filters {
            assert_eq!(
                all_deliveries(&redb, h.id, f).await,
                all_deliveries(&pg, h.id, f).await,
                "{} {f:?}",
                h.name
            );
        }
    }
    // One delivery by id, only under its own webhook.
    let (page, _) = pg
        .delivery_page(hooks[0].id, DeliveryFilter::default(), 1, None)
        .await
        .unwrap();
    let d = &page[0].record;
    assert!(pg.delivery(hooks[0].id, d.id).await.unwrap().is_some());
    assert!(pg.delivery(hooks[1].id, d.id).await.unwrap().is_none());

    for s in [&redb, &pg] {
        assert_eq!(s.webhooks_of("u").await.unwrap().len(), 3);
        assert!(s.webhook_owned("v", hooks[0].id).await.unwrap().is_none());
    }
    let listed = |v: Vec<WebhookRecord>| v.into_iter().map(|h| h.id).collect::<Vec<_>>();
    assert_eq!(
        listed(redb.webhooks_of("u").await.unwrap()),
        listed(pg.webhooks_of("u").await.unwrap())
    );
    let overview = |s: &Store| {
        let s = s.clone();
        async move {
            let mut all = Vec::new();
            let mut after = None;
            loop {
                let (page, next) = s.webhooks_by_status(after, 2).await.unwrap();
                all.extend(page.into_iter().map(|h| h.id));
                match next {
                    Some(n) => after = Some(n),
                    None => return all,
                }
            }
        }
    };
    assert_eq!(overview(&redb).await, overview(&pg).await);
    assert_eq!(redb.gauges().await.unwrap(), pg.gauges().await.unwrap());

    // Retention: everything before 1_030 that is not pending (the disabled webhook's
    // cancelled deliveries), and the events nothing keeps.
    let prune = |s: &Store| {
        let s = s.clone();
        async move { s.prune(Millis(1_030), 1_000).await.unwrap() }
    };
    assert_eq!(prune(&redb).await, prune(&pg).await);
    for f in delivery_filters {
        assert_eq!(
            all_deliveries(&redb, hooks[1].id, f).await,
            all_deliveries(&pg, hooks[1].id, f).await
        );
    }
    assert_eq!(
        all_events(&redb, "u", None).await,
        all_events(&pg, "u", None).await
    );

    // Deleting: the webhook and its log go.
    for s in [&redb, &pg] {
        assert_eq!(
            s.delete_webhook("u".into(), hooks[0].id).await.unwrap(),
            Deleted::Deleted { more: false }
        );
        assert_eq!(
            s.delete_webhook("u".into(), hooks[0].id).await.unwrap(),
            Deleted::NotFound
        );
        assert!(s.webhook(hooks[0].id).await.unwrap().is_none());
        assert!(!s.cleanup_unfinished(hooks[0].id).await.unwrap());
    }
    assert_eq!(redb.gauges().await.unwrap(), pg.gauges().await.unwrap());
    assert!(pg.size_bytes().await.is_some());
    pg.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_run_once_and_a_newer_schema_is_refused() {
    let Some(url) = fresh_url().await else {
        return;
    };
    let s = settings(&url, "a");
    assert_eq!(
        migrate(&s).await.unwrap(),
        MigrateReport {
            from: 0,
            to: known_version()
        }
    );
    // Two nodes at once: one migrates, the other finds nothing to do.
    let (a, b) = tokio::join!(migrate(&s), migrate(&s));
    assert_eq!(a.unwrap().from, known_version());
    assert_eq!(b.unwrap().from, known_version());
    let mut client = connect::connect_one(&url).await.unwrap();
    let newer = [
        (1, ""),
        (known_version() + 1, "CREATE TABLE from_the_future (x int)"),
    ];
    connect::migrate_with(&mut client, &newer).await.unwrap();
    let err = migrate(&s).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, known } if found == known_version() + 1 && known == known_version()),
        "{err}"
    );
    assert!(err.to_string().contains("newer hookd"), "{err}");
    assert!(PgStore::connect(s).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_event_id_sent_to_two_nodes_at_once_is_stored_once() {
    let Some(url) = fresh_url().await else {
        return;
    };
    let a = PgStore::connect(settings(&url, "a")).await.unwrap();
    let b = PgStore::connect(settings(&url, "b")).await.unwrap();
    for name in ["x", "y"] {
        a.create_webhook(hook("u", name, &["*"], 1), 10)
            .await
            .unwrap();
    }
    for round in 0..20 {
        let id = format!("same-{round}");
        let mut calls = Vec::new();
        for k in 0..6 {
            let node = if k % 2 == 0 { a.clone() } else { b.clone() };
            let e = event(&id, "u", EventType::AgentInvoked, 10);
            calls.push(tokio::spawn(
                async move { node.ingest(e, Millis(20)).await },
            ));
        }
        let mut created = 0;
        for call in calls {
            match call.await.unwrap().unwrap() {
                Ingested::Created { deliveries, .. } => {
                    created += 1;
                    assert_eq!(deliveries, 2);
                }
                Ingested::Duplicate { deliveries } => assert_eq!(deliveries, 2),
            }
        }
        assert_eq!(created, 1, "round {round}");
    }
    let client = a.client().await.unwrap();
    let events: i64 = client
        .query_one("SELECT count(*) FROM events", &[])
        .await
        .unwrap()
        .get(0);
    let deliveries: i64 = client
        .query_one("SELECT count(*) FROM deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!((events, deliveries), (20, 40));
    // The deliveries of one event have consecutive seqs from its first_delivery.
    let e = a.event("same-3").await.unwrap().unwrap();
    let seqs: Vec<i64> = client
        .query(
            "SELECT seq FROM deliveries WHERE event_seq = $1 ORDER BY seq",
            &[&(e.seq as i64)],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let first = e.first_delivery.unwrap() as i64;
    assert_eq!(seqs, [first, first + 1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_big_disable_and_delete_go_in_chunks() {
    let Some(url) = fresh_url().await else {
        return;
    };
    let pg = PgStore::connect(settings(&url, "a")).await.unwrap();
    let h = hook("u", "big", &["*"], 1);
    let id = h.id;
    pg.create_webhook(h, 10).await.unwrap();
    let n = crate::store::tables::CLEANUP_CHUNK + 300;
    let mut calls = Vec::new();
    for i in 0..n {
        let pg = pg.clone();
        calls.push(tokio::spawn(async move {
            pg.ingest(
                event(&format!("b{i}"), "u", EventType::AppConnected, 5),
                Millis(9),
            )
            .await
        }));
    }
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(pg.gauges().await.unwrap().depth, n as u64);
    pg.update_webhook("u", id, Millis(2), |h| h.enabled = false)
        .await
        .unwrap();
    assert!(
        pg.cleanup_unfinished(id).await.unwrap(),
        "a first chunk only"
    );
    pg.finish_cleanup(id).await.unwrap();
    assert!(!pg.cleanup_unfinished(id).await.unwrap());
    assert_eq!(pg.gauges().await.unwrap().depth, 0);
    let cancelled = DeliveryFilter {
        status: Some(DeliveryStatus::Cancelled),
        event_type: None,
    };
    let (page, next) = pg.delivery_page(id, cancelled, 100, None).await.unwrap();
    assert_eq!((page.len(), next.is_some()), (100, true));
    assert_eq!(
        pg.delete_webhook("u", id).await.unwrap(),
        Deleted::Deleted { more: true }
    );
    assert_eq!(pg.finish_cleanups().await.unwrap(), 1);
    let left: i64 = pg
        .client()
        .await
        .unwrap()
        .query_one("SELECT count(*) FROM deliveries", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
}

fn attempt(at: i64, status_code: Option<u16>, ms: u64) -> Attempt {
    Attempt {
        at: Millis(at),
        status_code,
        duration_ms: ms,
        error: None,
        response_body: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_are_counted_as_on_redb() {
    let Some((_dir, redb, pg)) = both().await else {
        return;
    };
    let (Store::Redb(r), Store::Postgres(p)) = (&redb, &pg) else {
        unreachable!()
    };
    let id = WebhookId::generate();
    let minute = 60_000i64;
    let day = crate::store::ops::stats::KEPT_MINUTES as i64 * minute;
    let attempts = [
        attempt(day, Some(200), 3),
        attempt(day + 1, Some(503), 40),
        attempt(day + 2, None, 3),
        attempt(day + minute, Some(204), 1000),
        attempt(2 * day + minute + 5, Some(200), 7),
    ];
    for a in &attempts {
        let a2 = a.clone();
        r.write(move |tx| crate::store::ops::stats::count(tx, id, &a2))
            .await
            .unwrap();
        let mut c = p.client().await.unwrap();
        let tx = c.transaction().await.unwrap();
        stats::count_attempt(&tx, id, a).await.unwrap();
        tx.commit().await.unwrap();
    }
    let now = Millis(2 * day + minute + 10);
    let first = crate::store::ops::stats::minute_of(Millis(day));
    let last = crate::store::ops::stats::minute_of(now);
    assert_eq!(
        redb.webhook_stats(id, first, last, now).await.unwrap(),
        pg.webhook_stats(id, first, last, now).await.unwrap()
    );
    assert_eq!(
        redb.attempt_totals(0, u64::MAX).await.unwrap(),
        pg.attempt_totals(0, u64::MAX).await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_are_claimed_by_one_node() {
    let Some(url) = fresh_url().await else {
        return;
    };
    let a = PgStore::connect(settings(&url, "a")).await.unwrap();
    let b = PgStore::connect(settings(&url, "b")).await.unwrap();
    let mut h = hook("u", "n", &["*"], 1);
    a.create_webhook(h.clone(), 10).await.unwrap();
    let enqueue = |h: WebhookRecord, kind: NotificationKind, at: i64| {
        let a = a.clone();
        async move {
            let mut c = a.client().await.unwrap();
            let tx = c.transaction().await.unwrap();
            let e = notifications::enqueue(&tx, &h, kind, format!("{kind:?}"), Millis(at))
                .await
                .unwrap();
            tx.commit().await.unwrap();
            e
        }
    };
    h.status = WebhookStatus::Failing;
    assert_eq!(
        enqueue(h.clone(), NotificationKind::Failing, 0).await.fate,
        Fate::Queued
    );
    h.status = WebhookStatus::Healthy;
    assert_eq!(
        enqueue(h.clone(), NotificationKind::Recovered, 10)
            .await
            .fate,
        Fate::Queued
    );
    assert_eq!(a.open_notifications().await.unwrap(), 2);

    // Node a claims the head; node b finds nothing else due (the webhook's second one
    // waits behind it), and a asking again gets its own claim back.
    let (at, seq) = a.next_notification().await.unwrap().unwrap();
    assert_eq!(at, Millis(0));
    assert_eq!(b.next_notification().await.unwrap(), None);
    assert_eq!(a.next_notification().await.unwrap(), Some((at, seq)));
    let n = a.notification(seq).await.unwrap().unwrap();
    assert_eq!(
        (n.kind, n.state),
        (NotificationKind::Failing, NotificationState::Pending)
    );
    let policy = RetryPolicy {
        schedule: vec![Duration::ZERO, Duration::from_secs(1)],
        disable_after: Duration::from_secs(3600),
    };
    let failed = Attempted::Failed {
        error: "HTTP 500".into(),
        retry_after: None,
    };
    assert_eq!(
        a.finish_notification(seq, failed, &policy, Millis(100))
            .await
            .unwrap(),
        Some(NotificationState::Pending)
    );
    // Released by the outcome: due again at 1_100, for any node.
    assert_eq!(
        b.next_notification().await.unwrap(),
        Some((Millis(1_100), seq))
    );
    assert_eq!(
        b.finish_notification(seq, Attempted::Sent, &policy, Millis(1_200))
            .await
            .unwrap(),
        Some(NotificationState::Sent)
    );
    assert_eq!(
        b.finish_notification(seq, Attempted::Sent, &policy, Millis(1_300))
            .await
            .unwrap(),
        None
    );
    let (_, second) = b.next_notification().await.unwrap().unwrap();
    assert_eq!(
        b.notification(second).await.unwrap().unwrap().kind,
        NotificationKind::Recovered
    );
    b.finish_notification(second, Attempted::Skipped, &policy, Millis(1_400))
        .await
        .unwrap();
    assert_eq!(a.next_notification().await.unwrap(), None);

    // Failing again within the minute: held, then released when its window ends.
    h.status = WebhookStatus::Failing;
    let e = enqueue(h.clone(), NotificationKind::Failing, 2_000).await;
    assert_eq!(e.fate, Fate::Held);
    let (at, held) = a.next_notification().await.unwrap().unwrap();
    assert_eq!(at, Millis(60_000));
    assert_eq!(
        a.release_notification(held, Millis(59_999)).await.unwrap(),
        None
    );
    let released = a
        .release_notification(held, Millis(60_000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(released.state, NotificationState::Pending);
    h.status = WebhookStatus::Healthy;
    assert_eq!(
        enqueue(h.clone(), NotificationKind::Recovered, 60_500)
            .await
            .fate,
        Fate::Queued
    );
    let recent = a.recent_notifications(10).await.unwrap();
    let states: Vec<_> = recent.iter().map(|n| n.state).collect();
    assert_eq!(
        states,
        [
            NotificationState::Pending,
            NotificationState::Pending,
            NotificationState::Skipped,
            NotificationState::Sent
        ]
    );
    // A stale due time is dropped and the webhook's right one kept.
    a.unlink_notification(Millis(1), held).await.unwrap();
    assert_eq!(
        a.next_notification().await.unwrap().map(|n| n.1),
        Some(held)
    );
}

#[test]
fn a_lost_database_marks_the_store_down_until_the_next_success() {
    let health = Health::default();
    let timeout = deadpool_postgres::PoolError::Timeout(deadpool_postgres::TimeoutType::Wait);
    let r: Result<(), StoreError> = seen(&health, Err(StoreError::Pool(Arc::new(timeout))));
    assert!(r.is_err());
    assert_eq!(health.fault(), Some(Fault::Unavailable));
    // A statement's own error says nothing about the database's health.
    let _ = seen::<()>(&health, Err(StoreError::Inconsistent("x".into())));
    assert_eq!(health.fault(), Some(Fault::Unavailable));
    seen(&health, Ok(())).unwrap();
    assert_eq!(health.fault(), None);
}

/// Ingest throughput and latency on one node: `cargo test --release --lib
/// ingest_rate -- --ignored --nocapture` (prints events/s and p99).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn ingest_rate() {
    let Some(url) = fresh_url().await else {
        return;
    };
    let pg = PgStore::connect(settings(&url, "a")).await.unwrap();
    for name in ["x", "y"] {
        pg.create_webhook(hook("u", name, &["*"], 1), 10)
            .await
            .unwrap();
    }
    let callers: usize = std::env::var("CALLERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let each = 19_200 / callers;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let pg = pg.clone();
        tasks.push(tokio::spawn(async move {
            let mut took = Vec::with_capacity(each);
            for i in 0..each {
                let t = std::time::Instant::now();
                let e = event(&format!("r{c}-{i}"), "u", EventType::MessageSent, 5);
                pg.ingest(e, Millis(9)).await.unwrap();
                took.push(t.elapsed());
            }
            took
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let secs = started.elapsed().as_secs_f64();
    all.sort();
    let p99 = all[all.len() * 99 / 100];
    eprintln!(
        "{} events in {secs:.2} s: {:.0} events/s, p99 {p99:?}",
        all.len(),
        all.len() as f64 / secs
    );
}
