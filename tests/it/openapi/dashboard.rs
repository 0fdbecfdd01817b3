//! The endpoints behind the dashboard: test events, attempt statistics and the delivery
//! log's event-type filter.

use super::UNKNOWN_WH;
use super::checker::{Checker, OpId, Req, start};
use super::paths::*;
use crate::common::USER;

pub const COVERS: &[OpId] = &[("POST", TEST), ("GET", STATS)];

#[test]
fn test_events_statistics_and_the_type_filter() {
    let hookd = start();
    let c = Checker::new(&hookd);
    let wh_a = hookd.create_webhook(USER, "http://127.0.0.1:9/x", &["message:*"], Some("s"));
    let a_path = format!("{HOOKS}/{wh_a}");

    let test_a = format!("{a_path}/test");
    let r = c.expect(
        Req::new("POST", &test_a)
            .token(USER)
            .json(r#"{"type":"app:health_warning"}"#),
        202,
        "send a test event",
    );
    assert_eq!(r.json()["status"], "pending", "{}", r.body);
    for bad in [r#"{}"#, r#"{"type":"app:*"}"#, r#"{"type":"x","more":1}"#] {
        c.expect(
            Req::new("POST", &test_a).token(USER).json(bad),
            400,
            "test event with a bad body",
        );
    }
    c.expect(
        Req::new("POST", &format!("{HOOKS}/{UNKNOWN_WH}/test"))
            .token(USER)
            .json(r#"{"type":"app:connected"}"#),
        404,
        "test event to an unknown webhook",
    );
    // The test event's one attempt (nothing listens on port 9) shows in the statistics.
    c.wait_deliveries(&wh_a, "the test event is attempted", |d| {
        d.len() == 1 && d[0]["status"] == "failed"
    });
    let stats_a = format!("{a_path}/stats");
    let r = c.expect(
        Req::new("GET", &format!("{stats_a}?window=30m")).token(USER),
        200,
        "stats",
    );
    assert_eq!(r.json()["series"].as_array().map(Vec::len), Some(30));
    assert_eq!(r.json()["attempts"], 1, "{}", r.body);
    c.expect(
        Req::new("GET", &format!("{stats_a}?window=1w")).token(USER),
        400,
        "stats with a bad window",
    );
    c.expect(
        Req::new("GET", &format!("{HOOKS}/{UNKNOWN_WH}/stats")).token(USER),
        404,
        "stats of an unknown webhook",
    );
    let r = c.expect(
        Req::new(
            "GET",
            &format!("{a_path}/deliveries?eventType=app:health_warning"),
        )
        .token(USER),
        200,
        "deliveries by event type",
    );
    assert_eq!(r.json()["deliveries"].as_array().map(Vec::len), Some(1));

    c.expect(
        Req::new("PATCH", &a_path)
            .token(USER)
            .json(r#"{"enabled":false}"#),
        200,
        "disable",
    );
    c.expect_error(
        Req::new("POST", &test_a)
            .token(USER)
            .json(r#"{"type":"app:connected"}"#),
        409,
        "webhook_disabled",
        "test event to a disabled webhook",
    );
    c.finish(COVERS);
}
