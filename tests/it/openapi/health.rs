//! `GET /healthz` and `GET /metrics`: no token, the documented bodies.

use super::checker::{Checker, OpId, Req, start};
use super::paths::*;

pub const COVERS: &[OpId] = &[("GET", HEALTHZ), ("GET", METRICS)];

#[test]
fn health_and_metrics_need_no_token() {
    let hookd = start();
    let c = Checker::new(&hookd);
    let r = c.expect(Req::new("GET", HEALTHZ), 200, "healthz");
    assert_eq!(r.json(), serde_json::json!({"status": "ok"}));
    let r = c.expect(Req::new("GET", METRICS), 200, "metrics");
    assert!(r.body.contains("# TYPE"), "{}", r.body);
    c.finish(COVERS);
}
