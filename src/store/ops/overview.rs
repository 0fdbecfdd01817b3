//! What the operator view reads (`GET /api/admin/overview`): every user's webhooks, failing
//! and disabled ones first, one page at a time through `webhooks_by_status`. The other
//! figures come from counters the store keeps anyway (`queue::gauges`,
//! `stats::totals`, `notifications::recent`), so the whole view costs O(page).

use redb::ReadTransaction;

use super::queue::{self, QueueGauges};
use super::stats::{self, MinuteStats};
use super::{StoreError, load, notifications};
use crate::store::records::{NotificationRecord, WebhookRecord};
use crate::store::tables::{WEBHOOKS, WEBHOOKS_BY_STATUS};

/// What the operator view asks the store for.
#[derive(Debug, Clone, Copy)]
pub struct OverviewQuery {
    /// The page of webhooks: after this cursor, at most `limit`.
    pub after: Option<WebhookCursor>,
    pub limit: usize,
    /// The unix minutes of the attempt series, `first..=last`.
    pub first: u64,
    pub last: u64,
    /// How many of the newest operator notifications.
    pub recent: usize,
}

/// Everything the operator view shows from the store; on redb read from one snapshot, so
/// the counts and the page agree.
#[derive(Debug)]
pub struct OverviewFigures {
    pub page: Vec<WebhookRecord>,
    pub next: Option<WebhookCursor>,
    pub gauges: QueueGauges,
    pub totals: Vec<(u64, MinuteStats)>,
    pub recent: Vec<NotificationRecord>,
}

/// The operator view's figures, read in `rtx`.
pub fn read(rtx: &ReadTransaction, q: &OverviewQuery) -> Result<OverviewFigures, StoreError> {
    let (page, next) = webhooks(rtx, q.after, q.limit)?;
    Ok(OverviewFigures {
        page,
        next,
        gauges: queue::gauges(rtx)?,
        totals: stats::totals(rtx, q.first, q.last)?,
        recent: notifications::recent(rtx, q.recent)?,
    })
}

/// Where a page of the list starts after: the last webhook of the previous page, as its
/// `webhooks_by_status` key.
pub type WebhookCursor = (u8, u128);

/// Up to `limit` webhooks after `after` (from the start when `None`), failing first, then
/// disabled, then healthy, each group oldest first; and the cursor of the next page.
pub fn webhooks(
    rtx: &ReadTransaction,
    after: Option<WebhookCursor>,
    limit: usize,
) -> Result<(Vec<WebhookRecord>, Option<WebhookCursor>), StoreError> {
    let index = rtx.open_table(WEBHOOKS_BY_STATUS)?;
    let hooks = rtx.open_table(WEBHOOKS)?;
    let range = match after {
        Some(key) => index.range(key..)?,
        None => index.range::<WebhookCursor>(..)?,
    };
    let mut out = Vec::with_capacity(limit);
    let mut last = None;
    for entry in range {
        let key = entry?.0.value();
        if Some(key) == after {
            continue;
        }
        if out.len() == limit {
            return Ok((out, last));
        }
        // The index and the records change together; a key without a record would be a
        // broken invariant, and is skipped rather than failing the whole view.
        if let Some(hook) = load::<u128, WebhookRecord>(&hooks, key.1)? {
            out.push(hook);
        }
        last = Some(key);
    }
    Ok((out, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventPattern, Millis, WebhookStatus};
    use crate::store::ops::webhooks;

    #[test]
    fn failing_and_disabled_come_first_and_pages_join_up() {
        let (_dir, store, first) = crate::store::ops::test_store_with_webhook();
        let mut ids = vec![first];
        for user in ["a", "b", "c", "d"] {
            let hook = WebhookRecord::new(
                user.into(),
                "n".into(),
                "https://example.com/".into(),
                vec![EventPattern::All],
                None,
                Millis(1),
            );
            ids.push(hook.id);
            store
                .write_blocking(move |tx| webhooks::create(tx, hook, 10))
                .unwrap();
        }
        // "b" disables its webhook: it moves ahead of the healthy ones.
        let disabled = ids[2];
        store
            .write_blocking(move |tx| {
                webhooks::update(tx, "b", disabled, Millis(2), |h| h.enabled = false)
            })
            .unwrap();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let (page, next) = store.read(|r| super::webhooks(r, cursor, 2)).unwrap();
            assert!(page.len() <= 2);
            seen.extend(page);
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 5);
        assert_eq!(seen[0].id, disabled);
        assert_eq!(seen[0].status, WebhookStatus::Disabled);
        assert!(seen[1..].iter().all(|h| h.status == WebhookStatus::Healthy));
        let mut listed: Vec<_> = seen.iter().map(|h| h.id).collect();
        listed.sort();
        ids.sort();
        assert_eq!(listed, ids, "every webhook once");

        // Deleted: gone from the index too.
        store
            .write_blocking(move |tx| webhooks::delete(tx, "b", disabled))
            .unwrap();
        let (page, _) = store.read(|r| super::webhooks(r, None, 10)).unwrap();
        assert_eq!(page.len(), 4);
        assert!(page.iter().all(|h| h.id != disabled));
    }
}

#[cfg(test)]
mod totals_tests {
    use crate::model::{Millis, WebhookId};
    use crate::store::ops::stats;
    use crate::store::records::Attempt;

    fn attempt(at: i64, status_code: Option<u16>) -> Attempt {
        Attempt {
            at: Millis(at),
            status_code,
            duration_ms: 3,
            error: None,
            response_body: None,
        }
    }

    #[test]
    fn totals_count_every_webhooks_attempts_per_minute_and_outcome() {
        let (_dir, store, hook) = crate::store::ops::test_store_with_webhook();
        let other = WebhookId::generate();
        let minute = 60_000i64;
        let day = stats::KEPT_MINUTES as i64 * minute;
        store
            .write_blocking(move |tx| {
                stats::count(tx, hook, &attempt(day, Some(200)))?;
                stats::count(tx, other, &attempt(day + 1, Some(503)))?;
                stats::count(tx, other, &attempt(day + 2, None))?;
                stats::count(tx, hook, &attempt(day + minute, Some(204)))?;
                // A day later: the first minutes are dropped.
                stats::count(tx, hook, &attempt(2 * day + minute + 5, Some(200)))?;
                stats::forget(tx, other)
            })
            .unwrap();
        let first = stats::minute_of(Millis(day));
        let all = store
            .read(|r| stats::totals(r, 0, u64::MAX))
            .unwrap()
            .into_iter()
            .map(|(m, s)| (m - first, s.succeeded, s.failed, s.errored))
            .collect::<Vec<_>>();
        // A deleted webhook's attempts stay in the totals; minute 0 is older than a day
        // when the last one opens its minute.
        assert_eq!(all, [(1, 1, 0, 0), (stats::KEPT_MINUTES + 1, 1, 0, 0)]);
        let window = store.read(|r| stats::totals(r, first, first)).unwrap();
        assert!(window.is_empty());
    }
}
