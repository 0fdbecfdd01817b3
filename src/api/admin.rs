//! `/api/admin/…` (role admin): operations. `POST /api/admin/backup` writes a consistent
//! copy of the store under `data_dir/backups/` while hookd keeps running;
//! `GET /api/admin/overview` is the operator view: every user's webhooks (failing and
//! disabled first, a page at a time), queue, store, attempts per minute and the recent
//! operator notifications, all from what the store keeps counted (`store::ops::overview`),
//! so it costs O(page) however big the store is.

use hyper::StatusCode;
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, HttpResponse, json};
use super::request::{Paging, query_pairs};
use super::stats::{self as api_stats, Minute, minute_start};
use super::webhooks::WebhookView;
use crate::model::Millis;
use crate::store::ops::overview::{OverviewFigures, OverviewQuery, WebhookCursor};
use crate::store::ops::stats;
use crate::store::records::{NotificationRecord, NotificationState, WebhookRecord};

#[derive(Serialize)]
struct BackupAnswer {
    path: String,
    bytes: u64,
    events: u64,
}

pub async fn backup(state: &AppState) -> Result<HttpResponse, ApiError> {
    state.store.can_back_up()?;
    let dir = state.config.data_dir.join("backups");
    let stamp = Millis::now().to_rfc3339().replace([':', '.'], "");
    let store = state.store.clone();
    let written = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let dest = dir.join(format!("hookd-{stamp}.redb"));
        let events = store.backup_to(&dest).map_err(|e| e.to_string())?;
        let path = std::fs::canonicalize(&dest).unwrap_or(dest);
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok::<_, String>(BackupAnswer {
            path: path.display().to_string(),
            bytes,
            events,
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("backup task failed: {e}")))?
    .map_err(|e| {
        tracing::error!(error = %e, "backup failed");
        ApiError::internal(format!("backup failed: {e}"))
    })?;
    tracing::info!(path = %written.path, bytes = written.bytes, events = written.events, "backup written");
    json(StatusCode::OK, &written)
}

/// The attempts series covers this many minutes, the current one included.
const ATTEMPT_MINUTES: u64 = 60;
/// The overview lists this many of the newest operator notifications.
const RECENT_NOTIFICATIONS: usize = 20;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Overview<'a> {
    webhooks: Vec<OperatorWebhook<'a>>,
    next: Option<String>,
    webhook_counts: WebhookCounts,
    queue: Queue,
    store: StoreState,
    attempts: Attempts,
    notifications: Vec<NotificationView<'a>>,
}

/// A webhook object with its owner and its failure times.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OperatorWebhook<'a> {
    #[serde(flatten)]
    webhook: WebhookView<'a>,
    user_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    failing_since: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_success_at: Option<String>,
}

impl<'a> OperatorWebhook<'a> {
    fn of(hook: &'a WebhookRecord) -> Self {
        OperatorWebhook {
            webhook: WebhookView::of(hook),
            user_id: &hook.user,
            failing_since: hook.failing_since.map(Millis::to_rfc3339),
            last_success_at: hook.last_success_at.map(Millis::to_rfc3339),
        }
    }
}

#[derive(Serialize)]
struct WebhookCounts {
    healthy: u64,
    failing: u64,
    disabled: u64,
}

