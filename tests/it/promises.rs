//! Promises made in README.md, docs/guide.md and docs/operations.md that had no end-to-end
//! test (issue 17): token revocation on SIGHUP, the bounded shutdown and the abandoned
//! attempt, `Retry-After`, secret rotation, recover's window, retention, backup fidelity
//! and the systemd watchdog.

use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::common::disk::SmallDisk;
use crate::common::receiver::{Received, Receiver, Reply};
use crate::common::{self, ADMIN, Hookd, OTHER_USER, PUBLISHER, Settings, USER, eventually};

const WAIT: Duration = Duration::from_secs(20);

fn settings(delivery: &str) -> Settings {
    Settings {
        delivery: delivery.into(),
        ..Settings::default()
    }
}

/// Milliseconds since the epoch of an RFC 3339 timestamp from the API.
fn ms(v: &Value) -> i64 {
    let s = v.as_str().unwrap_or_else(|| panic!("not a timestamp: {v}"));
    hookd::model::parse_rfc3339_millis(s).unwrap().0
}

fn wall_ms(t: SystemTime) -> i64 {
    i64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn hmac(key: &[u8], msg: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(msg);
    mac.finalize().into_bytes().to_vec()
}

/// `X-Hook-Signature` for a plain secret: `sha256=` and the hex HMAC of the raw body.
fn hook_signature(secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac(secret.as_bytes(), body)))
}

/// One `webhook-signature` entry (Standard Webhooks) for a plain (non-`whsec_`) secret,
/// which is keyed by its UTF-8 bytes (docs/guide.md).
fn standard_signature(secret: &str, req: &Received) -> String {
    let signed = format!(
        "{}.{}.{}",
        req.header("webhook-id").expect("webhook-id"),
        req.header("webhook-timestamp").expect("webhook-timestamp"),
        req.body_str()
    );
    format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD
            .encode(hmac(secret.as_bytes(), signed.as_bytes()))
    )
}

/// The signatures `req` carries in `webhook-signature`, in order.
fn signatures(req: &Received) -> Vec<String> {
    req.header("webhook-signature")
        .expect("webhook-signature")
        .split(' ')
        .map(str::to_string)
        .collect()
}

/// The signatures that `secrets`, in this order, would make for `req`.
fn expected_signatures(req: &Received, secrets: &[&str]) -> Vec<String> {
    secrets.iter().map(|s| standard_signature(s, req)).collect()
}

// ---------------------------------------------------------------------------------------
// 1. SIGHUP: removed tokens are revoked at once; nothing but [[tokens]] is reloaded.
// ---------------------------------------------------------------------------------------

/// Sends `GET /api/hooks/webhooks` (or an ingest, for the publisher) with `token` in a
/// loop until `stop`; returns (when it was sent, when it was answered, status) for each.
fn keep_asking(
    addr: std::net::SocketAddr,
    token: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<(Instant, Instant, u16)>> {
    std::thread::spawn(move || {
        let auth = format!("Bearer {token}");
        let mut seen = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let sent = Instant::now();
            let r = if token == PUBLISHER {
                let body =
                    r#"{"type":"app:connected","userId":"user-nobody","source":"s","payload":{}}"#;
                common::http(
                    addr,
                    "POST",
                    "/api/hooks/events",
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/json"),
                    ],
                    Some(body.as_bytes()),
                )
            } else {
                common::http(
                    addr,
                    "GET",
                    "/api/hooks/webhooks",
                    &[("Authorization", &auth)],
                    None,
                )
            };
            seen.push((sent, Instant::now(), r.status));
            std::thread::sleep(Duration::from_millis(5));
        }
        seen
    })
}

