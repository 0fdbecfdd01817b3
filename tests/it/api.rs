//! The HTTP API against a real hookd: every route and status code documented in
//! `docs/openapi.yaml` that the core covers, user isolation, limits and the error
//! precedence the document states (route, method, token, role, media type, size, body,
//! resource, conflict).

use crate::common::{Hookd, OTHER_USER, PUBLISHER, Settings, USER, http, raw};
use serde_json::Value;

const HOOKS: &str = "/api/hooks/webhooks";
const EVENTS: &str = "/api/hooks/events";
const RECEIVER: &str = "http://127.0.0.1:9/hook";

fn is_rfc3339_z(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|s| s.ends_with('Z') && s.contains('T'))
}

#[test]
fn webhook_crud_follows_the_documented_api() {
    let hookd = Hookd::start();
    let created = hookd.post(
        HOOKS,
        USER,
        r#"{"name":"My Connection Monitor","url":"http://127.0.0.1:9/hook","eventTypes":["app:health_warning","app:health_cleared"],"secret":"optional-hmac-secret"}"#,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let hook = created.json();
    let id = hook["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("wh-") && id.len() == 39, "{id}");
    assert_eq!(hook["name"], "My Connection Monitor");
    assert_eq!(hook["url"], "http://127.0.0.1:9/hook");
    assert_eq!(
        hook["eventTypes"],
        serde_json::json!(["app:health_warning", "app:health_cleared"])
    );
    assert_eq!(hook["enabled"], true);
    assert_eq!(hook["status"], "healthy");
    assert!(is_rfc3339_z(&hook["createdAt"]) && is_rfc3339_z(&hook["updatedAt"]));
    assert!(
        hook.get("secret").is_none(),
        "the secret must never be returned"
    );
    assert!(!created.body.contains("optional-hmac-secret"));

    let got = hookd.get(&format!("{HOOKS}/{id}"), USER);
    assert_eq!(got.status, 200);
    assert_eq!(got.json(), hook);

    let second = hookd.create_webhook(USER, RECEIVER, &["*"], None);
    let list = hookd.get(HOOKS, USER);
    assert_eq!(list.status, 200);
    let ids: Vec<String> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec![id.clone(), second.clone()], "oldest first");
    assert!(!list.body.contains("secret"));

    let patched = hookd.patch(
        &format!("{HOOKS}/{id}"),
        USER,
        r#"{"name":"Updated Name","eventTypes":["app:health_warning"],"enabled":false}"#,
    );
    assert_eq!(patched.status, 200, "{}", patched.body);
    let p = patched.json();
    assert_eq!(p["name"], "Updated Name");
    assert_eq!(p["eventTypes"], serde_json::json!(["app:health_warning"]));
    assert_eq!(p["enabled"], false);
    assert_eq!(p["status"], "disabled");
    assert_eq!(p["createdAt"], hook["createdAt"]);

    let reenabled = hookd.patch(
        &format!("{HOOKS}/{id}"),
        USER,
        r#"{"enabled":true,"secret":null,"url":"http://127.0.0.1:10/x"}"#,
    );
    assert_eq!(reenabled.status, 200, "{}", reenabled.body);
    assert_eq!(reenabled.json()["status"], "healthy");
    assert_eq!(reenabled.json()["url"], "http://127.0.0.1:10/x");

    for bad in [
        r#"{"name":null}"#,
        r#"{"url":null}"#,
        r#"{"eventTypes":[]}"#,
        r#"{"enabled":"yes"}"#,
        r#"{"secret":""}"#,
        r#"{"bogus":1}"#,
    ] {
        hookd
            .patch(&format!("{HOOKS}/{id}"), USER, bad)
            .assert_error(400, "invalid_request");
    }

    let deleted = hookd.delete(&format!("{HOOKS}/{id}"), USER);
    assert_eq!(deleted.status, 204);
    assert!(deleted.body.is_empty());
    hookd
        .get(&format!("{HOOKS}/{id}"), USER)
        .assert_error(404, "not_found");
    hookd
        .delete(&format!("{HOOKS}/{id}"), USER)
        .assert_error(404, "not_found");
    assert_eq!(hookd.get(HOOKS, USER).json().as_array().unwrap().len(), 1);
}

#[test]
fn webhook_validation_answers_400() {
    let hookd = Hookd::start();
    let cases = [
        ("malformed JSON", "{\"name\":"),
        ("not an object", "[]"),
        ("missing url", r#"{"name":"n","eventTypes":["*"]}"#),
        (
            "empty name",
            r#"{"name":"  ","url":"http://127.0.0.1:9/","eventTypes":["*"]}"#,
        ),
        (
            "wrong type",
            r#"{"name":5,"url":"http://127.0.0.1:9/","eventTypes":["*"]}"#,
        ),
        (
            "unknown field",
            r#"{"name":"n","url":"http://127.0.0.1:9/","eventTypes":["*"],"extra":1}"#,
        ),
        (
            "unknown event type",
            r#"{"name":"n","url":"http://127.0.0.1:9/","eventTypes":["app:exploded"]}"#,
        ),
        (
            "unknown group",
            r#"{"name":"n","url":"http://127.0.0.1:9/","eventTypes":["billing:*"]}"#,
        ),
        (
            "no event types",
            r#"{"name":"n","url":"http://127.0.0.1:9/","eventTypes":[]}"#,
        ),
        (
            "invalid url",
            r#"{"name":"n","url":"not a url","eventTypes":["*"]}"#,
        ),
        (
            "ftp url",
            r#"{"name":"n","url":"ftp://example.com/","eventTypes":["*"]}"#,
        ),
        (
            "relative url",
            r#"{"name":"n","url":"/hook","eventTypes":["*"]}"#,
        ),
        (
            "empty secret",
            r#"{"name":"n","url":"http://127.0.0.1:9/","eventTypes":["*"],"secret":""}"#,
        ),
        (
            "long secret",
            &format!(
                r#"{{"name":"n","url":"http://127.0.0.1:9/","eventTypes":["*"],"secret":"{}"}}"#,
                "s".repeat(257)
            ),
        ),
        (
            "duplicate key",
            r#"{"name":"n","name":"m","url":"http://127.0.0.1:9/","eventTypes":["*"]}"#,
        ),
        ("empty body", ""),
    ];
    for (what, body) in cases {
        let r = hookd.request("POST", HOOKS, Some(USER), Some(body));
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        assert_eq!(r.json()["code"], "invalid_request", "{what}");
    }
    // Group wildcards and the catch-all are accepted.
    for types in [r#"["app:*"]"#, r#"["message:*","agent:error"]"#, r#"["*"]"#] {
        let r = hookd.post(
            HOOKS,
            USER,
            &format!(r#"{{"name":"n","url":"http://127.0.0.1:9/","eventTypes":{types}}}"#),
        );
        assert_eq!(r.status, 201, "{types}: {}", r.body);
    }
    assert_eq!(
        hookd.get(HOOKS, USER).json().as_array().unwrap().len(),
        3,
        "nothing else was stored"
    );
}

#[test]
fn users_are_isolated_and_limited() {
    let hookd = Hookd::start();
    let mine = hookd.create_webhook(USER, RECEIVER, &["*"], None);
    let path = format!("{HOOKS}/{mine}");
    // Another user's webhook answers exactly like a missing one.
    hookd.get(&path, OTHER_USER).assert_error(404, "not_found");
    hookd
        .patch(&path, OTHER_USER, r#"{"name":"x"}"#)
        .assert_error(404, "not_found");
    hookd
        .delete(&path, OTHER_USER)
        .assert_error(404, "not_found");
    hookd
        .get(&format!("{path}/deliveries"), OTHER_USER)
        .assert_error(404, "not_found");
    assert_eq!(hookd.get(HOOKS, OTHER_USER).json(), serde_json::json!([]));
    assert_eq!(hookd.get(&path, USER).status, 200, "still there");

    for _ in 1..10 {
        hookd.create_webhook(USER, RECEIVER, &["*"], None);
    }
    // Disabled webhooks count toward the limit too.
    let r = hookd.patch(&path, USER, r#"{"enabled":false}"#);
    assert_eq!(r.json()["status"], "disabled", "{}", r.body);
    let eleventh = hookd.post(
        HOOKS,
        USER,
        r#"{"name":"n","url":"http://127.0.0.1:9/","eventTypes":["*"]}"#,
    );
    eleventh.assert_error(409, "webhook_limit_reached");
    assert_eq!(hookd.get(HOOKS, USER).json().as_array().unwrap().len(), 10);
    // Other users are not affected by this user's count.
    hookd.create_webhook(OTHER_USER, RECEIVER, &["*"], None);
    // Deleting one makes room again.
    assert_eq!(hookd.delete(&path, USER).status, 204);
    hookd.create_webhook(USER, RECEIVER, &["*"], None);
}

#[test]
fn configured_webhook_limit_applies() {
    let hookd = Hookd::start_with(Settings {
        limits: "max_webhooks_per_user = 2".into(),
        ..Settings::default()
    });
    hookd.create_webhook(USER, RECEIVER, &["*"], None);
    hookd.create_webhook(USER, RECEIVER, &["*"], None);
    hookd
        .post(
            HOOKS,
            USER,
            r#"{"name":"n","url":"http://127.0.0.1:9/","eventTypes":["*"]}"#,
        )
        .assert_error(409, "webhook_limit_reached");
}

#[test]
fn authentication_and_roles() {
    let hookd = Hookd::start();
    let missing = hookd.request("GET", HOOKS, None, None);
    missing.assert_error(401, "unauthorized");
    assert_eq!(missing.header("www-authenticate"), Some("Bearer"));
    for header in [
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer ",
        "bearer-x",
        "Token abc",
    ] {
        let r = http(hookd.addr, "GET", HOOKS, &[("Authorization", header)], None);
        r.assert_error(401, "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{header}");
    }
    hookd
        .get(HOOKS, "not-a-known-token")
        .assert_error(401, "unauthorized");
    // The scheme is case-insensitive.
    let lower = http(
        hookd.addr,
        "GET",
        HOOKS,
        &[("Authorization", &format!("bearer {USER}"))],
        None,
    );
    assert_eq!(lower.status, 200);

    // A publisher on user endpoints, a user on the publisher endpoint: 403.
    hookd.get(HOOKS, PUBLISHER).assert_error(403, "forbidden");
    hookd.get(EVENTS, PUBLISHER).assert_error(403, "forbidden");
    // (The publisher's own endpoint takes the same token: 202.)
    hookd.publish("app:connected", "user-123", "{}", None);
    hookd
        .post(
            EVENTS,
            USER,
            r#"{"type":"app:connected","userId":"user-123","source":"s","payload":{}}"#,
        )
        .assert_error(403, "forbidden");

    // Health needs no token.
    let health = hookd.request("GET", "/healthz", None, None);
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), serde_json::json!({"status": "ok"}));
}

#[test]
fn routing_errors_and_precedence() {
    let hookd = Hookd::start();
    for path in [
        "/",
        "/api",
        "/api/hooks/nothing",
        "/api/hooks/webhooks/",
        "/healthz/x",
        "/api/hooks/webhooks/a/b/c/d/e",
    ] {
        let r = hookd.request("GET", path, None, None);
        r.assert_error(404, "not_found");
    }
    // 405 comes before 401, and names the allowed methods.
    let r = hookd.request("PUT", HOOKS, None, None);
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = hookd.request("POST", "/api/hooks/webhooks/wh-x", Some(USER), Some("{}"));
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, PATCH, DELETE"));
    let r = hookd.request("DELETE", "/healthz", None, None);
    assert_eq!(r.header("allow"), Some("GET"));

    // 401 before 415 and 413.
    let r = http(
        hookd.addr,
        "POST",
        HOOKS,
        &[("Content-Type", "text/plain")],
        Some(b"x"),
    );
    r.assert_error(401, "unauthorized");
    // 403 before 415.
    let auth = format!("Bearer {PUBLISHER}");
    let r = http(
        hookd.addr,
        "POST",
        HOOKS,
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some(b"x"),
    );
    r.assert_error(403, "forbidden");

    // 415 for anything but JSON, including form posts (curl -d without a content type).
    let auth = format!("Bearer {USER}");
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
    ] {
        let r = http(
            hookd.addr,
            "POST",
            HOOKS,
            &[("Authorization", &auth), ("Content-Type", ct)],
            Some(b"{}"),
        );
        r.assert_error(415, "unsupported_media_type");
    }
    let r = http(
        hookd.addr,
        "POST",
        HOOKS,
        &[("Authorization", &auth)],
        Some(b"{}"),
    );
    r.assert_error(415, "unsupported_media_type");
    // Parameters on the media type are fine.
    let r = http(
        hookd.addr,
        "POST",
        HOOKS,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json; charset=utf-8"),
        ],
        Some(br#"{"name":"n","url":"http://127.0.0.1:9/","eventTypes":["*"]}"#),
    );
    assert_eq!(r.status, 201, "{}", r.body);

    // 415 before 413; 413 before 400.
    let big = vec![b'x'; 300 * 1024];
    let r = http(
        hookd.addr,
        "POST",
        HOOKS,
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some(&big),
    );
    r.assert_error(415, "unsupported_media_type");
    let r = http(
        hookd.addr,
        "POST",
        HOOKS,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        Some(&big),
    );
    r.assert_error(413, "payload_too_large");

    // 400 before the resource's 404; 404 before 422.
    let missing = format!("{HOOKS}/wh-00000000-0000-7000-8000-000000000000");
    hookd
        .patch(&missing, USER, r#"{"name":null}"#)
        .assert_error(400, "invalid_request");
    hookd
        .patch(&missing, USER, r#"{"name":"ok"}"#)
        .assert_error(404, "not_found");
    hookd
        .get(&format!("{HOOKS}/not-an-id"), USER)
        .assert_error(404, "not_found");
}

#[test]
fn body_limit_is_enforced_while_streaming() {
    let hookd = Hookd::start_with(Settings {
        limits: "max_payload_bytes = 2048".into(),
        ..Settings::default()
    });
    // A chunked body has no Content-Length to refuse up front: the limit must hold while reading.
    let chunk = format!("{:x}\r\n{}\r\n", 1000, "a".repeat(1000));
    let mut req = format!(
        "POST {EVENTS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {PUBLISHER}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for _ in 0..5 {
        req.extend_from_slice(chunk.as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    raw(hookd.addr, &req).assert_error(413, "payload_too_large");
    // Just under the limit is fine.
    let payload = format!(r#"{{"pad":"{}"}}"#, "p".repeat(1800));
    assert_eq!(
        hookd
            .ingest("app:connected", "user-123", &payload, None)
            .status,
        202
    );
}

#[test]
fn destinations_are_checked_at_create_and_update() {
    let hookd = Hookd::start_with(Settings {
        strict_destinations: true,
        ..Settings::default()
    });
    let create = |url: &str| {
        hookd.post(
            HOOKS,
            USER,
            &format!(r#"{{"name":"n","url":"{url}","eventTypes":["*"]}}"#),
        )
    };
    create("http://example.com/hook").assert_error(422, "destination_not_allowed");
    for url in [
        "https://127.0.0.1/",
        "https://10.1.2.3/",
        "https://100.64.0.1/",
        "https://169.254.169.254/latest",
        "https://172.16.0.1/",
        "https://192.168.1.1/",
        "https://0.0.0.0/",
        "https://224.0.0.1/",
        "https://255.255.255.255/",
        "https://192.0.2.1/",
        "https://198.51.100.1/",
        "https://203.0.113.1/",
        "https://198.18.0.1/",
        "https://[::1]/",
        "https://[fc00::1]/",
        "https://[fe80::1]/",
        "https://[::]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[64:ff9b::a9fe:a9fe]/",
        "https://[2001:db8::1]/",
        "https://[ff02::1]/",
        "https://192.88.99.1/",
        "https://240.0.0.1/",
        "https://[100::1]/",
        "https://[3fff::1]/",
        "https://[2002:7f00:1::]/",
        "https://[64:ff9b:1::1]/",
        "https://[fec0::1]/",
        "https://[::127.0.0.1]/",
        "https://[::ffff:0:a00:1]/",
    ] {
        create(url).assert_error(422, "destination_not_allowed");
    }
    create("https://2130706433/").assert_error(400, "invalid_request");
    // Hostnames are accepted at create time, even when they do not resolve.
    let ok = create("https://hooks.example.invalid/receive");
    assert_eq!(ok.status, 201, "{}", ok.body);
    let id = ok.json()["id"].as_str().unwrap().to_string();
    hookd
        .patch(
            &format!("{HOOKS}/{id}"),
            USER,
            r#"{"url":"https://[::1]:8443/"}"#,
        )
        .assert_error(422, "destination_not_allowed");
    assert_eq!(
        hookd.get(&format!("{HOOKS}/{id}"), USER).json()["url"],
        "https://hooks.example.invalid/receive"
    );
}

#[test]
fn hostile_requests_get_4xx_not_crashes() {
    let hookd = Hookd::start();
    let auth = format!("Bearer {USER}");
    // Invalid UTF-8, deep nesting, garbage.
    for body in [
        &b"\xff\xfe{}"[..],
        "[".repeat(100_000).as_bytes(),
        b"\x00\x01",
        b"{\"name\":\"\xc3\x28\"}",
    ] {
        let r = http(
            hookd.addr,
            "POST",
            HOOKS,
            &[
                ("Authorization", &auth),
                ("Content-Type", "application/json"),
            ],
            Some(body),
        );
        assert_eq!(r.status, 400, "{}", r.body);
    }
    let auth_p = format!("Bearer {PUBLISHER}");
    let deep = format!(
        r#"{{"type":"app:connected","userId":"u","source":"s","payload":{}1{}}}"#,
        "[".repeat(50_000),
        "]".repeat(50_000)
    );
    let r = http(
        hookd.addr,
        "POST",
        EVENTS,
        &[
            ("Authorization", &auth_p),
            ("Content-Type", "application/json"),
        ],
        Some(deep.as_bytes()),
    );
    r.assert_error(400, "invalid_request");
    // Odd methods and paths.
    for req in [
        "BREW /api/hooks/webhooks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "GET /%ff%00 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let r = raw(hookd.addr, req.as_bytes());
        assert!((400..500).contains(&r.status), "{req:?} → {}", r.status);
    }
    // A header section over the limit is refused by the parser, not buffered.
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100_000)
    );
    let r = raw(hookd.addr, huge.as_bytes());
    assert!((400..500).contains(&r.status), "{}", r.status);
    // Still healthy.
    assert_eq!(hookd.request("GET", "/healthz", None, None).status, 200);
}

#[test]
fn precedence_details_found_by_the_openapi_check() {
    let hookd = Hookd::start();
    // A malformed URL is a 400 even when the webhook does not exist (400 before 404).
    let missing = format!("{HOOKS}/wh-00000000-0000-7000-8000-000000000000");
    hookd
        .patch(&missing, USER, r#"{"url":"ftp://x/y"}"#)
        .assert_error(400, "invalid_request");
    // Endpoints that take no body still refuse one that is not JSON.
    let hook = hookd.create_webhook(USER, RECEIVER, &["*"], None);
    let auth = format!("Bearer {USER}");
    let r = http(
        hookd.addr,
        "DELETE",
        &format!("{HOOKS}/{hook}"),
        &[("Authorization", &auth), ("Content-Type", "text/plain")],
        Some(b"hello"),
    );
    r.assert_error(415, "unsupported_media_type");
    assert_eq!(
        hookd.get(&format!("{HOOKS}/{hook}"), USER).status,
        200,
        "nothing was deleted"
    );
    // Percent-encoded event ids are decoded.
    hookd.publish("message:sent", "user-123", "{}", Some("msg:1"));
    assert_eq!(hookd.get(&format!("{EVENTS}/msg%3A1"), USER).status, 200);
    // Any positive limit is clamped, however many digits it has.
    assert_eq!(
        hookd
            .get(&format!("{EVENTS}?limit=99999999999999999999"), USER)
            .status,
        200
    );
    let r = hookd.post("/api/admin/backup", USER, "{}");
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("needs an admin token"),
        "{}",
        r.body
    );
}
