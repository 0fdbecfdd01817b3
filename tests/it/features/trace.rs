//! W3C trace context: a valid `traceparent` (and `tracestate`) on ingest is kept with the
//! event (`traceId` in the event API), and every attempt of every delivery sends the same
//! trace-id with a new parent-id and the `tracestate` unchanged; an invalid one is
//! ignored, never a 400.

use std::collections::HashSet;

use super::{WAIT, settings};
use crate::common::receiver::{Receiver, Reply};
use crate::common::{self, Hookd, PUBLISHER, Resp, USER};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";
const TRACESTATE: &str = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE";

/// Ingests an `app:connected` event with id `id` and the extra request `headers`.
fn ingest_with(hookd: &Hookd, id: &str, headers: &[(&str, &str)]) -> Resp {
    let auth = format!("Bearer {PUBLISHER}");
    let mut all = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    all.extend_from_slice(headers);
    let body = format!(
        r#"{{"id":"{id}","type":"app:connected","userId":"user-123","source":"s","payload":{{}}}}"#
    );
    common::http(
        hookd.addr,
        "POST",
        "/api/hooks/events",
        &all,
        Some(body.as_bytes()),
    )
}

#[test]
fn every_attempt_continues_the_publishers_trace_with_a_span_of_its_own() {
    let hookd = Hookd::start_with(settings(r#"retry_schedule = ["0s", "100ms"]"#));
    // Every first attempt fails: two attempts per delivery, two deliveries (two webhooks).
    let rx = Receiver::start(|req, _| {
        Reply::Status(if req.header("x-hook-attempt") == Some("1") {
            500
        } else {
            200
        })
    });
    hookd.create_webhook(USER, &rx.url("/a"), &["*"], Some("s"));
    hookd.create_webhook(USER, &rx.url("/b"), &["app:*"], None);
    let traceparent = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let r = ingest_with(
        &hookd,
        "traced-1",
        &[("traceparent", &traceparent), ("tracestate", TRACESTATE)],
    );
    assert_eq!(r.status, 202, "{}", r.body);

    let got = rx.wait_for(4, WAIT);
    let mut parents = HashSet::new();
    for req in &got {
        let sent = req
            .header("traceparent")
            .expect("traceparent on every attempt");
        let fields: Vec<&str> = sent.split('-').collect();
        assert_eq!(fields.len(), 4, "{sent}");
        assert_eq!(
            (fields[0], fields[1], fields[3]),
            ("00", TRACE_ID, "01"),
            "{sent}"
        );
        let parent = fields[2];
        assert!(
            parent.len() == 16
                && parent
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
                && parent != "0000000000000000",
            "{sent}"
        );
        assert_ne!(
            parent, PARENT_ID,
            "a span of hookd's own, not the publisher's"
        );
        assert!(
            parents.insert(parent.to_string()),
            "a new parent-id per attempt: {sent}"
        );
        assert_eq!(req.header("tracestate"), Some(TRACESTATE));
    }
    let mut attempts: Vec<(String, String)> = got
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.header("x-hook-attempt").unwrap().to_string(),
            )
        })
        .collect();
    attempts.sort();
    let expected = [("/a", "1"), ("/a", "2"), ("/b", "1"), ("/b", "2")];
    assert_eq!(
        attempts,
        expected.map(|(p, a)| (p.to_string(), a.to_string()))
    );

    // The event API shows the trace-id, so a trace leads to the delivery log.
    let event = hookd.get("/api/hooks/events/traced-1", USER).json();
    assert_eq!(event["traceId"], TRACE_ID, "{event}");
    let listed = hookd.get("/api/hooks/events", USER).json();
    assert_eq!(listed["events"][0]["traceId"], TRACE_ID, "{listed}");
    // So does each attempt's log line.
    let logged = |log: &str| {
        log.lines()
            .filter(|l| l.contains("delivery attempt") && l.contains("traced-1"))
            .filter(|l| l.contains(&format!("trace_id={TRACE_ID}")))
            .count()
    };
    common::eventually(WAIT, "four attempt log lines with the trace-id", || {
        (logged(&hookd.log()) == 4).then_some(())
    });

    // Sent again with the same id (idempotent), the first trace stays.
    let r = ingest_with(
        &hookd,
        "traced-1",
        &[(
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-00",
        )],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        hookd.get("/api/hooks/events/traced-1", USER).json()["traceId"],
        TRACE_ID
    );
}

#[test]
fn an_invalid_trace_context_is_ignored_and_none_is_invented() {
    let hookd = Hookd::start();
    let rx = Receiver::ok();
    hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    let valid = format!("00-{TRACE_ID}-{PARENT_ID}-01");
    let invalid = [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01".to_string(),
        format!("00-{}-{PARENT_ID}-01", "0".repeat(32)),
        format!("00-{TRACE_ID}-0000000000000000-01"),
        format!("ff-{TRACE_ID}-{PARENT_ID}-01"),
        format!("00-{TRACE_ID}-{PARENT_ID}-01-extra"),
        format!("00-{TRACE_ID}-{PARENT_ID}"),
        "not a traceparent".to_string(),
    ];
    let mut ids = Vec::new();
    for (i, bad) in invalid.iter().enumerate() {
        let id = format!("untraced-{i}");
        let r = ingest_with(&hookd, &id, &[("traceparent", bad), ("tracestate", "a=1")]);
        assert_eq!(r.status, 202, "{bad}: {}", r.body);
        ids.push(id);
    }
    // Two traceparents do not say which trace it is.
    let r = ingest_with(
        &hookd,
        "untraced-two",
        &[("traceparent", &valid), ("traceparent", &valid)],
    );
    assert_eq!(r.status, 202, "{}", r.body);
    ids.push("untraced-two".into());
    // No trace context at all.
    hookd.publish("app:connected", "user-123", "{}", Some("untraced-none"));
    ids.push("untraced-none".into());
    // A valid traceparent with an invalid tracestate: the state alone is dropped.
    let r = ingest_with(
        &hookd,
        "traced-no-state",
        &[("traceparent", &valid), ("tracestate", "Upper=case,a=1")],
    );
    assert_eq!(r.status, 202, "{}", r.body);

    let got = rx.wait_for(ids.len() + 1, WAIT);
    for req in &got {
        let id = req.event_id();
        if id == "traced-no-state" {
            assert!(req.header("traceparent").unwrap().contains(TRACE_ID));
            assert_eq!(req.header("tracestate"), None);
        } else {
            assert_eq!(req.header("traceparent"), None, "{id}");
            assert_eq!(req.header("tracestate"), None, "{id}");
        }
    }
    for id in &ids {
        let event = hookd.get(&format!("/api/hooks/events/{id}"), USER).json();
        assert!(event.get("traceId").is_none(), "{event}");
    }
    let event = hookd.get("/api/hooks/events/traced-no-state", USER).json();
    assert_eq!(event["traceId"], TRACE_ID);
}
