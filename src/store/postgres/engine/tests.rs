//! The engine's operations on PostgreSQL answer and write what they do on redb: one
//! sequence of events and outcomes, run on both through `Store`, compared step by step.

use std::sync::Arc;
use std::time::Duration;

use redb::ReadableTable;

use super::super::PgStore;
use super::outcome::Item;
use super::queue::LOAD_WITH_CLAIMS_AT_MOST;
use super::testing::{fresh_db, server, store_on};
use super::uuid;
use crate::delivery::retry::RetryPolicy;
use crate::model::{DeliveryId, EventId, EventPattern, EventType, Millis, Ordering};
use crate::model::{DeliveryStatus, WebhookId};
use crate::store::codec::{decode, encode};
use crate::store::ops::attempts::{self, Recorded, Recording, Requeue, Verdict};
use crate::store::ops::queue::LookFor;
use crate::store::ops::{deliveries, events, webhooks};
use crate::store::records::{Attempt, DeliveryRecord, EventRecord, WebhookRecord};
use crate::store::tables::*;
use crate::store::{RedbStore, Store};

fn policy() -> Arc<RetryPolicy> {
    Arc::new(RetryPolicy {
        schedule: vec![
            Duration::ZERO,
            Duration::from_secs(60),
            Duration::from_secs(300),
        ],
        disable_after: Duration::from_secs(3600),
    })
}

/// Both stores' deliveries (with their place in line and attempts) and webhooks.
type View = (
    Vec<(DeliveryRecord, Option<u64>, Vec<Attempt>)>,
    Vec<WebhookRecord>,
);

/// Places in line as ranks: only their order is the rule (a requeued delivery's
/// fresh position comes from the delivery sequence, which steps differently on the
/// two backends).
fn ranked(mut view: View) -> View {
    let mut positions: Vec<u64> = view.0.iter().filter_map(|(_, p, _)| *p).collect();
    positions.sort_unstable();
    for (_, p, _) in &mut view.0 {
        *p = p.and_then(|p| positions.binary_search(&p).ok().map(|rank| rank as u64));
    }
    view
}

fn view_redb(redb: &RedbStore) -> View {
    redb.read(|r| {
        let requeued = r.open_table(QUEUE_REQUEUED)?;
        let attempts = r.open_table(ATTEMPTS)?;
        let mut ds = Vec::new();
        for entry in r.open_table(DELIVERIES)?.iter()? {
            let (id, bytes) = entry?;
            let d = DeliveryRecord::decode(DeliveryId(id.value()), bytes.value())?;
            let position = match d.status {
                DeliveryStatus::Pending => Some(requeued.get(d.id.0)?.map_or(d.seq, |p| p.value())),
                _ => None,
            };
            let list = deliveries::attempts_of(&attempts, &d)?;
            ds.push((d, position, list.into_iter().map(|(_, a)| a).collect()));
        }
        ds.sort_by_key(|(d, _, _)| d.seq);
        let mut hooks = Vec::new();
        for entry in r.open_table(WEBHOOKS)?.iter()? {
            hooks.push(decode::<WebhookRecord>(entry?.1.value())?);
        }
        hooks.sort_by_key(|w| w.id);
        Ok(ranked((ds, hooks)))
    })
    .unwrap()
}

