//! `/api/hooks/events[/:id]`: ingestion (publishers) and the event log (users).
//!
//! Ingestion parses the body with the strict canonical-JSON parser, not serde: the payload
//! must keep the publisher's key order and be re-emitted JSON.stringify-stable, and inputs
//! without a stable form (duplicate keys, lone surrogates, out-of-range numbers, integers
//! beyond ±2⁵³) are refused here, at the door, rather than mangled later.

use hyper::StatusCode;
use hyper::header::HeaderMap;
use serde::Serialize;
use serde_json::value::RawValue;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, HttpResponse, json};
use super::request::{Paging, encode_cursor, query_pairs};
use crate::canonical_json::{self, Value};
use crate::model::{EventId, EventPattern, EventType, Invalid, Millis, normalize_rfc3339};
use crate::store::ops::events::{Ingested, NewEvent};
use crate::store::records::EventRecord;
use crate::trace_context::TraceContext;

pub const MAX_FIELD_LEN: usize = 128;

#[derive(Serialize)]
struct IngestAnswer<'a> {
    id: &'a str,
    deliveries: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EventView<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'static str,
    timestamp: &'a str,
    user_id: &'a str,
    source: &'a str,
    payload: Box<RawValue>,
    received_at: String,
    deliveries: u32,
    /// The W3C trace-id the publisher sent the event in (32 hex digits), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
}

impl<'a> EventView<'a> {
    fn of(event: &'a EventRecord) -> Result<Self, ApiError> {
        let payload = RawValue::from_string(event.payload.clone()).map_err(|e| {
            tracing::error!(event = %event.id, error = %e, "stored payload is not JSON");
            ApiError::internal("the stored payload of this event is unreadable; see the log")
        })?;
        Ok(EventView {
            id: event.id.as_str(),
            event_type: event.event_type.as_str(),
            timestamp: &event.timestamp,
            user_id: &event.user,
            source: &event.source,
            payload,
            received_at: event.received_at.to_rfc3339(),
            deliveries: event.deliveries,
            trace_id: event.trace.as_ref().map(|t| t.trace_id.to_string()),
        })
    }
}

#[derive(Serialize)]
struct EventList<'a> {
    events: Vec<EventView<'a>>,
    next: Option<String>,
}

/// A required non-empty string field of at most `MAX_FIELD_LEN` characters.
fn short_string<'a>(body: &'a Value, field: &str) -> Result<&'a str, ApiError> {
    let value = body
        .get(field)
        .ok_or_else(|| ApiError::bad_request(format!("`{field}` is required")))?;
    let s = value.as_str().ok_or_else(|| {
        ApiError::bad_request(format!("`{field}` must be a string, not {}", value.kind()))
    })?;
    if s.is_empty() || s.chars().count() > MAX_FIELD_LEN {
        return Err(ApiError::bad_request(format!(
            "`{field}` must be a non-empty string of at most {MAX_FIELD_LEN} characters"
        )));
    }
    Ok(s)
}

fn optional_string<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None => Ok(None),
        Some(v) => v.as_str().map(Some).ok_or_else(|| {
            ApiError::bad_request(format!("`{field}` must be a string, not {}", v.kind()))
        }),
    }
}

const INGEST_FIELDS: &[&str] = &["type", "userId", "source", "payload", "id", "timestamp"];

