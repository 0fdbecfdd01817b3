//! The delivery engine against real receivers on 127.0.0.1: the wire format byte for
//! byte, signatures, JSON.stringify stability, retries on a fast schedule, failure modes,
//! isolation between webhooks, cancellation, rate limits, manual retry and recover,
//! 410 and Retry-After.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::receiver::{Receiver, Reply};
use crate::common::{Hookd, Settings, USER};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(20);

fn settings(delivery: &str) -> Settings {
    Settings {
        delivery: delivery.into(),
        ..Settings::default()
    }
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn delivers_the_documented_body_and_headers() {
    let hookd = Hookd::start();
    let rx = Receiver::ok();
    let signed = hookd.create_webhook(
        USER,
        &rx.url("/signed"),
        &["app:*"],
        Some("optional-hmac-secret"),
    );
    let unsigned = hookd.create_webhook(USER, &rx.url("/plain"), &["app:health_warning"], None);
    let payload = r#"{"appType":"whatsapp","status":"degraded","healthStatus":"warning","warningMessage":"Phone appears offline"}"#;
    let r = hookd.post(
        "/api/hooks/events",
        common::PUBLISHER,
        &format!(r#"{{"id":"evt-guide-1","type":"app:health_warning","timestamp":"2024-01-26T10:30:00Z","userId":"user-123","source":"whatsapp","payload":{payload}}}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let got = rx.wait_for(2, WAIT);
    let by_path = |p: &str| got.iter().find(|r| r.path == p).unwrap().clone();

    for (req, hook) in [
        (by_path("/signed"), &signed),
        (by_path("/plain"), &unsigned),
    ] {
        let expected = format!(
            r#"{{"event":{{"id":"evt-guide-1","type":"app:health_warning","timestamp":"2024-01-26T10:30:00Z","userId":"user-123","source":"whatsapp","payload":{payload}}},"webhook":{{"id":"{hook}","name":"test hook"}}}}"#
        );
        assert_eq!(req.body_str(), expected);
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(
            req.header("user-agent"),
            Some(concat!("hookd/", env!("CARGO_PKG_VERSION")))
        );
        assert_eq!(req.header("x-hook-event"), Some("app:health_warning"));
        assert_eq!(req.header("x-hook-attempt"), Some("1"));
        let delivery = req.header("x-hook-delivery").unwrap();
        assert!(delivery.starts_with("dlv-"));
        let ts: i64 = req.header("x-hook-timestamp").unwrap().parse().unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        assert!(
            (now - ts).abs() <= 5,
            "X-Hook-Timestamp is the attempt time"
        );
        // The log shows the same delivery, succeeded.
        let log = hookd.wait_deliveries(USER, hook, WAIT, |d| {
            d.first().is_some_and(|d| d["status"] == "succeeded")
        });
        assert_eq!(log[0]["id"], delivery);
        assert_eq!(log[0]["attempts"][0]["attempt"], 1);
        assert_eq!(log[0]["attempts"][0]["statusCode"], 200);
        assert!(log[0].get("nextAttemptAt").is_none());
    }
    let signed_req = by_path("/signed");
    assert_eq!(
        signed_req.header("x-hook-signature").unwrap(),
        format!(
            "sha256={}",
            hmac_hex("optional-hmac-secret", &signed_req.body)
        )
    );
    assert_eq!(
        by_path("/plain").header("x-hook-signature"),
        None,
        "no signature without a secret"
    );
    assert_eq!(hookd.webhook(USER, &signed)["status"], "healthy");
}

#[test]
fn bodies_match_node_json_stringify_byte_for_byte() {
    let cases: Value =
        serde_json::from_str(include_str!("../fixtures/stringify/cases.json")).unwrap();
    let cases = cases.as_array().unwrap();
    let hookd = Hookd::start();
    let rx = Receiver::ok();
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], Some("s"));
    for (i, case) in cases.iter().enumerate() {
        let body = format!(
            r#"{{"id":"case-{i}","type":"message:received","timestamp":"2024-01-26T10:30:00Z","userId":"user-123","source":"s","payload":{}}}"#,
            case["input"].as_str().unwrap()
        );
        let r = hookd.post("/api/hooks/events", common::PUBLISHER, &body);
        assert_eq!(r.status, 202, "{}: {}", case["name"], r.body);
    }
    let got = rx.wait_for(cases.len(), WAIT);
    for (i, case) in cases.iter().enumerate() {
        let req = got
            .iter()
            .find(|r| r.event_id() == format!("case-{i}"))
            .unwrap();
        let expected = format!(
            r#"{{"event":{{"id":"case-{i}","type":"message:received","timestamp":"2024-01-26T10:30:00Z","userId":"user-123","source":"s","payload":{}}},"webhook":{{"id":"{hook}","name":"test hook"}}}}"#,
            case["expected"].as_str().unwrap()
        );
        assert_eq!(req.body_str(), expected, "case {}", case["name"]);
    }

    // Where Node is installed, run the guide's own verification code on every delivery.
    if !common::optional_tool(
        common::runs("node"),
        "node is not on PATH, so the guide's Node.js verifier does not run",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for (i, req) in got.iter().enumerate() {
        std::fs::write(dir.path().join(format!("{i}.body")), &req.body).unwrap();
        std::fs::write(
            dir.path().join(format!("{i}.sig")),
            req.header("x-hook-signature").unwrap(),
        )
        .unwrap();
    }
    let script = r#"
const crypto = require('crypto')
const fs = require('fs')
// The guide's verifier, verbatim in substance: it signs JSON.stringify(req.body).
function verifyWebhookSignature(payload, signature, secret) {
  const hmac = crypto.createHmac('sha256', secret)
  hmac.update(JSON.stringify(payload))
  const expected = `sha256=${hmac.digest('hex')}`
  return crypto.timingSafeEqual(Buffer.from(signature), Buffer.from(expected))
}
const dir = process.argv[2], n = Number(process.argv[3])
let bad = 0
for (let i = 0; i < n; i++) {
  const body = JSON.parse(fs.readFileSync(`${dir}/${i}.body`, 'utf8'))  // what express.json() gives
  const sig = fs.readFileSync(`${dir}/${i}.sig`, 'utf8')
  if (!verifyWebhookSignature(body, sig, 's')) { bad++; console.log('invalid', i) }
}
console.log(`verified ${n - bad} of ${n}`)
process.exit(bad ? 1 : 0)
"#;
    let out = std::process::Command::new("node")
        .args([
            "-e",
            script,
            dir.path().to_str().unwrap(),
            &got.len().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn retries_follow_the_schedule_then_fail_and_recover_health() {
    let hookd = Hookd::start_with(settings(r#"retry_schedule = ["0s", "300ms", "600ms"]"#));
    let rx = Receiver::start(|_, _| Reply::Full(500, vec![], "upstream broke".into()));
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    hookd.publish("agent:error", "user-123", "{}", Some("r1"));
    let got = rx.wait_for(3, WAIT);
    let ids: Vec<&str> = got
        .iter()
        .map(|r| r.header("x-hook-delivery").unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "same delivery id on every attempt"
    );
    let numbers: Vec<&str> = got
        .iter()
        .map(|r| r.header("x-hook-attempt").unwrap())
        .collect();
    assert_eq!(numbers, ["1", "2", "3"]);
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    // Never early; late only by what a loaded machine can explain (the upper bounds only
    // catch a schedule that is not followed at all, e.g. one step skipped or doubled).
    assert!(
        gap1 >= Duration::from_millis(300) && gap1 < Duration::from_millis(300 + 3_000),
        "{gap1:?}"
    );
    assert!(
        gap2 >= Duration::from_millis(600) && gap2 < Duration::from_millis(600 + 3_000),
        "{gap2:?}"
    );

    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| d[0]["status"] == "failed");
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[2]["statusCode"], 500);
    assert_eq!(attempts[2]["responseBody"], "upstream broke");
    assert!(attempts[0]["durationMs"].is_u64());
    assert_eq!(hookd.webhook(USER, &hook)["status"], "failing");
    assert_eq!(rx.received().len(), 3, "no fourth attempt");

    rx.set(|_, _| Reply::Status(204));
    hookd.publish("agent:error", "user-123", "{}", Some("r2"));
    hookd.wait_deliveries(USER, &hook, WAIT, |d| d[0]["status"] == "succeeded");
    assert_eq!(hookd.webhook(USER, &hook)["status"], "healthy");
}

#[test]
fn redirects_timeouts_and_resets_fail_the_attempt() {
    let hookd = Hookd::start_with(settings("timeout = \"500ms\"\nretry_schedule = [\"0s\"]"));
    let rx = Receiver::start(|req, _| match req.path.as_str() {
        "/redirect" => Reply::Full(
            302,
            vec![("Location".into(), "/elsewhere".into())],
            String::new(),
        ),
        // Far longer than any bound below: only the 500 ms timeout ends these attempts.
        "/hang" => Reply::Hang(Duration::from_secs(60)),
        "/reset" => Reply::Reset,
        _ => Reply::Status(200),
    });
    let redirect = hookd.create_webhook(USER, &rx.url("/redirect"), &["*"], None);
    let hang = hookd.create_webhook(USER, &rx.url("/hang"), &["*"], None);
    let reset = hookd.create_webhook(USER, &rx.url("/reset"), &["*"], None);
    let refused = hookd.create_webhook(USER, "http://127.0.0.1:1/nothing-listens", &["*"], None);
    let started = Instant::now();
    hookd.publish("message:sent", "user-123", "{}", None);
    let failed = |hook: &str| {
        hookd.wait_deliveries(USER, hook, WAIT, |d| {
            d.first().is_some_and(|d| d["status"] == "failed")
        })[0]["attempts"][0]
            .clone()
    };

    let a = failed(&redirect);
    assert_eq!(a["statusCode"], 302);
    assert!(a["error"].as_str().unwrap().contains("redirect"), "{a}");
    let a = failed(&hang);
    assert!(a["error"].as_str().unwrap().contains("timeout"), "{a}");
    assert!(a.get("statusCode").is_none());
    let took = a["durationMs"].as_u64().unwrap();
    assert!(
        (450..15_000).contains(&took),
        "the attempt gave up at the 500 ms timeout: {a}"
    );
    let a = failed(&reset);
    assert!(a["error"].as_str().unwrap().contains("reset"), "{a}");
    let a = failed(&refused);
    assert!(a["error"].as_str().unwrap().contains("refused"), "{a}");
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "all failures were bounded by the timeout, not the 60 s hang: {:?}",
        started.elapsed()
    );
    assert!(
        !rx.received().iter().any(|r| r.path == "/elsewhere"),
        "redirect not followed"
    );
}

#[test]
fn a_hanging_receiver_does_not_delay_other_webhooks() {
    // The slow receiver holds its two attempts for 60 s (within the timeout): the healthy
    // webhook's event must not wait for them.
    let hookd = Hookd::start_with(settings(
        "timeout = \"90s\"\nworkers = 4\nmax_in_flight_per_webhook = 2",
    ));
    let slow = Receiver::start(|_, _| Reply::Hang(Duration::from_secs(60)));
    let fast = Receiver::ok();
    hookd.create_webhook(USER, &slow.url("/slow"), &["app:*"], None);
    hookd.create_webhook(USER, &fast.url("/fast"), &["message:*"], None);
    for i in 0..10 {
        hookd.publish(
            "app:connected",
            "user-123",
            "{}",
            Some(&format!("slow-{i}")),
        );
    }
    slow.wait_for(2, WAIT);
    let sent = Instant::now();
    hookd.publish("message:received", "user-123", "{}", Some("fast-1"));
    fast.wait_for(1, WAIT);
    assert!(
        sent.elapsed() < Duration::from_secs(20),
        "healthy webhook waited {:?}",
        sent.elapsed()
    );
    assert_eq!(
        slow.received().len(),
        2,
        "at most max_in_flight_per_webhook attempts to the slow receiver"
    );
}

#[test]
fn delete_and_disable_cancel_pending_deliveries() {
    let hookd = Hookd::start_with(settings(r#"retry_schedule = ["0s", "500ms", "500ms"]"#));
    let failing = Receiver::start(|_, _| Reply::Status(500));
    let sentinel = Receiver::start(|_, _| Reply::Status(500));
    let doomed = hookd.create_webhook(USER, &failing.url("/doomed"), &["app:*"], None);
    let paused = hookd.create_webhook(USER, &failing.url("/paused"), &["app:*"], None);
    hookd.create_webhook(USER, &sentinel.url("/sentinel"), &["app:*"], None);
    hookd.publish("app:connected", "user-123", "{}", Some("c1"));
    failing.wait_for(2, WAIT);
    // Both now wait for their second attempt; cancel them.
    assert_eq!(
        hookd
            .delete(&format!("/api/hooks/webhooks/{doomed}"), USER)
            .status,
        204
    );
    let p = hookd.patch(
        &format!("/api/hooks/webhooks/{paused}"),
        USER,
        r#"{"enabled":false}"#,
    );
    assert_eq!(p.json()["status"], "disabled");
    let log = hookd
        .get(&format!("/api/hooks/webhooks/{paused}/deliveries"), USER)
        .json();
    assert_eq!(log["deliveries"][0]["status"], "cancelled");
    // The sentinel's retries were due at the same times: once it has had all three,
    // the cancelled ones would have had theirs too.
    sentinel.wait_for(3, WAIT);
    assert_eq!(
        failing.received().len(),
        2,
        "nothing sent after the delete/disable answers"
    );
    // Events for a disabled webhook are not queued for it.
    let r = hookd.ingest("app:connected", "user-123", "{}", Some("c2"));
    assert_eq!(r.json()["deliveries"], 1, "only the sentinel");
}

#[test]
fn gone_disables_the_webhook_and_cancels_the_rest() {
    let hookd = Hookd::start_with(settings("max_in_flight_per_webhook = 1\nworkers = 4"));
    // Slow enough that all three are queued before the 410 lands.
    let rx = Receiver::start(|_, _| Reply::Delayed(Duration::from_millis(500), 410));
    let hook = hookd.create_webhook(USER, &rx.url("/gone"), &["*"], None);
    for i in 0..3 {
        hookd.publish("agent:invoked", "user-123", "{}", Some(&format!("g{i}")));
    }
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.iter().all(|d| d["status"] != "pending")
    });
    let statuses: Vec<&str> = log.iter().map(|d| d["status"].as_str().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == "failed").count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == "cancelled").count(),
        2,
        "{statuses:?}"
    );
    let w = hookd.webhook(USER, &hook);
    assert_eq!(
        (w["enabled"].clone(), w["status"].clone()),
        (Value::Bool(false), Value::from("disabled"))
    );
    assert_eq!(rx.received().len(), 1);
}

#[test]
fn retry_after_defers_the_whole_webhook() {
    let hookd = Hookd::start_with(settings(
        "retry_schedule = [\"0s\", \"100ms\", \"100ms\"]\nmax_in_flight_per_webhook = 1",
    ));
    let rx = Receiver::start(|_, i| {
        if i == 0 {
            Reply::Full(429, vec![("Retry-After".into(), "2".into())], String::new())
        } else {
            Reply::Status(200)
        }
    });
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    hookd.publish("agent:invoked", "user-123", "{}", Some("ra-1"));
    rx.wait_for(1, WAIT);
    // Queued after the pause began: it waits too.
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d[0]["attempts"].as_array().is_some_and(|a| a.len() == 1)
    });
    let ms = |v: &Value| {
        hookd::model::parse_rfc3339_millis(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
            .unwrap()
            .0
    };
    // The 429 was answered after the attempt began: the pause ends 2 s after that at least.
    let answered_429 = ms(&log[0]["attempts"][0]["at"]);
    hookd.publish("agent:invoked", "user-123", "{}", Some("ra-2"));
    let pending = hookd
        .get(
            &format!("/api/hooks/webhooks/{hook}/deliveries?status=pending"),
            USER,
        )
        .json();
    let pending = pending["deliveries"].as_array().expect("deliveries");
    let mut ids: Vec<&str> = pending
        .iter()
        .map(|d| d["eventId"].as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        ["ra-1", "ra-2"],
        "both wait for the pause: {pending:#?}"
    );
    let promised: std::collections::HashMap<&str, i64> = pending
        .iter()
        .map(|d| (d["eventId"].as_str().unwrap(), ms(&d["nextAttemptAt"])))
        .collect();
    for (id, at) in &promised {
        let after = at - answered_429;
        assert!(
            (2_000..10_000).contains(&after),
            "{id}: nextAttemptAt is {after} ms after the 429's attempt, not at the end of the 2 s pause"
        );
    }
    let got = rx.wait_for(3, WAIT);
    for r in &got[1..3] {
        let arrived = r
            .wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let promise = promised[r.event_id().as_str()];
        assert!(
            arrived >= promise - 5,
            "{} arrived {} ms before its nextAttemptAt",
            r.event_id(),
            promise - arrived
        );
    }
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(1900),
        "Retry-After honoured: {:?}",
        got[1].at - got[0].at
    );
    assert!(
        got[2].at - got[0].at >= Duration::from_millis(1900),
        "for the whole webhook"
    );
}

