//! `/api/hooks/webhooks/:id/deliveries[/:deliveryId]`: a webhook's delivery log.

use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, HttpResponse, json};
use super::request::{Paging, encode_cursor, parse_json, query_pairs};
use super::webhooks::parse_id;
use crate::model::{
    DeliveryId, DeliveryStatus, EventId, EventType, Invalid, Millis, parse_rfc3339_millis,
};
use crate::store::ops::attempts::Requeue;
use crate::store::ops::deliveries::{DeliveryDetail, DeliveryFilter};
use crate::store::ops::events::{NewEvent, TestEvent};
use crate::store::records::{Attempt, WebhookRecord};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AttemptView<'a> {
    attempt: u32,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<u16>,
    duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_body: Option<&'a str>,
}

impl<'a> AttemptView<'a> {
    fn of((number, a): &'a (u32, Attempt)) -> Self {
        AttemptView {
            attempt: *number,
            at: a.at.to_rfc3339(),
            status_code: a.status_code,
            duration_ms: a.duration_ms,
            error: a.error.as_deref(),
            response_body: a.response_body.as_deref(),
        }
    }
}

/// The delivery object of the API.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryView<'a> {
    id: String,
    webhook_id: String,
    event_id: &'a str,
    event_type: &'static str,
    status: &'static str,
    attempts: Vec<AttemptView<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<String>,
    created_at: String,
}

impl<'a> DeliveryView<'a> {
    /// `paused_until` is the webhook's `Retry-After` pause: a pending delivery goes no
    /// earlier than that, and its `nextAttemptAt` says so.
    pub fn of(detail: &'a DeliveryDetail, paused_until: Option<Millis>) -> Self {
        let d = &detail.record;
        DeliveryView {
            id: d.id.to_string(),
            webhook_id: d.webhook_id.to_string(),
            event_id: detail.event_id.as_str(),
            event_type: d.event_type.as_str(),
            status: d.status.as_str(),
            attempts: detail.attempts.iter().map(AttemptView::of).collect(),
            next_attempt_at: d
                .next_attempt_at
                .map(|t| paused_until.map_or(t, |p| p.max(t)).to_rfc3339()),
            created_at: d.created_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize)]
struct DeliveryList<'a> {
    deliveries: Vec<DeliveryView<'a>>,
    next: Option<String>,
}

/// The caller's webhook (404 if not theirs) and the delivery id parsed from the path.
async fn webhook_and_delivery(
    state: &AppState,
    who: &Principal,
    id: &str,
    delivery: &str,
) -> Result<(WebhookRecord, DeliveryId), ApiError> {
    let hook = owned_webhook(state, who, id).await?;
    let delivery = delivery
        .parse()
        .map_err(|()| ApiError::not_found("no such delivery"))?;
    Ok((hook, delivery))
}

