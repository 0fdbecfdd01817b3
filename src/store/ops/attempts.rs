//! The delivery lifecycle after ingest: what an attempt's outcome does to the delivery,
//! its queue entry and its webhook; moving queued deliveries in time (rate limit); and
//! starting a failed delivery's schedule again (manual retry, recover).
//!
//! Every function keeps the queue invariant of [`crate::store::tables`]: a delivery is
//! `Pending` exactly when it has one queue entry, keyed by its `next_attempt_at`; and
//! every status change moves the delivery's `delivery_filter` entry, and every webhook
//! status change the webhooks-by-status counters, in the same transaction. A webhook
//! status change that hookd makes (failing, disabled, recovered) queues its operator
//! notification in that transaction too (`ops::notifications`).

use std::time::Duration;

use redb::{ReadTransaction, ReadableTable};

use super::deliveries::{
    DeliveryFilter, add_attempt, event_of, indexed_newest_first, last_attempt, load_delivery, save,
};
use super::filter::{FilterIndex, number_of};
use super::notifications::{self, Enqueued};
use super::order::Queue;
use super::stats;
use super::webhooks::start_cancel;
use super::{Chunk, StoreError, count_webhook, load};
use crate::delivery::retry::RetryPolicy;
use crate::model::{
    DeliveryId, DeliveryStatus, Millis, NotificationKind, WebhookId, WebhookStatus,
};
use crate::store::Tx;
use crate::store::codec::encode;
use crate::store::records::{Attempt, DeliveryRecord, EventRecord, EventRef, WebhookRecord};
use crate::store::tables::*;

/// How stale a webhook's `last_success_at` may get before a success rewrites it.
const LAST_SUCCESS_RESOLUTION_MS: i64 = 60_000;

/// What an attempt's answer means for the delivery.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Verdict {
    /// A 2xx in time.
    Success,
    /// Anything else; `retry_after` when a 429/503 asked for a pause.
    Failure { retry_after: Option<Duration> },
    /// `410 Gone`: the receiver says the endpoint no longer exists.
    Gone,
}

/// What recording an attempt changed beyond the delivery itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The webhook was disabled (410, or failing for `disable_after`).
    pub webhook_disabled: bool,
    /// The delivery's status after this attempt.
    pub status: Option<DeliveryStatus>,
    /// The operator notification of the webhook's status change, if it changed.
    pub notification: Option<Enqueued>,
}

/// Everything one attempt needs, read in one snapshot.
#[derive(Debug)]
pub struct AttemptInputs {
    pub delivery: DeliveryRecord,
    pub webhook: WebhookRecord,
    pub event: EventRecord,
}

/// Loads what an attempt of `delivery` needs; `None` when it is no longer to be sent
/// (deleted, cancelled, done, or its webhook is gone or disabled).
pub fn load_for_attempt(
    rtx: &ReadTransaction,
    delivery: DeliveryId,
) -> Result<Option<AttemptInputs>, StoreError> {
    let Some(delivery) = load_delivery(&rtx.open_table(DELIVERIES)?, delivery.0)? else {
        return Ok(None);
    };
    if delivery.status != DeliveryStatus::Pending {
        return Ok(None);
    }
    let Some(webhook) =
        load::<u128, WebhookRecord>(&rtx.open_table(WEBHOOKS)?, delivery.webhook_id.0)?
    else {
        return Ok(None);
    };
    if !webhook.enabled {
        return Ok(None);
    }
    let Some(event) = event_of(
        &rtx.open_table(EVENTS_BY_SEQ)?,
        &rtx.open_table(EVENTS)?,
        &delivery.event,
    )?
    else {
        return Ok(None);
    };
    Ok(Some(AttemptInputs {
        delivery,
        webhook,
        event,
    }))
}

