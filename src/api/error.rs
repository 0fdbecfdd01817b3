//! The one place that turns failures into HTTP answers: `{"error": "<sentence>", "code":
//! "<snake_case>"}` with the status the contract assigns to each code.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Response, StatusCode};

use crate::model::Invalid;
use crate::store::{Fault, StoreError};

pub type HttpResponse = Response<Full<Bytes>>;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn method_not_allowed(allow: &'static str) -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("this path answers only {allow}"),
        );
        e.allow = Some(allow);
        e
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the request body is larger than the limit of {limit} bytes"),
        )
    }

    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON, sent with Content-Type: application/json",
        )
    }

    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "the request body did not arrive in time",
        )
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn destination_not_allowed(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "destination_not_allowed",
            message,
        )
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    /// The store cannot take this write now (docs/operations.md, "When the disk fills or
    /// fails"): `503` with `Retry-After`; the same request may be sent again (ingest is
    /// idempotent by event id). A full store refused the write. An unavailable one
    /// almost always did too, but on PostgreSQL a connection that breaks during COMMIT
    /// leaves it unknown whether the commit landed, so that answer promises no more.
    pub fn store(fault: Fault) -> Self {
        let message = match fault {
            Fault::Full => "hookd's disk is (nearly) full; nothing was stored, try again later",
            Fault::Unavailable => {
                "hookd cannot reach its store right now; try again later (an event sent again \
                 with its id is not stored twice)"
            }
        };
        Self::new(StatusCode::SERVICE_UNAVAILABLE, fault.code(), message)
    }

    /// Something inside hookd is wrong (the details go to the log, not the client).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }

    pub fn into_response(self) -> HttpResponse {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'a str,
            code: &'a str,
        }
        let body = serde_json::to_string(&Body {
            error: &self.message,
            code: self.code,
        })
        .unwrap_or_else(|_| String::from(r#"{"error":"internal error","code":"internal_error"}"#));
        let mut response = json_response(self.status, body);
        let headers = response.headers_mut();
        if let Some(allow) = self.allow {
            headers.insert(ALLOW, HeaderValue::from_static(allow));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.code == Fault::Full.code() || self.code == Fault::Unavailable.code() {
            // The writer's longest wait between two attempts to reopen the store.
            let wait = crate::store::MAX_REOPEN_WAIT.as_secs();
            headers.insert(RETRY_AFTER, HeaderValue::from(wait));
        }
        response
    }
}

/// A refused request value: `400 invalid_request` with the value's own reason.
impl From<Invalid> for ApiError {
    fn from(e: Invalid) -> Self {
        ApiError::bad_request(e.0)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let Some(fault) = e.fault() {
            tracing::warn!(error = %e, "request refused: the store cannot commit");
            return ApiError::store(fault);
        }
        match e {
            StoreError::Closed => ApiError::unavailable("hookd is shutting down"),
            StoreError::Unsupported(why) => {
                ApiError::new(StatusCode::NOT_IMPLEMENTED, "not_supported", why)
            }
            other => {
                tracing::error!(error = %other, "store failure while answering a request");
                ApiError::internal("hookd could not access its store; see its log")
            }
        }
    }
}

pub fn json_response(status: StatusCode, body: String) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// Serializes `value` as the JSON body of a `status` answer.
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Result<HttpResponse, ApiError> {
    let body = serde_json::to_string(value).map_err(|e| {
        tracing::error!(error = %e, "cannot serialize a response");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "cannot serialize the answer",
        )
    })?;
    Ok(json_response(status, body))
}

pub fn empty(status: StatusCode) -> HttpResponse {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}
