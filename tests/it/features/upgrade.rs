//! A store written by the previous hookd (schema version 1 records, no queue order)
//! opens with no manual step: its webhook reads with no headers and ordering `none`, its
//! event with no trace, its pending deliveries go out as they were, and the new fields
//! can then be set on the old webhook.

use std::path::Path;

use redb::{Database, TableDefinition};
use serde::Serialize;

use super::{Scripted, WAIT, settings};
use crate::common::receiver::Reply;
use crate::common::{Hookd, Settings, USER};
use hookd::model::{
    DeliveryId, DeliveryStatus, EventId, EventPattern, EventType, Millis, WebhookId, WebhookStatus,
};
use hookd::store::records::v1::{EventRecordV1, WebhookRecordV1};
use hookd::store::tables::*;

/// The delivery record as the previous hookd wrote it (version 1).
#[derive(Serialize)]
struct DeliveryRecordV1 {
    id: DeliveryId,
    seq: u64,
    webhook_id: WebhookId,
    event_id: EventId,
    event_type: EventType,
    status: DeliveryStatus,
    attempts: Vec<AttemptV1>,
    next_attempt_at: Option<Millis>,
    created_at: Millis,
    schedule_base: u32,
}

#[derive(Serialize)]
struct AttemptV1 {
    number: u32,
    at: Millis,
    status_code: Option<u16>,
    duration_ms: u64,
    error: Option<String>,
    response_body: Option<String>,
}

/// `[1] ++ bincode(record)`: a version 1 record.
fn v1<T: Serialize>(record: &T) -> Vec<u8> {
    let mut bytes = vec![1];
    bincode::serde::encode_into_std_write(record, &mut bytes, bincode::config::standard())
        .expect("encode");
    bytes
}

