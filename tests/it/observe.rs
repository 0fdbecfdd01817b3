//! Cheap observability, end to end: the `/metrics` gauges the store keeps counted
//! (queue depth, webhooks by status) and the background count of the due backlog follow
//! ingest, failures, disables, deletes and retention; the filtered delivery and event
//! listings (served by indexes) show exactly what the unfiltered listing filtered by hand
//! shows, page by page, with the same cursors.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::receiver::{Receiver, Reply};
use crate::common::{Hookd, Settings, USER};

const WAIT: Duration = Duration::from_secs(30);

fn gauge(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .map(|v| v.parse().unwrap())
}

/// Scrapes until every `(metric, value)` holds (the due backlog is counted every few
/// seconds, outcomes land a moment after the receiver answers).
fn wait_gauges(hookd: &Hookd, expected: &[(&str, f64)], what: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = hookd.request("GET", "/metrics", None, None).body;
        if expected
            .iter()
            .all(|(name, value)| gauge(&text, name) == Some(*value))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: expected {expected:?} in\n{text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn webhooks(healthy: f64, failing: f64, disabled: f64) -> [(&'static str, f64); 3] {
    [
        ("hookd_webhooks{status=\"healthy\"}", healthy),
        ("hookd_webhooks{status=\"failing\"}", failing),
        ("hookd_webhooks{status=\"disabled\"}", disabled),
    ]
}

#[test]
fn metrics_gauges_follow_ingest_failure_disable_delete_and_retention() {
    let hookd = Hookd::start_with(
        Settings {
            delivery: "retry_schedule = [\"0s\", \"300ms\"]\nmax_in_flight_per_webhook = 1\ntimeout = \"60s\"".into(),
            ..Settings::default()
        }
        .with_retention("2s"),
    );
    wait_gauges(
        &hookd,
        &[
            ("hookd_queue_depth", 0.0),
            ("hookd_queue_due", 0.0),
            webhooks(0.0, 0.0, 0.0)[0],
        ],
        "empty",
    );

    let ok = Receiver::ok();
    let failing = Receiver::start(|_, _| Reply::Status(500));
    let gone = Receiver::start(|_, _| Reply::Status(410));
    let paused = Receiver::start(|_, _| {
        Reply::Full(
            503,
            vec![("Retry-After".into(), "3600".into())],
            String::new(),
        )
    });
    let slow = Receiver::start(|_, _| Reply::Hang(Duration::from_secs(55)));
    let ok_id = hookd.create_webhook(USER, &ok.url("/"), &["app:connected"], None);
    let failing_id = hookd.create_webhook(USER, &failing.url("/"), &["app:disconnected"], None);
    hookd.create_webhook(USER, &gone.url("/"), &["app:health_warning"], None);
    let paused_id = hookd.create_webhook(USER, &paused.url("/"), &["message:sent"], None);
    hookd.create_webhook(USER, &slow.url("/"), &["message:received"], None);
    wait_gauges(&hookd, &webhooks(5.0, 0.0, 0.0), "five new webhooks");

    for (i, t) in [
        "app:connected",
        "app:connected",
        "app:disconnected",
        "app:health_warning",
        "message:sent",
        "message:sent",
        "message:received",
        "message:received",
        "message:received",
    ]
    .iter()
    .enumerate()
    {
        assert_eq!(
            hookd
                .ingest(t, "user-123", "{}", Some(&format!("e{i}")))
                .status,
            202
        );
    }
    ok.wait_for(2, WAIT);
    failing.wait_for(2, WAIT);
    gone.wait_for(1, WAIT);
    paused.wait_for(1, WAIT);
    slow.wait_for(1, WAIT);
    // ok, paused (a retry in an hour) and slow stay healthy; failing ran out of attempts;
    // gone was disabled by its 410. Pending: paused's two (the one attempted is due in
    // an hour; the other, due since its ingest, waits for the pause: backlog) and slow's
    // three (one in flight, two waiting behind it: all due).
    let mut settled = webhooks(3.0, 1.0, 1.0).to_vec();
    settled.extend([("hookd_queue_depth", 5.0), ("hookd_queue_due", 4.0)]);
    wait_gauges(&hookd, &settled, "after ingest and outcomes");

    // Disabling cancels the paused webhook's two pending deliveries.
    let r = hookd.patch(
        &format!("/api/hooks/webhooks/{paused_id}"),
        USER,
        r#"{"enabled": false}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let mut disabled = webhooks(2.0, 1.0, 2.0).to_vec();
    disabled.extend([("hookd_queue_depth", 3.0), ("hookd_queue_due", 3.0)]);
    wait_gauges(&hookd, &disabled, "after a disable");

    for id in [&failing_id, &ok_id] {
        assert_eq!(
            hookd
                .delete(&format!("/api/hooks/webhooks/{id}"), USER)
                .status,
            204
        );
    }
    let mut deleted = webhooks(1.0, 0.0, 2.0).to_vec();
    deleted.extend([("hookd_queue_depth", 3.0), ("hookd_queue_due", 3.0)]);
    wait_gauges(&hookd, &deleted, "after two deletes");

    // Retention prunes the finished; the pending and the webhooks stay counted.
    let deadline = Instant::now() + WAIT;
    while hookd.get("/api/hooks/events/e3", USER).status != 404 {
        assert!(Instant::now() < deadline, "e3 never pruned");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(hookd.get("/api/hooks/events/e6", USER).status, 200);
    wait_gauges(&hookd, &deleted, "after retention");
    let text = hookd.request("GET", "/metrics", None, None).body;
    assert!(
        text.contains("# HELP hookd_queue_due") && text.contains("5 s"),
        "the HELP says how stale the due count may be:\n{text}"
    );
}

/// Every item of a listing, following `next` with `limit`; checks each page's length
/// and that `next` is the last item's cursor exactly when more follow.
fn pages(hookd: &Hookd, path: &str, key: &str, limit: usize) -> Vec<Value> {
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let url = match &after {
            Some(a) => format!("{path}{sep}limit={limit}&after={a}"),
            None => format!("{path}{sep}limit={limit}"),
        };
        let r = hookd.get(&url, USER);
        assert_eq!(r.status, 200, "{url}: {}", r.body);
        let body = r.json();
        let items = body[key].as_array().unwrap().clone();
        assert!(items.len() <= limit, "{url}");
        all.extend(items.iter().cloned());
        match body["next"].as_str() {
            Some(next) => {
                assert_eq!(items.len(), limit, "{url}: a short page with a next");
                after = Some(next.to_owned());
            }
            None => return all,
        }
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn filtered_listings_equal_the_full_listing_filtered_by_hand_across_pages() {
    let hookd = Hookd::start_with(Settings {
        delivery: r#"retry_schedule = ["0s"]"#.into(),
        ..Settings::default()
    });
    // Every third request fails, so the log mixes succeeded and failed.
    let receiver = Receiver::start(|_, i| Reply::Status(if i % 3 == 2 { 500 } else { 200 }));
    let hook = hookd.create_webhook(USER, &receiver.url("/"), &["*"], None);
    let types = [
        "app:connected",
        "message:received",
        "message:sent",
        "agent:invoked",
        "message:received",
        "app:health_warning",
    ];
    let n = 45;
    for i in 0..n {
        let t = types[i % types.len()];
        assert_eq!(
            hookd
                .ingest(t, "user-123", "{}", Some(&format!("f{i}")))
                .status,
            202
        );
        // Another user's events never show in this user's log.
        if i % 10 == 0 {
            hookd.publish(t, "user-456", "{}", Some(&format!("g{i}")));
        }
    }
    receiver.wait_for(n, WAIT);
    hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.len() == n && d.iter().all(|d| d["status"] != "pending")
    });

    let log = format!("/api/hooks/webhooks/{hook}/deliveries");
    let everything = pages(&hookd, &log, "deliveries", 100);
    assert_eq!(everything.len(), n);
    let mut statuses = 0;
    for status in ["pending", "succeeded", "failed", "cancelled"] {
        for t in [None, Some("message:received"), Some("agent:invoked")] {
            let expected: Vec<Value> = everything
                .iter()
                .filter(|d| d["status"] == status && t.is_none_or(|t| d["eventType"] == t))
                .cloned()
                .collect();
            statuses += expected.len();
            let query = match t {
                Some(t) => format!("{log}?status={status}&eventType={t}"),
                None => format!("{log}?status={status}"),
            };
            for limit in [1, 4, 100] {
                assert_eq!(
                    ids(&pages(&hookd, &query, "deliveries", limit)),
                    ids(&expected),
                    "{query} limit {limit}"
                );
            }
        }
    }
    assert!(statuses >= n, "every delivery is in some status listing");
    for t in types {
        let expected: Vec<Value> = everything
            .iter()
            .filter(|d| d["eventType"] == t)
            .cloned()
            .collect();
        assert!(!expected.is_empty());
        let query = format!("{log}?eventType={t}");
        assert_eq!(
            ids(&pages(&hookd, &query, "deliveries", 3)),
            ids(&expected),
            "{query}"
        );
    }

    let events = pages(&hookd, "/api/hooks/events", "events", 100);
    assert_eq!(events.len(), n);
    for pattern in [
        "*",
        "app:*",
        "message:*",
        "agent:*",
        "message:received",
        "app:health_warning",
        "agent:error",
    ] {
        let expected: Vec<Value> = events
            .iter()
            .filter(|e| {
                let t = e["type"].as_str().unwrap();
                pattern == "*"
                    || pattern == t
                    || pattern
                        .strip_suffix('*')
                        .is_some_and(|group| t.starts_with(group))
            })
            .cloned()
            .collect();
        let query = format!("/api/hooks/events?type={pattern}");
        for limit in [1, 4, 100] {
            assert_eq!(
                ids(&pages(&hookd, &query, "events", limit)),
                ids(&expected),
                "{query} limit {limit}"
            );
        }
    }
}