/// The webhook, if it exists and belongs to the caller.
pub async fn owned_webhook(
    state: &AppState,
    who: &Principal,
    id: &str,
) -> Result<WebhookRecord, ApiError> {
    let id = parse_id(id)?;
    state
        .store
        .webhook_owned(&who.user, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such webhook"))
}

pub async fn list(
    state: &AppState,
    who: &Principal,
    id: &str,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let pairs = query_pairs(query)?;
    let paging = Paging::from_pairs(&pairs)?;
    let mut filter = DeliveryFilter::default();
    for (key, value) in &pairs {
        match key.as_str() {
            "status" => filter.status = Some(value.parse::<DeliveryStatus>()?),
            "eventType" => {
                let t: EventType = value
                    .parse()
                    .map_err(|e: Invalid| ApiError::bad_request(format!("`eventType`: {e}")))?;
                filter.event_type = Some(t);
            }
            _ => {}
        }
    }
    let hook = owned_webhook(state, who, id).await?;
    let webhook = hook.id;
    // One snapshot: the page, then each delivery's attempts and event id.
    let (details, page) = state
        .store
        .delivery_page(webhook, filter, paging.limit, paging.after)
        .await?;
    let deliveries = details
        .iter()
        .map(|d| DeliveryView::of(d, hook.paused_until))
        .collect();
    json(
        StatusCode::OK,
        &DeliveryList {
            deliveries,
            next: page.map(encode_cursor),
        },
    )
}

pub async fn get(
    state: &AppState,
    who: &Principal,
    id: &str,
    delivery: &str,
) -> Result<HttpResponse, ApiError> {
    let (hook, delivery) = webhook_and_delivery(state, who, id, delivery).await?;
    let webhook = hook.id;
    let detail = state
        .store
        .delivery(webhook, delivery)
        .await?
        .ok_or_else(|| ApiError::not_found("no such delivery"))?;
    json(
        StatusCode::OK,
        &DeliveryView::of(&detail, hook.paused_until),
    )
}

/// `POST …/deliveries/:deliveryId/retry`: a `failed` delivery starts the schedule again.
pub async fn retry(
    state: &AppState,
    who: &Principal,
    id: &str,
    delivery: &str,
) -> Result<HttpResponse, ApiError> {
    let (hook, delivery) = webhook_and_delivery(state, who, id, delivery).await?;
    let webhook = hook.id;
    let user = who.user.clone();
    let due = state.delivery.policy.first_due(Millis::now());
    let outcome = state.store.retry(user, webhook, delivery, due).await?;
    match outcome {
        Requeue::Queued(due) => {
            state.delivery.queued(webhook, due);
            json(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "id": delivery.to_string(), "status": "pending" }),
            )
        }
        other => Err(requeue_error(other)),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecoverBody {
    since: String,
    #[serde(default)]
    until: Option<String>,
}

/// `POST …/recover {"since", "until"?}`: every `failed` delivery created in the window
/// starts the schedule again.
pub async fn recover(
    state: &AppState,
    who: &Principal,
    id: &str,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let body: RecoverBody = parse_json(body)?;
    let since = parse_rfc3339_millis(&body.since)
        .map_err(|e| ApiError::bad_request(format!("`since`: {e}")))?;
    let until = match &body.until {
        Some(u) => {
            parse_rfc3339_millis(u).map_err(|e| ApiError::bad_request(format!("`until`: {e}")))?
        }
        None => Millis(i64::MAX),
    };
    if until <= since {
        return Err(ApiError::bad_request("`until` must be later than `since`"));
    }
    let hook = owned_webhook(state, who, id).await?;
    let webhook = hook.id;
    let user = who.user.clone();
    let due = state.delivery.policy.first_due(Millis::now());
    // In chunks, each its own write job, so a big window never holds up other writes.
    let mut queued = 0;
    let mut before = u64::MAX;
    loop {
        let user = user.clone();
        let outcome = state
            .store
            .recover(user, webhook, (since, until), due, before)
            .await?;
        match outcome {
            Ok(chunk) => {
                if chunk.queued > 0 {
                    queued += chunk.queued;
                    state.delivery.queued(webhook, due);
                }
                match chunk.next {
                    Some(next) => before = next,
                    None => break,
                }
            }
            Err(other) if queued == 0 => return Err(requeue_error(other)),
            // Disabled or deleted between chunks: what was queued stays answered (a
            // disable cancels it again, a delete removes it).
            Err(_) => break,
        }
    }
    json(
        StatusCode::ACCEPTED,
        &serde_json::json!({ "queued": queued }),
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestBody {
    #[serde(rename = "type")]
    event_type: String,
}

/// The source of every test event, so that test events stand out in the event log.
const TEST_EVENT_SOURCE: &str = "hookd-test";

/// `POST …/test {"type"}`: a sample event of that type, delivered to this webhook only
/// through the normal delivery path (signing, retries, the delivery log).
pub async fn send_test(
    state: &AppState,
    who: &Principal,
    id: &str,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let body: TestBody = parse_json(body)?;
    let event_type: EventType = body
        .event_type
        .parse()
        .map_err(|e: Invalid| ApiError::bad_request(format!("`type`: {e}")))?;
    let hook = owned_webhook(state, who, id).await?;
    let webhook = hook.id;
    let now = Millis::now();
    let event = NewEvent {
        id: EventId::generate(),
        user: who.user.clone(),
        event_type,
        source: TEST_EVENT_SOURCE.to_owned(),
        timestamp: now.to_rfc3339(),
        payload: event_type.sample_payload().to_owned(),
        received_at: now,
        trace: None,
    };
    let event_id = event.id.clone();
    let due = state.delivery.policy.first_due(now);
    let outcome = state.store.ingest_test(event, webhook, due).await?;
    let delivery = match outcome {
        TestEvent::Queued(delivery) => delivery,
        TestEvent::NoSuchWebhook => return Err(ApiError::not_found("no such webhook")),
        TestEvent::WebhookDisabled => return Err(requeue_error(Requeue::WebhookDisabled)),
    };
    state.metrics.event_ingested();
    state.delivery.queued(webhook, due);
    json(
        StatusCode::ACCEPTED,
        &serde_json::json!({
            "eventId": event_id.as_str(),
            "deliveryId": delivery.to_string(),
            "status": "pending",
        }),
    )
}

fn requeue_error(outcome: Requeue) -> ApiError {
    match outcome {
        Requeue::NotFailed => ApiError::conflict(
            "delivery_not_failed",
            "only a failed delivery can be retried; this one is pending, succeeded or cancelled",
        ),
        Requeue::WebhookDisabled => ApiError::conflict(
            "webhook_disabled",
            "the webhook is disabled; enable it first (PATCH {\"enabled\": true})",
        ),
        Requeue::NotFound | Requeue::Queued(_) => ApiError::not_found("no such delivery"),
    }
}
