//! The single writer thread and its group commit.
//!
//! redb allows one write transaction at a time and each durable commit costs an fsync.
//! Requests therefore do not open transactions themselves: they send a job here. The
//! thread takes every job waiting (up to `MAX_BATCH`), runs them in order inside one
//! transaction, commits once, and only then answers each job. While it commits, new jobs
//! queue up and form the next batch, so the fsync cost is shared under load and a lone
//! request still commits immediately.
//!
//! An attempt's outcome *rides*: when other writes are flowing, a batch holding only
//! outcomes waits up to [`RIDE_WAIT`] for one of them, so both share a commit. At an
//! everyday rate (a few hundred events a second, nothing to batch) that halves the
//! commits, and with them the fsyncs and the B-tree pages written (an outcome touches the
//! same tables as an ingest: it is nearly free in the same commit). The price: a kill
//! inside that window loses the outcome, and the attempt is made again after the restart,
//! which at-least-once allows and the crash campaign counts as a duplicate explained by a
//! kill. When nothing else is flowing, waiting would gain nothing and an outcome commits
//! at once.
//!
//! Most batches are not committed to redb durably: a batch of logged writes (ingests and
//! outcomes, [`super::ops::logged`]) is committed with `Durability::None`, visible at
//! once, and made durable by one record in the redo log, synced before the batch is
//! answered ([`super::redo`]). A durable redb commit, a *checkpoint*, is made about once
//! a second ([`CHECKPOINT_EVERY`]) when anything was logged, for a batch holding any other
//! write, and at shutdown; the log then starts again. Each open runs the log's batches
//! that the store lacks again ([`Writer::recover`]).
//!
//! A batch that fails with an I/O error (disk full, a failing device) leaves redb unable to
//! do anything until the file is closed and opened again. The writer then marks the store
//! down ([`Health`]), answers every job with [`StoreError::Unavailable`] while it reopens
//! the file with backoff, and marks it up once a reopen succeeds.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::StoreError;
use super::embedded::Slot;
use super::health::{Fault, Health};
use super::redo::{self, BatchFrame, RedoLog};
use super::tables::{DELIVERY_SEQ, EVENT_SEQ, LOG_APPLIED, LOG_STRETCH, META};

const MAX_BATCH: usize = 1024;
/// The longest an outcome waits for another write to share its commit (see the module docs).
pub const RIDE_WAIT: Duration = Duration::from_millis(10);
/// The first wait before reopening a failed store, doubled up to [`MAX_REOPEN_WAIT`].
const FIRST_REOPEN_WAIT: Duration = Duration::from_millis(100);
pub const MAX_REOPEN_WAIT: Duration = Duration::from_secs(5);
/// An idle writer still shows it is alive this often (the watchdog reads it).
const IDLE_BEAT: Duration = Duration::from_secs(1);
/// The longest logged batches wait for a checkpoint: how much of the log a restart after
/// a crash runs again, and how long redb holds their pages in memory (it frees the pages
/// a write replaced only at a durable commit).
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// A checkpoint is made sooner once the log holds this much, and a batch whose entries
/// alone are this big is committed durably instead of logged.
const CHECKPOINT_BYTES: u64 = 32 << 20;

/// Runs a logged write again from its entry: [`super::ops::logged::replay`], handed in by
/// the store so that the writer does not depend on the writes it runs.
pub type Replay = fn(&mut Tx<'_>, &[u8]) -> Result<(), StoreError>;

/// What a write job sees: the batch's transaction, the daemon-wide sequence counters and
/// the batch's id tape.
pub struct Tx<'a> {
    pub txn: &'a WriteTransaction,
    seqs: &'a mut Sequences,
    ids: &'a mut IdTape,
}

impl Tx<'_> {
    /// A fresh id ([`crate::model::fresh_id`]) for a record this write creates. The batch
    /// records it, and a batch run again from the redo log draws the same ids again.
    pub fn fresh_id(&mut self) -> u128 {
        let id = self.ids.given.next().unwrap_or_else(crate::model::fresh_id);
        self.ids.drawn.push(id);
        id
    }

    pub fn next_event_seq(&mut self) -> u64 {
        self.seqs.event += 1;
        self.seqs.event
    }

    pub fn next_delivery_seq(&mut self) -> u64 {
        self.seqs.delivery += 1;
        self.seqs.delivery
    }
}

