//! Operator notifications in the store: the durable outbox that `crate::notify` drains,
//! and the rate limit's memory per webhook. The invariants are in [`crate::store::tables`].
//!
//! [`enqueue`] runs inside the transaction that changes a webhook's status
//! (`attempts::record`, which asks [`change_of`] whether a change is one to tell), so a
//! notification exists exactly when its change was committed.
//! The sender reads the first [`NOTIFICATION_DUE`] key ([`next_due`]), releases a held
//! notification whose window has ended ([`release`]), and records each attempt's outcome
//! ([`finish`]), which promotes the webhook's next notification.

use std::time::Duration;

use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::{StoreError, load, meta_get};
use crate::delivery::retry::RetryPolicy;
use crate::model::{
    DeliveryId, Millis, NotificationId, NotificationKind, WebhookId, WebhookStatus,
};
use crate::notify::throttle::{self, Decision};
use crate::store::Tx;
use crate::store::codec::encode;
use crate::store::records::{
    Attempt, NotificationRecord, NotificationState, NotifyMarks, WebhookRecord, WebhookSnapshot,
};
use crate::store::tables::*;

/// What became of a new notification (see `notify::throttle`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Queued to be sent now (behind the webhook's older ones, if any).
    Queued,
    /// Held back by the rate limit until its window ends.
    Held,
    /// Not sent: the receiver already knows this state.
    Dropped,
}

/// What [`enqueue`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enqueued {
    pub kind: NotificationKind,
    pub fate: Fate,
    /// The kind of a held notification that this one replaced or made moot: it will
    /// never be sent.
    pub dropped: Option<NotificationKind>,
}

/// When a notification may next be attempted: its key in [`NOTIFICATION_DUE`] while it
/// is its webhook's oldest open one.
pub(crate) fn due_key(n: &NotificationRecord) -> u64 {
    n.next_attempt_at
        .map_or(n.not_before, |at| at.max(n.not_before))
        .as_key()
}

fn save(tx: &Tx<'_>, n: &NotificationRecord) -> Result<(), StoreError> {
    tx.txn
        .open_table(NOTIFICATIONS)?
        .insert(n.seq, encode(n).as_slice())?;
    Ok(())
}

/// The oldest open notification of `webhook`, if any.
fn oldest_open(tx: &Tx<'_>, webhook: u128) -> Result<Option<NotificationRecord>, StoreError> {
    let pending = tx.txn.open_table(NOTIFICATION_PENDING)?;
    let Some(first) = pending.range((webhook, 0u64)..=(webhook, u64::MAX))?.next() else {
        return Ok(None);
    };
    let seq = first?.0.value().1;
    load(&tx.txn.open_table(NOTIFICATIONS)?, seq)
}

/// The newest open notification of `webhook` if it is held (only the newest can be).
fn held(tx: &Tx<'_>, webhook: u128) -> Result<Option<NotificationRecord>, StoreError> {
    let pending = tx.txn.open_table(NOTIFICATION_PENDING)?;
    let Some(last) = pending
        .range((webhook, 0u64)..=(webhook, u64::MAX))?
        .next_back()
    else {
        return Ok(None);
    };
    let seq = last?.0.value().1;
    let newest: Option<NotificationRecord> = load(&tx.txn.open_table(NOTIFICATIONS)?, seq)?;
    Ok(newest.filter(|n| n.state == NotificationState::Held))
}

/// Takes `n` out of its webhook's open notifications (and out of `notification_due`,
/// where it was at `due` if it was the oldest), then gives the webhook's next one, if
/// any, its due entry.
fn close(tx: &Tx<'_>, n: &NotificationRecord, due: u64) -> Result<(), StoreError> {
    let webhook = n.webhook.id.0;
    tx.txn
        .open_table(NOTIFICATION_PENDING)?
        .remove((webhook, n.seq))?;
    tx.txn.open_table(NOTIFICATION_DUE)?.remove((due, n.seq))?;
    promote(tx, webhook)
}

