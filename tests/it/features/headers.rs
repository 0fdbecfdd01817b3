//! Custom headers: sent on every attempt, shown as `"<redacted>"` in every answer,
//! replaced or cleared by a PATCH, kept by one without them, never in the log (not even
//! at trace level), and refused with a 400 that names the header when hookd owns it.

use serde_json::{Value, json};

use super::{WAIT, settings};
use crate::common::receiver::{Receiver, Reply};
use crate::common::{Hookd, Settings, USER};

const TOKEN_CANARY: &str = "QzX9vK2mWp7Lr4TyHb3N";
const TENANT_CANARY: &str = "tenant-Jd8sK1pQ0wRf5Zx";

fn redacted(names: &[&str]) -> Value {
    Value::Object(
        names
            .iter()
            .map(|n| (n.to_string(), json!("<redacted>")))
            .collect(),
    )
}

/// No 8-character piece of `secret` is in `log`: a wire dump cuts what it prints into
/// rows, so a leak would not show the whole value in one place.
fn assert_not_logged(log: &str, secret: &str) {
    let chars: Vec<char> = secret.chars().collect();
    for piece in chars.windows(8) {
        let piece: String = piece.iter().collect();
        assert!(
            !log.contains(&piece),
            "{piece:?} of {secret:?} is in the log:\n{log}"
        );
    }
}

