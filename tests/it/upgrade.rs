//! A data file written by the previous hookd goes on working: its delivery and event
//! records are at schema version 1 (a delivery holds its attempts inline and names its
//! event by id; `webhook_deliveries` and `event_deliveries` list them), and this hookd
//! serves those attempts, numbers the next one after them, and moves them into the
//! `attempts` table the first time it writes the record again.

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
            let mut deliveries = Vec::new();
            for entry in records.iter()? {
                let (id, bytes) = entry?;
                deliveries.push(DeliveryRecord::decode(
                    DeliveryId(id.value()),
                    bytes.value(),
                )?);
            }
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
