//! Security: the destination guard at connect time (DNS rebinding), exceptions for
//! self-hosters, Standard Webhooks signatures checked by the official Python library
//! (also across a secret rotation), hostile receivers, and secrets kept out of logs.

use crate::common;

use std::time::{Duration, Instant};

use crate::common::receiver::{Receiver, Reply};
use crate::common::{Hookd, OTHER_USER, PUBLISHER, Settings, USER};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn a_name_that_resolves_to_loopback_at_send_time_is_refused() {
    // http is allowed, private networks are not: `localhost` passes at create time (it is
    // a name) and must be refused once it resolves to 127.0.0.1 / ::1 at send time.
    let hookd = Hookd::start_with(Settings {
        delivery: "allow_http = true".into(),
        strict_destinations: true,
        ..Settings::default()
    });
    let rx = Receiver::ok();
    let url = format!("http://localhost:{}/rebound", rx.addr.port());
    let r = hookd.post(
        "/api/hooks/webhooks",
        USER,
        &format!(r#"{{"name":"n","url":"{url}","eventTypes":["*"]}}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let hook = r.json()["id"].as_str().unwrap().to_string();
    hookd.publish("app:connected", "user-123", "{}", None);
    let log = hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        d.first()
            .is_some_and(|d| !d["attempts"].as_array().unwrap().is_empty())
    });
    let error = log[0]["attempts"][0]["error"].as_str().unwrap();
    assert!(error.starts_with("destination_not_allowed"), "{error}");
    assert!(error.contains("loopback"), "{error}");
    assert!(log[0]["attempts"][0].get("statusCode").is_none());
    assert!(rx.received().is_empty(), "nothing was sent");
}

#[test]
fn allowed_networks_let_a_self_hoster_reach_an_internal_receiver() {
    let hookd = Hookd::start_with(Settings {
        delivery: "allow_http = true\nallowed_networks = [\"127.0.0.0/8\"]".into(),
        strict_destinations: true,
        ..Settings::default()
    });
    let rx = Receiver::ok();
    let hook = hookd.create_webhook(USER, &rx.url("/internal"), &["*"], None);
    // Other private ranges stay closed.
    let r = hookd.post(
        "/api/hooks/webhooks",
        USER,
        r#"{"name":"n","url":"http://10.0.0.1/","eventTypes":["*"]}"#,
    );
    r.assert_error(422, "destination_not_allowed");
    hookd.publish("app:connected", "user-123", "{}", None);
    rx.wait_for(1, WAIT);
    hookd.wait_deliveries(USER, &hook, WAIT, |d| d[0]["status"] == "succeeded");
}

#[test]
fn check_config_rejects_bad_networks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[delivery]\nallowed_networks = [\"10.0.0.0/8\", \"10.0.0.0/40\", 7]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["check-config", "--config", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("delivery.allowed_networks[1]")
            && err.contains("delivery.allowed_networks[2]"),
        "{err}"
    );
}

/// Runs the official `standardwebhooks` library on each delivery; returns what it said.
/// `None` when no Python with the package is configured (HOOKD_TEST_PYTHON, set by .ci/run).
pub(crate) fn verify_with_official_library(
    secret_for_library: &str,
    deliveries: &[common::receiver::Received],
) -> Option<Vec<bool>> {
    let python = std::env::var_os("HOOKD_TEST_PYTHON");
    if !common::optional_tool(
        python.is_some(),
        "HOOKD_TEST_PYTHON is not set, so the standardwebhooks library does not check the \
         signatures (.ci/run installs it in a venv and sets it)",
    ) {
        return None;
    }
    let python = python.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<Value> = deliveries
        .iter()
        .map(|d| {
            serde_json::json!({
                "body": d.body_str(),
                "headers": {
                    "webhook-id": d.header("webhook-id"),
                    "webhook-timestamp": d.header("webhook-timestamp"),
                    "webhook-signature": d.header("webhook-signature"),
                }
            })
        })
        .collect();
    let file = dir.path().join("cases.json");
    std::fs::write(&file, serde_json::to_string(&cases).unwrap()).unwrap();
    let script = r#"
import json, sys
from standardwebhooks.webhooks import Webhook
secret, path = sys.argv[1], sys.argv[2]
out = []
for case in json.load(open(path)):
    try:
        Webhook(secret).verify(case["body"], case["headers"])
        out.append(True)
    except Exception as e:
        out.append(False)
print(json.dumps(out))
"#;
    let result = std::process::Command::new(python)
        .args(["-c", script, secret_for_library, file.to_str().unwrap()])
        .output()
        .expect("run python");
    assert!(
        result.status.success(),
        "{}",
        String::from_utf8_lossy(&result.stderr)
    );
    Some(serde_json::from_slice(&result.stdout).unwrap())
}