#[test]
fn custom_headers_go_out_on_every_attempt_and_no_answer_or_log_shows_them() {
    let hookd = Hookd::start_with(Settings {
        env: vec![("RUST_LOG".into(), "trace".into())],
        ..settings(r#"retry_schedule = ["0s", "100ms"]"#)
    });
    // Every first attempt fails, so each delivery is attempted twice.
    let rx = Receiver::start(|req, _| {
        Reply::Status(if req.header("x-hook-attempt") == Some("1") {
            500
        } else {
            200
        })
    });
    let body = json!({
        "name": "n8n", "url": rx.url("/h"), "eventTypes": ["*"],
        "headers": {"Authorization": format!("Bearer {TOKEN_CANARY}"), "X-Tenant": TENANT_CANARY}
    });
    let r = hookd.post("/api/hooks/webhooks", USER, &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let created = r.json();
    let hook = created["id"].as_str().unwrap().to_string();
    let path = format!("/api/hooks/webhooks/{hook}");
    let shown = redacted(&["Authorization", "X-Tenant"]);
    let mut answers = vec![r.body.clone()];
    assert_eq!(created["headers"], shown);

    let r = hookd.get(&path, USER);
    assert_eq!(r.json()["headers"], shown, "{}", r.body);
    answers.push(r.body);
    let r = hookd.get("/api/hooks/webhooks", USER);
    assert_eq!(r.json()[0]["headers"], shown, "{}", r.body);
    answers.push(r.body);

    // Both attempts carry both headers, byte for byte.
    hookd.publish("app:connected", "user-123", "{}", Some("hdr-1"));
    let got = rx.wait_for(2, WAIT);
    for (attempt, req) in got.iter().enumerate() {
        assert_eq!(
            req.header("x-hook-attempt"),
            Some((attempt + 1).to_string().as_str())
        );
        assert_eq!(
            req.header("authorization"),
            Some(format!("Bearer {TOKEN_CANARY}").as_str())
        );
        assert_eq!(req.header("x-tenant"), Some(TENANT_CANARY));
    }

    // A PATCH without `headers` keeps them.
    let r = hookd.patch(&path, USER, r#"{"name":"renamed"}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"], shown);
    answers.push(r.body);
    hookd.publish("app:connected", "user-123", "{}", Some("hdr-2"));
    let got = rx.wait_for(4, WAIT);
    assert!(
        got[2..]
            .iter()
            .all(|r| r.header("x-tenant") == Some(TENANT_CANARY))
    );

    // A PATCH with `headers` replaces the whole set.
    let r = hookd.patch(
        &path,
        USER,
        r#"{"headers":{"X-Api-Key":"k-7Hq2Lm9Xc4Vb8Nz1"}}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"], redacted(&["X-Api-Key"]));
    assert!(!r.body.contains("k-7Hq2Lm9Xc4Vb8Nz1"), "{}", r.body);
    answers.push(r.body);
    hookd.publish("app:connected", "user-123", "{}", Some("hdr-3"));
    let got = rx.wait_for(6, WAIT);
    for req in &got[4..] {
        assert_eq!(req.header("x-api-key"), Some("k-7Hq2Lm9Xc4Vb8Nz1"));
        assert_eq!(req.header("authorization"), None);
        assert_eq!(req.header("x-tenant"), None);
    }

    // `{}` clears it; `null` is refused.
    hookd
        .patch(&path, USER, r#"{"headers":null}"#)
        .assert_error(400, "invalid_request");
    let r = hookd.patch(&path, USER, r#"{"headers":{}}"#);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"], json!({}));
    hookd.publish("app:connected", "user-123", "{}", Some("hdr-4"));
    let got = rx.wait_for(8, WAIT);
    assert!(got[6..].iter().all(|r| r.header("x-api-key").is_none()));

    for answer in &answers {
        for secret in [TOKEN_CANARY, TENANT_CANARY, "k-7Hq2Lm9Xc4Vb8Nz1"] {
            assert!(!answer.contains(secret), "{secret} in an answer: {answer}");
        }
    }
    assert!(hookd.wait_for_log("delivery attempt", WAIT));
    let log = hookd.log();
    assert!(
        log.contains("TRACE"),
        "the log really is at trace level:\n{log}"
    );
    for secret in [TOKEN_CANARY, TENANT_CANARY, "k-7Hq2Lm9Xc4Vb8Nz1"] {
        assert_not_logged(&log, secret);
    }
}

#[test]
fn headers_hookd_owns_or_that_break_the_rules_are_refused_by_name() {
    let hookd = Hookd::start();
    let create = |headers: &str| {
        hookd.post(
            "/api/hooks/webhooks",
            USER,
            &format!(
                r#"{{"name":"h","url":"http://127.0.0.1:9/h","eventTypes":["*"],"headers":{headers}}}"#
            ),
        )
    };
    let hook = hookd.create_webhook(USER, "http://127.0.0.1:9/h", &["*"], None);
    let path = format!("/api/hooks/webhooks/{hook}");
    for name in [
        "Host",
        "content-length",
        "Content-Type",
        "Transfer-Encoding",
        "CONNECTION",
        "User-Agent",
        "traceparent",
        "Tracestate",
        "X-Hook-Signature",
        "x-hook-event",
        "X-HOOK-Custom",
        "webhook-signature",
        "Webhook-Id",
        "webhook-anything",
    ] {
        for r in [
            create(&format!(r#"{{"{name}":"v"}}"#)),
            hookd.patch(&path, USER, &format!(r#"{{"headers":{{"{name}":"v"}}}}"#)),
        ] {
            r.assert_error(400, "invalid_request");
            assert!(
                r.json()["error"].as_str().unwrap().contains(name),
                "{name}: {}",
                r.body
            );
        }
    }
    let eleven: Vec<String> = (0..11).map(|i| format!(r#""X-H{i}":"v""#)).collect();
    let too_long = format!(r#"{{"X-Long":"{}"}}"#, "v".repeat(1025));
    for (headers, named) in [
        (format!("{{{}}}", eleven.join(",")), "at most 10"),
        (r#"{"X-A":"line\r\nX-Injected: 1"}"#.to_string(), "X-A"),
        (r#"{"X-A":"caf\u00e9"}"#.to_string(), "X-A"),
        (r#"{"Bad Name":"v"}"#.to_string(), "Bad Name"),
        (r#"{"X-Num":42}"#.to_string(), "X-Num"),
        (r#"{"x-dup":"1","X-Dup":"2"}"#.to_string(), "X-Dup"),
        (too_long, "X-Long"),
        (r#"["X-A"]"#.to_string(), "headers"),
    ] {
        let r = create(&headers);
        r.assert_error(400, "invalid_request");
        assert!(
            r.json()["error"].as_str().unwrap().contains(named),
            "{headers}: {}",
            r.body
        );
    }
    // At the limits: ten headers, a 1,024-byte value of visible ASCII and spaces.
    let ten: Vec<String> = (0..9).map(|i| format!(r#""X-H{i}":"v""#)).collect();
    let full = format!(r#"{{{},"X-Full":"{}"}}"#, ten.join(","), "~ ".repeat(512));
    let r = create(&full);
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.json()["headers"].as_object().unwrap().len(), 10);
    // Nothing refused was stored.
    assert_eq!(hookd.webhook(USER, &hook)["headers"], json!({}));
}
