//! Whether the store can commit, and why not: the storage failure model.
//!
//! | cause                               | writes                     | reads  | `/healthz`          |
//! |-------------------------------------|----------------------------|--------|---------------------|
//! | free space below `store.min_free_space` (at least 1 MiB) | new events: `503 store_full`; outcomes, cancels, deletes still commit | work | 503 `store_full` |
//! | a commit failed for lack of space   | all: `503 store_full`      | `503` until reopened | 503 `store_full` |
//! | any other I/O error                 | all: `503 store_unavailable` | `503` until reopened | 503 `store_unavailable` |
//!
//! redb latches an I/O error: every later operation fails until the database is closed
//! and opened again. The writer thread therefore closes and reopens the file itself, with
//! backoff, and the store is `up` again once a reopen succeeds (redb repairs the file on
//! open; a commit that failed is as if it never happened). Nothing acknowledged is lost:
//! an acknowledgement is only sent after its commit. What could not be recorded meanwhile
//! (delivery outcomes) waits in memory and is recorded once the store is up.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use crate::clock;

/// Why the store cannot commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The file system is full (ENOSPC or EDQUOT), or below the configured reserve.
    Full,
    /// Any other I/O error, or the file is being reopened after one.
    Unavailable,
}

impl Fault {
    /// The error code the API answers with, and `/healthz` gives as the reason.
    pub fn code(self) -> &'static str {
        match self {
            Fault::Full => "store_full",
            Fault::Unavailable => "store_unavailable",
        }
    }

    /// What an I/O error means for the store.
    pub fn of_io(e: &std::io::Error) -> Fault {
        match e.kind() {
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Fault::Full,
            _ => Fault::Unavailable,
        }
    }
}

/// However small `store.min_free_space` is set, below this much free space new events are
/// refused: a commit needs room for its pages, and an ingest refused for space is better
/// than one failing half way and taking the store down for a reopen.
pub const MIN_RESERVE: u64 = 1 << 20;

/// The store's health, shared by the writer (which changes it), the API and the watchdog.
#[derive(Default)]
pub struct Health {
    /// `store.min_free_space`, as the free-space sampler was last given it.
    reserve: AtomicU64,
    /// `Some` while the store cannot commit, with the cause and since when (monotonic ms).
    down: Mutex<Option<(Fault, u64)>>,
    /// Free space is below the reserve: new events are refused, all else commits.
    space_low: AtomicBool,
    /// Failed commits and reopen attempts, for `/metrics`.
    errors: AtomicU64,
    /// Free bytes on the store's file system at the last look (0 before the first).
    free_bytes: AtomicU64,
    /// When the writer thread last showed it is alive.
    writer: clock::Beat,
}

impl Health {
    /// What `/healthz` reports: the store cannot commit, or it is too full for new
    /// events. `None` when all is well.
    pub fn fault(&self) -> Option<Fault> {
        self.commit_fault()
            .or_else(|| self.space_low().then_some(Fault::Full))
    }

    /// Why the store cannot commit at all right now (the writer is reopening it).
    pub fn commit_fault(&self) -> Option<Fault> {
        self.lock().map(|(fault, _)| fault)
    }

    /// How long the store has been unable to commit, if it is.
    pub fn down_for(&self) -> Option<std::time::Duration> {
        self.lock().map(|(_, since)| {
            std::time::Duration::from_millis(clock::now_ms().saturating_sub(since))
        })
    }

    /// Whether a new event would eat into the space kept for everything else.
    pub fn space_low(&self) -> bool {
        self.space_low.load(Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Relaxed)
    }

    pub fn free_bytes(&self) -> u64 {
        self.free_bytes.load(Relaxed)
    }

    /// How long ago the writer thread last showed it is alive: a long batch or a stuck
    /// fsync shows here, and the watchdog stops pinging.
    pub fn writer_silent_for(&self) -> std::time::Duration {
        self.writer.silent_for()
    }

    pub(crate) fn writer_beat(&self) {
        self.writer.beat();
    }

    pub(crate) fn failed(&self, fault: Fault) {
        self.errors.fetch_add(1, Relaxed);
        let mut down = self.down.lock().unwrap_or_else(|p| p.into_inner());
        match down.as_mut() {
            // Keep the first failure's time: `down_for` is how long the outage lasts.
            Some((current, _)) => *current = fault,
            None => *down = Some((fault, clock::now_ms())),
        }
    }

    /// A commit succeeded again: the outage is over.
    pub(crate) fn recovered(&self) {
        *self.down.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    pub(crate) fn set_free_space(&self, free: u64, reserve: u64) {
        self.reserve.store(reserve, Relaxed);
        self.free_bytes.store(free, Relaxed);
        self.space_low
            .store(free < reserve.max(MIN_RESERVE), Relaxed);
    }

    /// The reserve last given to [`Health::set_free_space`].
    pub(crate) fn reserve(&self) -> u64 {
        self.reserve.load(Relaxed)
    }

    fn lock(&self) -> Option<(Fault, u64)> {
        *self.down.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_keeps_its_start_and_ends_on_recovery() {
        let h = Health::default();
        assert_eq!(h.fault(), None);
        h.failed(Fault::Full);
        h.failed(Fault::Unavailable);
        assert_eq!(h.fault(), Some(Fault::Unavailable));
        assert_eq!(h.errors(), 2);
        assert!(h.down_for().is_some());
        h.recovered();
        assert_eq!(h.fault(), None);
        h.set_free_space(MIN_RESERVE + 10, MIN_RESERVE + 20);
        assert!(h.space_low());
        assert_eq!(h.fault(), Some(Fault::Full), "too full for new events");
        assert_eq!(h.commit_fault(), None, "yet it commits");
        h.set_free_space(MIN_RESERVE + 30, MIN_RESERVE + 20);
        assert!(!h.space_low());
        h.set_free_space(MIN_RESERVE - 1, 0);
        assert!(h.space_low(), "a reserve of 0 still keeps the minimum");
    }

    #[test]
    fn no_space_is_a_full_store() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(Fault::of_io(&full), Fault::Full);
        let other = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(Fault::of_io(&other), Fault::Unavailable);
    }
}