#[test]
fn standard_webhooks_signatures_verify_across_a_rotation() {
    use base64::Engine;
    let hookd = Hookd::start();
    let rx = Receiver::ok();
    // A plain secret: receivers hand base64(secret) to the libraries.
    let plain = hookd.create_webhook(USER, &rx.url("/plain"), &["app:*"], Some("plain-secret"));
    let rotated = hookd.create_webhook(
        USER,
        &rx.url("/rotated"),
        &["message:*"],
        Some("first-secret"),
    );
    hookd.publish(
        "app:connected",
        "user-123",
        r#"{"é":"✓","n":1.5e-7}"#,
        Some("sw-1"),
    );
    let first = rx.wait_for(1, WAIT);
    let d = &first[0];
    assert_eq!(
        d.header("webhook-id"),
        Some("sw-1"),
        "webhook-id is event.id"
    );
    assert_eq!(d.header("webhook-timestamp"), d.header("x-hook-timestamp"));
    assert!(d.header("webhook-signature").unwrap().starts_with("v1,"));
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    if let Some(ok) = verify_with_official_library(&b64("plain-secret"), &first) {
        assert_eq!(ok, [true]);
        assert_eq!(
            verify_with_official_library(&b64("wrong"), &first).unwrap(),
            [false]
        );
    }

    // Rotate with a generated secret: the answer shows it once.
    let r = hookd.post(
        &format!("/api/hooks/webhooks/{rotated}/rotate-secret"),
        USER,
        "{}",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let new_secret = r.json()["secret"].as_str().unwrap().to_string();
    assert!(
        new_secret.starts_with("whsec_") && new_secret.len() >= 6 + 43,
        "{new_secret}"
    );
    assert!(
        !hookd
            .webhook(USER, &rotated)
            .to_string()
            .contains(&new_secret)
    );
    hookd.publish("message:sent", "user-123", "{}", Some("sw-2"));
    let got = rx.wait_for(2, WAIT);
    let during = got.iter().find(|r| r.path == "/rotated").unwrap().clone();
    let sigs: Vec<&str> = during
        .header("webhook-signature")
        .unwrap()
        .split(' ')
        .collect();
    assert_eq!(
        sigs.len(),
        2,
        "old and new secret sign during the grace period"
    );
    let hex = {
        use hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(new_secret.as_bytes()).unwrap();
        mac.update(&during.body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    assert_eq!(
        during.header("x-hook-signature"),
        Some(hex.as_str()),
        "X-Hook-Signature uses the new secret"
    );
    if let Some(ok) = verify_with_official_library(&new_secret, std::slice::from_ref(&during)) {
        assert_eq!(
            ok,
            [true],
            "the generated whsec_ secret goes straight into the library"
        );
        assert_eq!(
            verify_with_official_library(&b64("first-secret"), std::slice::from_ref(&during))
                .unwrap(),
            [true],
            "the old one still verifies"
        );
    }

    // A rotation without grace drops the old secret at once.
    let r = hookd.post(
        &format!("/api/hooks/webhooks/{rotated}/rotate-secret"),
        USER,
        r#"{"secret":"third-secret","graceSeconds":0}"#,
    );
    assert_eq!(r.json()["secret"], "third-secret");
    hookd.publish("message:sent", "user-123", "{}", Some("sw-3"));
    let got = rx.wait_for(3, WAIT);
    let after = got.iter().rev().find(|r| r.path == "/rotated").unwrap();
    assert_eq!(
        after
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        1
    );

    // Validation and isolation.
    let path = format!("/api/hooks/webhooks/{rotated}/rotate-secret");
    hookd
        .post(&path, USER, r#"{"graceSeconds":-1}"#)
        .assert_error(400, "invalid_request");
    hookd
        .post(&path, USER, r#"{"graceSeconds":99999999}"#)
        .assert_error(400, "invalid_request");
    hookd
        .post(&path, USER, r#"{"secret":""}"#)
        .assert_error(400, "invalid_request");
    hookd
        .post(&path, USER, r#"{"bogus":1}"#)
        .assert_error(400, "invalid_request");
    hookd
        .post(&path, OTHER_USER, "{}")
        .assert_error(404, "not_found");
    hookd
        .request("GET", &path, Some(USER), None)
        .assert_error(405, "method_not_allowed");
    assert_eq!(
        hookd.request("POST", &path, Some(USER), None).status,
        200,
        "the body is optional"
    );
    let _ = plain;
}

#[test]
fn hostile_receivers_cost_one_bounded_attempt() {
    let hookd = Hookd::start_with(Settings {
        delivery: "timeout = \"1s\"\nretry_schedule = [\"0s\"]".into(),
        ..Settings::default()
    });
    let rx = Receiver::start(|req, _| match req.path.as_str() {
        "/endless" => Reply::EndlessBody,
        "/drip" => Reply::DripHeaders,
        "/huge" => Reply::HugeHeader,
        _ => Reply::Status(200),
    });
    let endless = hookd.create_webhook(USER, &rx.url("/endless"), &["*"], None);
    let drip = hookd.create_webhook(USER, &rx.url("/drip"), &["*"], None);
    let huge = hookd.create_webhook(USER, &rx.url("/huge"), &["*"], None);
    let started = Instant::now();
    hookd.publish("agent:invoked", "user-123", "{}", None);
    let done = |hook: &str| {
        hookd.wait_deliveries(USER, hook, WAIT, |d| {
            d.first().is_some_and(|d| d["status"] != "pending")
        })[0]
            .clone()
    };

    // The status decides: an endless 200 body is a success, read only a few KiB of.
    let d = done(&endless);
    assert_eq!(d["status"], "succeeded", "{d}");
    let body = d["attempts"][0]["responseBody"].as_str().unwrap();
    assert_eq!(body.len(), 1024, "the log keeps the first KiB");
    let d = done(&drip);
    assert_eq!(d["status"], "failed");
    assert!(
        d["attempts"][0]["error"]
            .as_str()
            .unwrap()
            .contains("timeout"),
        "{d}"
    );
    let d = done(&huge);
    assert_eq!(d["status"], "failed");
    assert!(d["attempts"][0].get("statusCode").is_none(), "{d}");
    // The endless body and the dripping headers would last 30 s: well under that means
    // the 1 s timeout (and the body cap) ended them.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "bounded by the 1 s timeout: {:?}",
        started.elapsed()
    );

    // The workers are free again: a normal receiver gets the next event at once.
    let ok = Receiver::ok();
    hookd.create_webhook(USER, &ok.url("/fine"), &["*"], None);
    hookd.publish("agent:invoked", "user-123", "{}", None);
    ok.wait_for(1, WAIT);
}

#[test]
fn tokens_and_secrets_never_reach_the_log() {
    // The most verbose level hookd (and every library it logs through) has: whatever a
    // debug line might print, a secret must not be in it.
    let hookd = Hookd::start_with(Settings {
        env: vec![("RUST_LOG".into(), "trace".into())],
        ..Settings::default()
    });
    let rx = Receiver::start(|_, _| Reply::Status(500));
    let first = "first-secret-QX7vT9-canary";
    let second = "second-secret-M4kP2w-canary";
    let hook = hookd.create_webhook(USER, &rx.url("/h"), &["*"], Some(first));
    let r = hookd.patch(
        &format!("/api/hooks/webhooks/{hook}"),
        USER,
        &format!(r#"{{"secret":"{second}"}}"#),
    );
    assert_eq!(r.status, 200, "the secret was changed: {}", r.body);
    assert!(!r.body.contains(second), "{}", r.body);
    let rotated = hookd
        .post(
            &format!("/api/hooks/webhooks/{hook}/rotate-secret"),
            USER,
            "{}",
        )
        .json()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    hookd
        .get("/api/hooks/webhooks", "guessed-token-value")
        .assert_error(401, "unauthorized");
    let payload_canary = "payload-canary-Z81fJq";
    hookd.publish(
        "app:connected",
        "user-123",
        &format!(r#"{{"note":"{payload_canary}"}}"#),
        None,
    );
    // The delivery went out signed with the secrets above (the grace period keeps the
    // second one signing too), so they were in use while logging at trace level.
    let got = rx.wait_for(1, WAIT);
    assert!(got[0].body_str().contains(payload_canary));
    assert_eq!(
        got[0]
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2,
        "old and new secret both signed"
    );
    hookd.wait_deliveries(USER, &hook, WAIT, |d| {
        !d[0]["attempts"].as_array().unwrap().is_empty()
    });
    assert!(
        hookd.wait_for_log("delivery attempt", WAIT),
        "attempts are logged:\n{}",
        hookd.log()
    );
    let log = hookd.log();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG"),
        "the log really is verbose:\n{log}"
    );
    // Neither are bodies (the event's payload is the user's data, and is signed).
    for secret in [
        first,
        second,
        rotated.as_str(),
        USER,
        PUBLISHER,
        "guessed-token-value",
        payload_canary,
    ] {
        assert!(
            !log.contains(secret),
            "{secret} leaked into the log:\n{log}"
        );
    }
}
