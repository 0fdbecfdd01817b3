//! Webhooks: the collection (create, list), one webhook (read, update, delete), secret
//! rotation, and the 422 of the default destination policy.

use serde_json::json;

use super::checker::{Checker, OpId, Req, start};
use super::paths::*;
use super::{UNKNOWN_WH, too_big};
use crate::common::{Hookd, OTHER_USER, PUBLISHER, Settings, USER};

pub const COVERS_COLLECTION: &[OpId] = &[("POST", HOOKS), ("GET", HOOKS)];
pub const COVERS_ITEM: &[OpId] = &[("GET", HOOK), ("PATCH", HOOK), ("DELETE", HOOK)];
pub const COVERS_ROTATE: &[OpId] = &[("POST", ROTATE)];

/// Creates a webhook through the checker and returns its id.
fn create(c: &Checker, body: &serde_json::Value) -> String {
    let r = c.expect(
        Req::new("POST", HOOKS).token(USER).json(&body.to_string()),
        201,
        "create",
    );
    r.json()["id"].as_str().expect("id").to_string()
}

fn port_nine(c: &Checker) -> String {
    create(
        c,
        &json!({
            "name": "Port nine", "url": "http://127.0.0.1:9/x",
            "eventTypes": ["message:*"], "secret": "s3cret"
        }),
    )
}

#[test]
fn create_and_list_webhooks() {
    let hookd = start();
    let c = Checker::new(&hookd);
    let create_a = json!({
        "name": "Port nine", "url": "http://127.0.0.1:9/x",
        "eventTypes": ["message:*"], "secret": "s3cret"
    })
    .to_string();
    c.expect(
        Req::new("POST", HOOKS)
            .token(USER)
            .body("text/plain", create_a.as_bytes()),
        415,
        "text/plain",
    );
    c.expect(Req::new("POST", HOOKS).token(USER), 415, "no body");
    c.expect(
        Req::new("POST", HOOKS).token(USER).json(&too_big()),
        413,
        "too large",
    );
    for bad in [
        "{\"name\":",
        "[]",
        "{}",
        r#"{"name":"a","url":"http://127.0.0.1:9/x","eventTypes":["*"],"color":"red"}"#,
        r#"{"name":"a","url":"ftp://127.0.0.1/x","eventTypes":["*"]}"#,
        r#"{"name":"a","url":"http://127.0.0.1:9/x","eventTypes":["app:nope"]}"#,
        r#"{"name":"  ","url":"http://127.0.0.1:9/x","eventTypes":["*"]}"#,
        r#"{"name":"a","url":"http://127.0.0.1:9/x","eventTypes":[]}"#,
        r#"{"name":"a","url":"http://127.0.0.1:9/x","eventTypes":["*"],"secret":""}"#,
        r#"{"name":1,"url":"http://127.0.0.1:9/x","eventTypes":["*"]}"#,
        r#"{"name":"a","url":"http://127.0.0.1:9/x","eventTypes":["*"],"headers":{"X-Hook-Id":"v"}}"#,
        r#"{"name":"a","url":"http://127.0.0.1:9/x","eventTypes":["*"],"headers":{"X-A":1}}"#,
        r#"{"name":"a","url":"http://127.0.0.1:9/x","eventTypes":["*"],"ordering":"lifo"}"#,
    ] {
        c.expect(Req::new("POST", HOOKS).token(USER).json(bad), 400, bad);
    }
    c.expect(
        Req::new("POST", HOOKS).token(USER).json(&create_a),
        201,
        "create A",
    );
    create(
        &c,
        &json!({
            "name": "Receiver", "url": "http://127.0.0.1:9/b", "eventTypes": ["*"], "secret": null,
            "headers": {"Authorization": "Bearer t0ken", "X-Tenant": "acme"}, "ordering": "fifo"
        }),
    );
    let create_c = json!({
        "name": "Duplicate types", "url": "http://127.0.0.1:9/c", "eventTypes": ["agent:*", "agent:*"]
    })
    .to_string();
    c.expect(
        Req::new("POST", HOOKS).token(USER).json(&create_c),
        201,
        "create C",
    );
    c.expect_error(
        Req::new("POST", HOOKS).token(USER).json(&create_c),
        409,
        "webhook_limit_reached",
        "a fourth webhook",
    );

    let r = c.expect(Req::new("GET", HOOKS).token(USER), 200, "list");
    assert_eq!(r.json().as_array().unwrap().len(), 3);
    let r = c.expect(
        Req::new("GET", HOOKS).token(OTHER_USER),
        200,
        "other user's list",
    );
    assert_eq!(r.json(), json!([]));
    c.finish(COVERS_COLLECTION);
}