/// Gives the oldest open notification of `webhook` its `notification_due` entry (a
/// no-op when it has it already).
fn promote(tx: &Tx<'_>, webhook: u128) -> Result<(), StoreError> {
    if let Some(next) = oldest_open(tx, webhook)? {
        tx.txn
            .open_table(NOTIFICATION_DUE)?
            .insert((due_key(&next), next.seq), ())?;
    }
    Ok(())
}

/// Deletes a held notification that will never be sent.
fn discard(tx: &Tx<'_>, n: &NotificationRecord) -> Result<(), StoreError> {
    close(tx, n, due_key(n))?;
    tx.txn.open_table(NOTIFICATIONS)?.remove(n.seq)?;
    Ok(())
}

fn load_marks(tx: &Tx<'_>, webhook: WebhookId) -> Result<NotifyMarks, StoreError> {
    Ok(load(&tx.txn.open_table(NOTIFICATION_MARKS)?, webhook.0)?.unwrap_or_default())
}

fn save_marks(tx: &Tx<'_>, webhook: WebhookId, marks: &NotifyMarks) -> Result<(), StoreError> {
    tx.txn
        .open_table(NOTIFICATION_MARKS)?
        .insert(webhook.0, encode(marks).as_slice())?;
    Ok(())
}

fn next_seq(tx: &Tx<'_>) -> Result<u64, StoreError> {
    let mut meta = tx.txn.open_table(META)?;
    let seq = meta_get(&meta, NOTIFICATION_SEQ)? + 1;
    meta.insert(NOTIFICATION_SEQ, seq)?;
    Ok(seq)
}

/// The change of a webhook's status that operators are notified of, if any: hookd
/// disabled it, it became failing, or it recovered from failing.
pub(crate) fn change_of(
    before: WebhookStatus,
    after: WebhookStatus,
    disabled: bool,
) -> Option<NotificationKind> {
    match (before, after) {
        _ if disabled => Some(NotificationKind::Disabled),
        (WebhookStatus::Healthy, WebhookStatus::Failing) => Some(NotificationKind::Failing),
        (WebhookStatus::Failing, WebhookStatus::Healthy) => Some(NotificationKind::Recovered),
        _ => None,
    }
}

/// The attempt (number `number`) that caused a notification, for its `reason`. Built
/// only when a status change is told, so an ordinary attempt costs nothing here.
pub(crate) struct Answered<'a> {
    pub attempt: &'a Attempt,
    pub number: u32,
}

impl Answered<'_> {
    fn what(&self) -> String {
        match (&self.attempt.error, self.attempt.status_code) {
            (Some(error), _) => error.clone(),
            (None, Some(code)) => format!("HTTP {code}"),
            (None, None) => "no answer".to_owned(),
        }
    }

    /// The `reason` of the notification of `kind` that this attempt of `delivery` caused;
    /// `gone`: the receiver answered `410 Gone`.
    pub(crate) fn reason(
        &self,
        kind: NotificationKind,
        delivery: DeliveryId,
        gone: bool,
        webhook: &WebhookRecord,
        policy: &RetryPolicy,
    ) -> String {
        let (n, what) = (self.number, self.what());
        match kind {
            NotificationKind::Failing => format!(
                "delivery {delivery} failed its last scheduled attempt (attempt {n}: {what})"
            ),
            NotificationKind::Disabled if gone => format!(
                "the receiver answered 410 Gone to delivery {delivery} (attempt {n}); hookd \
                 disabled the webhook and cancelled its pending deliveries"
            ),
            NotificationKind::Disabled => format!(
                "no successful attempt since {}, longer than delivery.disable_after ({}); hookd \
                 disabled the webhook and cancelled its pending deliveries (last: delivery \
                 {delivery}, attempt {n}: {what})",
                webhook.failing_since.unwrap_or_default().to_rfc3339(),
                crate::config::format_duration(policy.disable_after)
            ),
            NotificationKind::Recovered => format!(
                "delivery {delivery} succeeded (attempt {n}: {what}) after the webhook was failing"
            ),
        }
    }
}