/// A pending delivery that can no longer be sent — its event was pruned by retention,
/// or its webhook is gone or disabled without the cancellation having reached it — is
/// cancelled and leaves the queue, so it is not dispatched again and again. Answers
/// whether anything changed.
pub fn cancel_if_unsendable(tx: &mut Tx<'_>, id: DeliveryId) -> Result<bool, StoreError> {
    let mut deliveries = tx.txn.open_table(DELIVERIES)?;
    let Some(mut d) = load_delivery(&deliveries, id.0)? else {
        return Ok(false);
    };
    if d.status != DeliveryStatus::Pending {
        return Ok(false);
    }
    let webhook_ok = load::<u128, WebhookRecord>(&tx.txn.open_table(WEBHOOKS)?, d.webhook_id.0)?
        .is_some_and(|w| w.enabled);
    let event_ok = match &d.event {
        EventRef::Seq(seq) => tx.txn.open_table(EVENTS_BY_SEQ)?.get(*seq)?.is_some(),
        EventRef::Id(id) => tx.txn.open_table(EVENTS)?.get(id.as_str())?.is_some(),
    };
    if webhook_ok && event_ok {
        return Ok(false);
    }
    let mut filter = FilterIndex::open(tx.txn)?;
    let number = filter.number(d.webhook_id)?;
    Queue::open(tx.txn)?.left(number, &d)?;
    d.status = DeliveryStatus::Cancelled;
    d.next_attempt_at = None;
    save(&mut deliveries, &mut tx.txn.open_table(ATTEMPTS)?, &mut d)?;
    filter.moved(&d, DeliveryStatus::Pending)?;
    Ok(true)
}

/// How an outcome reaches [`record`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Recording {
    /// Straight from the attempt.
    First,
    /// Again, after a commit that reported failure (the outage path): that commit may in
    /// fact have reached the disk, so an attempt already in the log is not added twice.
    Again,
}

/// Whether an outcome handed over again ([`Recording::Again`]) is already in the log:
/// the delivery's latest attempt is this very one (same start, same duration).
pub(crate) fn already_recorded(last: Option<&Attempt>, attempt: &Attempt) -> bool {
    last.is_some_and(|last| last.at == attempt.at && last.duration_ms == attempt.duration_ms)
}

/// What one attempt's verdict does to its delivery and webhook: the rule, decided without
/// a store, that both backends apply ([`decide`]).
pub(crate) struct Decision {
    /// What the caller answers (its `notification` is filled in once enqueued).
    pub recorded: Recorded,
    /// The attempt's number (`attempts` of the delivery now).
    pub number: u32,
    /// The delivery's status before: not `Pending` when it was cancelled while the
    /// attempt was under way (then only the attempt and, if it was delivered, the status
    /// change are recorded, and nothing else changes).
    pub was: DeliveryStatus,
    /// The webhook record changed and is to be written (a run of successes leaves it as
    /// it is, so the steady state rewrites no webhook record).
    pub write_webhook: bool,
    /// The webhook's status before the attempt.
    pub status_before: WebhookStatus,
    /// The operator notification the change calls for, with its reason.
    pub notify: Option<(NotificationKind, String)>,
}

