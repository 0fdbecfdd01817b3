//! hookd's two clocks.
//!
//! - [`now_ms`]: monotonic, for what measures intervals (outages, liveness beats).
//! - [`wall_ms`]: the wall clock as hookd uses it for everything stored, scheduled and
//!   shown ([`crate::model::Millis::now`]): the system clock, except that it never goes
//!   backwards. After a backwards step (an operator setting the time, a VM restored from a
//!   snapshot) it carries on from where it was at half the pace of the monotonic clock,
//!   so the system clock catches up after twice the step and is followed from then on. A due time, a rate-limit window or a `Retry-After` pause
//!   therefore never stretches by the size of the step (it used to freeze a webhook for
//!   as long as the clock went back). Small corrections (under [`STEP`]) are absorbed by
//!   letting the clock stand still for that long. A forwards step is followed: due
//!   deliveries go at once, which is what the new time says.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

static ORIGIN: OnceLock<Instant> = OnceLock::new();

/// Milliseconds since the first call in this process; never goes backwards.
pub fn now_ms() -> u64 {
    let origin = ORIGIN.get_or_init(Instant::now);
    u64::try_from(origin.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// When a loop last showed it is alive: the watchdog pings systemd only while every loop
/// that must make progress has beaten recently.
#[derive(Default, Debug)]
pub struct Beat(AtomicU64);

impl Beat {
    pub fn beat(&self) {
        self.0.store(now_ms(), Relaxed);
    }

    /// How long since the last beat (since the process started, before the first).
    pub fn silent_for(&self) -> std::time::Duration {
        std::time::Duration::from_millis(now_ms().saturating_sub(self.0.load(Relaxed)))
    }
}

/// A backwards difference larger than this is a step, not a correction.
pub const STEP: i64 = 1_000;

/// The last reading of both clocks, and what was handed out then.
#[derive(Clone, Copy, Debug)]
struct Anchor {
    system: i64,
    mono: u64,
    /// The last value handed out (never decreases).
    last: i64,
}

static ANCHOR: Mutex<Option<Anchor>> = Mutex::new(None);

/// Unix seconds straight from the system clock, steps and all: what a signed webhook
/// timestamp carries, since receivers check it against their own clock (0 before 1970).
pub fn system_unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Unix milliseconds, following the system clock but never going backwards (module docs).
pub fn wall_ms() -> i64 {
    let system = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let mono = now_ms();
    let mut anchor = ANCHOR.lock().unwrap_or_else(|p| p.into_inner());
    steady(&mut anchor, system, mono)
}

fn steady(anchor: &mut Option<Anchor>, system: i64, mono: u64) -> i64 {
    let Some(a) = anchor.as_mut() else {
        *anchor = Some(Anchor {
            system,
            mono,
            last: system,
        });
        return system;
    };
    let elapsed = i64::try_from(mono.saturating_sub(a.mono)).unwrap_or(i64::MAX);
    a.system = system;
    a.mono = mono;
    let out = if system >= a.last {
        system // in step with the system clock, or it stepped forwards: follow it
    } else if a.last - system <= STEP {
        a.last // a small correction: stand still until the system clock is back
    } else {
        // The system clock stepped back: go on at half the monotonic pace, so the system
        // clock catches up after twice the step and hookd follows it again.
        a.last.saturating_add(elapsed / 2)
    };
    a.last = out;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backwards_step_is_ridden_out_on_the_monotonic_clock() {
        let mut a = None;
        assert_eq!(steady(&mut a, 1_000_000, 0), 1_000_000);
        assert_eq!(steady(&mut a, 1_000_500, 500), 1_000_500);
        // The system clock goes back ten seconds: hookd's time goes on at half pace...
        assert_eq!(steady(&mut a, 990_500, 1_500), 1_001_000);
        assert_eq!(steady(&mut a, 991_500, 2_500), 1_001_500);
        // ... until the system clock has caught up (after twice the step), then follows it.
        assert_eq!(steady(&mut a, 1_011_000, 22_500), 1_011_000);
        assert_eq!(steady(&mut a, 1_011_100, 22_600), 1_011_100);
        // A forwards step is followed.
        assert_eq!(steady(&mut a, 2_000_000, 23_000), 2_000_000);
        // A small correction backwards makes time stand still, never go back.
        assert_eq!(steady(&mut a, 1_999_800, 23_100), 2_000_000);
        assert_eq!(steady(&mut a, 2_000_300, 23_600), 2_000_300);
    }

    #[test]
    fn wall_time_never_decreases() {
        let mut last = wall_ms();
        for _ in 0..1000 {
            let now = wall_ms();
            assert!(now >= last);
            last = now;
        }
    }
}
