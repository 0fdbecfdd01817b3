//! Per-webhook rate limit: at most `limit` attempt starts in any rolling 60 s window.
//! Bursts up to `limit` go at once; retries count like first attempts.
//!
//! Deliveries held back are promised a future start time (a *reservation*) so that the
//! API can show when they will go. Later projections count those promises, so two
//! hold-backs never promise the same slot twice.

use std::collections::VecDeque;

use crate::model::Millis;

const WINDOW_MS: i64 = 60_000;

#[derive(Debug)]
pub struct RateLimiter {
    limit: usize,
    /// Start times inside the current window, oldest first.
    starts: VecDeque<Millis>,
    /// Start times promised to held-back deliveries, earliest first.
    reserved: VecDeque<Millis>,
}

impl RateLimiter {
    pub fn new(limit: u32) -> RateLimiter {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
        RateLimiter {
            limit,
            starts: VecDeque::new(),
            reserved: VecDeque::new(),
        }
    }

    /// Counts `starts` (other nodes' recent attempts, when this node takes a webhook
    /// over) in the window beside the starts it holds: those within the last minute of
    /// `now`.
    pub fn absorb(&mut self, starts: &[Millis], now: Millis) {
        self.expire(now);
        let mut all: Vec<Millis> = self
            .starts
            .iter()
            .chain(starts.iter().filter(|t| t.0 + WINDOW_MS > now.0))
            .copied()
            .collect();
        all.sort();
        // Only the newest `limit` starts can ever hold a later one back: an older one
        // leaves the window before them (the seed may be as long as a busy minute).
        let keep = all.len().saturating_sub(self.limit);
        self.starts = all.split_off(keep).into();
    }

    fn expire(&mut self, now: Millis) {
        while self
            .starts
            .front()
            .is_some_and(|t| t.0 + WINDOW_MS <= now.0)
        {
            self.starts.pop_front();
        }
    }

    /// Records a start at `now` if the window has room; a start fulfils the earliest
    /// reservation that has come due.
    pub fn try_acquire(&mut self, now: Millis) -> bool {
        self.expire(now);
        // Promises older than a window were never used (their delivery went away).
        while self
            .reserved
            .front()
            .is_some_and(|t| t.0 + WINDOW_MS <= now.0)
        {
            self.reserved.pop_front();
        }
        if self.starts.len() < self.limit {
            if self.reserved.front().is_some_and(|t| *t <= now) {
                self.reserved.pop_front();
            }
            self.starts.push_back(now);
            true
        } else {
            false
        }
    }

    /// Reserves the start times the next `n` held-back attempts will get if they go as
    /// soon as allowed after everything already promised, so that delayed deliveries
    /// can show when they will be sent.
    pub fn reserve_slots(&mut self, now: Millis, n: usize) -> Vec<Millis> {
        self.expire(now);
        let mut projected: Vec<Millis> =
            self.starts.iter().chain(&self.reserved).copied().collect();
        let mut slots = Vec::with_capacity(n);
        for _ in 0..n {
            let slot = if projected.len() < self.limit {
                now
            } else {
                Millis(projected[projected.len() - self.limit].0 + WINDOW_MS).max(now)
            };
            projected.push(slot);
            slots.push(slot);
        }
        self.reserved.extend(&slots);
        slots
    }