#[test]
fn sighup_revokes_a_removed_token_at_once_and_reloads_nothing_else() {
    let mut hookd = Hookd::start();
    let rx = Receiver::ok();
    hookd.create_webhook(USER, &rx.url("/one"), &["*"], None);

    let stop = Arc::new(AtomicBool::new(false));
    let removed = keep_asking(hookd.addr, OTHER_USER, Arc::clone(&stop));
    let kept_user = keep_asking(hookd.addr, USER, Arc::clone(&stop));
    let kept_publisher = keep_asking(hookd.addr, PUBLISHER, Arc::clone(&stop));

    // The new file: user-456's token removed, and a [limits] change that must wait for a
    // restart (USER already has one webhook).
    let original = std::fs::read_to_string(&hookd.config_path).unwrap();
    let stanza = format!(
        "[[tokens]]\nuser = \"user-456\"\nrole = \"user\"\nsha256 = \"{}\"\n",
        hookd::auth::token_sha256_hex(OTHER_USER)
    );
    assert_eq!(original.matches(&stanza).count(), 1, "{original}");
    assert_eq!(original.matches("[limits]\n").count(), 1, "{original}");
    let edited = original
        .replace(&stanza, "")
        .replace("[limits]\n", "[limits]\nmax_webhooks_per_user = 1\n");
    // Let the clients run for a moment on the old token set first.
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(&hookd.config_path, edited).unwrap();
    let hup_sent = Instant::now();
    hookd.signal("HUP");
    assert!(
        hookd.wait_for_log("SIGHUP: tokens reloaded", WAIT),
        "{}",
        hookd.log()
    );
    let reloaded = Instant::now();
    assert!(hookd.log().contains("tokens=3"), "{}", hookd.log());

    // Requests go on; a few more after the reload from the removed token.
    let deadline = Instant::now() + WAIT;
    while Instant::now() < reloaded + Duration::from_millis(300) {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The [limits] change is not applied by SIGHUP: a second webhook is still allowed.
    let second = hookd.post(
        "/api/hooks/webhooks",
        USER,
        &serde_json::json!({"name": "two", "url": rx.url("/two"), "eventTypes": ["*"]}).to_string(),
    );
    assert_eq!(
        second.status, 201,
        "limits reloaded by SIGHUP: {}",
        second.body
    );
    stop.store(true, Ordering::Relaxed);
    let removed = removed.join().unwrap();
    let kept_user = kept_user.join().unwrap();
    let kept_publisher = kept_publisher.join().unwrap();

    // Answered before the signal, or sent after the reload was logged.
    let before: Vec<u16> = removed
        .iter()
        .filter(|(_, answered, _)| *answered < hup_sent)
        .map(|(_, _, s)| *s)
        .collect();
    let after: Vec<u16> = removed
        .iter()
        .filter(|(sent, _, _)| *sent > reloaded)
        .map(|(_, _, s)| *s)
        .collect();
    assert!(before.len() >= 3 && after.len() >= 3, "{removed:?}");
    assert!(
        before.iter().all(|s| *s == 200),
        "the removed token worked until the reload (editing the file alone changes nothing): {before:?}"
    );
    assert!(
        after.iter().all(|s| *s == 401),
        "the removed token is refused right after the reload: {after:?}"
    );
    // The kept tokens never failed, before, during or after the reload.
    assert!(kept_user.len() >= 6, "{kept_user:?}");
    assert!(kept_user.iter().all(|(_, _, s)| *s == 200), "{kept_user:?}");
    assert!(kept_publisher.len() >= 6, "{kept_publisher:?}");
    assert!(
        kept_publisher.iter().all(|(_, _, s)| *s == 202),
        "{kept_publisher:?}"
    );

    // After a restart the same file's [limits] applies, and the token stays revoked.
    assert!(hookd.terminate().success());
    hookd.restart();
    let third = hookd.post(
        "/api/hooks/webhooks",
        USER,
        &serde_json::json!({"name": "three", "url": rx.url("/three"), "eventTypes": ["*"]})
            .to_string(),
    );
    third.assert_error(409, "webhook_limit_reached");
    assert_eq!(hookd.get("/api/hooks/webhooks", OTHER_USER).status, 401);
    assert_eq!(hookd.get("/api/hooks/webhooks", USER).status, 200);
}

// ---------------------------------------------------------------------------------------
// 2. Shutdown: bounded by delivery.timeout + 1 s (and 20 s); an abandoned attempt is made
//    again after the restart with the same number; SIGINT is SIGTERM.
// ---------------------------------------------------------------------------------------

/// With `delivery.timeout` 2 s and a receiver that hangs, the signal is answered once the
/// attempt under way has timed out and been recorded: not before, and not much after.
fn shutdown_waits_for_the_attempt_under_way(sig: &str) {
    let mut hookd = Hookd::start_with(settings(
        "timeout = \"2s\"\nretry_schedule = [\"0s\", \"1h\"]",
    ));
    let rx = Receiver::start(|_, _| Reply::Hang(Duration::from_secs(30)));
    let hook = hookd.create_webhook(USER, &rx.url("/hang"), &["*"], None);
    hookd.publish("app:connected", "user-123", "{}", Some("in-flight"));
    let arrived = rx.wait_for(1, WAIT)[0].at;
    hookd.signal(sig);
    let signalled = Instant::now();
    let status = hookd.terminate_wait();
    let exited = Instant::now();
    assert!(status.success(), "{status:?}\n{}", hookd.log());
    // Not before the attempt's own timeout (it began just before it arrived).
    assert!(
        exited - arrived >= Duration::from_millis(1900),
        "exited {:?} after the attempt arrived, before its 2 s timeout",
        exited - arrived
    );
    // timeout + 1 s = 3 s at most, with room for a loaded box.
    assert!(
        exited - signalled < Duration::from_secs(3 + 5),
        "took {:?} to exit",
        exited - signalled
    );
    assert!(
        hookd.wait_for_log(&format!("SIG{sig}: shutting down"), WAIT),
        "{}",
        hookd.log()
    );
    assert!(hookd.wait_for_log("stopped", WAIT), "{}", hookd.log());
    assert!(
        !hookd.log().contains("attempts still under way at shutdown"),
        "the attempt ended within the wait: {}",
        hookd.log()
    );
    // The timed-out attempt was recorded; its retry is an hour away, not made at restart.
    hookd.restart();
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| d.len() == 1);
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{log:#?}");
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("timeout")),
        "{log:#?}"
    );
    assert_eq!(log[0]["status"], "pending");
    assert_eq!(rx.received().len(), 1, "nothing sent again");
}

