//! Tests of what several nodes sharing one database do: one event id sent to two nodes,
//! notification claims, and this node's ingest rate (see `tests` for the harness).

use std::time::Duration;

use super::tests::{event, fresh_url, hook, settings};
use super::*;
use crate::model::{EventType, NotificationKind, WebhookStatus};
use crate::store::ops::notifications::Fate;

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
