//! The embedded backend: one redb file (tables and their invariants: [`super::tables`]).
//!
//! Reads run on the caller's thread in their own read transaction (a consistent snapshot).
//! Writes go through [`RedbStore::write`] to a single writer thread that *group-commits*:
//! all writes waiting when a commit finishes share the next write transaction and its one
//! fsync. A write's future resolves only once it is durable (its transaction committed
//! durably, or, for an ingest or an outcome, its redo log record synced: [`super::redo`]),
//! so an acknowledgement sent after it survives `kill -9`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use redb::{Database, ReadTransaction, ReadableDatabase};

use super::writer::{self, Tx};
use super::{Fault, Health, StoreError, backup, ops, space};

/// redb's page cache. Its default (1 GiB) let RSS track the file size; hookd's hot
/// data (the queue heads, recent events) is small, so a bounded cache keeps memory flat
/// as the store grows. Measured with 1,000,000 pending (BENCHMARKS.md, scenario d):
/// 32 MiB grew RSS by 35 MiB, 8 MiB by 10 MiB, for about a fifth less drain throughput
/// on that 528 MiB store (pages missing from the cache come from the OS page cache).
const CACHE_BYTES: usize = 8 << 20;

/// The open database, or nothing while the writer reopens it after an I/O error.
/// Readers take a handle for the length of one read; the writer can reopen the file once
/// every handle to the failed one is gone (redb lets a file be open once).
pub(crate) struct Slot {
    pub(super) path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
}

impl Slot {
    pub(super) fn current(&self) -> Option<Arc<Database>> {
        self.db.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn take(&self) -> Option<Arc<Database>> {
        self.db.write().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub(super) fn put(&self, db: Arc<Database>) {
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(db);
    }

    /// Reads the free space next to the file into `health` (see [`space`]).
    pub(super) fn check_space(&self, health: &Health, reserve: u64) {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        match space::free_bytes(dir) {
            Ok(free) => {
                let was_low = health.space_low();
                health.set_free_space(free, reserve);
                match (was_low, health.space_low()) {
                    (false, true) => tracing::warn!(
                        free,
                        reserve,
                        "free space below the reserve: new events are refused until space is freed"
                    ),
                    (true, false) => tracing::info!(
                        free,
                        "free space back above the reserve: new events are accepted"
                    ),
                    _ => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, dir = %dir.display(), "cannot read the free space of the store's file system")
            }
        }
    }

    /// Opens (or creates) the file; redb repairs it first if it was not closed cleanly.
    pub(super) fn open(&self) -> Result<Arc<Database>, StoreError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&self.path)?;
        Ok(Arc::new(db))
    }
}

/// Runs the redo log of the store file at `path`, open as `db` by a tool that does not
/// start the daemon, into it (`store::redo`): after an unclean stop the file alone lacks
/// the writes since its last checkpoint.
pub fn apply_redo_log(path: &Path, db: &Database) -> Result<(), StoreError> {
    writer::recover(path, db, ops::logged::replay)
}

/// A handle to the open store; cheap to clone.
#[derive(Clone)]
pub struct RedbStore {
    slot: Arc<Slot>,
    writer: writer::WriterHandle,
    health: Arc<Health>,
}

impl RedbStore {
    /// Opens (or creates) the data file and starts the writer thread.
    pub fn open(path: &Path) -> Result<RedbStore, StoreError> {
        let slot = Arc::new(Slot {
            path: path.to_owned(),
            db: RwLock::new(None),
        });
        let db = slot.open()?;
        ops::ensure_tables(&db)?;
        slot.put(db);
        let health = Arc::new(Health::default());
        let writer = writer::WriterHandle::start(
            Arc::clone(&slot),
            Arc::clone(&health),
            ops::logged::replay,
        )?;
        Ok(RedbStore {
            slot,
            writer,
            health,
        })
    }

    /// Whether the store can commit, and free space (see [`super::health`]).
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// Reads the free space of the store's file system and refuses new events below
    /// `reserve` bytes (see [`space`]).
    pub fn check_space(&self, reserve: u64) {
        self.slot.check_space(&self.health, reserve);
    }

    /// The open database, or why there is none.
    fn db(&self) -> Result<Arc<Database>, StoreError> {
        self.slot.current().ok_or_else(|| {
            StoreError::Unavailable(self.health.commit_fault().unwrap_or(Fault::Unavailable))
        })
    }

    /// Runs `op` in the next group commit; resolves once the commit is durable.
    ///
    /// `op` must do its checks before it writes: an `Err` aborts the whole batch (it is
    /// meant for storage failures), so refusals belong in the `Ok` value.
    pub async fn write<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.submit(op, None).await
    }

    /// [`RedbStore::write`] for a logged write ([`ops::logged`]): durable once the redo log
    /// holds it, and committed to redb durably at the next checkpoint.
    pub async fn write_logged<T, F>(&self, logged: ops::logged::Logged<F>) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.submit(logged.write, Some(logged.entry)).await
    }

    /// [`RedbStore::write`] for threads outside the async runtime; blocks until durable.
    pub fn write_blocking<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.writer.submit_blocking(op)
    }

    /// Runs a logged write in a coming group commit without waiting for it, letting it wait
    /// up to [`writer::RIDE_WAIT`] to share another write's commit (an attempt's outcome:
    /// see the writer's docs for what that buys and costs). `on_commit` runs (on the writer
    /// thread, so it must be quick) once the write is durable or has failed.
    pub fn write_riding<T, F, C>(
        &self,
        logged: ops::logged::Logged<F>,
        on_commit: C,
    ) -> Result<(), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
        C: FnOnce(Result<T, StoreError>) + Send + 'static,
    {
        self.writer
            .submit_riding(logged.entry, logged.write, on_commit)
    }

    /// Runs `f` against a consistent snapshot.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        // The handle is held for the whole read, so a reopen waits for it.
        let db = self.db()?;
        let txn = db.begin_read()?;
        f(&txn)
    }

    /// The data file.
    pub fn path(&self) -> &Path {
        &self.slot.path
    }

    /// Writes a consistent copy of the whole store to `dest` (blocking; run it off the
    /// async threads). Returns the number of events in the copy.
    pub fn backup_to(&self, dest: &Path) -> Result<u64, StoreError> {
        backup::write_copy(&*self.db()?, dest)
    }

    /// Stops the writer after it has committed everything already submitted, then closes
    /// the file once this is its last handle, waiting up to `wait` for the others (worker
    /// threads finishing) to go.
    ///
    /// redb marks a file that was not closed as needing repair, and repairing walks the
    /// whole file on the next open: at a million pending deliveries that turned a 50 ms
    /// restart into more than a second. Nothing is lost either way; only the restart is
    /// slower.
    pub fn close(self, wait: std::time::Duration) {
        self.writer.shutdown();
        let Some(db) = self.slot.take() else {
            return; // never reopened after a failure: nothing left to close
        };
        let deadline = std::time::Instant::now() + wait;
        while Arc::strong_count(&db) > 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let others = Arc::strong_count(&db) - 1;
        if others > 0 {
            tracing::warn!(
                others,
                "store still in use at exit; it will be checked (and repaired) on the next start"
            );
        }
        drop(db);
    }
}