#[test]
fn sigterm_waits_for_the_attempt_under_way_up_to_its_timeout() {
    shutdown_waits_for_the_attempt_under_way("TERM");
}

#[test]
fn sigint_behaves_like_sigterm() {
    shutdown_waits_for_the_attempt_under_way("INT");
}

/// With `delivery.timeout` 25 s the wait is capped at 20 s; the attempt still under way
/// is abandoned unrecorded and made again after the restart, as the same attempt 1.
#[test]
fn an_attempt_cut_off_by_shutdown_is_made_again_with_the_same_number() {
    let mut hookd = Hookd::start_with(settings(
        "timeout = \"25s\"\nretry_schedule = [\"0s\", \"1h\"]",
    ));
    let rx = Receiver::start(|_, i| {
        if i == 0 {
            Reply::Hang(Duration::from_secs(45))
        } else {
            Reply::Status(200)
        }
    });
    let hook = hookd.create_webhook(USER, &rx.url("/slow"), &["*"], Some("cut-secret"));
    hookd.publish("app:connected", "user-123", "{}", Some("cut-off"));
    let first = rx.wait_for(1, WAIT)[0].clone();
    hookd.signal("TERM");
    let signalled = Instant::now();
    let status = hookd.terminate_wait(); // fails after 30 s: TimeoutStopSec of the unit
    let took = signalled.elapsed();
    assert!(status.success(), "{status:?}\n{}", hookd.log());
    assert!(
        took >= Duration::from_secs(20),
        "waited only {took:?} for the attempt under way (20 s cap)"
    );
    assert!(
        hookd.wait_for_log("attempts still under way at shutdown", WAIT),
        "{}",
        hookd.log()
    );
    eprintln!("shutdown with an attempt under way took {took:?}");

    hookd.restart();
    let got = rx.wait_for(2, WAIT);
    let again = &got[1];
    assert_eq!(
        again.header("x-hook-delivery"),
        first.header("x-hook-delivery")
    );
    assert_eq!(
        again.header("x-hook-attempt"),
        Some("1"),
        "same attempt number"
    );
    assert_eq!(again.event_id(), "cut-off");
    assert_eq!(
        again.header("x-hook-signature"),
        Some(hook_signature("cut-secret", &again.body).as_str())
    );
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.len() == 1 && d[0]["status"] == "succeeded"
    });
    let numbers: Vec<u64> = log[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [1], "the abandoned attempt left no record");
}

// ---------------------------------------------------------------------------------------
// 3. Retry-After: seconds on 503, HTTP-date on 429, ignored on other statuses, capped at
//    one hour.
// ---------------------------------------------------------------------------------------

