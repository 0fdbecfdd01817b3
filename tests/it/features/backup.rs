//! A backup keeps what issue 14 added: a restored store sends the custom headers and the
//! trace context again, and shows the ordering and the trace-id.

use serde_json::json;

use super::{Scripted, WAIT, settings};
use crate::common::receiver::Reply;
use crate::common::{self, ADMIN, Hookd, PUBLISHER, USER};

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";

#[test]
fn a_restored_backup_keeps_headers_ordering_and_trace() {
    if crate::common::redb_only("restores a redb backup file") {
        return;
    }
    let mut hookd = Hookd::start_with(settings(r#"retry_schedule = ["0s", "3s"]"#));
    let rx = Scripted::start(std::time::Duration::ZERO);
    // The first attempt fails: the delivery is pending (its retry 3 s away) at the backup.
    rx.plan("b1", [Reply::Status(500)]);
    let body = json!({
        "name": "kept", "url": rx.rx.url("/kept"), "eventTypes": ["*"], "ordering": "fifo",
        "headers": {"Authorization": "Bearer kept-in-backup"}
    });
    let r = hookd.post("/api/hooks/webhooks", USER, &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let hook = r.json()["id"].as_str().unwrap().to_string();
    let auth = format!("Bearer {PUBLISHER}");
    let traceparent = format!("00-{TRACE_ID}-b7ad6b7169203331-01");
    let r = common::http(
        hookd.addr,
        "POST",
        "/api/hooks/events",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
            ("traceparent", &traceparent),
            ("tracestate", "vendor=kept"),
        ],
        Some(
            br#"{"id":"b1","type":"app:connected","userId":"user-123","source":"s","payload":{}}"#,
        ),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    rx.rx.wait_for(1, WAIT);
    let r = hookd.request("POST", "/api/admin/backup", Some(ADMIN), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let backup = std::path::PathBuf::from(r.json()["path"].as_str().unwrap());
    assert!(hookd.terminate().success(), "{}", hookd.log());
    std::fs::copy(&backup, hookd.dir.path().join("data/hookd.redb")).unwrap();
    hookd.restart();

    let w = hookd.webhook(USER, &hook);
    assert_eq!(w["headers"], json!({"Authorization": "<redacted>"}));
    assert_eq!(w["ordering"], "fifo");
    let e = hookd.get("/api/hooks/events/b1", USER).json();
    assert_eq!(e["traceId"], TRACE_ID);
    // The pending delivery goes again from the restored store, with both.
    let got = rx
        .rx
        .wait_until(WAIT, |got| got.iter().skip(1).any(|r| r.event_id() == "b1"));
    let again = got.iter().skip(1).find(|r| r.event_id() == "b1").unwrap();
    assert_eq!(again.header("authorization"), Some("Bearer kept-in-backup"));
    assert!(again.header("traceparent").unwrap().contains(TRACE_ID));
    assert_eq!(again.header("tracestate"), Some("vendor=kept"));
}