/// Writes the store the previous hookd would have left: one webhook of user-123 to `url`
/// with a secret, and two events, each with a pending delivery due now.
fn write_previous_store(path: &Path, url: &str) -> WebhookId {
    let db = Database::create(path).expect("create store");
    let txn = db.begin_write().expect("write");
    let hook = WebhookId(0x0192_0000_0000_7000_8000_0000_0000_0001);
    let now = Millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    {
        let webhook = WebhookRecordV1 {
            id: hook,
            user: "user-123".into(),
            name: "from the previous version".into(),
            url: url.into(),
            event_types: vec![EventPattern::All],
            enabled: true,
            status: WebhookStatus::Healthy,
            secret: Some("old-secret".into()),
            previous_secret: None,
            created_at: now,
            updated_at: now,
            failing_since: None,
            last_success_at: None,
            paused_until: None,
        };
        txn.open_table(WEBHOOKS)
            .unwrap()
            .insert(hook.0, v1(&webhook).as_slice())
            .unwrap();
        txn.open_table(USER_WEBHOOKS)
            .unwrap()
            .insert(("user-123", hook.0), ())
            .unwrap();
        let mut meta = txn.open_table(META).unwrap();
        for (i, event_id) in ["old-1", "old-2"].into_iter().enumerate() {
            let seq = i as u64 + 1;
            let event = EventRecordV1 {
                id: EventId::parse(event_id).unwrap(),
                seq,
                user: "user-123".into(),
                event_type: EventType::AppConnected,
                source: "whatsapp".into(),
                timestamp: "2024-01-26T10:30:00Z".into(),
                payload: format!(r#"{{"n":{seq}}}"#),
                received_at: now,
                deliveries: 1,
            };
            let delivery = DeliveryRecordV1 {
                id: DeliveryId(0x0192_0000_0000_7000_8000_0000_0000_0100 + seq as u128),
                seq,
                webhook_id: hook,
                event_id: event.id.clone(),
                event_type: event.event_type,
                status: DeliveryStatus::Pending,
                attempts: Vec::new(),
                next_attempt_at: Some(now),
                created_at: now,
                schedule_base: 0,
            };
            let insert = |table: TableDefinition<u128, &[u8]>, key: u128, value: &[u8]| {
                txn.open_table(table).unwrap().insert(key, value).unwrap();
            };
            txn.open_table(EVENTS)
                .unwrap()
                .insert(event_id, v1(&event).as_slice())
                .unwrap();
            txn.open_table(USER_EVENTS)
                .unwrap()
                .insert(("user-123", seq), event_id)
                .unwrap();
            txn.open_table(EVENTS_BY_SEQ)
                .unwrap()
                .insert(seq, event_id)
                .unwrap();
            insert(DELIVERIES, delivery.id.0, &v1(&delivery));
            txn.open_table(WEBHOOK_DELIVERIES)
                .unwrap()
                .insert((hook.0, seq), delivery.id.0)
                .unwrap();
            txn.open_table(DELIVERIES_BY_SEQ)
                .unwrap()
                .insert(seq, delivery.id.0)
                .unwrap();
            txn.open_table(EVENT_DELIVERIES)
                .unwrap()
                .insert((seq, seq), ())
                .unwrap();
            txn.open_table(QUEUE_V1)
                .unwrap()
                .insert((hook.0, now.as_key(), delivery.id.0), ())
                .unwrap();
        }
        for (name, value) in [
            (EVENT_SEQ, 2),
            (DELIVERY_SEQ, 2),
            // Written before the filter indexes: the two records have no entries there.
            (DELIVERY_FILTER_FROM, 3),
            (EVENT_FILTER_FROM, 3),
            (WEBHOOKS_HEALTHY, 1),
        ] {
            meta.insert(name, value).unwrap();
        }
    }
    txn.commit().expect("commit");
    hook
}

#[test]
fn a_store_of_the_previous_version_keeps_working_and_takes_the_new_fields() {
    if crate::common::redb_only("a redb store written by the previous hookd") {
        return;
    }
    let data = tempfile::tempdir().unwrap();
    let rx = Scripted::start(std::time::Duration::ZERO);
    let hook = write_previous_store(&data.path().join("hookd.redb"), &rx.rx.url("/old"));
    let hookd = Hookd::start_with(Settings {
        data_dir: Some(data.path().to_path_buf()),
        ..settings(r#"retry_schedule = ["0s", "100ms"]"#)
    });

    // The pending deliveries go out as they were, signed with the old secret.
    let got = rx.rx.wait_for(2, WAIT);
    let mut events: Vec<String> = got.iter().map(|r| r.event_id()).collect();
    events.sort();
    assert_eq!(events, ["old-1", "old-2"]);
    assert!(got.iter().all(|r| r.header("x-hook-signature").is_some()));
    assert!(got[0].body_str().contains(r#""payload":{"n":"#));

    let id = hook.to_string();
    let w = hookd.webhook(USER, &id);
    assert_eq!(w["name"], "from the previous version");
    assert_eq!(w["headers"], serde_json::json!({}));
    assert_eq!(w["ordering"], "none");
    let e = hookd.get("/api/hooks/events/old-1", USER).json();
    assert_eq!(e["payload"], serde_json::json!({"n": 1}));
    assert!(e.get("traceId").is_none(), "{e}");

    // The old webhook takes the new fields.
    let r = hookd.patch(
        &format!("/api/hooks/webhooks/{id}"),
        USER,
        r#"{"ordering":"fifo","headers":{"Authorization":"Bearer upgraded"}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    rx.plan("new-1", [Reply::Status(500)]);
    for event in ["new-1", "new-2"] {
        hookd.publish("app:connected", "user-123", "{}", Some(event));
    }
    let got = rx.rx.wait_for(5, WAIT);
    let order: Vec<String> = got[2..].iter().map(|r| r.event_id()).collect();
    assert_eq!(
        order,
        ["new-1", "new-1", "new-2"],
        "in order behind the failing head"
    );
    assert!(
        got[2..]
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer upgraded"))
    );
    hookd.wait_deliveries(USER, &id, WAIT, |d| {
        d.len() == 4 && d.iter().all(|d| d["status"] == "succeeded")
    });
}