#[test]
fn retry_after_is_honoured_on_429_and_503_only_and_capped_at_an_hour() {
    let hookd = Hookd::start_with(settings(r#"retry_schedule = ["0s", "1s", "1s"]"#));
    let dates = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = Arc::clone(&dates);
    let rx = Receiver::start(move |req, _| {
        let first = req.header("x-hook-attempt") == Some("1");
        let ra = |status: u16, value: String| {
            Reply::Full(status, vec![("Retry-After".into(), value)], String::new())
        };
        match (req.path.as_str(), first) {
            ("/seconds-503", true) => ra(503, "3".into()),
            ("/date-429", true) => {
                let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(4));
                record.lock().unwrap().push(date.clone());
                ra(429, date)
            }
            ("/ignored-500", true) => ra(500, "30".into()),
            ("/cap-seconds", _) => ra(503, "86400".into()),
            ("/cap-date", _) => ra(
                429,
                httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2 * 86400)),
            ),
            _ => Reply::Status(200),
        }
    });
    let hooks: Vec<(String, String)> = [
        "/seconds-503",
        "/date-429",
        "/ignored-500",
        "/cap-seconds",
        "/cap-date",
    ]
    .iter()
    .map(|p| {
        (
            p.to_string(),
            hookd.create_webhook(USER, &rx.url(p), &["*"], None),
        )
    })
    .collect();
    let hook = |p: &str| hooks.iter().find(|(q, _)| q == p).unwrap().1.clone();
    hookd.publish("agent:invoked", "user-123", "{}", Some("ra"));

    // After the first attempt each delivery is pending; nextAttemptAt against the attempt.
    let next_after_first = |p: &str| -> (i64, i64) {
        let log = hookd.wait_deliveries(USER, &hook(p), WAIT, |d| {
            d.len() == 1 && d[0]["attempts"].as_array().is_some_and(|a| a.len() == 1)
        });
        let d = &log[0];
        assert_eq!(d["status"], "pending", "{p}: {d:#}");
        (ms(&d["attempts"][0]["at"]), ms(&d["nextAttemptAt"]))
    };
    let (at, next_503) = next_after_first("/seconds-503");
    assert!(
        (3000..3000 + 1500).contains(&(next_503 - at)),
        "503 Retry-After: 3 → next {} ms after the attempt",
        next_503 - at
    );
    let (_, next_429) = next_after_first("/date-429");
    let date = dates.lock().unwrap()[0].clone();
    let date_ms = wall_ms(httpdate::parse_http_date(&date).unwrap());
    assert!(
        (date_ms - 1..date_ms + 1000).contains(&next_429),
        "429 Retry-After: {date} ({date_ms}) → nextAttemptAt {next_429}"
    );
    for p in ["/cap-seconds", "/cap-date"] {
        let (at, next) = next_after_first(p);
        assert!(
            (3_600_000..3_600_000 + 5000).contains(&(next - at)),
            "{p}: capped at one hour, got {} ms",
            next - at
        );
    }

    // The 500's Retry-After: 30 is ignored: the schedule's 1 s applies.
    let log = hookd.wait_deliveries(USER, &hook("/ignored-500"), WAIT, |d| {
        d.len() == 1 && d[0]["status"] == "succeeded"
    });
    let attempts = log[0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{log:#?}");
    let gap = ms(&attempts[1]["at"]) - ms(&attempts[0]["at"]);
    assert!(
        (1000..10_000).contains(&gap),
        "500 with Retry-After: 30 → next attempt after {gap} ms (schedule: 1 s)"
    );

    // The paused ones are sent when nextAttemptAt said, not before.
    for (p, due) in [("/seconds-503", next_503), ("/date-429", next_429)] {
        let log = hookd.wait_deliveries(USER, &hook(p), WAIT, |d| {
            d.len() == 1 && d[0]["status"] == "succeeded"
        });
        let second = ms(&log[0]["attempts"][1]["at"]);
        assert!(second >= due, "{p}: attempt 2 at {second}, due {due}");
        let arrived = rx
            .received()
            .iter()
            .find(|r| r.path == p && r.header("x-hook-attempt") == Some("2"))
            .map(|r| wall_ms(r.wall))
            .expect("attempt 2 received");
        assert!(
            arrived >= due,
            "{p}: attempt 2 arrived at {arrived}, due {due}"
        );
    }
    // The capped ones are still waiting.
    for p in ["/cap-seconds", "/cap-date"] {
        assert_eq!(
            rx.received().iter().filter(|r| r.path == p).count(),
            1,
            "{p}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 4. Rotation: the grace period ends; a second rotation drops the oldest secret; a PATCH
//    of the secret takes effect with no grace (docs/guide.md, "Rotating a secret").
// ---------------------------------------------------------------------------------------

#[test]
fn rotation_grace_ends_a_second_rotation_drops_the_oldest_and_patch_has_no_grace() {
    let hookd = Hookd::start();
    let rx = Receiver::ok();
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], Some("secret-0"));
    let path = format!("/api/hooks/webhooks/{hook}");
    // Ingests one event and returns its delivery as received.
    let mut n = 0;
    let mut deliver = || {
        n += 1;
        let id = format!("rot-{n}");
        assert_eq!(
            hookd
                .ingest("app:connected", "user-123", "{}", Some(&id))
                .status,
            202
        );
        let got = rx.wait_until(WAIT, |got| got.iter().any(|r| r.event_id() == id));
        got.into_iter().find(|r| r.event_id() == id).unwrap()
    };
    let rotate = |body: &str| {
        let r = hookd.post(&format!("{path}/rotate-secret"), USER, body);
        assert_eq!(r.status, 200, "{}", r.body);
    };

    let req = deliver();
    assert_eq!(signatures(&req), expected_signatures(&req, &["secret-0"]));

    // A 2 s grace: both sign at once, the new one first; X-Hook-Signature is the new one's.
    let before_rotation = Instant::now();
    rotate(r#"{"secret":"secret-1","graceSeconds":2}"#);
    let rotated = Instant::now();
    let req = deliver();
    assert!(
        req.at < before_rotation + Duration::from_secs(2),
        "too slow to see the grace period: {:?}",
        req.at - before_rotation
    );
    assert_eq!(
        signatures(&req),
        expected_signatures(&req, &["secret-1", "secret-0"])
    );
    assert_eq!(
        req.header("x-hook-signature"),
        Some(hook_signature("secret-1", &req.body).as_str())
    );

    // Once the grace period is over only the new secret signs.
    let grace_over = rotated + Duration::from_millis(2050);
    eventually(WAIT, "clock", || {
        (Instant::now() >= grace_over).then_some(())
    });
    let req = deliver();
    assert_eq!(signatures(&req), expected_signatures(&req, &["secret-1"]));

    // Rotating twice: the second rotation keeps only the secret it replaced.
    rotate(r#"{"secret":"secret-2","graceSeconds":3600}"#);
    let req = deliver();
    assert_eq!(
        signatures(&req),
        expected_signatures(&req, &["secret-2", "secret-1"])
    );
    rotate(r#"{"secret":"secret-3","graceSeconds":3600}"#);
    let req = deliver();
    assert_eq!(
        signatures(&req),
        expected_signatures(&req, &["secret-3", "secret-2"]),
        "secret-1 stops signing at the second rotation"
    );

    // A PATCH of the secret: at once, no grace for the one it replaces.
    let r = hookd.patch(&path, USER, r#"{"secret":"secret-4"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    let req = deliver();
    assert_eq!(signatures(&req), expected_signatures(&req, &["secret-4"]));
    assert_eq!(
        req.header("x-hook-signature"),
        Some(hook_signature("secret-4", &req.body).as_str())
    );
}

// ---------------------------------------------------------------------------------------
// 5. Recover: `since` included, `until` excluded, by creation time; cancelled deliveries
//    are never queued again.
// ---------------------------------------------------------------------------------------

#[test]
fn recover_takes_since_but_not_until_and_never_cancelled_deliveries() {
    let hookd = Hookd::start_with(settings(
        "retry_schedule = [\"0s\"]\nmax_in_flight_per_webhook = 1\nworkers = 4",
    ));
    // "f-…" fail with 500; the others answer 410 slowly, so that the rest of them are
    // still queued when the first 410 cancels them.
    let rx = Receiver::start(|req, _| {
        if req.event_id().starts_with("f-") {
            Reply::Status(500)
        } else {
            Reply::Delayed(Duration::from_millis(500), 410)
        }
    });
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    let path = format!("/api/hooks/webhooks/{hook}");
    for i in 1..=4 {
        hookd.publish("message:sent", "user-123", "{}", Some(&format!("f-{i}")));
        hookd.wait_deliveries(USER, &hook, WAIT, |d| {
            d.len() == i && d.iter().all(|d| d["status"] == "failed")
        });
    }
    for id in ["g-1", "g-2", "g-3"] {
        hookd.publish("message:sent", "user-123", "{}", Some(id));
    }
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.len() == 7 && d.iter().all(|d| d["status"] != "pending")
    });
    let by_event = |log: &[Value], id: &str| -> Value {
        log.iter().find(|d| d["eventId"] == id).unwrap().clone()
    };
    let created: Vec<Value> = (1..=4)
        .map(|i| by_event(&log, &format!("f-{i}"))["createdAt"].clone())
        .collect();
    assert!(
        created.windows(2).all(|w| ms(&w[0]) < ms(&w[1])),
        "distinct creation times: {created:?}"
    );
    let cancelled: Vec<String> = log
        .iter()
        .filter(|d| d["status"] == "cancelled")
        .map(|d| d["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(cancelled.len(), 2, "{log:#?}");
    hookd
        .post(
            &format!("{path}/recover"),
            USER,
            r#"{"since":"2000-01-01T00:00:00Z"}"#,
        )
        .assert_error(409, "webhook_disabled");
    let r = hookd.patch(&path, USER, r#"{"enabled":true}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    rx.set(|_, _| Reply::Status(200));

    // [created(f-2), created(f-4)): f-2 and f-3, not f-1 (before) nor f-4 (the bound).
    let window = serde_json::json!({"since": created[1], "until": created[3]}).to_string();
    let r = hookd.post(&format!("{path}/recover"), USER, &window);
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["queued"], 2, "{window}");
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.iter().filter(|d| d["status"] == "succeeded").count() == 2
    });
    for (id, status) in [
        ("f-1", "failed"),
        ("f-2", "succeeded"),
        ("f-3", "succeeded"),
        ("f-4", "failed"),
    ] {
        assert_eq!(by_event(&log, id)["status"], status, "{id}");
    }

    // Everything since f-1: the failed ones (f-1, f-4 and the 410), never the cancelled.
    let r = hookd.post(
        &format!("{path}/recover"),
        USER,
        &serde_json::json!({"since": created[0]}).to_string(),
    );
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["queued"], 3, "{}", r.body);
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.iter().filter(|d| d["status"] == "succeeded").count() == 5
    });
    for d in &log {
        let expected = if cancelled.iter().any(|c| d["id"] == c.as_str()) {
            "cancelled"
        } else {
            "succeeded"
        };
        assert_eq!(d["status"], expected, "{d:#}");
    }
    let sent: Vec<String> = rx
        .received()
        .iter()
        .map(|r| r.header("x-hook-delivery").unwrap().to_string())
        .collect();
    for c in &cancelled {
        assert!(!sent.contains(c), "cancelled {c} was sent");
    }
    assert_eq!(sent.len(), 4 + 1 + 2 + 3, "{sent:?}");
}

// ---------------------------------------------------------------------------------------
// 6. Retention: young records survive a pruning pass; a pruned event's id is new again.
// ---------------------------------------------------------------------------------------

#[test]
fn retention_keeps_young_records_and_frees_pruned_ids() {
    const RETENTION: Duration = Duration::from_secs(4);
    let hookd = Hookd::start_with(Settings::default().with_retention("4s"));
    let rx = Receiver::ok();
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    let old_sent = Instant::now();
    assert_eq!(
        hookd
            .ingest("app:connected", "user-123", "{}", Some("ret-old"))
            .status,
        202
    );
    hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.len() == 1 && d[0]["status"] == "succeeded"
    });
    // The young event comes 3 s later, with an ancient `timestamp`: age is counted from
    // when hookd received an event, not from what the publisher wrote in it.
    let young_due = old_sent + Duration::from_secs(3);
    eventually(WAIT, "clock", || {
        (Instant::now() >= young_due).then_some(())
    });
    let young_sent = Instant::now();
    let r = hookd.post(
        "/api/hooks/events",
        PUBLISHER,
        r#"{"id":"ret-young","type":"app:connected","timestamp":"2000-01-01T00:00:00Z","userId":"user-123","source":"s","payload":{}}"#,
    );
    assert_eq!(r.status, 202, "{}", r.body);

    // Until the old event is pruned, anything younger than the retention must be there.
    let young_ok = |what: &str| {
        let r = hookd.get("/api/hooks/events/ret-young", USER);
        let deliveries = hookd
            .get(&format!("/api/hooks/webhooks/{hook}/deliveries"), USER)
            .json();
        let kept = deliveries["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["eventId"] == "ret-young");
        if young_sent.elapsed() < RETENTION {
            assert_eq!(r.status, 200, "young event pruned {what}: {}", r.body);
            assert!(kept, "young event's delivery pruned {what}: {deliveries}");
        }
    };
    let pruned_at = eventually(WAIT, "the old event was never pruned", || {
        let r = hookd.get("/api/hooks/events/ret-old", USER);
        if r.status == 200 {
            young_ok("before the old one");
            return None;
        }
        assert_eq!(r.status, 404, "{}", r.body);
        assert!(
            old_sent.elapsed() >= RETENTION,
            "pruned after {:?}, before the 4 s retention",
            old_sent.elapsed()
        );
        Some(Instant::now())
    });
    young_ok("in the pass that pruned the old one");
    assert!(
        pruned_at - young_sent < RETENTION,
        "the box was too slow to tell: the old event was pruned {:?} after the young one came",
        pruned_at - young_sent
    );
    assert!(hookd.log().contains("retention: pruned"), "{}", hookd.log());
    let log = hookd
        .get(&format!("/api/hooks/webhooks/{hook}/deliveries"), USER)
        .json();
    let events: Vec<&str> = log["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["eventId"].as_str().unwrap())
        .collect();
    assert!(!events.contains(&"ret-old"), "old delivery pruned: {log}");

    // The pruned id is free again: 202, a new event, delivered again. The young one is
    // still remembered: 200.
    let r = hookd.ingest("app:connected", "user-123", "{}", Some("ret-old"));
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["deliveries"], 1);
    let got = rx.wait_until(WAIT, |got| {
        got.iter().filter(|r| r.event_id() == "ret-old").count() == 2
    });
    let old: Vec<&Received> = got.iter().filter(|r| r.event_id() == "ret-old").collect();
    assert_ne!(
        old[0].header("x-hook-delivery"),
        old[1].header("x-hook-delivery"),
        "a new delivery"
    );
    assert_eq!(hookd.get("/api/hooks/events/ret-old", USER).status, 200);
    let r = hookd.ingest("app:connected", "user-123", "{}", Some("ret-young"));
    assert_eq!(r.status, 200, "a kept id is still a repeat: {}", r.body);
}

// ---------------------------------------------------------------------------------------
// 7. Backup fidelity: a restored store has the webhooks with their secrets and the pending
//    deliveries, which are then attempted; `hookd backup` fails when refused, and on
//    PostgreSQL, whose backups are the database's own.
// ---------------------------------------------------------------------------------------

fn backup_cli(hookd: &Hookd, token: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["backup", "--url", &format!("http://{}", hookd.addr)])
        .args(["--token", token])
        .env_remove("HOOKD_TOKEN")
        .output()
        .expect("run hookd backup")
}

