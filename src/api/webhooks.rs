//! `/api/hooks/webhooks[/:id]`: a user's webhooks. Validation lives here; storage rules
//! (per-user limit, cancelling on disable, cascading delete) live in `store::ops::webhooks`.

use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Principal;
use super::error::{ApiError, HttpResponse, empty, json};
use super::headers::{self, HeadersInput, Redacted};
use super::request::{nullable, parse_json};
use crate::delivery::destination::{self, UrlProblem};
use crate::model::{EventPattern, Invalid, Millis, Ordering, WebhookId, WebhookStatus};
use crate::store::ops::webhooks as ops;
use crate::store::records::WebhookRecord;

pub const MAX_NAME_LEN: usize = 200;
pub use crate::delivery::signing::MAX_SECRET_BYTES;
pub const MAX_EVENT_TYPES: usize = 64;

/// The webhook object of the API. The secret is deliberately absent, and the custom
/// headers show their names only.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView<'a> {
    id: String,
    name: &'a str,
    url: &'a str,
    event_types: Vec<String>,
    headers: Redacted<'a>,
    ordering: &'static str,
    enabled: bool,
    status: &'static str,
    created_at: String,
    updated_at: String,
}

impl<'a> WebhookView<'a> {
    pub fn of(hook: &'a WebhookRecord) -> Self {
        WebhookView {
            id: hook.id.to_string(),
            name: &hook.name,
            url: &hook.url,
            event_types: hook.event_types.iter().map(ToString::to_string).collect(),
            headers: Redacted(&hook.headers),
            ordering: hook.ordering.as_str(),
            enabled: hook.enabled,
            status: hook.status.as_str(),
            created_at: hook.created_at.to_rfc3339(),
            updated_at: hook.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CreateBody {
    name: String,
    url: String,
    event_types: Vec<String>,
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    headers: Option<HeadersInput>,
    #[serde(default, deserialize_with = "nullable")]
    ordering: Option<Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PatchBody {
    #[serde(default, deserialize_with = "nullable")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    url: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    event_types: Option<Option<Vec<String>>>,
    #[serde(default, deserialize_with = "nullable")]
    enabled: Option<Option<bool>>,
    #[serde(default, deserialize_with = "nullable")]
    secret: Option<Option<String>>,
    #[serde(default, deserialize_with = "nullable")]
    headers: Option<Option<HeadersInput>>,
    #[serde(default, deserialize_with = "nullable")]
    ordering: Option<Option<String>>,
}

fn validate_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(ApiError::bad_request("`name` must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(ApiError::bad_request(format!(
            "`name` is longer than {MAX_NAME_LEN} characters"
        )));
    }
    Ok(name.to_owned())
}

fn validate_event_types(types: &[String]) -> Result<Vec<EventPattern>, ApiError> {
    if types.is_empty() {
        return Err(ApiError::bad_request(
            "`eventTypes` must list at least one event type",
        ));
    }
    if types.len() > MAX_EVENT_TYPES {
        return Err(ApiError::bad_request(format!(
            "`eventTypes` lists more than {MAX_EVENT_TYPES} entries"
        )));
    }
    let mut patterns = Vec::with_capacity(types.len());
    for t in types {
        let pattern: EventPattern = t
            .parse()
            .map_err(|e: Invalid| ApiError::bad_request(format!("`eventTypes`: {e}")))?;
        if !patterns.contains(&pattern) {
            patterns.push(pattern);
        }
    }
    Ok(patterns)
}

/// `"none"` or `"fifo"`; anything else, `null` included, is 400.
fn validate_ordering(ordering: Option<String>) -> Result<Ordering, ApiError> {
    ordering
        .ok_or_else(|| {
            ApiError::bad_request("`ordering` cannot be null; use \"none\" or \"fifo\"")
        })?
        .parse()
        .map_err(|e: Invalid| ApiError::bad_request(format!("`ordering`: {e}")))
}

fn validate_secret(secret: &str) -> Result<String, ApiError> {
    if secret.is_empty() || secret.len() > MAX_SECRET_BYTES {
        return Err(ApiError::bad_request(format!(
            "`secret` must be a non-empty string of at most {MAX_SECRET_BYTES} bytes"
        )));
    }
    Ok(secret.to_owned())
}

/// URL syntax problems are 400; destinations the policy refuses are 422. The caller
/// checks the URL after every other field so that 400s win, as the contract orders them.
fn check_url(state: &AppState, url: &str) -> Result<String, ApiError> {
    match destination::check_url(url, &state.delivery.destination) {
        Ok(_) => Ok(url.to_owned()),
        Err(UrlProblem::Invalid(why)) => Err(ApiError::bad_request(why)),
        Err(UrlProblem::NotAllowed(why)) => Err(ApiError::destination_not_allowed(why)),
    }
}

pub fn parse_id(id: &str) -> Result<WebhookId, ApiError> {
    id.parse()
        .map_err(|()| ApiError::not_found("no such webhook"))
}

pub async fn list(state: &AppState, who: &Principal) -> Result<HttpResponse, ApiError> {
    let hooks = state.store.webhooks_of(&who.user).await?;
    let views: Vec<WebhookView> = hooks.iter().map(WebhookView::of).collect();
    json(StatusCode::OK, &views)
}

pub async fn get(state: &AppState, who: &Principal, id: &str) -> Result<HttpResponse, ApiError> {
    let id = parse_id(id)?;
    let hook = state
        .store
        .webhook_owned(&who.user, id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such webhook"))?;
    json(StatusCode::OK, &WebhookView::of(&hook))
}

pub async fn create(
    state: &AppState,
    who: &Principal,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let body: CreateBody = parse_json(body)?;
    let name = validate_name(&body.name)?;
    let event_types = validate_event_types(&body.event_types)?;
    let secret = body.secret.as_deref().map(validate_secret).transpose()?;
    let headers = body.headers.map(headers::validate).transpose()?;
    let ordering = body.ordering.map(validate_ordering).transpose()?;
    let url = check_url(state, &body.url)?;

    let mut hook = WebhookRecord::new(
        who.user.clone(),
        name,
        url,
        event_types,
        secret,
        Millis::now(),
    );
    hook.headers = headers.unwrap_or_default();
    hook.ordering = ordering.unwrap_or_default();
    let max = state.config.limits.max_webhooks_per_user;
    match state.store.create_webhook(hook, max).await? {
        ops::Created::Created(hook) => {
            tracing::info!(webhook = %hook.id, user = %hook.user, "webhook created");
            json(StatusCode::CREATED, &WebhookView::of(&hook))
        }
        ops::Created::LimitReached => Err(ApiError::conflict(
            "webhook_limit_reached",
            format!(
                "a user may have at most {max} webhooks (limits.max_webhooks_per_user); delete one first"
            ),
        )),
    }
}

pub async fn update(
    state: &AppState,
    who: &Principal,
    id: &str,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let body: PatchBody = parse_json(body)?;
    let null = |field: &str| ApiError::bad_request(format!("`{field}` cannot be null"));
    let name = match body.name {
        Some(Some(n)) => Some(validate_name(&n)?),
        Some(None) => return Err(null("name")),
        None => None,
    };
    let event_types = match body.event_types {
        Some(Some(t)) => Some(validate_event_types(&t)?),
        Some(None) => return Err(null("eventTypes")),
        None => None,
    };
    let enabled = match body.enabled {
        Some(Some(e)) => Some(e),
        Some(None) => return Err(null("enabled")),
        None => None,
    };
    let secret = match body.secret {
        Some(Some(s)) => Some(Some(validate_secret(&s)?)),
        Some(None) => Some(None),
        None => None,
    };
    // Given: the new set replaces the old one (`{}` clears it); absent: kept.
    let custom_headers = match body.headers {
        Some(Some(h)) => Some(headers::validate(h)?),
        Some(None) => {
            return Err(ApiError::bad_request(
                "`headers` cannot be null; send {} to remove every custom header",
            ));
        }
        None => None,
    };
    let ordering = body.ordering.map(validate_ordering).transpose()?;
    let url = match body.url {
        Some(Some(u)) => Some(check_url(state, &u)),
        Some(None) => return Err(null("url")),
        None => None,
    };
    // A malformed URL is a 400, which comes before the resource's 404 …
    if let Some(Err(e)) = &url
        && e.status == StatusCode::BAD_REQUEST
    {
        return Err(ApiError::bad_request(e.message.clone()));
    }
    let id = parse_id(id)?;
    // … and a destination refusal (422) after it.
    if state.store.webhook_owned(&who.user, id).await?.is_none() {
        return Err(ApiError::not_found("no such webhook"));
    }
    let url = url.transpose()?;
    if enabled == Some(false) {
        // Before the commit: nothing already dispatched may start sending after our answer.
        state.delivery.cancel(id);
    }
    if enabled == Some(true) {
        // A cancellation still under way (a big backlog disabled) ends before the webhook
        // is enabled again, so what the disable cancelled stays cancelled.
        state.store.finish_cleanup(id).await?;
    }

    let user = who.user.clone();
    let now = Millis::now();
    let updated = state
        .store
        .update_webhook(user, id, now, move |hook| {
            if let Some(name) = name {
                hook.name = name;
            }
            if let Some(url) = url {
                hook.url = url;
            }
            if let Some(types) = event_types {
                hook.event_types = types;
            }
            if let Some(secret) = secret {
                hook.secret = secret;
                hook.previous_secret = None;
            }
            if let Some(set) = custom_headers {
                hook.headers = set;
            }
            // Deliveries not yet started go by the new rule at the next look.
            if let Some(ordering) = ordering {
                hook.ordering = ordering;
            }
            if let Some(enabled) = enabled {
                hook.enabled = enabled;
                if enabled {
                    // Re-enabling (even an enabled but failing webhook) starts afresh.
                    hook.status = WebhookStatus::Healthy;
                    hook.failing_since = None;
                }
            }
        })
        .await?
        .ok_or_else(|| ApiError::not_found("no such webhook"))?;
    match enabled {
        Some(false) => state.delivery.quiesce(id).await,
        // A look at once: whatever is queued for it (a retry, a recover, a cancellation
        // that a concurrent disable left unfinished) must not wait for the next message.
        Some(true) => state.delivery.queued(id, Millis::now()),
        // A new ordering decides what may go now (`fifo` → `none`: all that is due).
        None if ordering.is_some() => state.delivery.queued(id, Millis::now()),
        None => {}
    }
    tracing::info!(webhook = %updated.id, enabled = updated.enabled, "webhook updated");
    // Committed: a failed look here must not turn the answer into an error (the
    // cleanup sweep finishes what is left anyway).
    let unfinished = state.store.cleanup_unfinished(id).await;
    match unfinished {
        Ok(true) => finish_in_background(state, id),
        Ok(false) => {}
        Err(e) => {
            tracing::warn!(webhook = %id, error = %e, "cannot look for an unfinished cancellation; the sweep will finish it")
        }
    }
    json(StatusCode::OK, &WebhookView::of(&updated))
}

pub async fn delete(state: &AppState, who: &Principal, id: &str) -> Result<HttpResponse, ApiError> {
    let id = parse_id(id)?;
    // Ownership first: a caller must not be able to disturb another user's webhook.
    if state.store.webhook_owned(&who.user, id).await?.is_none() {
        return Err(ApiError::not_found("no such webhook"));
    }
    let user = who.user.clone();
    state.delivery.cancel(id);
    match state.store.delete_webhook(user, id).await? {
        ops::Deleted::Deleted { more } => {
            state.delivery.quiesce(id).await;
            tracing::info!(webhook = %id, "webhook deleted");
            if more {
                finish_in_background(state, id);
            }
            Ok(empty(StatusCode::NO_CONTENT))
        }
        ops::Deleted::NotFound => Err(ApiError::not_found("no such webhook")),
    }
}

/// The answer goes out after the first commit; the rest of a big delete or disable
/// (one chunk per write job, so other writes commit in between) continues here. Should
/// it fail or the daemon stop, the cleanup sweep (`daemon::prune_forever`) finishes it.
fn finish_in_background(state: &AppState, id: WebhookId) {
    let store = state.store.clone();
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        match store.finish_cleanup(id).await {
            Ok(()) => tracing::info!(
                webhook = %id,
                ms = started.elapsed().as_millis() as u64,
                "webhook cleanup finished"
            ),
            Err(e) => {
                tracing::warn!(webhook = %id, error = %e, "webhook cleanup interrupted; it resumes later");
            }
        }
    });
}