#[derive(Clone, Copy)]
struct Sequences {
    event: u64,
    delivery: u64,
}

/// The ids a batch drew ([`Tx::fresh_id`]), and, run again from the log, those to draw.
#[derive(Default)]
struct IdTape {
    drawn: Vec<u128>,
    given: std::vec::IntoIter<u128>,
}

trait Job: Send {
    fn run(&mut self, tx: &mut Tx<'_>) -> Result<(), StoreError>;
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
    /// Whether this job may wait up to [`RIDE_WAIT`] to share another write's commit.
    fn rides(&self) -> bool;
    /// The job's redo log entry; `None` if it is not logged (its batch commits durably).
    fn entry(&self) -> Option<&[u8]>;
}

/// A write job: `op` runs inside the batch's transaction; `on_commit` gets its output
/// (or the batch's error) on the writer thread once the commit is durable or failed.
/// A job dropped without finishing (the writer gone) still answers: `Closed`, so no
/// caller waits forever on a callback that never comes.
struct CallbackJob<F, T, C>
where
    C: FnOnce(Result<T, StoreError>),
{
    op: Option<F>,
    output: Option<T>,
    on_commit: Option<C>,
    rides: bool,
    entry: Option<Vec<u8>>,
}

impl<F, T, C> Job for CallbackJob<F, T, C>
where
    F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send,
    T: Send,
    C: FnOnce(Result<T, StoreError>) + Send,
{
    fn run(&mut self, tx: &mut Tx<'_>) -> Result<(), StoreError> {
        if let Some(op) = self.op.take() {
            self.output = Some(op(tx)?);
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match (commit, self.output.take()) {
            (Ok(()), Some(output)) => Ok(output),
            (Err(e), _) => Err(e),
            // `run` stores an output or fails the batch; a committed batch without this
            // job's output means the job was never run, which only a closing writer does.
            (Ok(()), None) => Err(StoreError::Closed),
        };
        if let Some(on_commit) = self.on_commit.take() {
            on_commit(answer);
        }
    }

    fn rides(&self) -> bool {
        self.rides
    }

    fn entry(&self) -> Option<&[u8]> {
        self.entry.as_deref()
    }
}

impl<F, T, C> Drop for CallbackJob<F, T, C>
where
    C: FnOnce(Result<T, StoreError>),
{
    fn drop(&mut self) {
        if let Some(on_commit) = self.on_commit.take() {
            on_commit(Err(StoreError::Closed));
        }
    }
}

/// `None` once shutdown has begun.
type JobSender = Arc<Mutex<Option<Sender<Box<dyn Job>>>>>;

#[derive(Clone)]
pub struct WriterHandle {
    sender: JobSender,
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
}

impl WriterHandle {
    /// Runs the redo log's batches that the store lacks again, then starts the thread.
    pub(crate) fn start(
        slot: Arc<Slot>,
        health: Arc<Health>,
        replay: Replay,
    ) -> Result<WriterHandle, StoreError> {
        let db = slot.current().ok_or(StoreError::Closed)?;
        let (sender, receiver) = mpsc::channel::<Box<dyn Job>>();
        let (redo, seqs, log_seq) = Writer::recover(&slot.path, &db, replay, None)?;
        health.writer_beat();
        let writer = Writer {
            slot,
            health,
            jobs: receiver,
            seqs,
            last_urgent: None,
            redo,
            log_seq,
            last_checkpoint: Instant::now(),
            replay,
        };
        let thread = std::thread::Builder::new()
            .name("hookd-writer".into())
            .spawn(move || writer.run(db))
            .map_err(|e| StoreError::io("start the writer thread", e))?;
        Ok(WriterHandle {
            sender: Arc::new(Mutex::new(Some(sender))),
            thread: Arc::new(Mutex::new(Some(thread))),
        })
    }

    fn send(&self, job: Box<dyn Job>) -> Result<(), StoreError> {
        let guard = self.sender.lock().map_err(|_| StoreError::Closed)?;
        let sender = guard.as_ref().ok_or(StoreError::Closed)?;
        sender.send(job).map_err(|_| StoreError::Closed)
    }

    fn enqueue<T, F>(
        &self,
        op: F,
        entry: Option<Vec<u8>>,
    ) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        // The requester may have gone away (client disconnected); the write stands.
        self.send(Box::new(CallbackJob {
            op: Some(op),
            output: None,
            on_commit: Some(move |result| {
                let _ = reply.send(result);
            }),
            rides: false,
            entry,
        }))?;
        Ok(answer)
    }

    /// Queues the logged write `op` (its redo log entry: `entry`) without waiting, as a
    /// job that rides (see the module docs): `on_commit` gets its outcome once the batch
    /// is durable (or failed), at most [`RIDE_WAIT`] plus a commit later. If the store is
    /// already closed, `on_commit` gets `Closed` and so does the caller.
    pub fn submit_riding<T, F, C>(
        &self,
        entry: Vec<u8>,
        op: F,
        on_commit: C,
    ) -> Result<(), StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
        C: FnOnce(Result<T, StoreError>) + Send + 'static,
    {
        self.send(Box::new(CallbackJob {
            op: Some(op),
            output: None,
            on_commit: Some(on_commit),
            rides: true,
            entry: Some(entry),
        }))
    }

    /// Runs `op` and waits until it is durable: committed to redb, or, if `entry` (its redo
    /// log entry) is given, possibly logged instead.
    pub async fn submit<T, F>(&self, op: F, entry: Option<Vec<u8>>) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(op, entry)?
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// For threads outside the async runtime (delivery workers).
    pub fn submit_blocking<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(op, None)?
            .blocking_recv()
            .map_err(|_| StoreError::Closed)?
    }