#[test]
fn a_restored_backup_signs_and_sends_what_was_pending() {
    if crate::common::redb_only("restores a redb backup file") {
        return;
    }
    let mut hookd = Hookd::start_with(settings(r#"retry_schedule = ["0s", "3s"]"#));
    // Every first attempt fails; later ones succeed.
    let rx = Receiver::start(|req, _| {
        if req.header("x-hook-attempt") == Some("1") {
            Reply::Status(500)
        } else {
            Reply::Status(200)
        }
    });
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], Some("bk-old"));
    let r = hookd.post(
        &format!("/api/hooks/webhooks/{hook}/rotate-secret"),
        USER,
        r#"{"secret":"bk-new","graceSeconds":3600}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    hookd.publish("app:connected", "user-123", "{}", Some("bk-1"));
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.len() == 1 && d[0]["attempts"].as_array().is_some_and(|a| a.len() == 1)
    });
    assert_eq!(log[0]["status"], "pending", "{log:#?}");
    let delivery = log[0]["id"].as_str().unwrap().to_string();

    // Refused backups exit non-zero and write nothing.
    let backups = hookd.dir.path().join("data/backups");
    let listing = || -> Vec<std::path::PathBuf> {
        std::fs::read_dir(&backups)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    };
    for (token, why) in [("not-a-token", "401"), (USER, "403")] {
        let out = backup_cli(&hookd, token);
        assert!(!out.status.success(), "backup with a {why} token: {out:?}");
        assert_eq!(out.status.code(), Some(1), "{out:?}");
    }
    assert!(listing().is_empty(), "{:?}", listing());
    let out = backup_cli(&hookd, ADMIN);
    assert!(out.status.success(), "{out:?}");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let backup = std::path::PathBuf::from(answer["path"].as_str().unwrap());
    assert_eq!(listing(), std::slice::from_ref(&backup));

    // After the backup: the retry succeeds and another event comes; both are lost in the
    // restore.
    hookd.wait_deliveries(USER, &hook, WAIT, |d| d[0]["status"] == "succeeded");
    assert_eq!(
        hookd
            .ingest("app:connected", "user-123", "{}", Some("bk-after"))
            .status,
        202
    );
    rx.wait_until(WAIT, |got| got.iter().any(|r| r.event_id() == "bk-after"));
    assert!(hookd.terminate().success());
    std::fs::copy(&backup, hookd.dir.path().join("data/hookd.redb")).unwrap();
    let sent_before = rx.received().len();
    hookd.restart();

    // The pending delivery of the backup is attempted again: attempt 2, signed with both
    // secrets of the rotation.
    let got = rx.wait_until(WAIT, |got| {
        got[sent_before..]
            .iter()
            .any(|r| r.header("x-hook-delivery") == Some(delivery.as_str()))
    });
    let again = got[sent_before..]
        .iter()
        .find(|r| r.header("x-hook-delivery") == Some(delivery.as_str()))
        .unwrap();
    assert_eq!(again.header("x-hook-attempt"), Some("2"));
    assert_eq!(again.event_id(), "bk-1");
    assert_eq!(
        again.header("x-hook-signature"),
        Some(hook_signature("bk-new", &again.body).as_str())
    );
    assert_eq!(
        signatures(again),
        expected_signatures(again, &["bk-new", "bk-old"])
    );
    let w = hookd.webhook(USER, &hook);
    assert_eq!(w["url"], rx.url("/h"));
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.len() == 1 && d[0]["status"] == "succeeded"
    });
    let codes: Vec<u64> = log[0]["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["statusCode"].as_u64().unwrap())
        .collect();
    assert_eq!(codes, [500, 200], "{log:#?}");
    assert_eq!(hookd.get("/api/hooks/events/bk-1", USER).status, 200);
    assert_eq!(hookd.get("/api/hooks/events/bk-after", USER).status, 404);
    assert_eq!(
        hookd
            .ingest("app:connected", "user-123", "{}", Some("bk-1"))
            .status,
        200,
        "the restored event's id is remembered"
    );
}

