//! Tokens and roles as the document states them: a missing, malformed or unknown token is
//! 401 with `WWW-Authenticate: Bearer` (checked on every 401 by the checker); a token of
//! the wrong role is 403, which comes before the media-type check (415).

use serde_json::json;

use super::checker::{Checker, Req, start};
use super::paths::*;
use crate::common::{ADMIN, PUBLISHER, USER};

#[test]
fn tokens_and_roles() {
    let hookd = start();
    let c = Checker::new(&hookd);
    let create = json!({
        "name": "Port nine", "url": "http://127.0.0.1:9/x",
        "eventTypes": ["message:*"], "secret": "s3cret"
    })
    .to_string();
    c.expect(Req::new("POST", HOOKS).json(&create), 401, "no token");
    c.expect(
        Req::new("POST", HOOKS)
            .authorization("Basic dXNlcjpwdw==")
            .json(&create),
        401,
        "basic auth",
    );
    c.expect(
        Req::new("POST", HOOKS)
            .authorization("Bearer ")
            .json(&create),
        401,
        "empty token",
    );
    c.expect(
        Req::new("POST", HOOKS).token("nope").json(&create),
        401,
        "unknown token",
    );
    c.expect(
        Req::new("POST", HOOKS).token(PUBLISHER).json(&create),
        403,
        "publisher creates a webhook",
    );
    c.expect(
        Req::new("GET", HOOKS).token(PUBLISHER),
        403,
        "publisher lists webhooks",
    );
    c.expect(
        Req::new("GET", EVENTS).token(PUBLISHER),
        403,
        "publisher reads events",
    );

    let event = json!({
        "type": "message:received", "userId": "user-123", "source": "whatsapp",
        "payload": {"text": "hi"}, "id": "msg-1"
    })
    .to_string();
    c.expect(
        Req::new("POST", EVENTS).json(&event),
        401,
        "ingest without token",
    );
    c.expect(
        Req::new("POST", EVENTS).token(USER).json(&event),
        403,
        "ingest as user",
    );
    c.expect(
        Req::new("POST", EVENTS)
            .token(USER)
            .body("text/plain", event.as_bytes()),
        403,
        "user + text/plain: 403 before 415",
    );

    // The admin token opens the admin endpoints only.
    for other in [HOOKS, EVENTS] {
        c.expect(
            Req::new("GET", other).token(ADMIN),
            403,
            "admin on a user endpoint",
        );
    }
    c.expect(
        Req::new("POST", EVENTS).token(ADMIN).json(&event),
        403,
        "admin ingests",
    );
    c.finish(&[]);
}