async fn view_pg(pg: &PgStore) -> View {
    let client = pg.client().await.unwrap();
    let mut ds = Vec::new();
    for row in client
        .query(
            "SELECT record, position, seq, id FROM deliveries ORDER BY seq",
            &[],
        )
        .await
        .unwrap()
    {
        let id: uuid::Uuid = row.get(3);
        let d = DeliveryRecord::decode(DeliveryId(id.as_u128()), row.get(0)).unwrap();
        let attempts = client
            .query(
                "SELECT record FROM attempts WHERE delivery_seq = $1 ORDER BY number",
                &[&row.get::<_, i64>(2)],
            )
            .await
            .unwrap();
        let list = attempts.iter().map(|a| decode(a.get(0)).unwrap()).collect();
        ds.push((d, row.get::<_, Option<i64>>(1).map(|p| p as u64), list));
    }
    let mut hooks = Vec::new();
    for row in client
        .query(
            "SELECT record, status, enabled FROM webhooks ORDER BY id",
            &[],
        )
        .await
        .unwrap()
    {
        let w: WebhookRecord = decode(row.get(0)).unwrap();
        assert_eq!(row.get::<_, i16>(1), i16::from(status_rank(w.status)));
        assert_eq!(row.get::<_, bool>(2), w.enabled);
        hooks.push(w);
    }
    ranked((ds, hooks))
}

/// Copies `redb`'s webhooks, events, deliveries (with their places in line) and
/// attempts into `pg` unchanged, and its sequences.
async fn copy(redb: &RedbStore, pg: &PgStore) {
    let (view, events, seqs) = redb
        .read(|r| {
            let mut events = Vec::new();
            for entry in r.open_table(EVENTS)?.iter()? {
                events.push(entry?.1.value().to_vec());
            }
            let meta = r.open_table(META)?;
            let seq = |name| meta.get(name).map(|v| v.map_or(0, |v| v.value()));
            Ok((
                view_redb(redb),
                events,
                (seq(EVENT_SEQ)?, seq(DELIVERY_SEQ)?),
            ))
        })
        .unwrap();
    let client = pg.client().await.unwrap();
    for w in &view.1 {
        client
            .execute(
                "INSERT INTO webhooks (id, owner, created_at, status, enabled, record) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
                &[
                    &uuid(w.id.0),
                    &w.user,
                    &w.created_at.0,
                    &i16::from(status_rank(w.status)),
                    &w.enabled,
                    &encode(w),
                ],
            )
            .await
            .unwrap();
    }
    for bytes in events {
        let e: EventRecord = decode(&bytes).unwrap();
        client
            .execute(
                "INSERT INTO events (seq, id, owner, type, received_at, first_delivery, \
                   deliveries, record) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &(e.seq as i64),
                    &e.id.as_str(),
                    &e.user,
                    &i16::from(type_code(e.event_type)),
                    &e.received_at.0,
                    &e.first_delivery.map(|s| s as i64),
                    &(e.deliveries as i32),
                    &bytes,
                ],
            )
            .await
            .unwrap();
    }
    for (d, position, attempts) in &view.0 {
        let crate::store::records::EventRef::Seq(event_seq) = d.event else {
            panic!("version 2 deliveries only")
        };
        client
            .execute(
                "INSERT INTO deliveries (seq, id, webhook_id, event_seq, status, type, \
                   created_at, due, position, record) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &(d.seq as i64),
                    &uuid(d.id.0),
                    &uuid(d.webhook_id.0),
                    &(event_seq as i64),
                    &super::status_code(d.status),
                    &i16::from(type_code(d.event_type)),
                    &d.created_at.0,
                    &super::due_col(d.next_attempt_at),
                    &position.map(|p| p as i64),
                    &d.encode(),
                ],
            )
            .await
            .unwrap();
        for (n, a) in attempts.iter().enumerate() {
            client
                .execute(
                    "INSERT INTO attempts (delivery_seq, number, record) VALUES ($1, $2, $3)",
                    &[&(d.seq as i64), &(n as i32 + 1), &encode(a)],
                )
                .await
                .unwrap();
        }
    }
    for (name, value) in [("event_seq", seqs.0), ("delivery_seq", seqs.1)] {
        client
            .execute(
                "SELECT setval($1::text::regclass, $2, $3)",
                &[&name, &(value.max(1) as i64), &(value > 0)],
            )
            .await
            .unwrap();
    }
}

struct Both {
    redb: RedbStore,
    pg: PgStore,
    stores: [Store; 2],
}

