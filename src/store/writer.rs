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
//! A batch that fails with an I/O error (disk full, a failing device) leaves redb unable to
//! do anything until the file is closed and opened again. The writer then marks the store
//! down ([`Health`]), answers every job with [`StoreError::Unavailable`] while it reopens
//! the file with backoff, and marks it up once a reopen succeeds.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use redb::{Database, ReadableTable, WriteTransaction};
use tokio::sync::oneshot;

use super::StoreError;
use super::embedded::Slot;
use super::health::{Fault, Health};
use super::tables::{DELIVERY_SEQ, EVENT_SEQ, META};

const MAX_BATCH: usize = 1024;
/// The longest an outcome waits for another write to share its commit (see the module docs).
pub const RIDE_WAIT: Duration = Duration::from_millis(10);
/// The first wait before reopening a failed store, doubled up to [`MAX_REOPEN_WAIT`].
const FIRST_REOPEN_WAIT: Duration = Duration::from_millis(100);
pub const MAX_REOPEN_WAIT: Duration = Duration::from_secs(5);
/// An idle writer still shows it is alive this often (the watchdog reads it).
const IDLE_BEAT: Duration = Duration::from_secs(1);

/// What a write job sees: the batch's transaction and the daemon-wide sequence counters.
pub struct Tx<'a> {
    pub txn: &'a WriteTransaction,
    seqs: &'a mut Sequences,
}

impl Tx<'_> {
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

trait Job: Send {
    fn run(&mut self, tx: &mut Tx<'_>) -> Result<(), StoreError>;
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
    /// Whether this job may wait up to [`RIDE_WAIT`] to share another write's commit.
    fn rides(&self) -> bool;
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
    pub(crate) fn start(slot: Arc<Slot>, health: Arc<Health>) -> Result<WriterHandle, StoreError> {
        let db = slot.current().ok_or(StoreError::Closed)?;
        let seqs = load_sequences(&db)?;
        let (sender, receiver) = mpsc::channel::<Box<dyn Job>>();
        health.writer_beat();
        let writer = Writer {
            slot,
            health,
            jobs: receiver,
            seqs,
            last_urgent: None,
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

    fn enqueue<T, F>(&self, op: F) -> Result<oneshot::Receiver<Result<T, StoreError>>, StoreError>
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
        }))?;
        Ok(answer)
    }

    /// Queues `op` without waiting, as a job that rides (see the module docs):
    /// `on_commit` gets its outcome once the batch is durable (or failed), at most
    /// [`RIDE_WAIT`] plus a commit later. If the store is already closed, `on_commit` gets
    /// `Closed` and so does the caller.
    pub fn submit_riding<T, F, C>(&self, op: F, on_commit: C) -> Result<(), StoreError>
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
        }))
    }

    pub async fn submit<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(op)?.await.map_err(|_| StoreError::Closed)?
    }

    /// For threads outside the async runtime (delivery workers).
    pub fn submit_blocking<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Tx<'_>) -> Result<T, StoreError> + Send + 'static,
    {
        self.enqueue(op)?
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

fn load_sequences(db: &Database) -> Result<Sequences, StoreError> {
    let txn = db.begin_write()?;
    let seqs = {
        let meta = txn.open_table(META)?;
        let get = |name| -> Result<u64, StoreError> {
            Ok(meta.get(name)?.map(|v| v.value()).unwrap_or(0))
        };
        Sequences {
            event: get(EVENT_SEQ)?,
            delivery: get(DELIVERY_SEQ)?,
        }
    };
    txn.abort()?;
    Ok(seqs)
}

struct Writer {
    slot: Arc<Slot>,
    health: Arc<Health>,
    jobs: Receiver<Box<dyn Job>>,
    seqs: Sequences,
    /// When the latest job that does not ride arrived: are other writes flowing?
    last_urgent: Option<Instant>,
}

impl Writer {
    fn run(mut self, mut db: Arc<Database>) {
        loop {
            let first = match self.jobs.recv_timeout(IDLE_BEAT) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    self.health.writer_beat();
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            self.health.writer_beat();
            let first_at = Instant::now();
            let mut batch = vec![first];
            self.take_waiting(&mut batch);
            self.wait_for_a_ride(&mut batch, first_at);
            if batch.iter().any(|job| !job.rides()) {
                self.last_urgent = Some(Instant::now());
            }
            let before = self.seqs;
            let result = run_batch(&db, &mut batch, &mut self.seqs);
            let fault = result.as_ref().err().and_then(StoreError::fault);
            if let Err(e) = &result {
                tracing::error!(error = %e, jobs = batch.len(), "write batch failed; its requests get an error");
                // Counters advanced by an aborted batch are simply skipped.
                self.seqs = Sequences {
                    event: self.seqs.event.max(before.event),
                    delivery: self.seqs.delivery.max(before.delivery),
                };
            }
            // The health first, then the answers: a client that got its 503 and asks
            // /healthz next must hear the same.
            if let Some(fault) = fault {
                self.health.failed(fault);
                if fault == Fault::Full {
                    // Refuse new events at once, not at the next free-space reading.
                    self.slot.check_space(&self.health, self.health.reserve());
                }
            }
            for job in batch {
                job.finish(result.clone());
            }
            if let Some(fault) = fault {
                match self.reopen(db, fault) {
                    Some(fresh) => db = fresh,
                    None => return, // shut down while the store was down
                }
            }
        }
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

    /// Opens the file and commits the sequence counters to it: the proof that commits work.
    fn open_and_commit(&mut self) -> Result<Arc<Database>, StoreError> {
        let db = self.slot.open()?;
        let stored = load_sequences(&db)?;
        self.seqs = Sequences {
            event: self.seqs.event.max(stored.event),
            delivery: self.seqs.delivery.max(stored.delivery),
        };
        run_batch(&db, &mut [], &mut self.seqs)?;
        Ok(db)
    }
}

fn run_batch(
    db: &Database,
    batch: &mut [Box<dyn Job>],
    seqs: &mut Sequences,
) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut tx = Tx { txn: &txn, seqs };
        for job in batch.iter_mut() {
            job.run(&mut tx)?;
        }
    }
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(EVENT_SEQ, seqs.event)?;
        meta.insert(DELIVERY_SEQ, seqs.delivery)?;
    }
    txn.commit()?;
    Ok(())
}
