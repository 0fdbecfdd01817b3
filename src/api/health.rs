//! `GET /healthz`: 200 while the store answers reads.

use hyper::StatusCode;

use super::AppState;
use super::error::{ApiError, HttpResponse, json_response};
use crate::store::tables::META;

pub fn healthz(state: &AppState) -> Result<HttpResponse, ApiError> {
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