impl Both {
    async fn same(&self, step: &str) {
        let (a, b) = (view_redb(&self.redb), view_pg(&self.pg).await);
        assert_eq!(a, b, "after {step}");
    }

    /// Records the outcome on both at `now`; both answer alike.
    async fn record(&self, id: DeliveryId, verdict: Verdict, at: i64, again: bool) -> Recorded {
        let attempt = Attempt {
            at: Millis(at),
            status_code: Some(if verdict == Verdict::Success {
                200
            } else {
                500
            }),
            duration_ms: 7,
            error: None,
            response_body: None,
        };
        let recording = if again {
            Recording::Again
        } else {
            Recording::First
        };
        let (a, p) = (attempt.clone(), policy());
        let on_redb = tokio::task::block_in_place(|| {
            self.redb.write_blocking(move |tx| {
                attempts::record(tx, id, verdict, a, recording, &p, Millis(at))
            })
        })
        .unwrap();
        let item = Item::new(id, verdict, attempt, recording, policy());
        let on_pg = self.pg.record_outcomes(&[item], Millis(at)).await;
        let on_pg = on_pg.into_iter().next().unwrap().unwrap();
        let kinds = |r: Option<Recorded>| {
            r.map(|r| (r.webhook_disabled, r.status, r.notification.map(|n| n.kind)))
        };
        assert_eq!(kinds(on_redb), kinds(on_pg), "outcome of {id} at {at}");
        self.same(&format!("recording {verdict:?} for {id} at {at}"))
            .await;
        on_pg.unwrap()
    }

    async fn peek(
        &self,
        w: WebhookId,
        now: i64,
        skip: &[DeliveryId],
        max: usize,
    ) -> Vec<DeliveryId> {
        let mut claimed = crate::store::ops::queue::Claimed::default();
        for &id in skip {
            claimed.insert(id, None);
        }
        let skip = claimed;
        let mut answers = Vec::new();
        for store in &self.stores {
            for purpose in [LookFor::Planning, LookFor::Sending] {
                let p = store.peek(w, Millis(now), &skip, max, purpose).await;
                let p = p.unwrap();
                let loaded: Vec<DeliveryId> = p.loaded.iter().map(|l| l.delivery.id).collect();
                // Read with the look: every delivery to send of a webhook that is not
                // FIFO, while its claims are few, the worker's own read exactly.
                let fifo = p
                    .webhook
                    .as_ref()
                    .is_some_and(|w| w.ordering == Ordering::Fifo);
                let few = skip.len() <= LOAD_WITH_CLAIMS_AT_MOST;
                let expected = match (store, purpose) {
                    (Store::Postgres(_), LookFor::Sending) if !fifo && few => p.due.clone(),
                    _ => Vec::new(),
                };
                assert_eq!(loaded, expected, "{purpose:?} look of {w} at {now}");
                for l in p.loaded {
                    let store = store.clone();
                    let own = tokio::task::spawn_blocking(move || {
                        let own = store.load_for_attempt(l.delivery.id).unwrap().unwrap();
                        (own.delivery, own.webhook, own.event)
                    });
                    assert_eq!(own.await.unwrap(), (l.delivery, l.webhook, l.event));
                }
                answers.push((p.webhook.map(|w| w.id), p.due, p.next));
            }
        }
        assert!(
            answers.windows(2).all(|a| a[0] == a[1]),
            "peek of {w} at {now}: {answers:?}"
        );
        answers.pop().unwrap().1
    }
}