/// Applies `verdict` of an attempt that ended at `now` to `delivery` and `webhook` (both
/// as stored): counts the attempt, sets the delivery's status and next due time (by
/// `policy`, after any `Retry-After` pause, which is stored on the webhook), and the
/// webhook's failing, disabled and recovered state. The caller writes what changed: the
/// attempt row, the delivery and its queue entry, the webhook if
/// [`Decision::write_webhook`] or its status changed, the notification, and the
/// cancellation of its queue when [`Recorded::webhook_disabled`].
pub(crate) fn decide(
    delivery: &mut DeliveryRecord,
    webhook: &mut WebhookRecord,
    verdict: Verdict,
    attempt: &Attempt,
    policy: &RetryPolicy,
    now: Millis,
) -> Decision {
    let number = delivery.attempts.saturating_add(1);
    delivery.attempts = number;
    let was = delivery.status;
    let status_before = webhook.status;
    let mut recorded = Recorded::default();
    if was != DeliveryStatus::Pending {
        // Cancelled while the attempt was under way: keep the record of it. If the
        // receiver took it, it was delivered (the disable or delete waited for this
        // attempt before answering, see `delivery::fence`), and the log says so.
        let delivered = was == DeliveryStatus::Cancelled && verdict == Verdict::Success;
        if delivered {
            delivery.status = DeliveryStatus::Succeeded;
        }
        recorded.status = delivered.then_some(DeliveryStatus::Succeeded);
        return Decision {
            recorded,
            number,
            was,
            write_webhook: false,
            status_before,
            notify: None,
        };
    }
    delivery.next_attempt_at = None;
    let mut write_webhook = true;
    match verdict {
        Verdict::Success => {
            delivery.status = DeliveryStatus::Succeeded;
            // A run of successes leaves the webhook as it is (`last_success_at` is kept
            // to the minute), so the steady state rewrites no webhook record.
            write_webhook = webhook.failing_since.is_some()
                || (webhook.enabled && webhook.status != WebhookStatus::Healthy)
                || webhook
                    .last_success_at
                    .is_none_or(|t| now.0.saturating_sub(t.0) >= LAST_SUCCESS_RESOLUTION_MS);
            webhook.failing_since = None;
            webhook.last_success_at = Some(now);
            if webhook.enabled {
                webhook.status = WebhookStatus::Healthy;
            }
        }
        Verdict::Gone => {
            delivery.status = DeliveryStatus::Failed;
            webhook.enabled = false;
            webhook.status = WebhookStatus::Disabled;
            recorded.webhook_disabled = true;
        }
        Verdict::Failure { retry_after } => {
            if let Some(wait) = retry_after {
                let until = now.saturating_add(wait);
                webhook.paused_until = Some(webhook.paused_until.map_or(until, |p| p.max(until)));
            }
            let failing_since = *webhook.failing_since.get_or_insert(now);
            let made = delivery.attempts.saturating_sub(delivery.schedule_base) as usize;
            match policy.next_due(made, now, webhook.paused_until) {
                Some(due) => delivery.next_attempt_at = Some(due),
                None => {
                    delivery.status = DeliveryStatus::Failed;
                    if webhook.enabled {
                        webhook.status = WebhookStatus::Failing;
                    }
                }
            }
            if webhook.enabled && policy.should_disable(failing_since, now) {
                webhook.enabled = false;
                webhook.status = WebhookStatus::Disabled;
                recorded.webhook_disabled = true;
            }
        }
    }
    recorded.status = Some(delivery.status);
    let change = notifications::change_of(status_before, webhook.status, recorded.webhook_disabled);
    let notify = change.map(|kind| {
        let gone = verdict == Verdict::Gone;
        let answered = notifications::Answered { attempt, number };
        let reason = answered.reason(kind, delivery.id, gone, webhook, policy);
        (kind, reason)
    });
    Decision {
        recorded,
        number,
        was,
        write_webhook: write_webhook || webhook.status != status_before,
        status_before,
        notify,
    }
}