/// A 429 in the middle of a backlog holds the rest of it: once the pause is recorded
/// nothing starts until it ends, while the webhook's eight slots are busy and (on
/// PostgreSQL) its looks read ahead of them (`src/delivery/ahead.rs`). The receiver holds
/// its first answers until the whole backlog is queued, then answers in 30 ms, with one
/// 429 among them. (Measured here: 3 requests arrive after the 429, on both stores.)
#[test]
fn retry_after_in_a_backlog_holds_what_was_read_ahead() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    const EVENTS: usize = 150;
    const THE_429: usize = 20;
    let hookd = Hookd::start_with(Settings {
        delivery: "retry_schedule = [\"0s\", \"100ms\"]".into(),
        limits: "events_per_minute_per_webhook = 10000".into(),
        ..Settings::default()
    });
    let queued = Arc::new(AtomicBool::new(false));
    let gate = Arc::clone(&queued);
    let rx = Receiver::start(move |_, i| {
        while !gate.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if i == THE_429 {
            Reply::Full(429, vec![("Retry-After".into(), "3".into())], String::new())
        } else {
            Reply::Delayed(Duration::from_millis(30), 200)
        }
    });
    hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    for n in 0..EVENTS {
        hookd.publish("agent:invoked", "user-123", &format!("{{\"n\":{n}}}"), None);
    }
    queued.store(true, Ordering::SeqCst);
    // Every event, and the 429's delivery once more after the pause.
    let got = rx.wait_for(EVENTS + 1, Duration::from_secs(60));
    let paused_at = got[THE_429].at;
    let pause_ends = paused_at + Duration::from_millis(2_900);
    let during = got
        .iter()
        .filter(|r| r.at > paused_at && r.at < pause_ends)
        .count();
    let after = got.iter().filter(|r| r.at >= pause_ends).count();
    // Under way when the 429 came: at most 7 more (the webhook's cap is 8). Those started
    // before its pause was recorded (successes answered meanwhile free slots) stay well
    // under the 130 left; without the pause they would all go within half a second.
    assert!(
        during <= 40,
        "{during} requests arrived during the 3 s pause ({after} after it)"
    );
    assert!(
        after >= EVENTS - THE_429 - 40,
        "only {after} requests waited for the pause to end ({during} during it)"
    );
}