fn ingest(redb: &RedbStore, n: usize, at: i64) {
    let new = events::NewEvent {
        id: EventId::parse(&format!("e{n}")).unwrap(),
        user: "u".into(),
        event_type: EventType::ALL[n % EventType::ALL.len()],
        source: "s".into(),
        timestamp: "2024-01-01T00:00:00Z".into(),
        payload: "{}".into(),
        received_at: Millis(at),
        trace: None,
    };
    tokio::task::block_in_place(|| {
        redb.write_blocking(move |tx| events::ingest(tx, new, Millis(at)))
    })
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_engine_operations_do_on_postgres_what_they_do_on_redb() {
    let Some(server) = server() else { return };
    let (_dir, redb, a) = tokio::task::block_in_place(crate::store::ops::test_store_with_webhook);
    let mut fifo = WebhookRecord::new(
        "u".into(),
        "fifo".into(),
        "https://example.com/f".into(),
        vec![EventPattern::All],
        None,
        Millis(1),
    );
    fifo.ordering = Ordering::Fifo;
    let f = fifo.id;
    tokio::task::block_in_place(|| redb.write_blocking(move |tx| webhooks::create(tx, fifo, 10)))
        .unwrap();
    let t = 1_000_000;
    for n in 0..5 {
        ingest(&redb, n, t + n as i64);
    }
    let url = fresh_db(&server).await;
    let pg = store_on(&url, "n1", Duration::from_secs(30)).await;
    copy(&redb, &pg).await;
    pg.lease_round().await.unwrap();
    let both = Both {
        stores: [Store::Redb(redb.clone()), Store::Postgres(pg.clone())],
        redb,
        pg,
    };
    both.same("the copy").await;
    let of = |w: WebhookId| -> Vec<DeliveryId> {
        view_redb(&both.redb)
            .0
            .into_iter()
            .filter(|(d, _, _)| d.webhook_id == w)
            .map(|(d, _, _)| d.id)
            .collect()
    };
    let (da, df) = (of(a), of(f));

    // Heads: oldest due first (cut short by max), FIFO its head only.
    assert_eq!(both.peek(a, t + 10, &[], 2).await, da[..2]);
    assert_eq!(both.peek(a, t + 10, &[da[0]], 10).await, da[1..]);
    // Many claims: the look reads no records (the workers do), and answers the same.
    let mut many: Vec<DeliveryId> = (0..LOAD_WITH_CLAIMS_AT_MOST)
        .map(|_| DeliveryId::generate())
        .collect();
    many.push(da[0]);
    assert_eq!(both.peek(a, t + 10, &many, 10).await, da[1..]);
    assert_eq!(both.peek(a, t, &[], 0).await, []);
    assert_eq!(both.peek(f, t + 10, &[], 5).await, [df[0]]);
    assert_eq!(both.peek(f, t + 10, &[df[0]], 5).await, []);
    // Another node, without the lease, sees nothing to send.
    let other = Store::Postgres(store_on(&url, "n2", Duration::from_secs(30)).await);
    let p = other
        .peek(a, Millis(t + 10), &Default::default(), 5, LookFor::Sending)
        .await
        .unwrap();
    assert!(p.webhook.is_none() && p.due.is_empty() && p.next.is_none());

    // What an attempt needs, and what may not be cancelled.
    let [redb_store, pg_store] = both.stores.clone();
    let (id, one) = (da[0], df[1]);
    let (x, y) = tokio::task::spawn_blocking(move || {
        let x = redb_store.load_for_attempt(id).unwrap().unwrap();
        let y = pg_store.load_for_attempt(id).unwrap().unwrap();
        assert!(!pg_store.cancel_if_unsendable(one).unwrap());
        assert_eq!(
            redb_store.due_count(Millis(t + 2)).unwrap(),
            pg_store.due_count(Millis(t + 2)).unwrap()
        );
        (
            (x.delivery, x.webhook, x.event),
            (y.delivery, y.webhook, y.event),
        )
    })
    .await
    .unwrap();
    assert_eq!(x, y);

    // Failures, a success, a Retry-After, an outcome recorded again.
    both.record(
        da[0],
        Verdict::Failure { retry_after: None },
        t + 100,
        false,
    )
    .await;
    both.record(da[1], Verdict::Success, t + 200, false).await;
    let pause = Verdict::Failure {
        retry_after: Some(Duration::from_secs(1800)),
    };
    both.record(da[2], pause, t + 300, false).await;
    let again = both.record(da[2], pause, t + 300, true).await;
    assert_eq!(again.status, Some(DeliveryStatus::Pending));

    // The rate limit's moves (a finished delivery is not moved).
    let moves = vec![(da[3], Millis(t + 5_000)), (da[1], Millis(t + 9))];
    for store in &both.stores {
        assert_eq!(store.reschedule(a, moves.clone()).await.unwrap(), 1);
    }
    both.same("reschedule").await;
    both.peek(a, t + 6_000, &[da[4]], 10).await;

    // A run exhausted: failed, the webhook failing; a retry; its success: recovered.
    both.record(
        da[0],
        Verdict::Failure { retry_after: None },
        t + 100_000,
        false,
    )
    .await;
    let r = both
        .record(
            da[0],
            Verdict::Failure { retry_after: None },
            t + 500_000,
            false,
        )
        .await;
    assert_eq!(r.status, Some(DeliveryStatus::Failed));
    for (user, id, want) in [
        ("v", da[0], Requeue::NotFound),
        ("u", da[3], Requeue::NotFailed),
        ("u", da[0], Requeue::Queued(Millis(t + 600_000))),
    ] {
        for store in &both.stores {
            let answer = store
                .retry(user.into(), a, id, Millis(t + 600_000))
                .await
                .unwrap();
            assert_eq!(answer, want);
        }
    }
    both.same("retry").await;
    let r = both
        .record(da[0], Verdict::Success, t + 700_000, false)
        .await;
    assert_eq!(
        r.notification.map(|n| n.kind),
        Some(crate::model::NotificationKind::Recovered)
    );

    // FIFO: failed ones recovered go to the back of the line, oldest first.
    for at in [t + 20, t + 80_000, t + 400_000] {
        both.record(df[0], Verdict::Failure { retry_after: None }, at, false)
            .await;
    }
    for at in [t + 30, t + 90_000, t + 410_000] {
        both.record(df[1], Verdict::Failure { retry_after: None }, at, false)
            .await;
    }
    for store in &both.stores {
        let window = (Millis(0), Millis(i64::MAX));
        let out = store
            .recover("u".into(), f, window, Millis(t + 800_000), u64::MAX)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((out.queued, out.next), (2, None));
    }
    both.same("recover").await;
    assert_eq!(both.peek(f, t + 900_000, &[], 5).await, [df[2]]);

    // 410 disables the webhook and cancels its queue; an attempt of a cancelled
    // delivery that the receiver took is a success.
    let r = both.record(df[2], Verdict::Gone, t + 900_001, false).await;
    assert!(r.webhook_disabled);
    let r = both
        .record(df[3], Verdict::Success, t + 900_002, false)
        .await;
    assert_eq!(r.status, Some(DeliveryStatus::Succeeded));
    for store in &both.stores {
        let answer = store.retry("u".into(), f, df[2], Millis(t)).await.unwrap();
        assert_eq!(answer, Requeue::WebhookDisabled);
    }

    // Failing for longer than disable_after disables it.
    both.record(
        da[3],
        Verdict::Failure { retry_after: None },
        t + 2_000_000,
        false,
    )
    .await;
    let r = both
        .record(
            da[4],
            Verdict::Failure { retry_after: None },
            t + 6_000_000,
            false,
        )
        .await;
    assert!(r.webhook_disabled);
    both.same("the end").await;
}

/// Outcomes recorded in one batch end as they do one by one, in the order the batch
/// takes them ((webhook, delivery) order): a delivery twice, a success, failures, and a
/// 410 that disables the webhook and cancels, mid-batch, deliveries the batch has yet to
/// record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_of_outcomes_ends_as_they_do_one_by_one() {
    let Some(server) = server() else { return };
    let (_dir, redb, a) = tokio::task::block_in_place(crate::store::ops::test_store_with_webhook);
    let t = 1_000_000;
    for n in 0..7 {
        ingest(&redb, n, t + n as i64);
    }
    let url = fresh_db(&server).await;
    let pg = store_on(&url, "n1", Duration::from_secs(30)).await;
    copy(&redb, &pg).await;
    pg.lease_round().await.unwrap();
    let both = Both {
        stores: [Store::Redb(redb.clone()), Store::Postgres(pg.clone())],
        redb,
        pg,
    };
    let ds: Vec<DeliveryId> = view_redb(&both.redb)
        .0
        .into_iter()
        .filter(|(d, _, _)| d.webhook_id == a)
        .map(|(d, _, _)| d.id)
        .collect();
    let fail = Verdict::Failure { retry_after: None };
    let mut plan = [
        (ds[0], fail),
        (ds[1], Verdict::Success),
        (ds[2], fail),
        (ds[3], Verdict::Gone),
        (ds[4], Verdict::Success),
        (ds[5], fail),
        (ds[0], Verdict::Success),
    ];
    // The batch's order: by delivery (one webhook), each delivery's outcomes as given.
    plan.sort_by_key(|(d, _)| *d);
    let attempt = |i: usize, verdict: Verdict| Attempt {
        at: Millis(t + 100 + i as i64),
        status_code: Some(match verdict {
            Verdict::Success => 200,
            Verdict::Gone => 410,
            _ => 500,
        }),
        duration_ms: 7,
        error: None,
        response_body: None,
    };
    let now = Millis(t + 1_000);
    let mut on_redb = Vec::new();
    for (i, &(id, verdict)) in plan.iter().enumerate() {
        let (a, p) = (attempt(i, verdict), policy());
        let r = tokio::task::block_in_place(|| {
            both.redb.write_blocking(move |tx| {
                attempts::record(tx, id, verdict, a, Recording::First, &p, now)
            })
        })
        .unwrap();
        on_redb.push(r.map(|r| (r.webhook_disabled, r.status)));
    }
    let items: Vec<Item> = plan
        .iter()
        .enumerate()
        .map(|(i, &(id, verdict))| {
            Item::new(id, verdict, attempt(i, verdict), Recording::First, policy())
        })
        .collect();
    let on_pg: Vec<_> = both
        .pg
        .record_outcomes(&items, now)
        .await
        .into_iter()
        .map(|r| r.unwrap().map(|r| (r.webhook_disabled, r.status)))
        .collect();
    assert_eq!(on_redb, on_pg);
    assert!(
        on_pg
            .iter()
            .any(|r| r.is_some_and(|(disabled, _)| disabled))
    );
    both.same("the batch").await;
    // Recorded again (after a lost commit, say): nothing changes.
    let again: Vec<Item> = plan
        .iter()
        .enumerate()
        .map(|(i, &(id, verdict))| {
            Item::new(id, verdict, attempt(i, verdict), Recording::Again, policy())
        })
        .collect();
    for r in both
        .pg
        .record_outcomes(&again[again.len() - 1..], now)
        .await
    {
        r.unwrap();
    }
    both.same("the last outcome recorded again").await;
    let (stats_redb, stats_pg) = (
        both.stores[0].attempt_totals(0, u64::MAX).await.unwrap(),
        both.stores[1].attempt_totals(0, u64::MAX).await.unwrap(),
    );
    assert_eq!(stats_redb, stats_pg);
    let minutes = (0, u64::MAX / 60_000);
    let (hook_redb, hook_pg) = (
        both.stores[0]
            .webhook_stats(a, minutes.0, minutes.1, now)
            .await
            .unwrap(),
        both.stores[1]
            .webhook_stats(a, minutes.0, minutes.1, now)
            .await
            .unwrap(),
    );
    assert_eq!(hook_redb, hook_pg);
}