#[test]
fn backup_on_postgres_is_refused_and_points_to_the_databases_own() {
    if common::postgres_only() {
        return;
    }
    let hookd = Hookd::start();
    let r = hookd.post("/api/admin/backup", ADMIN, "{}");
    r.assert_error(501, "not_supported");
    assert!(r.body.contains("pg_dump"), "{}", r.body);
    let out = backup_cli(&hookd, ADMIN);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pg_dump"),
        "{out:?}"
    );
}

// ---------------------------------------------------------------------------------------
// 8. The systemd watchdog.
// ---------------------------------------------------------------------------------------

/// A `$NOTIFY_SOCKET` of our own: records every datagram with its arrival time.
struct NotifySocket {
    path: std::path::PathBuf,
    seen: Arc<Mutex<Vec<(Instant, String)>>>,
    stop: Arc<AtomicBool>,
    _dir: tempfile::TempDir,
}

impl NotifySocket {
    fn bind() -> NotifySocket {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (sink, halt) = (Arc::clone(&seen), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !halt.load(Ordering::Relaxed) {
                if let Ok(n) = socket.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    sink.lock().unwrap().push((Instant::now(), text));
                }
            }
        });
        NotifySocket {
            path,
            seen,
            stop,
            _dir: dir,
        }
    }

    fn env(&self, watchdog: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut env = vec![("NOTIFY_SOCKET".to_string(), self.path.display().to_string())];
        env.extend(watchdog.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        env
    }

    /// When each `message` arrived.
    fn times(&self, message: &str) -> Vec<Instant> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, m)| m == message)
            .map(|(at, _)| *at)
            .collect()
    }

    fn wait_count(&self, message: &str, n: usize) -> Vec<Instant> {
        eventually(WAIT, &format!("{n} × {message}: {:?}", self.seen), || {
            let times = self.times(message);
            (times.len() >= n).then_some(times)
        })
    }
}

