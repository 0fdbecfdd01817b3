//! The rate limit of operator notifications: at most one per webhook and kind per
//! [`WINDOW`], without ever leaving the receiver with a stale picture of a webhook.
//!
//! The receiver's picture of a webhook is the kind of the last notification queued to be
//! sent for it (`told` in [`NotifyMarks`]). A new notification of kind K:
//! 1. goes at once if none of kind K was queued within the window, or if it is a
//!    `recovered` after a told `failing`: a recovery is never held back behind the
//!    failure it ends;
//! 2. is dropped if the receiver's picture already is K: the webhook changed away and back
//!    within the window, and the change away was never told (it was held), so there is
//!    nothing new to tell;
//! 3. else is held until the window of kind K ends, and then goes — so the last state is
//!    always told, at most one window late.
//!
//! At most one notification per webhook is held: a newer one replaces or drops it (the
//! store does that, `store::ops::notifications`). A receiver that flaps therefore costs at
//! most one notification per kind and window, and the last one told is its last state.

use std::time::Duration;

use crate::model::{Millis, NotificationKind};
use crate::store::records::NotifyMarks;

/// At most one notification per webhook and kind in this long.
pub const WINDOW: Duration = Duration::from_secs(60);

/// What to do with a new notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Queue it to be sent now.
    Send,
    /// The receiver already knows this state: nothing to send.
    Drop,
    /// Hold it until this time, then send it.
    Hold { until: Millis },
}

fn slot(kind: NotificationKind) -> usize {
    match kind {
        NotificationKind::Failing => 0,
        NotificationKind::Disabled => 1,
        NotificationKind::Recovered => 2,
    }
}

/// When a notification of `kind` was last queued to be sent, per `marks`.
pub fn last(marks: &NotifyMarks, kind: NotificationKind) -> Option<Millis> {
    marks.last[slot(kind)]
}

/// The rule of the module docs for a notification of `kind` at `now`.
pub fn decide(marks: &NotifyMarks, kind: NotificationKind, now: Millis) -> Decision {
    let window_ends = last(marks, kind).map(|at| at.saturating_add(WINDOW));
    let recovery_of_told_failure =
        kind == NotificationKind::Recovered && marks.told == Some(NotificationKind::Failing);
    match window_ends {
        None => Decision::Send,
        Some(end) if end <= now || recovery_of_told_failure => Decision::Send,
        Some(_) if marks.told == Some(kind) => Decision::Drop,
        Some(end) => Decision::Hold { until: end },
    }
}

/// Notes that a notification of `kind` was queued to be sent at `now`.
pub fn told(marks: &mut NotifyMarks, kind: NotificationKind, now: Millis) {
    marks.last[slot(kind)] = Some(now);
    marks.told = Some(kind);
}

#[cfg(test)]
mod tests {
    use super::*;
    use NotificationKind::*;

    const MIN: i64 = 60_000;

    type Held = Option<(NotificationKind, Millis)>;

    /// Sends the held notification if its time has come by `now`.
    fn release(
        marks: &mut NotifyMarks,
        held: &mut Held,
        now: i64,
        sent: &mut Vec<(NotificationKind, i64)>,
    ) {
        if let Some((kind, at)) = *held
            && at.0 <= now
        {
            told(marks, kind, at);
            sent.push((kind, at.0));
            *held = None;
        }
    }

    /// Runs `changes` (kind, ms) through the rule the way the store applies it, with at
    /// most one held notification that a newer change replaces or drops and that goes at
    /// its time; answers what was sent, in order, as (kind, ms).
    fn simulate(changes: &[(NotificationKind, i64)], until: i64) -> Vec<(NotificationKind, i64)> {
        let mut marks = NotifyMarks::default();
        let mut held: Held = None;
        let mut sent = Vec::new();
        for &(kind, at) in changes {
            release(&mut marks, &mut held, at, &mut sent);
            match decide(&marks, kind, Millis(at)) {
                Decision::Send => {
                    held = None;
                    told(&mut marks, kind, Millis(at));
                    sent.push((kind, at));
                }
                Decision::Drop => held = None,
                Decision::Hold { until } => held = Some((kind, until)),
            }
        }
        release(&mut marks, &mut held, until, &mut sent);
        sent
    }

    #[test]
    fn a_first_notification_of_each_kind_goes_at_once() {
        let m = NotifyMarks::default();
        for kind in NotificationKind::ALL {
            assert_eq!(decide(&m, kind, Millis(5)), Decision::Send);
        }
    }

    #[test]
    fn a_recovery_after_a_told_failure_is_never_held() {
        let sent = simulate(&[(Failing, 0), (Recovered, 1_000)], 10 * MIN);
        assert_eq!(sent, [(Failing, 0), (Recovered, 1_000)]);
        // Even when a recovery was told a moment ago.
        let sent = simulate(
            &[
                (Failing, 0),
                (Recovered, 1_000),
                (Failing, 2 * MIN),
                (Recovered, 2 * MIN + 10),
            ],
            10 * MIN,
        );
        assert_eq!(sent.len(), 4, "{sent:?}");
    }

    #[test]
    fn a_flapping_webhook_costs_one_per_kind_and_window_and_ends_told_right() {
        // Fails and recovers every two seconds for two minutes, ending recovered.
        let mut changes = Vec::new();
        for i in 0..60 {
            changes.push((Failing, i * 2_000));
            changes.push((Recovered, i * 2_000 + 1_000));
        }
        let sent = simulate(&changes, 10 * MIN);
        assert!(sent.len() <= 6, "no storm: {sent:?}");
        assert_eq!(sent.last().map(|s| s.0), Some(Recovered), "{sent:?}");
        for kind in NotificationKind::ALL {
            let times: Vec<i64> = sent.iter().filter(|s| s.0 == kind).map(|s| s.1).collect();
            assert!(
                times.windows(2).all(|w| w[1] - w[0] >= MIN),
                "{kind:?}: {times:?}"
            );
        }

        // The same storm ending failing: the failure is told, a window late at most.
        changes.push((Failing, 120_000));
        let sent = simulate(&changes, 10 * MIN);
        let last = *sent.last().unwrap();
        assert_eq!(last.0, Failing, "{sent:?}");
        assert!(last.1 <= 120_000 + MIN, "{sent:?}");
    }

    #[test]
    fn a_repeat_of_what_was_told_is_dropped_and_a_change_is_held() {
        let mut m = NotifyMarks::default();
        told(&mut m, Failing, Millis(0));
        told(&mut m, Recovered, Millis(10));
        assert_eq!(
            decide(&m, Failing, Millis(20)),
            Decision::Hold { until: Millis(MIN) }
        );
        assert_eq!(decide(&m, Recovered, Millis(30)), Decision::Drop);
        assert_eq!(decide(&m, Failing, Millis(MIN)), Decision::Send);
        assert_eq!(decide(&m, Disabled, Millis(20)), Decision::Send);
    }
}
