//! A data file written by an older hookd goes on working. Two generations: one whose
//! delivery records held their id and whose delivery filter index was keyed by webhook id
//! (the release before the compact store), which the first open moves; and, before that,
//! one whose delivery and event records are at schema version 1 (a delivery holds its
//! attempts inline and names its event by id; `webhook_deliveries` and
//! `event_deliveries` list them), whose attempts this hookd serves, numbers the next one
//! after, and moves into the `attempts` table the first time it writes the record again.

use std::time::Duration;

use crate::common::receiver::{Receiver, Reply};
use crate::common::{Hookd, Settings, USER, eventually};
use hookd::model::{DeliveryId, EventId};
use hookd::store::RedbStore as Store;
use hookd::store::codec::decode;
use hookd::store::ops::deliveries::attempts_of;
use hookd::store::records::v1::{AttemptV1, DeliveryRecordV1, EventRecordV1};
use hookd::store::records::{DeliveryRecord, EventRecord, EventRef};
use hookd::store::tables::*;
use redb::ReadableTable;

const WAIT: Duration = Duration::from_secs(20);

/// `[version] ++ bincode(record)`: what the codec wrote for a record of that version.
fn encode_at(version: u8, record: &impl serde::Serialize) -> Vec<u8> {
    let mut out = vec![version];
    out.extend(bincode::serde::encode_to_vec(record, bincode::config::standard()).unwrap());
    out
}

/// Every delivery record in `records`, each read under the id it is stored under.
fn every_delivery(
    records: &impl ReadableTable<u128, &'static [u8]>,
) -> Result<Vec<DeliveryRecord>, hookd::store::StoreError> {
    let mut out = Vec::new();
    for entry in records.iter()? {
        let (id, bytes) = entry?;
        out.push(DeliveryRecord::decode(
            DeliveryId(id.value()),
            bytes.value(),
        )?);
    }
    Ok(out)
}

/// Rewrites every delivery and event of the stopped daemon's store the way the previous
/// hookd stored them: version 1 records, attempts inline, their index entries.
fn rewrite_as_version_1(path: &std::path::Path) {
    let store = Store::open(path).unwrap();
    store
        .write_blocking(|tx| {
            let mut records = tx.txn.open_table(DELIVERIES)?;
            let mut attempts = tx.txn.open_table(ATTEMPTS)?;
            let mut per_webhook = tx.txn.open_table(WEBHOOK_DELIVERIES)?;
            let mut per_event = tx.txn.open_table(EVENT_DELIVERIES)?;
            let events_by_seq = tx.txn.open_table(EVENTS_BY_SEQ)?;
            let deliveries = every_delivery(&records)?;
            for d in deliveries {
                let old_attempts = attempts_of(&attempts, &d)?;
                attempts.retain_in((d.seq, 0u32)..=(d.seq, u32::MAX), |_, _| false)?;
                let EventRef::Seq(event_seq) = d.event else {
                    panic!("a new delivery names its event by seq");
                };
                let event_id = events_by_seq.get(event_seq)?.unwrap().value().to_owned();
                per_webhook.insert((d.webhook_id.0, d.seq), d.id.0)?;
                per_event.insert((event_seq, d.seq), ())?;
                let old = DeliveryRecordV1 {
                    id: d.id,
                    seq: d.seq,
                    webhook_id: d.webhook_id,
                    event_id: EventId::parse(&event_id).unwrap(),
                    event_type: d.event_type,
                    status: d.status,
                    attempts: old_attempts
                        .into_iter()
                        .map(|(number, a)| AttemptV1 {
                            number,
                            at: a.at,
                            status_code: a.status_code,
                            duration_ms: a.duration_ms,
                            error: a.error,
                            response_body: a.response_body,
                        })
                        .collect(),
                    next_attempt_at: d.next_attempt_at,
                    created_at: d.created_at,
                    schedule_base: d.schedule_base,
                };
                records.insert(d.id.0, encode_at(1, &old).as_slice())?;
            }
            drop((records, attempts, per_webhook, per_event, events_by_seq));
            let mut events = tx.txn.open_table(EVENTS)?;
            let mut all = Vec::new();
            for entry in events.iter()? {
                let e: EventRecord = decode(entry?.1.value())?;
                all.push(e);
            }
            for e in all {
                let old = EventRecordV1 {
                    id: e.id.clone(),
                    seq: e.seq,
                    user: e.user,
                    event_type: e.event_type,
                    source: e.source,
                    timestamp: e.timestamp,
                    payload: e.payload,
                    received_at: e.received_at,
                    deliveries: e.deliveries,
                };
                events.insert(e.id.as_str(), encode_at(1, &old).as_slice())?;
            }
            Ok(())
        })
        .unwrap();
    store.close(Duration::from_secs(5));
}