/// Records that `webhook` (as it is now) changed as `kind` says, for `reason`: queues,
/// holds or drops a notification by the rate limit (`notify::throttle`). Call it in the
/// transaction that writes the change.
pub fn enqueue(
    tx: &mut Tx<'_>,
    webhook: &WebhookRecord,
    kind: NotificationKind,
    reason: String,
    now: Millis,
) -> Result<Enqueued, StoreError> {
    let mut marks = load_marks(tx, webhook.id)?;
    let held = held(tx, webhook.id.0)?;
    let dropped = held.as_ref().map(|h| h.kind);
    let fate = match throttle::decide(&marks, kind, now) {
        Decision::Send => {
            if let Some(h) = &held {
                discard(tx, h)?;
            }
            throttle::told(&mut marks, kind, now);
            save_marks(tx, webhook.id, &marks)?;
            open(
                tx,
                webhook,
                kind,
                reason,
                now,
                now,
                NotificationState::Pending,
            )?;
            Fate::Queued
        }
        Decision::Drop => {
            if let Some(h) = &held {
                discard(tx, h)?;
            }
            Fate::Dropped
        }
        Decision::Hold { until } => {
            match held {
                // The held one now tells the newer state, still in its place.
                Some(mut h) => {
                    tx.txn
                        .open_table(NOTIFICATION_DUE)?
                        .remove((due_key(&h), h.seq))?;
                    retell(&mut h, webhook, kind, reason, now, until);
                    save(tx, &h)?;
                    promote(tx, webhook.id.0)?;
                }
                None => {
                    open(
                        tx,
                        webhook,
                        kind,
                        reason,
                        now,
                        until,
                        NotificationState::Held,
                    )?;
                }
            }
            Fate::Held
        }
    };
    Ok(Enqueued {
        kind,
        fate,
        dropped,
    })
}

/// A held notification now tells the newer change `kind` (at `now`, of `webhook` as it
/// is now), still in its place, held until `until`.
pub(crate) fn retell(
    held: &mut NotificationRecord,
    webhook: &WebhookRecord,
    kind: NotificationKind,
    reason: String,
    now: Millis,
    until: Millis,
) {
    held.kind = kind;
    held.at = now;
    held.webhook = WebhookSnapshot::of(webhook);
    held.reason = reason;
    held.not_before = until;
}

/// A new open notification, `id` and `seq`, of `webhook`'s change `kind`.
pub(crate) fn new_record(
    (id, seq): (NotificationId, u64),
    webhook: &WebhookRecord,
    kind: NotificationKind,
    reason: String,
    now: Millis,
    not_before: Millis,
    state: NotificationState,
) -> NotificationRecord {
    NotificationRecord {
        id,
        seq,
        kind,
        at: now,
        webhook: WebhookSnapshot::of(webhook),
        reason,
        state,
        not_before,
        attempts: 0,
        next_attempt_at: None,
        last_error: None,
        finished_at: None,
    }
}

/// What [`release`] does with a notification at `now`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// Pending already: send it.
    Send,
    /// Held, and its window has ended: it becomes pending (and is told).
    Now,
    /// Nothing to send (held still, or finished).
    Not,
}

pub(crate) fn release_of(n: &NotificationRecord, now: Millis) -> Release {
    match n.state {
        NotificationState::Pending => Release::Send,
        NotificationState::Held if n.not_before <= now => Release::Now,
        _ => Release::Not,
    }
}

/// Applies an attempt's outcome to a pending notification, as [`finish`] records it:
/// answers the state it finished in, or `None` when it is due again (at its new
/// `next_attempt_at`).
pub(crate) fn outcome_of(
    n: &mut NotificationRecord,
    outcome: Attempted,
    policy: &RetryPolicy,
    now: Millis,
) -> Option<NotificationState> {
    let finished = match outcome {
        Attempted::Sent => {
            n.attempts = n.attempts.saturating_add(1);
            Some(NotificationState::Sent)
        }
        Attempted::Skipped => Some(NotificationState::Skipped),
        Attempted::Failed { error, retry_after } => {
            n.attempts = n.attempts.saturating_add(1);
            n.last_error = Some(error);
            let pause = retry_after.map(|wait| now.saturating_add(wait));
            match policy.next_due(n.attempts as usize, now, pause) {
                Some(due) => {
                    n.next_attempt_at = Some(due);
                    None
                }
                None => Some(NotificationState::Failed),
            }
        }
    };
    if let Some(state) = finished {
        n.state = state;
        n.next_attempt_at = None;
        n.finished_at = Some(now);
    }
    finished
}