/// Records an attempt and applies its verdict ([`decide`]). The attempt gets the next
/// number (`attempts + 1`) and a row of its own; the delivery record only counts it, so
/// an attempt writes the same few bytes however many came before. `None` when the
/// delivery no longer exists or its webhook was deleted meanwhile (the delivery is
/// removed chunk by chunk with the rest of the webhook's, `webhooks::delete`).
pub fn record(
    tx: &mut Tx<'_>,
    id: DeliveryId,
    verdict: Verdict,
    attempt: Attempt,
    recording: Recording,
    policy: &RetryPolicy,
    now: Millis,
) -> Result<Option<Recorded>, StoreError> {
    let mut deliveries = tx.txn.open_table(DELIVERIES)?;
    let mut attempts = tx.txn.open_table(ATTEMPTS)?;
    let Some(mut delivery) = load_delivery(&deliveries, id.0)? else {
        return Ok(None);
    };
    if recording == Recording::Again
        && already_recorded(last_attempt(&attempts, &delivery)?.as_ref(), &attempt)
    {
        return Ok(Some(Recorded {
            webhook_disabled: false,
            status: Some(delivery.status),
            notification: None,
        }));
    }
    let mut hooks = tx.txn.open_table(WEBHOOKS)?;
    // Its webhook deleted meanwhile: nothing to record (no statistics for a webhook that
    // is gone either); the delivery keeps its queue entry until its chunk is removed.
    let Some(mut webhook) = load::<u128, WebhookRecord>(&hooks, delivery.webhook_id.0)? else {
        return Ok(None);
    };
    stats::count(tx, delivery.webhook_id, &attempt)?;
    let was_due = delivery.next_attempt_at;
    let decision = decide(&mut delivery, &mut webhook, verdict, &attempt, policy, now);
    add_attempt(&mut attempts, &delivery, decision.number, &attempt)?;
    let mut recorded = decision.recorded;
    let mut filter = FilterIndex::open(tx.txn)?;
    if decision.was != DeliveryStatus::Pending {
        save(&mut deliveries, &mut attempts, &mut delivery)?;
        filter.moved(&delivery, decision.was)?;
        return Ok(Some(recorded));
    }
    let number = filter.number(delivery.webhook_id)?;
    let mut queue = Queue::open(tx.txn)?;
    queue.rescheduled(number, &delivery, was_due)?;
    if delivery.status != DeliveryStatus::Pending {
        // Done: the next one in line is the webhook's head now.
        queue.left_line(number, &delivery)?;
    }
    save(&mut deliveries, &mut attempts, &mut delivery)?;
    filter.moved(&delivery, DeliveryStatus::Pending)?;
    if decision.write_webhook {
        hooks.insert(webhook.id.0, encode(&webhook).as_slice())?;
        count_webhook(
            tx,
            webhook.id,
            Some(decision.status_before),
            Some(webhook.status),
        )?;
    }
    drop((deliveries, attempts, filter, queue, hooks));
    if let Some((kind, reason)) = decision.notify {
        recorded.notification = Some(notifications::enqueue(tx, &webhook, kind, reason, now)?);
    }
    if recorded.webhook_disabled {
        // The first chunk now; a bigger backlog is finished by the daemon's cleanup sweep.
        // Rows only: a time bound would cancel another number when the log runs it again.
        start_cancel(tx, delivery.webhook_id, Chunk::rows_only())?;
    }
    Ok(Some(recorded))
}

/// Moves pending deliveries of `webhook` to new due times (rate limiting), so that their
/// `nextAttemptAt` says when they will really go. Deliveries no longer pending are skipped.
pub fn reschedule(
    tx: &mut Tx<'_>,
    webhook: WebhookId,
    moves: &[(DeliveryId, Millis)],
) -> Result<usize, StoreError> {
    let mut deliveries = tx.txn.open_table(DELIVERIES)?;
    let mut attempts = tx.txn.open_table(ATTEMPTS)?;
    let number = number_of(&tx.txn.open_table(WEBHOOK_NUMBERS)?, webhook)?;
    let mut queue = Queue::open(tx.txn)?;
    let mut moved = 0;
    for &(id, due) in moves {
        let Some(mut d) = load_delivery(&deliveries, id.0)? else {
            continue;
        };
        if d.status != DeliveryStatus::Pending || d.webhook_id != webhook {
            continue;
        }
        let Some(number) = number else {
            return Err(StoreError::Inconsistent(format!(
                "webhook {webhook} has pending deliveries and no number"
            )));
        };
        let was = d.next_attempt_at;
        d.next_attempt_at = Some(due);
        queue.rescheduled(number, &d, was)?;
        save(&mut deliveries, &mut attempts, &mut d)?;
        moved += 1;
    }
    Ok(moved)
}