    /// Closes the queue and waits until every job already sent has been committed.
    pub fn shutdown(&self) {
        if let Ok(mut guard) = self.sender.lock() {
            guard.take();
        }
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

/// How a batch ended: the answer its jobs get, and the fault that makes the writer reopen
/// the store. They differ in one case: a logged batch whose redb commit failed after its
/// record was synced is durable (the reopen runs it again from the log), so its jobs are
/// answered as committed while the store is reopened.
struct Ended {
    answer: Result<(), StoreError>,
    fault: Option<Fault>,
}

impl Ended {
    fn of(result: Result<(), StoreError>) -> Ended {
        let fault = result.as_ref().err().and_then(StoreError::fault);
        Ended {
            answer: result,
            fault,
        }
    }
}

struct Writer {
    slot: Arc<Slot>,
    health: Arc<Health>,
    jobs: Receiver<Box<dyn Job>>,
    seqs: Sequences,
    /// When the latest job that does not ride arrived: are other writes flowing?
    last_urgent: Option<Instant>,
    redo: RedoLog,
    /// The seq of the last batch written to the log.
    log_seq: u64,
    last_checkpoint: Instant,
    replay: Replay,
}

impl Writer {
    fn run(mut self, mut db: Arc<Database>) {
        loop {
            let mut batch = Vec::new();
            match self.jobs.recv_timeout(self.idle_wait()) {
                Ok(first) => {
                    let first_at = Instant::now();
                    batch.push(first);
                    self.take_waiting(&mut batch);
                    self.wait_for_a_ride(&mut batch, first_at);
                    if batch.iter().any(|job| !job.rides()) {
                        self.last_urgent = Some(Instant::now());
                    }
                }
                // Idle: a checkpoint if one is due (an empty batch), else just the beat.
                Err(RecvTimeoutError::Timeout) if self.checkpoint_due() => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.health.writer_beat();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.final_checkpoint(&db);
                    return;
                }
            }
            self.health.writer_beat();
            let before = self.seqs;
            let logged = !batch.is_empty() && !self.checkpoint_due() && loggable(&batch);
            let ended = if logged {
                self.log_batch(&db, &mut batch)
            } else {
                Ended::of(self.checkpoint(&db, &mut batch))
            };
            if let Err(e) = &ended.answer {
                tracing::error!(error = %e, jobs = batch.len(), "write batch failed; its requests get an error");
                // Counters advanced by an aborted batch are simply skipped.
                self.seqs = Sequences {
                    event: self.seqs.event.max(before.event),
                    delivery: self.seqs.delivery.max(before.delivery),
                };
            }
            // The health first, then the answers: a client that got its 503 and asks
            // /healthz next must hear the same. Readers are cut off from the failed file
            // first too: a logged batch whose commit failed is answered as durable, and its
            // client must not then read the file without it (the reopen runs it again).
            if let Some(fault) = ended.fault {
                drop(self.slot.take());
                self.health.failed(fault);
                if fault == Fault::Full {
                    // Refuse new events at once, not at the next free-space reading.
                    self.slot.check_space(&self.health, self.health.reserve());
                }
            }
            for job in batch {
                job.finish(ended.answer.clone());
            }
            if let Some(fault) = ended.fault {
                match self.reopen(db, fault) {
                    Some(fresh) => db = fresh,
                    None => return, // shut down while the store was down
                }
            }
        }
    }

    /// How long to wait for a job: until the next checkpoint is due, at most [`IDLE_BEAT`].
    fn idle_wait(&self) -> Duration {
        if self.redo.stretch_bytes() == 0 {
            return IDLE_BEAT;
        }
        CHECKPOINT_EVERY
            .saturating_sub(self.last_checkpoint.elapsed())
            .min(IDLE_BEAT)
    }

    /// Whether logged batches have waited long enough, or the log grown big enough.
    fn checkpoint_due(&self) -> bool {
        self.redo.stretch_bytes() > 0
            && (self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY
                || self.redo.stretch_bytes() >= CHECKPOINT_BYTES)
    }

    /// Commits `batch` durably, with every logged batch before it; the log starts a new
    /// stretch. A failed checkpoint is tried again [`CHECKPOINT_EVERY`] later, not at once.
    fn checkpoint(&mut self, db: &Database, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
        self.last_checkpoint = Instant::now();
        let stretch = new_stretch();
        let txn = db.begin_write()?;
        run_jobs(
            &txn,
            batch,
            &mut self.seqs,
            &mut IdTape::default(),
            self.log_seq,
        )?;
        txn.open_table(META)?.insert(LOG_STRETCH, stretch)?;
        txn.commit()?;
        self.redo.restart(stretch);
        Ok(())
    }

    /// The checkpoint at shutdown, so that the next start has nothing to run again.
    fn final_checkpoint(&mut self, db: &Database) {
        if self.redo.stretch_bytes() == 0 {
            return;
        }
        if let Err(e) = self.checkpoint(db, &mut []) {
            tracing::warn!(error = %e, "the last checkpoint failed; the next start runs the redo log again");
        }
    }

    /// Commits `batch` to redb without durability, after its record is synced to the log.
    fn log_batch(&mut self, db: &Database, batch: &mut [Box<dyn Job>]) -> Ended {
        let entries: Vec<&[u8]> = batch.iter().filter_map(|job| job.entry()).collect();
        let frame = BatchFrame::new([self.seqs.event, self.seqs.delivery], &entries);
        let seq = self.log_seq + 1;
        let mut ids = IdTape::default();
        let txn = match begin_logged(db).and_then(|txn| {
            run_jobs(&txn, batch, &mut self.seqs, &mut ids, seq)?;
            Ok(txn)
        }) {
            Ok(txn) => txn,
            Err(e) => return Ended::of(Err(e)),
        };
        let mut frame = frame.finish(&ids.drawn);
        if let Err(e) = self.redo.append(seq, &mut frame) {
            // Dropping the transaction aborts it: the batch is in neither file.
            drop(txn);
            return Ended::of(Err(StoreError::log("write", e)));
        }
        self.log_seq = seq;
        match txn.commit() {
            Ok(()) => Ended::of(Ok(())),
            Err(e) => {
                let e = StoreError::from(e);
                tracing::error!(error = %e, "a logged batch's commit failed; the store is reopened and runs it again");
                Ended {
                    answer: Ok(()),
                    fault: Some(e.fault().unwrap_or(Fault::Unavailable)),
                }
            }
        }
    }

    /// Opens the store's redo log and runs the batches of the stretch that follows the
    /// durable state and that the store lacks again, in one durable commit, a checkpoint;
    /// the log then starts a new stretch. Returns the log, the sequence counters (at least
    /// `known`'s) and the seq of the last logged batch.
    fn recover(
        store: &std::path::Path,
        db: &Database,
        replay: Replay,
        known: Option<Sequences>,
    ) -> Result<(RedoLog, Sequences, u64), StoreError> {
        let txn = db.begin_write()?;
        let (mut seqs, applied, stretch) = {
            let meta = txn.open_table(META)?;
            let get = |name| -> Result<Option<u64>, StoreError> {
                Ok(meta.get(name)?.map(|v| v.value()))
            };
            let seqs = Sequences {
                event: get(EVENT_SEQ)?.unwrap_or(0),
                delivery: get(DELIVERY_SEQ)?.unwrap_or(0),
            };
            (seqs, get(LOG_APPLIED)?.unwrap_or(0), get(LOG_STRETCH)?)
        };
        // No stretch named: no record of the log can follow this file (a new store, one an
        // older hookd wrote, a backup copy), so none is read.
        let mut redo = RedoLog::open(&RedoLog::path_for(store), stretch.unwrap_or(0))
            .map_err(|e| StoreError::log("open", e))?;
        let records = match stretch {
            Some(_) => redo.read().map_err(|e| StoreError::log("read", e))?,
            None => Vec::new(),
        };
        let missing: Vec<_> = records.into_iter().filter(|r| r.seq > applied).collect();
        if missing
            .first()
            .is_some_and(|first| first.seq != applied + 1)
        {
            tracing::error!(
                stored = applied,
                first_logged = missing.first().map(|r| r.seq),
                "the redo log misses batches the store lacks; running the rest"
            );
        }
        for record in &missing {
            let batch = redo::parse(&record.payload).ok_or_else(|| {
                StoreError::Inconsistent(format!(
                    "redo log batch {} does not parse though its checksum matches",
                    record.seq
                ))
            })?;
            let [event, delivery] = batch.seqs;
            seqs.event = seqs.event.max(event);
            seqs.delivery = seqs.delivery.max(delivery);
            let ids_logged = batch.ids.len();
            let mut ids = IdTape {
                drawn: Vec::new(),
                given: batch.ids.into_iter(),
            };
            let mut tx = Tx {
                txn: &txn,
                seqs: &mut seqs,
                ids: &mut ids,
            };
            for entry in batch.entries {
                replay(&mut tx, entry)?;
            }
            if ids.given.len() > 0 || ids.drawn.len() != ids_logged {
                tracing::error!(
                    batch = record.seq,
                    logged = ids_logged,
                    drawn = ids.drawn.len(),
                    "a redo log batch ran again drew other ids than it did live; the ids of what it created differ"
                );
            }
        }
        // After the batches, which take the counters they found: those this writer knew
        // before a reopen may have been advanced by batches that failed since.
        if let Some(known) = known {
            seqs.event = seqs.event.max(known.event);
            seqs.delivery = seqs.delivery.max(known.delivery);
        }
        let log_seq = missing.last().map_or(applied, |r| r.seq);
        write_meta(&txn, seqs, log_seq)?;
        let next = new_stretch();
        txn.open_table(META)?.insert(LOG_STRETCH, next)?;
        txn.commit()?;
        if !missing.is_empty() {
            tracing::info!(
                batches = missing.len(),
                "ran the redo log's batches that the store lacked (an unclean stop)"
            );
        }
        redo.restart(next);
        Ok((redo, seqs, log_seq))
    }
    /// Adds every job already waiting to `batch` (up to [`MAX_BATCH`]).
    fn take_waiting(&self, batch: &mut Vec<Box<dyn Job>>) {
        while batch.len() < MAX_BATCH {
            match self.jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
    }

    /// A batch of riding jobs only waits, until `first_at + RIDE_WAIT`, for a job that
    /// does not ride, if such jobs are flowing (one came within the last `RIDE_WAIT`).
    fn wait_for_a_ride(&self, batch: &mut Vec<Box<dyn Job>>, first_at: Instant) {
        let flowing = self
            .last_urgent
            .is_some_and(|at| first_at.saturating_duration_since(at) < RIDE_WAIT);
        if !flowing || batch.iter().any(|job| !job.rides()) {
            return;
        }
        let deadline = first_at + RIDE_WAIT;
        while batch.len() < MAX_BATCH {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return;
            };
            match self.jobs.recv_timeout(left) {
                Ok(job) => {
                    let urgent = !job.rides();
                    batch.push(job);
                    if urgent {
                        self.take_waiting(batch);
                        return;
                    }
                }
                // Disconnected: commit what we have; the next receive sees it and stops.
                Err(_) => return,
            }
        }
    }

    /// Closes the failed database and opens it again, with backoff, answering jobs with
    /// `Unavailable` meanwhile, until a commit succeeds on the reopened file (a reopen alone
    /// proves nothing: on a full disk it succeeds while commits still fail). The outage
    /// lasts, for `/healthz` and the watchdog, from the first failure to that commit.
    /// `None` if hookd shuts down first.
    fn reopen(&mut self, failed: Arc<Database>, mut fault: Fault) -> Option<Arc<Database>> {
        let old = self.slot.take().unwrap_or(failed);
        let old_file = Arc::downgrade(&old);
        drop(old);
        let mut wait = FIRST_REOPEN_WAIT;
        let mut next_try = Instant::now() + wait;
        loop {
            // Beat at least every IDLE_BEAT, however long the backoff.
            let timeout = next_try
                .saturating_duration_since(Instant::now())
                .min(IDLE_BEAT);
            match self.jobs.recv_timeout(timeout) {
                Ok(job) => {
                    job.finish(Err(StoreError::Unavailable(fault)));
                    while let Ok(job) = self.jobs.try_recv() {
                        job.finish(Err(StoreError::Unavailable(fault)));
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return None,
            }
            self.health.writer_beat();
            if Instant::now() < next_try || old_file.strong_count() > 0 {
                continue; // not yet, or a read still holds the failed file (reads are short)
            }
            match self.open_and_commit() {
                Ok(db) => {
                    self.slot.put(Arc::clone(&db));
                    self.health.recovered();
                    tracing::info!("store reopened and committing again");
                    return Some(db);
                }
                Err(e) => {
                    fault = e.fault().unwrap_or(fault);
                    self.health.failed(fault);
                    tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "store still cannot commit");
                    wait = (wait * 2).min(MAX_REOPEN_WAIT);
                    next_try = Instant::now() + wait;
                }
            }
        }
    }

    /// Opens the file and runs the redo log again into it, which commits: the proof that
    /// commits work.
    fn open_and_commit(&mut self) -> Result<Arc<Database>, StoreError> {
        let db = self.slot.open()?;
        let (redo, seqs, log_seq) =
            Writer::recover(&self.slot.path, &db, self.replay, Some(self.seqs))?;
        self.redo = redo;
        self.seqs = seqs;
        self.log_seq = log_seq;
        self.last_checkpoint = Instant::now();
        Ok(db)
    }
}

/// Runs the redo log of the store at `path` (open as `db`, with no writer running) into it:
/// for a tool that reads the file without starting the daemon. A file that names no
/// stretch, or has no log beside it, is left as it is.
pub(crate) fn recover(
    path: &std::path::Path,
    db: &Database,
    replay: Replay,
) -> Result<(), StoreError> {
    let read = db.begin_read()?;
    let named = match read.open_table(META) {
        Ok(meta) => meta.get(LOG_STRETCH)?.is_some(),
        // A file no hookd has opened yet: no log can follow it.
        Err(redb::TableError::TableDoesNotExist(_)) => false,
        Err(e) => return Err(e.into()),
    };
    if !named || !RedoLog::path_for(path).exists() {
        return Ok(());
    }
    Writer::recover(path, db, replay, None).map(drop)
}

/// A new stretch id for the redo log ([`super::redo`]).
fn new_stretch() -> u64 {
    crate::model::fresh_id() as u64
}

/// Whether `batch` may be logged: every job has an entry, and together they are not too
/// big for one record (a burst of the largest events is committed durably instead).
fn loggable(batch: &[Box<dyn Job>]) -> bool {
    let mut bytes = 0u64;
    batch.iter().all(|job| {
        job.entry().is_some_and(|entry| {
            bytes += entry.len() as u64;
            bytes < CHECKPOINT_BYTES
        })
    })
}

/// A write transaction whose commit is visible at once but not durable.
fn begin_logged(db: &Database) -> Result<WriteTransaction, StoreError> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::None)?;
    Ok(txn)
}

/// Runs the batch's jobs in `txn`, then stores the counters and `log_seq`, the last
/// logged batch the transaction includes.
fn run_jobs(
    txn: &WriteTransaction,
    batch: &mut [Box<dyn Job>],
    seqs: &mut Sequences,
    ids: &mut IdTape,
    log_seq: u64,
) -> Result<(), StoreError> {
    let mut tx = Tx { txn, seqs, ids };
    for job in batch.iter_mut() {
        job.run(&mut tx)?;
    }
    write_meta(txn, *seqs, log_seq)
}

fn write_meta(txn: &WriteTransaction, seqs: Sequences, log_seq: u64) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    meta.insert(EVENT_SEQ, seqs.event)?;
    meta.insert(DELIVERY_SEQ, seqs.delivery)?;
    meta.insert(LOG_APPLIED, log_seq)?;
    Ok(())
}
