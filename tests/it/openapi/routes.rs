//! Every documented path and method exists on the server and needs the documented role
//! (no token: 401; a token of each other role: 403; its own role gets past both); a
//! method the document does not list answers 405 with exactly the documented `Allow`;
//! paths off the document answer 404 "no such route".

use super::checker::{Checker, Req, is_no_such_route, placeholder, start};
use crate::common::{ADMIN, PUBLISHER, USER};

#[test]
fn every_documented_route_exists_with_its_role() {
    let hookd = start();
    let c = Checker::new(&hookd);
    let tokens = [("user", USER), ("publisher", PUBLISHER), ("admin", ADMIN)];
    for op in &c.api.ops {
        let path = placeholder(&op.path);
        let exists = |r: &crate::common::Resp| {
            assert!(
                !(is_no_such_route(r) || r.status == 405),
                "{} {} (as {path}) does not exist on the server: {} {}",
                op.method,
                op.path,
                r.status,
                r.body
            );
        };
        let r = c.send(Req::new(&op.method, &path));
        exists(&r);
        match &op.role {
            None => assert_eq!(
                r.status, 200,
                "{} {path} needs no token: {}",
                op.method, r.body
            ),
            Some(role) => {
                assert_eq!(
                    r.status, 401,
                    "{} {path} without a token: {}",
                    op.method, r.body
                );
                for (other, token) in tokens {
                    if other == role {
                        continue;
                    }
                    let r = c.send(Req::new(&op.method, &path).token(token));
                    exists(&r);
                    assert_eq!(
                        r.status, 403,
                        "{} {path} with a {other} token (needs {role}): {}",
                        op.method, r.body
                    );
                }
                let (_, own) = tokens
                    .iter()
                    .find(|(r, _)| r == role)
                    .unwrap_or_else(|| panic!("no test token for role {role}"));
                let r = c.send(Req::new(&op.method, &path).token(own));
                exists(&r);
                assert!(
                    ![401, 403].contains(&r.status),
                    "{} {path} with a {role} token: {}",
                    op.method,
                    r.body
                );
            }
        }
    }
    for template in c.api.templates() {
        // PUT is documented nowhere: a 405 with the documented Allow (checked by `send`).
        let r = c.send(Req::new("PUT", &placeholder(template)).token(USER));
        assert_eq!(r.status, 405, "PUT {template}: {}", r.body);
    }
    for (method, path) in [
        ("HEAD", "/api/hooks/webhooks"),
        ("OPTIONS", "/healthz"),
        ("POST", "/healthz"),
        ("DELETE", "/api/hooks/events"),
        (
            "GET",
            "/api/hooks/webhooks/wh-00000000-0000-4000-8000-000000000000/recover",
        ),
    ] {
        let r = c.send(Req::new(method, path).token(USER));
        assert_eq!(r.status, 405, "{method} {path}: {}", r.body);
    }
    for path in [
        "/api/hooks/nope",
        "/api/hooks/webhooks/",
        "/api/hooks/webhooks//deliveries",
        "/healthz/",
        "/api/admin",
    ] {
        let r = c.send(Req::new("GET", path).token(USER));
        assert!(is_no_such_route(&r), "GET {path}: {} {}", r.status, r.body);
    }
    c.finish(&[]);
}