/// Why a failed delivery could not be queued again.
#[derive(Debug, PartialEq, Eq)]
pub enum Requeue {
    Queued(Millis),
    NotFound,
    NotFailed,
    WebhookDisabled,
}

/// A failed delivery starts a new run of the retry schedule from `due` (attempt numbers
/// go on): the record's side of a manual retry or a recover, shared by both backends.
/// Answers the status it had.
pub(crate) fn restart(d: &mut DeliveryRecord, due: Millis) -> DeliveryStatus {
    let was = d.status;
    d.status = DeliveryStatus::Pending;
    d.schedule_base = d.attempts;
    d.next_attempt_at = Some(due);
    was
}

/// Whether a manual retry of delivery `d` (of a webhook of the caller's) may queue it.
pub(crate) fn retry_refusal(d: &DeliveryRecord, hook: &WebhookRecord) -> Option<Requeue> {
    if d.status != DeliveryStatus::Failed {
        return Some(Requeue::NotFailed);
    }
    if !hook.enabled {
        return Some(Requeue::WebhookDisabled);
    }
    None
}

/// What a recover does with one candidate, newest first: a failed delivery created
/// before the window ends the search, one created in it is queued again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pick {
    Take,
    Skip,
    Stop,
}

pub(crate) fn recover_pick(d: &DeliveryRecord, (since, until): (Millis, Millis)) -> Pick {
    if d.created_at < since {
        Pick::Stop
    } else if d.created_at >= until || d.status != DeliveryStatus::Failed {
        Pick::Skip
    } else {
        Pick::Take
    }
}

/// Queues a failed delivery again: a new run of the schedule from `due`, at the back of
/// its webhook's line (`position`, a fresh number from the delivery sequence).
fn restart_schedule(
    d: &mut DeliveryRecord,
    queue: &mut Queue<'_>,
    filter: &mut FilterIndex<'_>,
    (due, position): (Millis, u64),
) -> Result<(), StoreError> {
    let was = restart(d, due);
    queue.requeued(filter.number(d.webhook_id)?, d, position)?;
    filter.moved(d, was)?;
    Ok(())
}

fn owned_webhook(
    tx: &Tx<'_>,
    user: &str,
    webhook: WebhookId,
) -> Result<Option<WebhookRecord>, StoreError> {
    Ok(
        load::<u128, WebhookRecord>(&tx.txn.open_table(WEBHOOKS)?, webhook.0)?
            .filter(|w| w.user == user),
    )
}

/// Manual retry: a `failed` delivery starts the schedule again (attempt numbers continue).
pub fn retry(
    tx: &mut Tx<'_>,
    user: &str,
    webhook: WebhookId,
    id: DeliveryId,
    due: Millis,
) -> Result<Requeue, StoreError> {
    let Some(hook) = owned_webhook(tx, user, webhook)? else {
        return Ok(Requeue::NotFound);
    };
    let mut deliveries = tx.txn.open_table(DELIVERIES)?;
    let Some(mut d) = load_delivery(&deliveries, id.0)?.filter(|d| d.webhook_id == webhook) else {
        return Ok(Requeue::NotFound);
    };
    if let Some(refusal) = retry_refusal(&d, &hook) {
        return Ok(refusal);
    }
    let position = tx.next_delivery_seq();
    restart_schedule(
        &mut d,
        &mut Queue::open(tx.txn)?,
        &mut FilterIndex::open(tx.txn)?,
        (due, position),
    )?;
    save(&mut deliveries, &mut tx.txn.open_table(ATTEMPTS)?, &mut d)?;
    Ok(Requeue::Queued(due))
}

/// One chunk of a recover: how many it queued again, and where the next chunk starts.
#[derive(Debug, PartialEq, Eq)]
pub struct Recovered {
    pub queued: usize,
    /// The delivery seq the next chunk starts at; `None` when the range is done.
    pub next: Option<u64>,
}

