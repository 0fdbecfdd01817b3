//! `/api/hooks/webhooks/:id/deliveries[/:deliveryId]`: a webhook's delivery log.

use hyper::StatusCode;
use serde::Serialize;

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, HttpResponse, json};
use super::request::{Paging, encode_cursor, query_pairs};
use super::webhooks::parse_id;
use crate::model::{DeliveryId, DeliveryStatus, WebhookId};
use crate::store::ops::{deliveries as ops, webhooks};
use crate::store::records::{Attempt, DeliveryRecord};

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
    fn of(a: &'a Attempt) -> Self {
        AttemptView {
            attempt: a.number,
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
    pub fn of(d: &'a DeliveryRecord) -> Self {
        DeliveryView {
            id: d.id.to_string(),
            webhook_id: d.webhook_id.to_string(),
            event_id: d.event_id.as_str(),
            event_type: d.event_type.as_str(),
            status: d.status.as_str(),
            attempts: d.attempts.iter().map(AttemptView::of).collect(),
            next_attempt_at: d.next_attempt_at.map(|t| t.to_rfc3339()),
            created_at: d.created_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize)]
struct DeliveryList<'a> {
    deliveries: Vec<DeliveryView<'a>>,
    next: Option<String>,
}

/// The webhook id, if the webhook exists and belongs to the caller.
pub fn owned_webhook(state: &AppState, who: &Principal, id: &str) -> Result<WebhookId, ApiError> {
    let id = parse_id(id)?;
    state
        .store
        .read(|r| webhooks::get_owned(r, &who.user, id))?
        .map(|w| w.id)
        .ok_or_else(|| ApiError::not_found("no such webhook"))
}

pub fn list(
    state: &AppState,
    who: &Principal,
    id: &str,
    query: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let pairs = query_pairs(query)?;
    let paging = Paging::from_pairs(&pairs)?;
    let mut status = None;
    for (key, value) in &pairs {
        if key == "status" {
            let s: DeliveryStatus = value.parse().map_err(ApiError::bad_request)?;
            status = Some(s);
        }
    }
    let webhook = owned_webhook(state, who, id)?;
    let page = state
        .store
        .read(|r| ops::list_for_webhook(r, webhook, status, paging.limit, paging.after))?;
    let deliveries = page.items.iter().map(DeliveryView::of).collect();
    json(
        StatusCode::OK,
        &DeliveryList {
            deliveries,
            next: page.next.map(encode_cursor),
        },
    )
}

pub fn get(
    state: &AppState,
    who: &Principal,
    id: &str,
    delivery: &str,
) -> Result<HttpResponse, ApiError> {
    let webhook = owned_webhook(state, who, id)?;
    let delivery: DeliveryId = delivery
        .parse()
        .map_err(|()| ApiError::not_found("no such delivery"))?;
    let record = state
        .store
        .read(|r| ops::get(r, delivery))?
        .filter(|d| d.webhook_id == webhook)
        .ok_or_else(|| ApiError::not_found("no such delivery"))?;
    json(StatusCode::OK, &DeliveryView::of(&record))
}