fn parse_ingest(body: &[u8], received_at: Millis) -> Result<NewEvent, ApiError> {
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the request body is empty; send a JSON object",
        ));
    }
    let value = canonical_json::parse(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
    let fields = value.as_object().ok_or_else(|| {
        ApiError::bad_request(format!(
            "the body must be a JSON object, not {}",
            value.kind()
        ))
    })?;
    if let Some((unknown, _)) = fields
        .iter()
        .find(|(k, _)| !INGEST_FIELDS.contains(&k.as_str()))
    {
        return Err(ApiError::bad_request(format!(
            "unknown field `{}`; an event has type, userId, source, payload and optionally id and timestamp",
            unknown.escape_debug()
        )));
    }
    let event_type: EventType = short_string(&value, "type")?
        .parse()
        .map_err(|e: Invalid| ApiError::bad_request(format!("`type`: {e}")))?;
    let user = short_string(&value, "userId")?.to_owned();
    let source = short_string(&value, "source")?.to_owned();
    let payload = value
        .get("payload")
        .ok_or_else(|| ApiError::bad_request("`payload` is required"))?;
    if payload.as_object().is_none() {
        return Err(ApiError::bad_request(format!(
            "`payload` must be a JSON object, not {}",
            payload.kind()
        )));
    }
    let id = match optional_string(&value, "id")? {
        Some(id) => EventId::parse(id)?,
        None => EventId::generate(),
    };
    let timestamp = match optional_string(&value, "timestamp")? {
        Some(t) => {
            normalize_rfc3339(t).map_err(|e| ApiError::bad_request(format!("`timestamp`: {e}")))?
        }
        None => received_at.to_rfc3339(),
    };
    Ok(NewEvent {
        id,
        user,
        event_type,
        source,
        timestamp,
        payload: payload.to_canonical_string(),
        received_at,
        trace: None,
    })
}

pub async fn ingest(
    state: &AppState,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let received_at = Millis::now();
    let mut event = parse_ingest(body, received_at)?;
    // A valid W3C trace context goes with the event; an invalid one is ignored.
    event.trace = TraceContext::from_headers(
        headers.get_all("traceparent").iter().map(|v| v.as_bytes()),
        headers.get_all("tracestate").iter().map(|v| v.as_bytes()),
    );
    // Below the free-space reserve, new events wait: the room left is for outcomes,
    // cancels and deletes, which keep the promises already made.
    if state.store.health().space_low() {
        return Err(ApiError::store(crate::store::Fault::Full));
    }
    let id = event.id.clone();
    let due = state.delivery.policy.first_due(received_at);
    let outcome = state.store.ingest(event, due).await?;
    match outcome {
        Ingested::Created { deliveries, queued } => {
            state.metrics.event_ingested();
            for (webhook, due) in queued {
                state.delivery.queued(webhook, due);
            }
            tracing::debug!(event = %id, deliveries, "event ingested");
            json(
                StatusCode::ACCEPTED,
                &IngestAnswer {
                    id: id.as_str(),
                    deliveries,
                },
            )
        }
        Ingested::Duplicate { deliveries } => json(
            StatusCode::OK,
            &IngestAnswer {
                id: id.as_str(),
                deliveries,
            },
        ),
    }
}

pub async fn list(
    state: &AppState,
    who: &Principal,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let pairs = query_pairs(query)?;
    let paging = Paging::from_pairs(&pairs)?;
    let mut filter = None;
    for (key, value) in &pairs {
        if key == "type" {
            let pattern: EventPattern = value
                .parse()
                .map_err(|e: Invalid| ApiError::bad_request(format!("`type`: {e}")))?;
            filter = Some(pattern);
        }
    }
    let page = state
        .store
        .events_of(&who.user, filter, paging.limit, paging.after)
        .await?;
    let events = page
        .items
        .iter()
        .map(EventView::of)
        .collect::<Result<Vec<_>, _>>()?;
    json(
        StatusCode::OK,
        &EventList {
            events,
            next: page.next.map(encode_cursor),
        },
    )
}

pub async fn get(state: &AppState, who: &Principal, id: &str) -> Result<HttpResponse, ApiError> {
    // Clients may percent-encode the id (`msg%3A1` for `msg:1`).
    let id =
        super::request::percent_decode(id).map_err(|_| ApiError::not_found("no such event"))?;
    let event = state
        .store
        .event(&id)
        .await?
        .filter(|e| e.user == who.user)
        .ok_or_else(|| ApiError::not_found("no such event"))?;
    json(StatusCode::OK, &EventView::of(&event)?)
}