#[test]
fn read_update_and_delete_a_webhook() {
    let hookd = start();
    let c = Checker::new(&hookd);
    let wh_a = port_nine(&c);
    let a_path = format!("{HOOKS}/{wh_a}");
    let unknown_path = format!("{HOOKS}/{UNKNOWN_WH}");

    // Read.
    c.expect(Req::new("GET", &a_path).token(USER), 200, "get A");
    c.expect(
        Req::new("GET", &a_path).token(OTHER_USER),
        404,
        "another user's",
    );
    c.expect(Req::new("GET", &a_path), 401, "get without token");
    c.expect(Req::new("GET", &unknown_path).token(USER), 404, "unknown");
    c.expect(
        Req::new("GET", &format!("{HOOKS}/wh-nope")).token(USER),
        404,
        "malformed",
    );
    c.expect(
        Req::new("GET", &format!("{HOOKS}/wh-{}", wh_a[3..].to_uppercase())).token(USER),
        404,
        "uppercase uuid",
    );

    // Update.
    let r = c.expect(
        Req::new("PATCH", &a_path)
            .token(USER)
            .json(r#"{"enabled":false}"#),
        200,
        "disable",
    );
    assert_eq!(r.json()["status"], "disabled");
    let r = c.expect(
        Req::new("PATCH", &a_path)
            .token(USER)
            .json(r#"{"enabled":true,"name":" Renamed ","eventTypes":["message:*","app:*"],"secret":null,"url":"http://127.0.0.1:9/y"}"#),
        200,
        "enable and change everything",
    );
    assert_eq!(r.json()["name"], "Renamed");
    c.expect(
        Req::new("PATCH", &a_path).token(USER).json("{}"),
        200,
        "empty patch",
    );
    c.expect(
        Req::new("PATCH", &a_path)
            .token(USER)
            .json(r#"{"secret":"again"}"#),
        200,
        "set a secret",
    );
    let r = c.expect(
        Req::new("PATCH", &a_path)
            .token(USER)
            .json(r#"{"headers":{"X-Api-Key":"k"},"ordering":"fifo"}"#),
        200,
        "set custom headers",
    );
    assert_eq!(r.json()["headers"], json!({"X-Api-Key": "<redacted>"}));
    let r = c.expect(
        Req::new("PATCH", &a_path)
            .token(USER)
            .json(r#"{"headers":{}}"#),
        200,
        "clear custom headers",
    );
    assert_eq!(r.json()["headers"], json!({}));
    for bad in [
        r#"{"name":null}"#,
        r#"{"url":null}"#,
        r#"{"enabled":null}"#,
        r#"{"eventTypes":null}"#,
        r#"{"eventTypes":[]}"#,
        r#"{"color":"red"}"#,
        r#"{"url":"ftp://x/y"}"#,
        r#"{"secret":""}"#,
        r#"{"headers":null}"#,
        r#"{"ordering":null}"#,
        r#"{"ordering":"FIFO"}"#,
        r#"{"headers":{"Content-Type":"text/plain"}}"#,
        "[",
    ] {
        c.expect(Req::new("PATCH", &a_path).token(USER).json(bad), 400, bad);
    }
    c.expect(
        Req::new("PATCH", &a_path).token(USER),
        415,
        "patch without body",
    );
    c.expect(
        Req::new("PATCH", &a_path)
            .token(USER)
            .body("application/xml", b"<a/>"),
        415,
        "patch xml",
    );
    c.expect(
        Req::new("PATCH", &a_path).token(USER).json(&too_big()),
        413,
        "patch 413",
    );
    c.expect(
        Req::new("PATCH", &unknown_path).token(USER).json("{}"),
        404,
        "patch unknown",
    );
    c.expect(
        Req::new("PATCH", &unknown_path)
            .token(USER)
            .json(r#"{"name":""}"#),
        400,
        "an empty name on an unknown webhook: 400 before 404",
    );
    c.expect_error(
        Req::new("PATCH", &unknown_path)
            .token(USER)
            .json(r#"{"url":"ftp://x/y"}"#),
        400,
        "invalid_request",
        "a bad URL on an unknown webhook: 400 before 404",
    );
    c.expect(
        Req::new("PATCH", &a_path).token(OTHER_USER).json("{}"),
        404,
        "other user",
    );
    c.expect(
        Req::new("PATCH", &a_path).token(PUBLISHER).json("{}"),
        403,
        "publisher",
    );

    // Delete.
    c.expect(
        Req::new("DELETE", &a_path).token(OTHER_USER),
        404,
        "delete another's",
    );
    c.expect(
        Req::new("DELETE", &a_path).token(PUBLISHER),
        403,
        "delete as publisher",
    );
    c.expect(Req::new("DELETE", &a_path).token(USER), 204, "delete");
    c.expect(Req::new("DELETE", &a_path).token(USER), 404, "delete again");
    c.expect(Req::new("GET", &a_path).token(USER), 404, "deleted");
    c.finish(COVERS_ITEM);
}

#[test]
fn rotate_a_webhook_secret() {
    let hookd = start();
    let c = Checker::new(&hookd);
    let wh_a = port_nine(&c);
    let rotate_a = format!("{HOOKS}/{wh_a}/rotate-secret");
    let r = c.expect(
        Req::new("POST", &rotate_a).token(USER),
        200,
        "rotate without body",
    );
    assert!(
        r.json()["secret"].as_str().unwrap().starts_with("whsec_"),
        "{}",
        r.body
    );
    let r = c.expect(
        Req::new("POST", &rotate_a)
            .token(USER)
            .json(r#"{"secret":"my-new-secret","graceSeconds":60}"#),
        200,
        "rotate to a given secret",
    );
    assert_eq!(r.json(), json!({"secret": "my-new-secret"}));
    c.expect(
        Req::new("POST", &rotate_a).token(USER).json("{}"),
        200,
        "rotate {}",
    );
    for bad in [
        r#"{"graceSeconds":999999999}"#,
        r#"{"graceSeconds":-1}"#,
        r#"{"secret":""}"#,
        r#"{"pepper":"x"}"#,
        "nope",
    ] {
        c.expect(Req::new("POST", &rotate_a).token(USER).json(bad), 400, bad);
    }
    c.expect(
        Req::new("POST", &rotate_a)
            .token(USER)
            .body("text/plain", b"{}"),
        415,
        "rotate text/plain",
    );
    c.expect(
        Req::new("POST", &rotate_a).token(USER).json(&too_big()),
        413,
        "rotate 413",
    );
    c.expect(
        Req::new("POST", &format!("{HOOKS}/{UNKNOWN_WH}/rotate-secret")).token(USER),
        404,
        "rotate unknown",
    );
    c.expect(
        Req::new("POST", &rotate_a).token(OTHER_USER),
        404,
        "rotate another user's",
    );
    c.finish(COVERS_ROTATE);
}

/// 422 needs the default destination policy (no http://, no private addresses).
#[test]
fn refused_destinations_answer_422() {
    let hookd = Hookd::start_with(Settings {
        strict_destinations: true,
        ..Settings::default()
    });
    let c = Checker::new(&hookd);
    for url in [
        "http://example.com/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/x",
    ] {
        let body = json!({"name": "n", "url": url, "eventTypes": ["*"]}).to_string();
        c.expect_error(
            Req::new("POST", HOOKS).token(USER).json(&body),
            422,
            "destination_not_allowed",
            url,
        );
    }
    let body = json!({"name": "n", "url": "https://hooks.example.invalid/x", "eventTypes": ["*"]})
        .to_string();
    let r = c.expect(
        Req::new("POST", HOOKS).token(USER).json(&body),
        201,
        "a host name",
    );
    let id = r.json()["id"].as_str().unwrap().to_string();
    c.expect(
        Req::new("PATCH", &format!("{HOOKS}/{id}"))
            .token(USER)
            .json(r#"{"url":"https://10.0.0.1/x"}"#),
        422,
        "a private address on update",
    );
    c.finish(&[]);
}
