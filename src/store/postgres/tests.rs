//! Tests of the PostgreSQL backend against a real database: `HOOKD_TEST_POSTGRES_URL`
//! names a server and a user that may create databases; each test makes its own
//! database there. Unset, the tests print a notice and pass — except under `CI=true`,
//! where they fail. The strongest of them run one sequence of operations through the
//! `Store` seam on redb and on PostgreSQL and compare the answers.

use std::time::Duration;

use super::*;
use crate::model::{DeliveryStatus, EventId, EventType, WebhookStatus};
use crate::store::Store;
use crate::store::records::Attempt;

/// The test server's URL (`HOOKD_TEST_POSTGRES_URL`), or `None` with a notice when it
/// is unset; under `CI=true` an unset URL fails the test instead of skipping it.
pub(crate) fn test_server() -> Option<String> {
    let Ok(url) = std::env::var("HOOKD_TEST_POSTGRES_URL") else {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "HOOKD_TEST_POSTGRES_URL is not set, and CI=true: the PostgreSQL tests must run"
        );
        eprintln!("skipped: set HOOKD_TEST_POSTGRES_URL to run the PostgreSQL tests");
        return None;
    };
    Some(url)
}

/// A fresh database on the test server, or `None` (with a notice) when there is none.
pub(super) async fn fresh_url() -> Option<String> {
    let admin = test_server()?;
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

pub(super) fn settings(url: &str, node: &str) -> PgSettings {
    PgSettings {
        url: url.into(),
        pool_size: 8,
        node_id: node.into(),
        lease: Duration::from_secs(10),
    }
}

pub(super) fn hook(user: &str, name: &str, types: &[&str], at: i64) -> WebhookRecord {
    WebhookRecord::new(
        user.into(),
        name.into(),
        "https://example.com/h".into(),
        types.iter().map(|t| t.parse().unwrap()).collect(),
        None,
        Millis(at),
    )
}

pub(super) fn event(id: &str, user: &str, t: EventType, at: i64) -> NewEvent {
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