#[derive(Serialize)]
struct Queue {
    pending: u64,
    /// `None` until the background count has run once.
    due: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StoreState {
    bytes: u64,
    free_bytes: u64,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Attempts {
    bucket_seconds: u32,
    from: String,
    until: String,
    succeeded: u64,
    failed: u64,
    errored: u64,
    series: Vec<Minute>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotificationView<'a> {
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    timestamp: String,
    webhook: NotifiedWebhook<'a>,
    reason: &'a str,
    status: &'static str,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_attempt_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    finished_at: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct NotifiedWebhook<'a> {
    id: String,
    name: &'a str,
    user_id: &'a str,
}

impl<'a> NotificationView<'a> {
    fn of(n: &'a NotificationRecord) -> Self {
        let next = match n.state {
            NotificationState::Held => Some(n.not_before),
            NotificationState::Pending => Some(
                n.next_attempt_at
                    .map_or(n.not_before, |at| at.max(n.not_before)),
            ),
            _ => None,
        };
        NotificationView {
            id: n.id.to_string(),
            kind: n.kind.as_str(),
            timestamp: n.at.to_rfc3339(),
            webhook: NotifiedWebhook {
                id: n.webhook.id.to_string(),
                name: &n.webhook.name,
                user_id: &n.webhook.user,
            },
            reason: &n.reason,
            status: n.state.as_str(),
            attempts: n.attempts,
            next_attempt_at: next.map(Millis::to_rfc3339),
            last_error: n.last_error.as_deref(),
            finished_at: n.finished_at.map(Millis::to_rfc3339),
        }
    }
}

/// `after` for the webhook list: the status rank and id of the last webhook listed.
fn encode_cursor((rank, id): WebhookCursor) -> String {
    format!("s{rank}.{id:032x}")
}

fn decode_cursor(value: &str) -> Result<WebhookCursor, ApiError> {
    let bad = || ApiError::bad_request("`after` is not a cursor returned by this API");
    let (rank, id) = value
        .strip_prefix('s')
        .and_then(|rest| rest.split_once('.'))
        .ok_or_else(bad)?;
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if rank.len() != 1 || id.len() != 32 || !id.bytes().all(lower_hex) {
        return Err(bad());
    }
    let rank = rank.parse::<u8>().map_err(|_| bad())?;
    let id = u128::from_str_radix(id, 16).map_err(|_| bad())?;
    Ok((rank, id))
}

/// `GET /api/admin/overview?limit=&after=`.
pub async fn overview(state: &AppState, query: Option<&str>) -> Result<HttpResponse, ApiError> {
    let pairs = query_pairs(query)?;
    let mut after = None;
    let mut others = Vec::with_capacity(pairs.len());
    for (key, value) in pairs {
        if key == "after" {
            after = Some(decode_cursor(&value)?);
        } else {
            others.push((key, value));
        }
    }
    let limit = Paging::from_pairs(&others)?.limit;
    let now = Millis::now();
    let last = stats::minute_of(now);
    let first = last + 1 - ATTEMPT_MINUTES.min(last + 1);
    let store = &state.store;
    let OverviewFigures {
        page,
        next,
        gauges,
        totals,
        recent,
    } = store
        .overview(OverviewQuery {
            after,
            limit,
            first,
            last,
            recent: RECENT_NOTIFICATIONS,
        })
        .await?;

    let series = api_stats::series(first, last, totals, |_| {});

    let health = state.store.health();
    let fault = health.fault();
    let bytes = store.size_bytes().await.unwrap_or(0);
    json(
        StatusCode::OK,
        &Overview {
            webhooks: page.iter().map(OperatorWebhook::of).collect(),
            next: next.map(encode_cursor),
            webhook_counts: WebhookCounts {
                healthy: gauges.healthy,
                failing: gauges.failing,
                disabled: gauges.disabled,
            },
            queue: Queue {
                pending: gauges.depth,
                due: super::health::queue_due(state),
            },
            store: StoreState {
                bytes,
                free_bytes: health.free_bytes(),
                status: if fault.is_some() { "degraded" } else { "ok" },
                reason: fault.map(|f| f.code()),
            },
            attempts: Attempts {
                bucket_seconds: 60,
                from: minute_start(first).to_rfc3339(),
                until: minute_start(last + 1).to_rfc3339(),
                succeeded: series.succeeded,
                failed: series.failed,
                errored: series.errored,
                series: series.minutes,
            },
            notifications: recent.iter().map(NotificationView::of).collect(),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_junk_is_refused() {
        let key = (1, u128::MAX - 7);
        assert_eq!(decode_cursor(&encode_cursor(key)).unwrap(), key);
        assert_eq!(decode_cursor(&encode_cursor((0, 0))).unwrap(), (0, 0));
        for bad in [
            "",
            "c5",
            "s1",
            "s1.",
            "s12.00000000000000000000000000000000",
            "s1.xyz",
            "s1.+0000000000000000000000000000000",
        ] {
            assert!(decode_cursor(bad).is_err(), "{bad}");
        }
    }
}
