//! Deliveries: the per-webhook delivery log, one delivery, manual retry and recover
//! (including their 409 on a disabled webhook).

use serde_json::{Value, json};

use super::checker::{Checker, OpId, Req, start};
use super::events::event;
use super::paths::*;
use super::{UNKNOWN_DLV, UNKNOWN_WH, too_big};
use crate::common::receiver::Receiver;
use crate::common::{OTHER_USER, PUBLISHER, USER};

pub const COVERS: &[OpId] = &[
    ("GET", DELIVERIES),
    ("GET", DELIVERY),
    ("POST", RETRY),
    ("POST", RECOVER),
];

#[test]
fn delivery_logs_retry_and_recover() {
    let hookd = start();
    let receiver = Receiver::ok();
    let c = Checker::new(&hookd);
    // A fails at once (nothing listens on port 9; one attempt), B succeeds.
    let wh_a = hookd.create_webhook(USER, "http://127.0.0.1:9/x", &["message:*"], Some("s"));
    let wh_b = hookd.create_webhook(USER, &receiver.url("/hook"), &["*"], None);
    c.expect(
        Req::new("POST", EVENTS)
            .token(PUBLISHER)
            .json(&event("msg-1", "message:received")),
        202,
        "ingest a message",
    );
    c.expect(
        Req::new("POST", EVENTS)
            .token(PUBLISHER)
            .json(&event("agent-1", "agent:invoked")),
        202,
        "ingest an agent event",
    );

    let failed_once = |d: &[Value]| d.len() == 1 && d[0]["status"] == "failed";
    let list_a = c.wait_deliveries(&wh_a, "A's delivery fails", failed_once);
    let dlv_a = list_a[0]["id"].as_str().unwrap().to_string();
    let list_b = c.wait_deliveries(&wh_b, "B's deliveries succeed", |d| {
        d.len() == 2 && d.iter().all(|x| x["status"] == "succeeded")
    });
    let dlv_b = list_b[0]["id"].as_str().unwrap().to_string();

    let a_path = format!("{HOOKS}/{wh_a}");
    let deliveries_a = format!("{a_path}/deliveries");
    let r = c.expect(
        Req::new("GET", &deliveries_a).token(USER),
        200,
        "A's deliveries",
    );
    assert_eq!(r.json()["next"], Value::Null);
    c.expect(
        Req::new(
            "GET",
            &format!("{HOOKS}/{wh_b}/deliveries?status=succeeded&limit=1"),
        )
        .token(USER),
        200,
        "B's deliveries, a page",
    );
    for q in ["status=done", "limit=0", "after=c", "after=%"] {
        c.expect(
            Req::new("GET", &format!("{deliveries_a}?{q}")).token(USER),
            400,
            q,
        );
    }
    c.expect(
        Req::new("GET", &format!("{HOOKS}/{UNKNOWN_WH}/deliveries")).token(USER),
        404,
        "deliveries of an unknown webhook",
    );
    c.expect(
        Req::new("GET", &deliveries_a).token(OTHER_USER),
        404,
        "another user's log",
    );
    let r = c.expect(
        Req::new("GET", &format!("{deliveries_a}/{dlv_a}")).token(USER),
        200,
        "one delivery",
    );
    assert_eq!(r.json()["attempts"][0]["attempt"], 1);
    for d in [UNKNOWN_DLV, "dlv-nope", dlv_b.as_str()] {
        c.expect(
            Req::new("GET", &format!("{deliveries_a}/{d}")).token(USER),
            404,
            d,
        );
    }

    // Retry.
    let retry =
        |webhook: &str, delivery: &str| format!("{HOOKS}/{webhook}/deliveries/{delivery}/retry");
    c.expect_error(
        Req::new("POST", &retry(&wh_b, &dlv_b)).token(USER),
        409,
        "delivery_not_failed",
        "retry a succeeded delivery",
    );
    c.expect(
        Req::new("POST", &retry(&wh_a, UNKNOWN_DLV)).token(USER),
        404,
        "unknown dlv",
    );
    c.expect(
        Req::new("POST", &retry(UNKNOWN_WH, &dlv_a)).token(USER),
        404,
        "unknown wh",
    );
    c.expect(
        Req::new("POST", &retry(&wh_a, &dlv_a)).token(PUBLISHER),
        403,
        "publisher",
    );
    c.expect(
        Req::new("POST", &retry(&wh_a, &dlv_a)).token(OTHER_USER),
        404,
        "other user",
    );
    let r = c.expect(
        Req::new("POST", &retry(&wh_a, &dlv_a)).token(USER),
        202,
        "retry a failed delivery",
    );
    assert_eq!(r.json(), json!({"id": dlv_a, "status": "pending"}));
    let failed_n = |n: usize| {
        move |d: &[Value]| {
            d.len() == 1
                && d[0]["status"] == "failed"
                && d[0]["attempts"].as_array().unwrap().len() == n
        }
    };
    c.wait_deliveries(&wh_a, "the retry fails again", failed_n(2));

    // Recover.
    let recover_a = format!("{a_path}/recover");
    let since = r#"{"since":"2000-01-01T00:00:00Z"}"#;
    c.expect(
        Req::new("POST", &recover_a).token(USER),
        415,
        "recover without body",
    );
    c.expect(
        Req::new("POST", &recover_a)
            .token(USER)
            .body("text/plain", since.as_bytes()),
        415,
        "recover text/plain",
    );
    c.expect(
        Req::new("POST", &recover_a).token(USER).json(&too_big()),
        413,
        "recover 413",
    );
    for bad in [
        "{}",
        "{\"since\":",
        r#"{"since":"yesterday"}"#,
        r#"{"since":"2000-01-01T00:00:00Z","until":"1999-01-01T00:00:00Z"}"#,
        r#"{"since":"2000-01-01T00:00:00Z","window":1}"#,
    ] {
        c.expect(Req::new("POST", &recover_a).token(USER).json(bad), 400, bad);
    }
    c.expect(
        Req::new("POST", &format!("{HOOKS}/{UNKNOWN_WH}/recover"))
            .token(USER)
            .json(since),
        404,
        "recover unknown",
    );
    let r = c.expect(
        Req::new("POST", &recover_a).token(USER).json(since),
        202,
        "recover",
    );
    assert_eq!(r.json(), json!({"queued": 1}));
    c.wait_deliveries(&wh_a, "the recovered delivery fails again", failed_n(3));
    let r = c.expect(
        Req::new("POST", &recover_a)
            .token(USER)
            .json(r#"{"since":"2000-01-01T00:00:00Z","until":"2000-01-02T00:00:00+01:00"}"#),
        202,
        "recover an empty window",
    );
    assert_eq!(r.json(), json!({"queued": 0}));

    // A disabled webhook refuses both.
    let r = c.expect(
        Req::new("PATCH", &a_path)
            .token(USER)
            .json(r#"{"enabled":false}"#),
        200,
        "disable",
    );
    assert_eq!(r.json()["status"], "disabled");
    c.expect_error(
        Req::new("POST", &retry(&wh_a, &dlv_a)).token(USER),
        409,
        "webhook_disabled",
        "retry on a disabled webhook",
    );
    c.expect_error(
        Req::new("POST", &recover_a).token(USER).json(since),
        409,
        "webhook_disabled",
        "recover on a disabled webhook",
    );
    c.finish(COVERS);
}