impl Drop for NotifySocket {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[test]
fn watchdog_pings_only_when_watchdog_usec_is_set_for_this_process() {
    let asked = NotifySocket::bind();
    let not_asked = NotifySocket::bind();
    let other_pid = NotifySocket::bind();
    let start = |socket: &NotifySocket, watchdog: &[(&str, &str)]| {
        Hookd::start_with(Settings {
            env: socket.env(watchdog),
            ..Settings::default()
        })
    };
    let mut hookds = [
        start(&asked, &[("WATCHDOG_USEC", "200000")]),
        start(&not_asked, &[]),
        start(
            &other_pid,
            &[("WATCHDOG_USEC", "200000"), ("WATCHDOG_PID", "1")],
        ),
    ];
    let sockets = [&asked, &not_asked, &other_pid];
    let ready: Vec<Instant> = sockets
        .iter()
        .map(|s| s.wait_count("READY=1", 1)[0])
        .collect();
    // Every 100 ms (half of WATCHDOG_USEC), the first one after READY=1.
    let pings = asked.wait_count("WATCHDOG=1", 5);
    assert!(pings[0] >= ready[0]);
    // Give the others ten ping periods in which to (wrongly) ping.
    let quiet_until = ready[1].max(ready[2]) + Duration::from_secs(1);
    eventually(WAIT, "clock", || {
        (Instant::now() >= quiet_until).then_some(())
    });
    for h in &hookds {
        h.signal("TERM");
    }
    for (h, s) in hookds.iter_mut().zip(sockets) {
        assert!(h.terminate_wait().success());
        s.wait_count("STOPPING=1", 1);
    }
    assert!(asked.times("WATCHDOG=1").len() >= 5, "{:?}", asked.seen);
    assert!(
        not_asked.times("WATCHDOG=1").is_empty(),
        "no WATCHDOG_USEC: {:?}",
        not_asked.seen
    );
    assert!(
        other_pid.times("WATCHDOG=1").is_empty(),
        "WATCHDOG_PID=1: {:?}",
        other_pid.seen
    );
}

/// "Pings stop when the engine stalls": a store that cannot commit for
/// `store.max_unavailable` stops the pings; until then they go on. `stall` makes every
/// commit fail from then on.
fn pings_stop_when_the_store_cannot_commit(stall: impl FnOnce(&SmallDisk)) {
    let Some(disk) = SmallDisk::mount("16m") else {
        return;
    };
    let notify = NotifySocket::bind();
    let hookd = Hookd::start_with(Settings {
        data_dir: Some(disk.data()),
        store: "min_free_space = 0\nmax_unavailable = \"1s\"".into(),
        env: notify.env(&[("WATCHDOG_USEC", "200000")]),
        ..Settings::default()
    });
    notify.wait_count("WATCHDOG=1", 3);
    let rx = Receiver::ok();
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], None);
    let path = format!("/api/hooks/webhooks/{hook}");
    let stalling = Instant::now();
    stall(&disk);
    // Keep trying to commit (a rename is never refused for space) until hookd gives up on
    // itself.
    let mut n = 0;
    let mut rename = || {
        n += 1;
        let r = hookd.patch(&path, USER, &format!("{{\"name\":\"rename {n}\"}}"));
        assert_ne!(r.status, 200, "a commit succeeded: {}", r.body);
    };
    eventually(Duration::from_secs(10), "the pings never stopped", || {
        rename();
        hookd
            .log()
            .contains("not pinging the systemd watchdog")
            .then_some(())
    });
    let gave_up = Instant::now();
    // For that reason: not the writer's silence while it waits to reopen the store (with
    // a 200 ms watchdog that shows after 2 s), but max_unavailable.
    let why = hookd
        .log()
        .lines()
        .find(|l| l.contains("not pinging the systemd watchdog"))
        .unwrap()
        .to_string();
    assert!(
        why.contains("unable to commit") && why.contains("store.max_unavailable is 1s"),
        "{why}"
    );
    // The last ping came no earlier than max_unavailable (less one period) after the store
    // was broken: it cannot have failed before that.
    let last = *notify.times("WATCHDOG=1").last().unwrap();
    assert!(
        last >= stalling + Duration::from_millis(900),
        "pings stopped {:?} after the store was broken (max_unavailable 1 s)",
        last - stalling
    );
    // And none for ten periods after hookd said so, while the store stays broken.
    let quiet_until = gave_up + Duration::from_secs(1);
    eventually(WAIT, "clock", || {
        rename();
        (Instant::now() >= quiet_until).then_some(())
    });
    let late: Vec<Instant> = notify
        .times("WATCHDOG=1")
        .into_iter()
        .filter(|t| *t > gave_up)
        .collect();
    assert!(
        late.is_empty(),
        "{} pings after giving up:\n{}",
        late.len(),
        hookd.log()
    );
}

/// The disk fills up and the data dir is gone from its path (moved away): every commit
/// fails, and so does every reopen.
#[test]
fn watchdog_pings_stop_when_the_store_cannot_commit_for_max_unavailable() {
    if crate::common::redb_only("stalls the redb file on a full tmpfs") {
        return;
    }
    pings_stop_when_the_store_cannot_commit(|disk| {
        std::fs::rename(disk.data(), disk.dir.path().join("moved")).unwrap();
        disk.fill(0);
    });
}
