//! The HTTP API: a hyper 1 server with a hand-rolled router.
//!
//! Request flow, in the order the contract's error precedence demands: route (404) →
//! method (405) → token (401) → role (403) → content type (415) → body size (413) → body
//! validation (400) → resource (404) → conflicts (409/422). Every failure becomes a JSON
//! error through [`error::ApiError`]; nothing a client sends can make a handler panic.
//!
//! Hostile-client limits: at most [`MAX_CONNECTIONS`] open connections (further clients
//! wait in the kernel's accept backlog), headers must arrive within
//! [`HEADER_READ_TIMEOUT`] and fit in [`MAX_HEADER_BYTES`], bodies are capped at
//! `limits.max_payload_bytes` while they stream and must arrive within 30 s.

mod admin;
pub mod auth;
mod deliveries;
pub mod error;
mod events;
mod headers;
mod health;
pub mod request;
pub mod router;
mod stats;
mod ui;
mod webhooks;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::auth::Role;
use crate::config::Config;
use crate::delivery::DeliveryHandle;
use crate::metrics::Metrics;
use crate::store::Store;
use auth::{Auth, Principal};
use error::{ApiError, HttpResponse};
use router::Route;

pub const MAX_CONNECTIONS: usize = 4096;
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long shutdown waits for open requests to finish before dropping them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything a request handler may touch.
pub struct AppState {
    pub store: Store,
    pub config: Arc<Config>,
    pub auth: Auth,
    pub delivery: DeliveryHandle,
    pub metrics: Arc<Metrics>,
}

/// Serves until `shutdown` resolves, then stops accepting and lets open requests finish
/// (bounded by `DRAIN_TIMEOUT`).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_header_size(MAX_HEADER_BYTES)
        .max_buf_size(MAX_HEADER_BYTES * 2);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let service = service_fn(move |req| handle(Arc::clone(&state), req));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("open HTTP connections did not finish in time; closing them");
        }
    }
}

async fn handle(state: Arc<AppState>, req: Request<Incoming>) -> Result<HttpResponse, Infallible> {
    Ok(dispatch(&state, req)
        .await
        .unwrap_or_else(ApiError::into_response))
}

async fn dispatch(state: &AppState, req: Request<Incoming>) -> Result<HttpResponse, ApiError> {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path();
    let route = router::route(path).ok_or_else(|| ApiError::not_found("no such route"))?;
    let method = &parts.method;
    if !route.allows(method) {
        return Err(ApiError::method_not_allowed(route.allow()));
    }
    match route {
        Route::Healthz => return health::healthz(state).await,
        Route::Metrics => return health::metrics(state).await,
        Route::Ui(asset) => return ui::serve(path, asset),
        _ => {}
    }

    let principal = state.auth.authenticate(&parts.headers)?;
    let needed = match (&route, method) {
        (Route::Events, &Method::POST) => Role::Publisher,
        (Route::Backup | Route::Overview, _) => Role::Admin,
        _ => Role::User,
    };
    require_role(&principal, needed)?;

    // Endpoints without a body ignore none silently: whatever is sent must be JSON (415).
    request::refuse_non_json_body(&parts.headers)?;
    let limit = state.config.limits.max_payload_bytes;
    let query = parts.uri.query();
    match (route, method) {
        (Route::Webhooks, &Method::GET) => webhooks::list(state, &principal).await,
        (Route::Webhooks, _) => {
            let body = request::read_json_body(&parts.headers, body, limit, true).await?;
            webhooks::create(state, &principal, &body).await
        }
        (Route::Webhook(id), &Method::GET) => webhooks::get(state, &principal, id).await,
        (Route::Webhook(id), &Method::PATCH) => {
            let body = request::read_json_body(&parts.headers, body, limit, true).await?;
            webhooks::update(state, &principal, id, &body).await
        }
        (Route::Webhook(id), _) => webhooks::delete(state, &principal, id).await,
        (Route::RotateSecret(id), _) => {
            let body = request::read_json_body(&parts.headers, body, limit, false).await?;
            webhooks::rotate_secret(state, &principal, id, &body).await
        }
        (Route::Deliveries(id), _) => deliveries::list(state, &principal, id, query).await,
        (Route::Delivery(id, delivery), _) => {
            deliveries::get(state, &principal, id, delivery).await
        }
        (Route::RetryDelivery(id, delivery), _) => {
            deliveries::retry(state, &principal, id, delivery).await
        }
        (Route::Recover(id), _) => {
            let body = request::read_json_body(&parts.headers, body, limit, true).await?;
            deliveries::recover(state, &principal, id, &body).await
        }
        (Route::SendTest(id), _) => {
            let body = request::read_json_body(&parts.headers, body, limit, true).await?;
            deliveries::send_test(state, &principal, id, &body).await
        }
        (Route::Stats(id), _) => stats::get(state, &principal, id, query).await,
        (Route::Events, &Method::GET) => events::list(state, &principal, query).await,
        (Route::Events, _) => {
            let body = request::read_json_body(&parts.headers, body, limit, true).await?;
            events::ingest(state, &parts.headers, &body).await
        }
        (Route::Event(id), _) => events::get(state, &principal, id).await,
        (Route::Backup, _) => admin::backup(state).await,
        (Route::Overview, _) => admin::overview(state, query).await,
        (Route::Healthz | Route::Metrics | Route::Ui(_), _) => {
            Err(ApiError::not_found("no such route"))
        }
    }
}

fn require_role(principal: &Principal, needed: Role) -> Result<(), ApiError> {
    if principal.role == needed {
        return Ok(());
    }
    let article = |role: Role| if role == Role::Admin { "an" } else { "a" };
    Err(ApiError::forbidden(format!(
        "this endpoint needs {} {} token; yours is {} {} token",
        article(needed),
        needed.as_str(),
        article(principal.role),
        principal.role.as_str()
    )))
}
