//! Monotonic time for what measures intervals (outages, liveness): unlike the wall clock
//! ([`crate::model::Millis`], for stored and displayed timestamps), it never steps.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
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