/// Recover: every `failed` delivery of the webhook created in `[since, until)` starts the
/// schedule again, at the back of the webhook's line. One chunk ([`Chunk`]: at most
/// [`CLEANUP_CHUNK`] failed deliveries of the webhook's log, a few milliseconds) is looked
/// at, newest first, from the delivery seq `before` (exclusive; `u64::MAX` to start); the
/// caller runs chunks, each its own write job, until `next` is `None`. The failed
/// deliveries are found through `delivery_filter` (and, below its mark, through
/// `webhook_deliveries`), so a chunk reads no others. A chunk queues what it found oldest
/// first, so a recover of up to a chunk keeps ingestion order in line; a bigger one keeps
/// it within each chunk, the newest chunk first (docs/guide.md says so).
/// `Err(NotFound)` when there is no such webhook for `user`, `Err(WebhookDisabled)` when
/// it is disabled (checked by every chunk).
pub fn recover(
    tx: &mut Tx<'_>,
    user: &str,
    webhook: WebhookId,
    window: (Millis, Millis),
    due: Millis,
    before: u64,
) -> Result<Result<Recovered, Requeue>, StoreError> {
    let Some(hook) = owned_webhook(tx, user, webhook)? else {
        return Ok(Err(Requeue::NotFound));
    };
    if !hook.enabled {
        return Ok(Err(Requeue::WebhookDisabled));
    }
    let mut out = Recovered {
        queued: 0,
        next: None,
    };
    let mut chunk = Chunk::start();
    let candidates = failed_newest_first(tx, webhook, before)?;
    let mut deliveries = tx.txn.open_table(DELIVERIES)?;
    let mut attempts = tx.txn.open_table(ATTEMPTS)?;
    let mut queue = Queue::open(tx.txn)?;
    let mut filter = FilterIndex::open(tx.txn)?;
    // Newest first: stop once creation times fall before the window.
    let mut found = Vec::new();
    for (seq, id) in candidates {
        if !chunk.room() {
            out.next = Some(seq + 1);
            break;
        }
        chunk.did();
        let Some(d) = load_delivery(&deliveries, id)? else {
            continue;
        };
        match recover_pick(&d, window) {
            Pick::Stop => break,
            Pick::Skip => continue,
            Pick::Take => found.push(d),
        }
    }
    // Oldest first into the line, so they keep their ingestion order there.
    for mut d in found.into_iter().rev() {
        let position = tx.next_delivery_seq();
        restart_schedule(&mut d, &mut queue, &mut filter, (due, position))?;
        save(&mut deliveries, &mut attempts, &mut d)?;
        out.queued += 1;
    }
    Ok(Ok(out))
}

/// Up to [`CLEANUP_CHUNK`] + 1 (seq, id) of the webhook's deliveries below `before` that
/// may be failed, newest first: the failed ranges of `delivery_filter` from its mark on,
/// then every delivery of `webhook_deliveries` below the mark (written by an older hookd).
fn failed_newest_first(
    tx: &Tx<'_>,
    webhook: WebhookId,
    before: u64,
) -> Result<Vec<(u64, u128)>, StoreError> {
    let mark = super::meta_get(&tx.txn.open_table(META)?, DELIVERY_FILTER_FROM)?.min(before);
    let filter = tx.txn.open_table(DELIVERY_FILTER)?;
    let by_seq = tx.txn.open_table(DELIVERIES_BY_SEQ)?;
    let failed = DeliveryFilter {
        status: Some(DeliveryStatus::Failed),
        event_type: None,
    };
    let index = tx.txn.open_table(WEBHOOK_DELIVERIES)?;
    let older = index
        .range((webhook.0, 0u64)..(webhook.0, mark))?
        .rev()
        .map(|e| {
            let (key, id) = e?;
            Ok((key.value().1, id.value()))
        });
    let number = number_of(&tx.txn.open_table(WEBHOOK_NUMBERS)?, webhook)?;
    indexed_newest_first(&filter, &by_seq, number, failed, mark..before)?
        .chain(older)
        .take(CLEANUP_CHUNK + 1)
        .collect()
}