/// Stores a new open notification behind the webhook's others.
fn open(
    tx: &mut Tx<'_>,
    webhook: &WebhookRecord,
    kind: NotificationKind,
    reason: String,
    now: Millis,
    not_before: Millis,
    state: NotificationState,
) -> Result<(), StoreError> {
    let id = NotificationId(tx.fresh_id());
    let n = new_record(
        (id, next_seq(tx)?),
        webhook,
        kind,
        reason,
        now,
        not_before,
        state,
    );
    save(tx, &n)?;
    tx.txn
        .open_table(NOTIFICATION_PENDING)?
        .insert((webhook.id.0, n.seq), ())?;
    promote(tx, webhook.id.0)?;
    prune(tx)
}

/// Deletes the oldest finished notifications beyond [`NOTIFICATIONS_KEPT`] (a few per
/// call, so the history stays near that size at a bounded cost per write).
fn prune(tx: &Tx<'_>) -> Result<(), StoreError> {
    let mut table = tx.txn.open_table(NOTIFICATIONS)?;
    let excess = table.len()?.saturating_sub(NOTIFICATIONS_KEPT);
    if excess == 0 {
        return Ok(());
    }
    let mut doomed = Vec::new();
    for entry in table.iter()?.take(8) {
        let (seq, bytes) = entry?;
        let n: NotificationRecord = crate::store::codec::decode(bytes.value())?;
        if !n.state.is_open() {
            doomed.push(seq.value());
        }
        if doomed.len() as u64 >= excess.min(2) {
            break;
        }
    }
    for seq in doomed {
        table.remove(seq)?;
    }
    Ok(())
}

/// The first `notification_due` entry: when it may be attempted, and which it is.
pub fn next_due(rtx: &ReadTransaction) -> Result<Option<(Millis, u64)>, StoreError> {
    let due = rtx.open_table(NOTIFICATION_DUE)?;
    let Some(first) = due.first()? else {
        return Ok(None);
    };
    let (at, seq) = first.0.value();
    Ok(Some((Millis::from_key(at), seq)))
}

/// Removes a `notification_due` entry that names no open notification (which the
/// invariants rule out; the sender calls this rather than spin on such an entry), and
/// gives the webhook of the notification it named, if any, its right entry.
pub fn unlink_due(tx: &mut Tx<'_>, at: Millis, seq: u64) -> Result<(), StoreError> {
    tx.txn
        .open_table(NOTIFICATION_DUE)?
        .remove((at.as_key(), seq))?;
    let named: Option<NotificationRecord> = load(&tx.txn.open_table(NOTIFICATIONS)?, seq)?;
    if let Some(n) = named {
        promote(tx, n.webhook.id.0)?;
    }
    Ok(())
}

pub fn get(rtx: &ReadTransaction, seq: u64) -> Result<Option<NotificationRecord>, StoreError> {
    load(&rtx.open_table(NOTIFICATIONS)?, seq)
}

