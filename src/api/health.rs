//! `GET /healthz` (200 while the store can commit and answers reads; 503 with the reason
//! otherwise) and `GET /metrics` (Prometheus).

use hyper::StatusCode;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::AppState;
use super::error::{ApiError, HttpResponse, json_response};
use crate::store::tables::META;

pub fn healthz(state: &AppState) -> Result<HttpResponse, ApiError> {
    if let Some(fault) = state.store.health().fault() {
        return Ok(json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(r#"{{"status":"degraded","reason":"{}"}}"#, fault.code()),
        ));
    }
    match state.store.read(|r| Ok(r.open_table(META).map(|_| ())?)) {
        Ok(()) => Ok(json_response(StatusCode::OK, r#"{"status":"ok"}"#.into())),
        Err(e) => {
            tracing::error!(error = %e, "health check cannot read the store");
            Ok(json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"unavailable"}"#.into(),
            ))
        }
    }
}

pub fn metrics(state: &AppState) -> Result<HttpResponse, ApiError> {
    let now = crate::model::Millis::now();
    let g = state
        .store
        .read(|r| crate::store::ops::queue::gauges(r, now))?;
    let health = state.store.health();
    let store_bytes = std::fs::metadata(state.config.db_path())
        .map(|m| m.len())
        .unwrap_or(0);
    let text = state.metrics.render(&crate::metrics::StoreGauges {
        queue_depth: g.depth,
        queue_due: g.due,
        webhooks_healthy: g.healthy,
        webhooks_failing: g.failing,
        webhooks_disabled: g.disabled,
        store_bytes,
        store_up: health.commit_fault().is_none(),
        store_errors: health.errors(),
        store_free_bytes: health.free_bytes(),
        store_space_low: health.space_low(),
    });
    let mut response = json_response(StatusCode::OK, text);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