    /// Takes back promises that were never made known (their move in the queue failed to
    /// commit). Kept, they would push every later hold-back further out with each failed
    /// write, and due deliveries would wait long past their real slot.
    pub fn release(&mut self, slots: &[Millis]) {
        for slot in slots {
            if let Some(i) = self.reserved.iter().rposition(|r| r == slot) {
                self.reserved.remove(i);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh limiter that took a webhook over with these recent starts.
    fn seeded(limit: u32, starts: &[Millis], now: Millis) -> RateLimiter {
        let mut limiter = RateLimiter::new(limit);
        limiter.absorb(starts, now);
        limiter
    }

    #[test]
    fn allows_a_burst_then_waits_for_the_window() {
        let mut rl = RateLimiter::new(3);
        assert!(rl.try_acquire(Millis(0)));
        assert!(rl.try_acquire(Millis(10)));
        assert!(rl.try_acquire(Millis(20)));
        assert!(!rl.try_acquire(Millis(59_999)));
        assert!(rl.try_acquire(Millis(60_000)));
        assert!(!rl.try_acquire(Millis(60_009)));
        assert!(rl.try_acquire(Millis(60_010)));
    }

    #[test]
    fn a_seeded_window_counts_the_recent_starts_only() {
        let mut rl = seeded(2, &[Millis(50_000), Millis(0), Millis(-5)], Millis(61_000));
        assert!(rl.try_acquire(Millis(61_000)), "0 and -5 are a minute old");
        assert!(
            !rl.try_acquire(Millis(61_001)),
            "50 000 and 61 000 fill the window"
        );
        assert!(rl.try_acquire(Millis(110_000)));
    }

    #[test]
    fn a_long_seed_holds_back_as_its_newest_starts_do() {
        let seed: Vec<Millis> = (0..1_000).map(|i| Millis(i * 10)).collect();
        let mut rl = seeded(3, &seed, Millis(10_000));
        assert_eq!(rl.starts.len(), 3, "only the newest three are kept");
        assert!(
            !rl.try_acquire(Millis(69_969)),
            "9 970 is still in the window"
        );
        assert!(rl.try_acquire(Millis(69_970)), "9 970 left it");
        assert!(!rl.try_acquire(Millis(69_971)));
    }

    #[test]
    fn starts_absorbed_later_count_beside_the_ones_it_made() {
        // A look began the limiter and sent twice before the takeover's starts came.
        let mut rl = RateLimiter::new(3);
        assert!(rl.try_acquire(Millis(30_000)));
        assert!(rl.try_acquire(Millis(30_001)));
        rl.absorb(
            &[Millis(-40_000), Millis(25_000), Millis(29_000)],
            Millis(30_002),
        );
        assert_eq!(rl.starts, [Millis(29_000), Millis(30_000), Millis(30_001)]);
        assert!(!rl.try_acquire(Millis(30_002)), "the window is full");
        assert!(rl.try_acquire(Millis(89_000)), "29 000 left it");
    }

    #[test]
    fn released_promises_do_not_push_later_ones_out() {
        let mut rl = RateLimiter::new(1);
        assert!(rl.try_acquire(Millis(0)));
        let first = rl.reserve_slots(Millis(10), 2);
        rl.release(&first);
        assert_eq!(rl.reserve_slots(Millis(20), 2), first);
    }

    #[test]
    fn projects_upcoming_slots_like_it_will_grant_them() {
        let mut rl = RateLimiter::new(2);
        assert!(rl.try_acquire(Millis(0)));
        assert!(rl.try_acquire(Millis(100)));
        let slots = rl.reserve_slots(Millis(500), 5);
        assert_eq!(
            slots,
            vec![
                Millis(60_000),
                Millis(60_100),
                Millis(120_000),
                Millis(120_100),
                Millis(180_000)
            ]
        );
        let mut fresh = RateLimiter::new(2);
        assert_eq!(
            fresh.reserve_slots(Millis(7), 3),
            vec![Millis(7), Millis(7), Millis(60_007)]
        );
    }

    #[test]
    fn a_second_hold_back_queues_behind_the_first() {
        let mut rl = RateLimiter::new(3);
        for t in [0, 10, 20] {
            assert!(rl.try_acquire(Millis(t)));
        }
        let first = rl.reserve_slots(Millis(30), 6);
        assert_eq!(
            first,
            [60_000, 60_010, 60_020, 120_000, 120_010, 120_020].map(Millis)
        );
        let second = rl.reserve_slots(Millis(40), 2);
        assert_eq!(
            second,
            [180_000, 180_010].map(Millis),
            "no slot is promised twice"
        );
        // The reserved deliveries start on time; each start fulfils its promise.
        for t in [60_000, 60_010, 60_020] {
            assert!(rl.try_acquire(Millis(t)));
        }
        assert!(!rl.try_acquire(Millis(60_030)));
        assert_eq!(rl.reserve_slots(Millis(60_030), 1), [Millis(180_020)]);
    }
}