/// Turns a held notification whose window has ended into a pending one (the rate limit
/// notes it as told). Answers the notification to send, or `None` when there is none to
/// send: it was replaced, dropped or finished meanwhile.
pub fn release(
    tx: &mut Tx<'_>,
    seq: u64,
    now: Millis,
) -> Result<Option<NotificationRecord>, StoreError> {
    let Some(mut n) = load::<u64, NotificationRecord>(&tx.txn.open_table(NOTIFICATIONS)?, seq)?
    else {
        return Ok(None);
    };
    match release_of(&n, now) {
        Release::Send => return Ok(Some(n)),
        Release::Now => {}
        Release::Not => return Ok(None),
    }
    // The marks go with their webhook: a deleted one's held notification is still sent,
    // but leaves no marks behind.
    if tx.txn.open_table(WEBHOOKS)?.get(n.webhook.id.0)?.is_some() {
        let mut marks = load_marks(tx, n.webhook.id)?;
        throttle::told(&mut marks, n.kind, now);
        save_marks(tx, n.webhook.id, &marks)?;
    }
    n.state = NotificationState::Pending;
    save(tx, &n)?;
    Ok(Some(n))
}

/// How an attempt to send a notification ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempted {
    /// A 2xx.
    Sent,
    /// No `notifications.url` is configured: finished without an attempt.
    Skipped,
    /// Anything else; `retry_after` when a 429/503 asked for a pause.
    Failed {
        error: String,
        retry_after: Option<Duration>,
    },
}

/// Records an attempt's outcome: a finished notification leaves the outbox and the
/// webhook's next one becomes due; a failed one is due again by `policy`'s schedule or,
/// when that is used up, is `Failed`. Answers its state afterwards (`None`: it was no
/// longer pending).
pub fn finish(
    tx: &mut Tx<'_>,
    seq: u64,
    outcome: Attempted,
    policy: &RetryPolicy,
    now: Millis,
) -> Result<Option<NotificationState>, StoreError> {
    let Some(mut n) = load::<u64, NotificationRecord>(&tx.txn.open_table(NOTIFICATIONS)?, seq)?
    else {
        return Ok(None);
    };
    if n.state != NotificationState::Pending {
        return Ok(None);
    }
    let old_key = due_key(&n);
    match outcome_of(&mut n, outcome, policy, now) {
        Some(_) => {
            save(tx, &n)?;
            close(tx, &n, old_key)?;
            prune(tx)?;
        }
        None => {
            save(tx, &n)?;
            let mut due = tx.txn.open_table(NOTIFICATION_DUE)?;
            due.remove((old_key, n.seq))?;
            due.insert((due_key(&n), n.seq), ())?;
        }
    }
    Ok(Some(n.state))
}

/// The newest `limit` notifications, newest first.
pub fn recent(rtx: &ReadTransaction, limit: usize) -> Result<Vec<NotificationRecord>, StoreError> {
    let table = rtx.open_table(NOTIFICATIONS)?;
    let mut out = Vec::with_capacity(limit);
    for entry in table.iter()?.rev().take(limit) {
        out.push(crate::store::codec::decode(entry?.1.value())?);
    }
    Ok(out)
}

/// How many notifications are still to be sent (held ones included). O(1).
pub fn open_count(rtx: &ReadTransaction) -> Result<u64, StoreError> {
    Ok(rtx.open_table(NOTIFICATION_PENDING)?.len()?)
}