/// The default grace period during which the old secret still signs.
pub const DEFAULT_GRACE_SECONDS: u64 = 24 * 3600;
pub const MAX_GRACE_SECONDS: u64 = 7 * 24 * 3600;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RotateBody {
    #[serde(default)]
    secret: Option<String>,
    #[serde(default)]
    grace_seconds: Option<u64>,
}

#[derive(Serialize)]
struct RotateAnswer {
    secret: String,
}

/// `POST /api/hooks/webhooks/:id/rotate-secret {"secret"?, "graceSeconds"?}`: installs a
/// new secret (generated when not given) and answers it this once. For the grace period
/// the old secret signs `webhook-signature` too; `X-Hook-Signature` uses the new one.
pub async fn rotate_secret(
    state: &AppState,
    who: &Principal,
    id: &str,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    let body: RotateBody = if body.is_empty() {
        RotateBody::default()
    } else {
        parse_json(body)?
    };
    let secret = match body.secret {
        Some(s) => validate_secret(&s)?,
        None => crate::delivery::signing::generate_secret()
            .map_err(|e| ApiError::internal(format!("no randomness for a secret: {e}")))?,
    };
    let grace = body.grace_seconds.unwrap_or(DEFAULT_GRACE_SECONDS);
    if grace > MAX_GRACE_SECONDS {
        return Err(ApiError::bad_request(format!(
            "`graceSeconds` must be at most {MAX_GRACE_SECONDS} (7 days)"
        )));
    }
    let id = parse_id(id)?;
    let user = who.user.clone();
    let now = Millis::now();
    let new_secret = secret.clone();
    let updated = state
        .store
        .update_webhook(user, id, now, move |hook| {
            let grace_end = now.saturating_add(std::time::Duration::from_secs(grace));
            hook.previous_secret = hook
                .secret
                .take()
                .filter(|_| grace > 0)
                .map(|old| (old, grace_end));
            hook.secret = Some(new_secret);
        })
        .await?
        .ok_or_else(|| ApiError::not_found("no such webhook"))?;
    tracing::info!(webhook = %updated.id, grace_seconds = grace, "webhook secret rotated");
    json(StatusCode::OK, &RotateAnswer { secret })
}
