//! `GET /healthz` (200 while the store can commit and answers reads; 503 with the reason
//! otherwise) and `GET /metrics` (Prometheus).

use std::sync::Arc;

use hyper::StatusCode;
use hyper::header::{CONTENT_TYPE, HeaderValue};

use super::AppState;
use super::error::{ApiError, HttpResponse, json_response};
use crate::metrics::{DUE_EVERY, Metrics};
use crate::model::Millis;
use crate::store::{Fault, Store};

/// The thread behind `hookd_queue_due`: while `/metrics` is scraped, counts the due
/// backlog every [`DUE_EVERY`] (on redb in bounded steps, each its own short read
/// transaction: `Store::due_count`), and publishes the total. A count that meets a store
/// fault is dropped (the last count stays) and made again at the next turn.
fn count_due_forever(store: &Store, metrics: &Metrics) {
    loop {
        if metrics.queue_due.wanted()
            && let Ok(due) = store.due_count(Millis::now())
        {
            metrics.queue_due.set(due);
        }
        std::thread::park_timeout(DUE_EVERY);
    }
}

/// The due backlog as last counted in the background ([`count_due_forever`], started by
/// the first look); `None` until the first count. Both `/metrics` and the operator view
/// read it, and either keeps the count going.
pub(super) fn queue_due(state: &AppState) -> Option<u64> {
    state.metrics.queue_due.scrape(|| {
        let store = state.store.clone();
        let metrics = Arc::clone(&state.metrics);
        match std::thread::Builder::new()
            .name("hookd-due-count".into())
            .spawn(move || count_due_forever(&store, &metrics))
        {
            Ok(handle) => handle.thread().clone(),
            Err(e) => {
                tracing::error!(error = %e, "cannot start the thread that counts hookd_queue_due");
                std::thread::current()
            }
        }
    })
}

pub async fn healthz(state: &AppState) -> Result<HttpResponse, ApiError> {
    let fault = match state.store.health().fault() {
        Some(fault) => fault,
        None => match state.store.ping().await {
            Ok(()) => return Ok(json_response(StatusCode::OK, r#"{"status":"ok"}"#.into())),
            Err(e) => {
                // A read that fails before any write has (PostgreSQL gone while idle) is
                // the same news as a write that fails: the contract's degraded answer.
                tracing::error!(error = %e, "health check cannot read the store");
                e.fault().unwrap_or(Fault::Unavailable)
            }
        },
    };
    Ok(json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        format!(r#"{{"status":"degraded","reason":"{}"}}"#, fault.code()),
    ))
}

/// Prometheus text. A scrape needs no token, so on redb it costs O(1) whatever the store
/// holds: one small read transaction of counters the store keeps (`store::tables`), and
/// the due backlog as last counted in the background ([`count_due_forever`]). On
/// PostgreSQL the gauges are counted by the database at each scrape (the queue's
/// partial index, the webhooks by status, `pg_database_size`): O(queue), not O(1), and
/// one reason to scrape a node no more than every few seconds.
pub async fn metrics(state: &AppState) -> Result<HttpResponse, ApiError> {
    // While the store is being reopened its gauges are left out; the health gauges
    // below say why.
    let counts = state
        .store
        .gauges()
        .await
        .map(|g| crate::metrics::StoreCounts {
            queue_depth: g.depth,
            webhooks_healthy: g.healthy,
            webhooks_failing: g.failing,
            webhooks_disabled: g.disabled,
        })
        .ok();
    let queue_due = queue_due(state);
    let health = state.store.health();
    let store_bytes = state.store.size_bytes().await.unwrap_or(0);
    let text = state.metrics.render(&crate::metrics::StoreGauges {
        counts,
        queue_due,
        store_bytes,
        store_up: health.commit_fault().is_none(),
        store_errors: health.errors(),
        store_free_bytes: health.free_bytes(),
        store_space_low: health.space_low(),
        notifications_open: state.store.open_notifications().await.ok(),
    });
    let mut response = json_response(StatusCode::OK, text);
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