/// Forgets the rate limit's memory of a deleted webhook. (Its open notifications are
/// still sent: they tell of changes that happened.)
pub fn forget(tx: &mut Tx<'_>, webhook: WebhookId) -> Result<(), StoreError> {
    tx.txn.open_table(NOTIFICATION_MARKS)?.remove(webhook.0)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{NotificationKind::*, WebhookStatus};
    use crate::store::RedbStore as Store;
    use crate::store::ops::test_store_with_webhook;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![Duration::ZERO, Duration::from_secs(1)],
            disable_after: Duration::from_secs(3600),
        }
    }

    fn hook(store: &Store, id: WebhookId) -> WebhookRecord {
        store
            .read(|r| super::super::webhooks::get(r, id))
            .unwrap()
            .unwrap()
    }

    fn enqueue_at(store: &Store, id: WebhookId, kind: NotificationKind, at: i64) -> Enqueued {
        let mut w = hook(store, id);
        w.status = match kind {
            Failing => WebhookStatus::Failing,
            Disabled => WebhookStatus::Disabled,
            Recovered => WebhookStatus::Healthy,
        };
        w.enabled = kind != Disabled;
        store
            .write_blocking(move |tx| enqueue(tx, &w, kind, format!("{kind:?}"), Millis(at)))
            .unwrap()
    }

    fn head(store: &Store) -> Option<(Millis, NotificationRecord)> {
        store
            .read(|r| {
                Ok(match next_due(r)? {
                    Some((at, seq)) => Some((at, get(r, seq)?.expect("due entry has a record"))),
                    None => None,
                })
            })
            .unwrap()
    }

    fn finish_at(
        store: &Store,
        seq: u64,
        outcome: Attempted,
        at: i64,
    ) -> Option<NotificationState> {
        store
            .write_blocking(move |tx| finish(tx, seq, outcome, &policy(), Millis(at)))
            .unwrap()
    }

    #[test]
    fn a_webhooks_notifications_go_one_after_another_in_order() {
        let (_dir, store, id) = test_store_with_webhook();
        assert_eq!(enqueue_at(&store, id, Failing, 0).fate, Fate::Queued);
        assert_eq!(enqueue_at(&store, id, Recovered, 10).fate, Fate::Queued);
        let (at, first) = head(&store).unwrap();
        assert_eq!(
            (at, first.kind, first.state),
            (Millis(0), Failing, NotificationState::Pending)
        );
        assert_eq!(first.webhook.status, WebhookStatus::Failing);
        assert_eq!(store.read(open_count).unwrap(), 2);

        // A failed attempt keeps it first, due again by the schedule; its successor waits.
        let failed = Attempted::Failed {
            error: "HTTP 500".into(),
            retry_after: None,
        };
        assert_eq!(
            finish_at(&store, first.seq, failed.clone(), 100),
            Some(NotificationState::Pending)
        );
        let (at, again) = head(&store).unwrap();
        assert_eq!(
            (at, again.seq, again.attempts),
            (Millis(1_100), first.seq, 1)
        );
        // The schedule runs out: failed, and the next one is due.
        assert_eq!(
            finish_at(&store, first.seq, failed, 1_100),
            Some(NotificationState::Failed)
        );
        let (_, second) = head(&store).unwrap();
        assert_eq!(second.kind, Recovered);
        assert_eq!(
            finish_at(&store, second.seq, Attempted::Sent, 1_200),
            Some(NotificationState::Sent)
        );
        assert!(head(&store).is_none());
        assert_eq!(store.read(open_count).unwrap(), 0);
        // Finishing twice changes nothing.
        assert_eq!(finish_at(&store, second.seq, Attempted::Sent, 1_300), None);
        let recent = store.read(|r| recent(r, 10)).unwrap();
        let states: Vec<_> = recent.iter().map(|n| n.state).collect();
        assert_eq!(states, [NotificationState::Sent, NotificationState::Failed]);
    }

    #[test]
    fn a_held_notification_is_replaced_dropped_or_released() {
        let (_dir, store, id) = test_store_with_webhook();
        enqueue_at(&store, id, Failing, 0);
        enqueue_at(&store, id, Recovered, 1_000);
        let (_, f) = head(&store).unwrap();
        finish_at(&store, f.seq, Attempted::Sent, 1_001);
        let (_, r) = head(&store).unwrap();
        finish_at(&store, r.seq, Attempted::Sent, 1_002);

        // Failing again within the minute: held until the window ends.
        let e = enqueue_at(&store, id, Failing, 2_000);
        assert_eq!((e.fate, e.dropped), (Fate::Held, None));
        let (at, held) = head(&store).unwrap();
        assert_eq!((at, held.state), (Millis(60_000), NotificationState::Held));
        // Recovering again: the receiver already knows "recovered"; the held one goes.
        let e = enqueue_at(&store, id, Recovered, 3_000);
        assert_eq!((e.fate, e.dropped), (Fate::Dropped, Some(Failing)));
        assert!(head(&store).is_none());
        assert_eq!(store.read(|r| get(r, held.seq)).unwrap(), None);

        // Held, then disabled (never told in this window): sent at once, the held one gone.
        enqueue_at(&store, id, Failing, 4_000);
        let e = enqueue_at(&store, id, Disabled, 5_000);
        assert_eq!((e.fate, e.dropped), (Fate::Queued, Some(Failing)));
        let (at, d) = head(&store).unwrap();
        assert_eq!((at, d.kind), (Millis(5_000), Disabled));
        finish_at(&store, d.seq, Attempted::Sent, 5_001);

        // A held one is released when its window ends, and is told then.
        enqueue_at(&store, id, Failing, 6_000);
        let (at, h) = head(&store).unwrap();
        assert_eq!(at, Millis(60_000));
        let early = store
            .write_blocking(move |tx| release(tx, h.seq, Millis(59_999)))
            .unwrap();
        assert_eq!(early, None, "not before its window ends");
        let released = store
            .write_blocking(move |tx| release(tx, h.seq, Millis(60_000)))
            .unwrap()
            .unwrap();
        assert_eq!(released.state, NotificationState::Pending);
        // A recovery right after that told failure is never held.
        assert_eq!(enqueue_at(&store, id, Recovered, 60_500).fate, Fate::Queued);

        // A deleted webhook's held notification is still released and sent, and leaves
        // no marks.
        enqueue_at(&store, id, Failing, 61_000);
        let held = store.read(|r| recent(r, 1)).unwrap().remove(0);
        assert_eq!(held.state, NotificationState::Held);
        store
            .write_blocking(move |tx| super::super::webhooks::delete(tx, "u", id))
            .unwrap();
        let released = store
            .write_blocking(move |tx| release(tx, held.seq, Millis(200_000)))
            .unwrap();
        assert!(released.is_some());
        let marks = store
            .read(|r| Ok(r.open_table(NOTIFICATION_MARKS)?.get(id.0)?.is_some()))
            .unwrap();
        assert!(!marks, "no marks for a deleted webhook");
    }

    #[test]
    fn a_stale_due_entry_is_removed_and_the_webhooks_right_one_kept() {
        let (_dir, store, id) = test_store_with_webhook();
        enqueue_at(&store, id, Failing, 5_000);
        let (at, n) = head(&store).unwrap();
        assert_eq!(at, Millis(5_000));
        // A bogus entry before it (no such notification), and a wrong key for a real one.
        store
            .write_blocking(move |tx| {
                let mut due = tx.txn.open_table(NOTIFICATION_DUE)?;
                due.insert((0, 999), ())?;
                due.insert((0, n.seq), ())?;
                Ok(())
            })
            .unwrap();
        store
            .write_blocking(|tx| unlink_due(tx, Millis(0), 999))
            .unwrap();
        store
            .write_blocking(move |tx| unlink_due(tx, Millis(0), n.seq))
            .unwrap();
        let left = store
            .read(|r| {
                let mut keys = Vec::new();
                for entry in r.open_table(NOTIFICATION_DUE)?.iter()? {
                    keys.push(entry?.0.value());
                }
                Ok(keys)
            })
            .unwrap();
        assert_eq!(left, [(at.as_key(), n.seq)]);
    }

    #[test]
    fn the_history_is_bounded_and_open_ones_are_kept() {
        let (_dir, store, id) = test_store_with_webhook();
        let kinds = [Failing, Recovered];
        for i in 0..(NOTIFICATIONS_KEPT + 50) {
            // Two minutes apart: nothing is held back.
            let at = i as i64 * 120_000;
            enqueue_at(&store, id, kinds[(i % 2) as usize], at);
            let (_, n) = head(&store).unwrap();
            finish_at(&store, n.seq, Attempted::Skipped, at + 1);
        }
        enqueue_at(&store, id, Failing, 1 << 40);
        let (total, open) = store
            .read(|r| Ok((r.open_table(NOTIFICATIONS)?.len()?, open_count(r)?)))
            .unwrap();
        assert!(total <= NOTIFICATIONS_KEPT + 1, "{total}");
        assert_eq!(open, 1);
    }
}