/// The stored record of `delivery`: its schema version and its attempt rows.
fn stored(path: &std::path::Path, delivery: &str) -> (u8, Vec<u32>) {
    let id: DeliveryId = delivery.parse().unwrap();
    let store = Store::open(path).unwrap();
    let out = store
        .read(|r| {
            let records = r.open_table(DELIVERIES)?;
            let bytes = records.get(id.0)?.unwrap().value().to_vec();
            let d = DeliveryRecord::decode(id, &bytes).unwrap();
            let rows = r
                .open_table(ATTEMPTS)?
                .range((d.seq, 0u32)..=(d.seq, u32::MAX))?
                .map(|e| e.map(|(k, _)| k.value().1))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((bytes[0], rows))
        })
        .unwrap();
    store.close(Duration::from_secs(5));
    out
}

fn numbers_and_codes(delivery: &serde_json::Value) -> Vec<(u64, u64)> {
    delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["attempt"].as_u64().unwrap(),
                a["statusCode"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn deliveries_stored_at_version_1_keep_their_attempts_and_go_on_counting() {
    if crate::common::redb_only("a version-1 redb store") {
        return;
    }
    let receiver = Receiver::start(|_, _| Reply::Status(500));
    let mut hookd = Hookd::start_with(Settings {
        delivery: r#"retry_schedule = ["0s", "0s"]"#.into(),
        ..Settings::default()
    });
    let hook = hookd.create_webhook(USER, &receiver.url("/old"), &["*"], None);
    let event = hookd.publish("app:connected", "user-123", r#"{"n":1}"#, None);
    let list = hookd.wait_deliveries(USER, &hook, WAIT, |ds| {
        ds.len() == 1 && ds[0]["status"] == "failed"
    });
    let delivery = list[0]["id"].as_str().unwrap().to_owned();
    assert!(hookd.terminate().success());
    let path = hookd.dir.path().join("data").join("hookd.redb");
    rewrite_as_version_1(&path);
    assert_eq!(stored(&path, &delivery), (1, vec![]), "written as before");

    receiver.set(|_, _| Reply::Status(200));
    hookd.restart();
    // The attempts the old record holds inline, in the log and the single view alike.
    let one = hookd.get(
        &format!("/api/hooks/webhooks/{hook}/deliveries/{delivery}"),
        USER,
    );
    assert_eq!(one.status, 200, "{}", one.body);
    let one = one.json();
    assert_eq!(numbers_and_codes(&one), [(1, 500), (2, 500)]);
    assert_eq!(
        (one["eventId"].as_str(), one["status"].as_str()),
        (Some(event.as_str()), Some("failed"))
    );
    let listed = hookd.wait_deliveries(USER, &hook, WAIT, |ds| ds.len() == 1);
    assert_eq!(listed[0], one, "the log shows what the single view shows");

    // A retry rewrites the record; its next attempt is number 3, on the wire and in the log.
    let r = hookd.post(
        &format!("/api/hooks/webhooks/{hook}/deliveries/{delivery}/retry"),
        USER,
        "{}",
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let got = receiver.wait_for(3, WAIT);
    assert_eq!(got[2].header("X-Hook-Attempt"), Some("3"));
    assert_eq!(got[2].event_id(), event);
    let done = eventually(WAIT, "the third attempt recorded", || {
        let d = hookd
            .get(
                &format!("/api/hooks/webhooks/{hook}/deliveries/{delivery}"),
                USER,
            )
            .json();
        (d["status"] == "succeeded").then_some(d)
    });
    assert_eq!(numbers_and_codes(&done), [(1, 500), (2, 500), (3, 200)]);
    assert_eq!(done["eventId"].as_str(), Some(event.as_str()));

    // Stored at the new version now, every attempt a row of its own.
    assert!(hookd.terminate().success());
    assert_eq!(stored(&path, &delivery), (3, vec![1, 2, 3]));
}

/// Rewrites the stopped daemon's store the way the release before the compact store
/// left it: delivery records at version 2 (their id inside), the delivery filter in its
/// first form (keyed by webhook id, the delivery id as its value), no webhook numbers,
/// and a `user_events` entry for every event.
fn rewrite_as_previous_release(path: &std::path::Path) {
    use hookd::store::records::v2::DeliveryRecordV2;
    let store = Store::open(path).unwrap();
    store
        .write_blocking(|tx| {
            let mut records = tx.txn.open_table(DELIVERIES)?;
            let deliveries = every_delivery(&records)?;
            for d in &deliveries {
                let old = DeliveryRecordV2 {
                    id: d.id,
                    seq: d.seq,
                    webhook_id: d.webhook_id,
                    event: d.event.clone(),
                    event_type: d.event_type,
                    status: d.status,
                    attempts: d.attempts,
                    next_attempt_at: d.next_attempt_at,
                    created_at: d.created_at,
                    schedule_base: d.schedule_base,
                };
                records.insert(d.id.0, encode_at(2, &old).as_slice())?;
            }
            let numbers: std::collections::HashMap<u32, u128> = tx
                .txn
                .open_table(WEBHOOK_NUMBERS)?
                .iter()?
                .map(|e| e.map(|(k, v)| (v.value(), k.value())))
                .collect::<Result<_, _>>()?;
            let mut old = tx.txn.open_table(DELIVERY_FILTER_V1)?;
            for entry in tx.txn.open_table(DELIVERY_FILTER)?.iter()? {
                let (number, status, event_type, seq) = entry?.0.value();
                let d = deliveries.iter().find(|d| d.seq == seq).unwrap();
                old.insert((numbers[&number], status, event_type, seq), d.id.0)?;
            }
            drop((old, records));
            tx.txn.delete_table(DELIVERY_FILTER)?;
            tx.txn.delete_table(WEBHOOK_NUMBERS)?;
            tx.txn.open_table(META)?.remove(WEBHOOK_NUMBER)?;
            let mut per_user = tx.txn.open_table(USER_EVENTS)?;
            for entry in tx.txn.open_table(EVENTS)?.iter()? {
                let e: EventRecord = decode(entry?.1.value())?;
                per_user.insert((e.user.as_str(), e.seq), e.id.as_str())?;
            }
            Ok(())
        })
        .unwrap();
    store.close(Duration::from_secs(5));
}

/// The delivery log of `webhook` as the API lists it, whole and by status.
fn logs(hookd: &Hookd, webhook: &str) -> Vec<serde_json::Value> {
    [
        "",
        "&status=succeeded",
        "&status=failed",
        "&eventType=app:connected",
    ]
    .iter()
    .map(|filter| {
        let r = hookd.get(
            &format!("/api/hooks/webhooks/{webhook}/deliveries?limit=100{filter}"),
            USER,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()["deliveries"].clone()
    })
    .collect()
}

#[test]
fn a_store_of_the_previous_release_lists_the_same_logs_after_the_upgrade() {
    if crate::common::redb_only("a redb store of the previous release") {
        return;
    }
    let receiver = Receiver::start(|got, _| {
        Reply::Status(if got.path.starts_with("/ok") {
            200
        } else {
            500
        })
    });
    let mut hookd = Hookd::start_with(Settings {
        delivery: r#"retry_schedule = ["0s"]"#.into(),
        ..Settings::default()
    });
    let good = hookd.create_webhook(USER, &receiver.url("/ok"), &["*"], None);
    let bad = hookd.create_webhook(USER, &receiver.url("/down"), &["*"], None);
    for (i, event_type) in ["app:connected", "message:sent", "app:connected"]
        .iter()
        .enumerate()
    {
        hookd.publish(event_type, "user-123", &format!(r#"{{"n":{i}}}"#), None);
    }
    for (hook, status) in [(&good, "succeeded"), (&bad, "failed")] {
        hookd.wait_deliveries(USER, hook, WAIT, |ds| {
            ds.len() == 3 && ds.iter().all(|d| d["status"] == status)
        });
    }
    let before = [logs(&hookd, &good), logs(&hookd, &bad)];
    assert_eq!(
        before[0][1].as_array().unwrap().len(),
        3,
        "{:#?}",
        before[0]
    );
    assert_eq!(
        before[1][2].as_array().unwrap().len(),
        3,
        "{:#?}",
        before[1]
    );
    assert_eq!(
        before[0][3].as_array().unwrap().len(),
        2,
        "{:#?}",
        before[0]
    );
    assert!(hookd.terminate().success());
    let path = hookd.dir.path().join("data").join("hookd.redb");
    rewrite_as_previous_release(&path);

    hookd.restart();
    assert!(
        hookd.wait_for_log(
            "delivery filter index moved to its compact form moved=6",
            WAIT
        ),
        "{}",
        hookd.log()
    );
    assert_eq!([logs(&hookd, &good), logs(&hookd, &bad)], before);
    // New deliveries join the moved index under the numbers the open gave.
    let newest = hookd.publish("app:connected", "user-123", r#"{"n":3}"#, None);
    let list = hookd.wait_deliveries(USER, &good, WAIT, |ds| {
        ds.len() == 4 && ds[0]["status"] == "succeeded"
    });
    assert_eq!(list[0]["eventId"].as_str(), Some(newest.as_str()));
    assert!(hookd.terminate().success());
}