#[test]
fn manual_retry_and_recover_bring_failed_deliveries_back() {
    let hookd = Hookd::start_with(settings(r#"retry_schedule = ["0s"]"#));
    let rx = Receiver::start(|_, _| Reply::Status(503));
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    let since = "2000-01-01T00:00:00Z";
    for i in 0..3 {
        hookd.publish("message:sent", "user-123", "{}", Some(&format!("m{i}")));
    }
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.len() == 3 && d.iter().all(|d| d["status"] == "failed")
    });
    assert_eq!(hookd.webhook(USER, &hook)["status"], "failing");
    let path = format!("/api/hooks/webhooks/{hook}");
    let one = log[0]["id"].as_str().unwrap();

    rx.set(|_, _| Reply::Status(200));
    let r = hookd.request(
        "POST",
        &format!("{path}/deliveries/{one}/retry"),
        Some(USER),
        None,
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.iter().any(|d| d["status"] == "succeeded")
    });
    let retried = log.iter().find(|d| d["id"] == one).unwrap();
    let numbers: Vec<u64> = retried["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2], "attempt numbers continue");
    hookd
        .request(
            "POST",
            &format!("{path}/deliveries/{one}/retry"),
            Some(USER),
            None,
        )
        .assert_error(409, "delivery_not_failed");
    hookd
        .request(
            "POST",
            &format!("{path}/deliveries/dlv-nope/retry"),
            Some(USER),
            None,
        )
        .assert_error(404, "not_found");
    hookd
        .request(
            "POST",
            &format!("{path}/deliveries/{one}/retry"),
            Some(common::OTHER_USER),
            None,
        )
        .assert_error(404, "not_found");

    hookd
        .post(&format!("{path}/recover"), USER, r#"{"since":"nope"}"#)
        .assert_error(400, "invalid_request");
    hookd
        .post(&format!("{path}/recover"), USER, r#"{}"#)
        .assert_error(400, "invalid_request");
    let r = hookd.post(
        &format!("{path}/recover"),
        USER,
        &format!(r#"{{"since":"{since}"}}"#),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["queued"], 2);
    hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.iter().all(|d| d["status"] == "succeeded")
    });
    assert_eq!(hookd.webhook(USER, &hook)["status"], "healthy");
    let events: std::collections::HashSet<String> =
        rx.received().iter().map(|r| r.event_id()).collect();
    assert_eq!(events.len(), 3, "every event arrived");
}

#[test]
fn rate_limit_delays_without_losing_anything() {
    let hookd = Hookd::start_with(Settings {
        limits: "events_per_minute_per_webhook = 3".into(),
        ..Settings::default()
    });
    let rx = Receiver::ok();
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    let ms = |v: &Value| {
        hookd::model::parse_rfc3339_millis(v.as_str().unwrap())
            .unwrap()
            .0
    };
    // Held back = moved at least half a minute past its creation.
    let held_back = |d: &Value| {
        d["status"] == "pending" && ms(&d["nextAttemptAt"]) - ms(&d["createdAt"]) > 30_000
    };
    let started = Instant::now();
    for i in 0..6 {
        hookd.publish(
            "message:received",
            "user-123",
            "{}",
            Some(&format!("rl{i}")),
        );
    }
    rx.wait_for(3, WAIT);
    hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.iter().filter(|d| d["status"] == "succeeded").count() == 3
            && d.iter().filter(|d| held_back(d)).count() == 3
    });
    // One more once the next minute is fully promised: it must queue a minute further
    // and must not take, or move, the slots already promised.
    hookd.publish("message:received", "user-123", "{}", Some("rl6"));
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.iter().filter(|d| held_back(d)).count() == 4
    });
    for d in log.iter().filter(|d| d["status"] == "pending") {
        assert_eq!(
            d["attempts"],
            serde_json::json!([]),
            "no attempt recorded while delayed"
        );
    }
    assert_eq!(rx.received().len(), 3, "three per minute");
    let promised: std::collections::HashMap<String, i64> = log
        .iter()
        .filter(|d| d["status"] == "pending")
        .map(|d| {
            (
                d["eventId"].as_str().unwrap().to_string(),
                ms(&d["nextAttemptAt"]),
            )
        })
        .collect();
    let p = |id: &str| promised[id];
    // A slot is a minute after the start it waits for; the first three attempts can
    // start in the same millisecond, so equal slots are as right as increasing ones.
    assert!(
        p("rl3") <= p("rl4") && p("rl4") <= p("rl5"),
        "slots in line order: {promised:?}"
    );
    assert!(
        p("rl5") - p("rl3") < 1_000,
        "all three in the next minute: {promised:?}"
    );
    assert!(
        p("rl6") >= p("rl3") + 59_000,
        "the fourth waits another minute: {promised:?}"
    );
    // The delayed ones go when they were promised.
    let got = rx.wait_for(6, Duration::from_secs(90));
    assert!(
        got[3].at.duration_since(started) >= Duration::from_secs(59),
        "{:?}",
        got[3].at.duration_since(started)
    );
    for r in &got[3..6] {
        let arrived = r
            .wall
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let late = arrived - p(&r.event_id());
        assert!(
            (-50..5_000).contains(&late),
            "{} arrived {late} ms after its nextAttemptAt",
            r.event_id()
        );
    }
    hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.iter().filter(|d| d["status"] == "succeeded").count() == 6
    });
    let last = hookd
        .get(
            &format!("/api/hooks/webhooks/{hook}/deliveries?status=pending"),
            USER,
        )
        .json();
    assert_eq!(last["deliveries"][0]["eventId"], "rl6");
    assert_eq!(last["deliveries"][0]["attempts"], serde_json::json!([]));
}

