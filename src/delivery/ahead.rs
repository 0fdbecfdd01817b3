//! Read-ahead: the deliveries a look read beyond the webhook's free slots, kept claimed so
//! that a slot freed by a success is refilled at once, without waiting for another look.
//!
//! Why: a webhook may have `max_in_flight_per_webhook` attempts under way (8 by default),
//! and a slot freed by a success used to wait for the next look to be refilled. On
//! PostgreSQL a look is a round trip to the server, so at full load the slots spent much
//! of their time waiting for it (BENCHMARKS.md, "Read-ahead"). On redb a look reads the
//! file in place; the scheduler does not read ahead there (`Store::looks_are_round_trips`).
//!
//! Invariants (the scheduler keeps them, `scheduler.rs`):
//! - A job read ahead is claimed (no look returns it again) but neither in flight nor
//!   counted among the claims whose outcome waits for its commit. All webhooks' jobs read
//!   ahead are at most `delivery.workers`, so what they hold in memory is bounded like
//!   the jobs under way.
//! - It goes out only within [`FRESH_FOR`] of its read, with a slot of its webhook and a
//!   worker free, the store committing and the rate limit allowing; and either when a
//!   success freed the webhook's slot while nobody waits for a worker, or as the
//!   webhook's turn when workers are short (one attempt a turn, as a look would give).
//! - A failure (whose record may pause or disable the webhook), a look, or a stop gives
//!   the jobs back unsent: their queue entries were never touched, so the next look
//!   reads them again.
//! - The fences still apply: a job keeps the epoch taken before its read, so a delete or
//!   disable committed since stops its send, as for any job.

use std::collections::VecDeque;
use std::time::Duration;

use super::worker::Job;
use crate::model::{DeliveryId, Millis};

/// How long what a look read may wait to be sent. A job's inputs (the webhook's URL and
/// secret among them) are as old as its read; this bounds how old, to the order of an
/// attempt that was already under way when the webhook changed.
pub const FRESH_FOR: Duration = Duration::from_millis(50);

/// One webhook's jobs read ahead, oldest due first.
#[derive(Debug, Default)]
pub struct ReadAhead {
    jobs: VecDeque<Job>,
    /// When the look that read them began.
    read_at: Millis,
}

impl ReadAhead {
    /// Keeps `jobs`, read by the look that began at `read_at`, in place of any earlier.
    pub fn keep(&mut self, jobs: VecDeque<Job>, read_at: Millis) {
        self.jobs = jobs;
        self.read_at = read_at;
    }

    /// Whether any job waits here.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// The next job, if it is still fresh at `now`.
    pub fn next_fresh(&mut self, now: Millis) -> Option<Job> {
        if self.read_at.saturating_add(FRESH_FOR) <= now {
            return None;
        }
        self.jobs.pop_front()
    }

    /// Gives every job back: the deliveries whose claims must end.
    pub fn give_back(&mut self) -> impl Iterator<Item = DeliveryId> + '_ {
        self.jobs.drain(..).map(|job| job.delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::WebhookId;

    fn jobs(ids: &[u128]) -> VecDeque<Job> {
        ids.iter()
            .map(|&id| Job {
                delivery: DeliveryId(id),
                webhook: WebhookId(1),
                epoch: 0,
                loaded: None,
            })
            .collect()
    }

    #[test]
    fn jobs_go_in_order_while_fresh_and_not_after() {
        let mut ahead = ReadAhead::default();
        ahead.keep(jobs(&[1, 2, 3]), Millis(1_000));
        let first = ahead.next_fresh(Millis(1_000)).map(|j| j.delivery);
        assert_eq!(first, Some(DeliveryId(1)));
        let second = ahead.next_fresh(Millis(1_049)).map(|j| j.delivery);
        assert_eq!(second, Some(DeliveryId(2)));
        assert!(
            ahead.next_fresh(Millis(1_050)).is_none(),
            "50 ms after the read"
        );
        assert!(
            !ahead.is_empty(),
            "a stale job stays until it is given back"
        );
        assert_eq!(ahead.give_back().collect::<Vec<_>>(), vec![DeliveryId(3)]);
        assert!(ahead.is_empty());
    }

    #[test]
    fn a_new_read_replaces_the_old_one() {
        let mut ahead = ReadAhead::default();
        ahead.keep(jobs(&[1]), Millis(0));
        ahead.keep(jobs(&[7, 8]), Millis(500));
        let next = ahead.next_fresh(Millis(510)).map(|j| j.delivery);
        assert_eq!(next, Some(DeliveryId(7)));
    }
}
