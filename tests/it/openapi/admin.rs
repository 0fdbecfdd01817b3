//! Admin: `POST /api/admin/backup` needs the admin token and writes a complete copy
//! under `<data_dir>/backups`; `GET /api/admin/overview` lists every user's webhooks,
//! failing and disabled first, page by page, with the queue, store, attempts and
//! notifications.

use std::path::PathBuf;

use serde_json::Value;

use super::checker::{Checker, OpId, Req, start};
use super::paths::*;
use crate::common::receiver::{Receiver, Reply};
use crate::common::{ADMIN, OTHER_USER, PUBLISHER, USER, eventually};

pub const COVERS_BACKUP: &[OpId] = &[("POST", BACKUP)];
pub const COVERS_OVERVIEW: &[OpId] = &[("GET", OVERVIEW)];

#[test]
fn backup_needs_the_admin_token_and_writes_the_file() {
    if crate::common::redb_only("the backup is a copy of the redb file") {
        return;
    }
    let hookd = start();
    let c = Checker::new(&hookd);
    hookd.create_webhook(USER, "http://127.0.0.1:9/x", &["*"], None);
    c.expect_error(
        Req::new("POST", BACKUP).token(USER),
        403,
        "forbidden",
        "backup as user",
    );
    c.expect_error(
        Req::new("POST", BACKUP).token(PUBLISHER),
        403,
        "forbidden",
        "backup as publisher",
    );
    c.expect_error(
        Req::new("POST", BACKUP),
        401,
        "unauthorized",
        "backup without a token",
    );
    let r = c.expect(Req::new("POST", BACKUP).token(ADMIN), 200, "backup");
    let v = r.json();
    let file = PathBuf::from(v["path"].as_str().expect("path"));
    assert!(file.is_absolute(), "{}", r.body);
    let backups = hookd.dir.path().join("data").join("backups");
    let canonical = std::fs::canonicalize(&backups).unwrap_or(backups.clone());
    assert!(
        file.starts_with(&backups) || file.starts_with(&canonical),
        "{} is not under {}",
        file.display(),
        backups.display()
    );
    let size = std::fs::metadata(&file)
        .expect("the backup file exists")
        .len();
    assert_eq!(Some(size), v["bytes"].as_u64(), "{}", r.body);
    c.finish(COVERS_BACKUP);
}

#[test]
fn the_overview_lists_every_users_webhooks_failing_and_disabled_first() {
    let hookd = start();
    let c = Checker::new(&hookd);
    let rx = Receiver::start(|req, _| Reply::Status(if req.path == "/down" { 500 } else { 200 }));
    let healthy = hookd.create_webhook(USER, &rx.url("/up"), &["*"], None);
    let failing = hookd.create_webhook(USER, &rx.url("/down"), &["*"], None);
    let disabled = hookd.create_webhook(USER, &rx.url("/up"), &["*"], None);
    let other = hookd.create_webhook(OTHER_USER, &rx.url("/up"), &["*"], None);
    let r = hookd.patch(
        &format!("/api/hooks/webhooks/{disabled}"),
        USER,
        r#"{"enabled":false}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    hookd.publish("agent:error", "user-123", "{}", Some("ov-1"));
    c.wait_deliveries(&failing, "the failing webhook's delivery failed", |d| {
        d.first().is_some_and(|d| d["status"] == "failed")
    });

    for (token, status, code) in [
        (Some(USER), 403, "forbidden"),
        (Some(PUBLISHER), 403, "forbidden"),
        (None, 401, "unauthorized"),
    ] {
        let mut req = Req::new("GET", OVERVIEW);
        if let Some(t) = token {
            req = req.token(t);
        }
        c.expect_error(req, status, code, "overview without the admin token");
    }
    for bad in ["limit=0", "limit=x", "after=c5", "after=s9.zz"] {
        let path = format!("{OVERVIEW}?{bad}");
        c.expect_error(
            Req::new("GET", &path).token(ADMIN),
            400,
            "invalid_request",
            bad,
        );
    }

    // Two pages of two: failing, disabled; then the healthy ones, oldest first.
    let path = format!("{OVERVIEW}?limit=2");
    let first = c
        .expect(Req::new("GET", &path).token(ADMIN), 200, "overview")
        .json();
    let ids = |v: &Value| -> Vec<String> {
        v["webhooks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), [failing.clone(), disabled.clone()]);
    assert_eq!(first["webhooks"][0]["userId"], "user-123");
    assert_eq!(first["webhooks"][0]["status"], "failing");
    assert!(first["webhooks"][0]["failingSince"].is_string(), "{first}");
    assert_eq!(first["webhooks"][1]["enabled"], false);
    let next = first["next"].as_str().expect("a next page");
    let path = format!("{OVERVIEW}?limit=2&after={next}");
    let second = c
        .expect(Req::new("GET", &path).token(ADMIN), 200, "page 2")
        .json();
    assert_eq!(ids(&second), [healthy, other]);
    assert_eq!(second["webhooks"][1]["userId"], "user-456");
    assert_eq!(second["next"], Value::Null);

    assert_eq!(
        first["webhookCounts"],
        serde_json::json!({"healthy": 2, "failing": 1, "disabled": 1})
    );
    assert_eq!(first["store"]["status"], "ok");
    assert!(first["store"]["bytes"].as_u64().unwrap() > 0);
    assert!(first["queue"]["pending"].is_u64());
    let series = first["attempts"]["series"].as_array().unwrap();
    assert_eq!(series.len(), 60);
    assert!(
        first["attempts"]["failed"].as_u64().unwrap() >= 1,
        "{first}"
    );
    // The failing webhook's change was recorded as a notification; without a
    // notifications.url it is skipped.
    let notification = eventually(
        std::time::Duration::from_secs(20),
        "the notification is finished",
        || {
            let v = c
                .expect(Req::new("GET", OVERVIEW).token(ADMIN), 200, "overview")
                .json();
            let n = v["notifications"][0].clone();
            (n["status"] == "skipped").then_some(n)
        },
    );
    assert_eq!(notification["type"], "webhook.failing");
    assert_eq!(notification["webhook"]["id"], failing.as_str());
    c.finish(COVERS_OVERVIEW);
}