#[test]
fn failing_for_disable_after_disables_the_webhook() {
    let hookd = Hookd::start_with(settings(
        "retry_schedule = [\"0s\", \"400ms\", \"400ms\", \"400ms\", \"400ms\", \"400ms\", \"400ms\", \"400ms\", \"400ms\", \"400ms\"]\ndisable_after = \"1s\"",
    ));
    let rx = Receiver::start(|_, _| Reply::Status(500));
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    hookd.publish("app:health_check", "user-123", "{}", Some("da-1"));
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| d[0]["status"] == "cancelled");
    let attempts = log[0]["attempts"].as_array().unwrap();
    // Attempts are at least 400 ms apart, so a second of failures takes three at least;
    // a slow machine may stretch the gaps, but the schedule has ten, and being disabled
    // must end it well before they run out.
    assert!(
        attempts.len() >= 3 && attempts.len() < 9,
        "disabled after about a second of failures: {attempts:?}"
    );
    let w = hookd.webhook(USER, &hook);
    assert_eq!(
        (w["enabled"].clone(), w["status"].clone()),
        (Value::Bool(false), Value::from("disabled"))
    );
    // Re-enabling starts afresh.
    rx.set(|_, _| Reply::Status(200));
    let r = hookd.patch(
        &format!("/api/hooks/webhooks/{hook}"),
        USER,
        r#"{"enabled":true}"#,
    );
    assert_eq!(r.json()["status"], "healthy");
    hookd.publish("app:health_check", "user-123", "{}", Some("da-2"));
    hookd.wait_deliveries(USER, &hook, WAIT, |d| d[0]["status"] == "succeeded");
}
