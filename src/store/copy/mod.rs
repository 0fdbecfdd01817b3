//! `hookd store copy`: moves everything one store holds into another, empty one — redb
//! to PostgreSQL (one host to a cluster) and back — and checks the counts at the end.
//!
//! The copy works on rows, not on the backends' operations: a source streams its
//! tables as [`Batch`]es of at most [`BATCH`] rows, in an order that lets a sink derive
//! its own indexes as it goes (webhooks, events, deliveries, attempts, statistics,
//! cleanups, notifications, marks), and a sink writes each batch the way its backend
//! keeps its invariants (`redb`: every index table of `store::tables`; `postgres`: the
//! derived columns of the schema). Records travel as the codec's bytes (`store::codec`),
//! unchanged, with one exception: a delivery record stored at version 1 carries its
//! attempts inline; it is written at the current version with its attempts as rows,
//! which is what hookd itself does the next time it saves such a record
//! (`ops::deliveries::save`), so both backends only ever see attempts as rows.
//!
//! Memory is bounded by a batch, whatever the store's size. The source is read in one
//! snapshot (a redb read transaction; a PostgreSQL `REPEATABLE READ` transaction). The
//! target is written so that a failed copy leaves nothing behind: PostgreSQL in one
//! transaction, committed only once the counts match (its schema is made first by the
//! backend's migrations, as `hookd migrate` makes it); redb into a file beside the
//! target, committed in chunks and moved into place once the counts match.

mod postgres;
mod redb;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;

use anyhow::Context;

use super::backend::{describe, pg_settings};
use crate::config::Config;
use crate::model::{DeliveryId, DeliveryStatus, Millis};
use crate::store::codec;
use crate::store::records::{DeliveryRecord, EventRecord, NotificationRecord, WebhookRecord};

/// Rows per batch: what one read fetches and one write stores (one redb commit).
pub(crate) const BATCH: usize = 5_000;
/// A batch stops early once its records reach this many bytes (events carry payloads of
/// up to `limits.max_payload_bytes` each), so memory stays bounded whatever they hold.
pub(crate) const BATCH_BYTES: usize = 16 << 20;

/// The copy cannot start: the user must fix something first (exit status 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

/// Rows in a store, table by table: what the source held and the target holds after.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub webhooks: u64,
    pub events: u64,
    pub deliveries: u64,
    pub attempts: u64,
    /// Pending deliveries: the queue.
    pub pending: u64,
    pub attempt_stats: u64,
    pub attempt_totals: u64,
    pub cleanups: u64,
    pub notifications: u64,
    pub notification_marks: u64,
}

impl Counts {
    fn rows(&self) -> [(&'static str, u64); 10] {
        [
            ("webhooks", self.webhooks),
            ("events", self.events),
            ("deliveries", self.deliveries),
            ("attempts", self.attempts),
            ("pending", self.pending),
            ("attempt_stats", self.attempt_stats),
            ("attempt_totals", self.attempt_totals),
            ("cleanups", self.cleanups),
            ("notifications", self.notifications),
            ("notification_marks", self.notification_marks),
        ]
    }
}

impl fmt::Display for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, n) in self.rows() {
            writeln!(f, "  {name:<20}{n:>12}")?;
        }
        Ok(())
    }
}

/// The last numbers the store's sequences gave out; the target's go on after them, so a
/// new seq never collides with a copied one.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seqs {
    pub event: u64,
    /// Also covers queue positions: a requeued delivery's position is a delivery seq.
    pub delivery: u64,
    pub notification: u64,
}

impl Seqs {
    /// Raises the sequences to cover the batch's rows, so a store whose counters lag its
    /// rows (which the invariants rule out) still gives out no seq already taken.
    fn cover(&mut self, batch: &Batch) {
        match batch {
            Batch::Events(rows) => {
                for r in rows {
                    self.event = self.event.max(r.record.seq);
                }
            }
            Batch::Deliveries(rows) => {
                for r in rows {
                    self.delivery = self.delivery.max(r.record.seq).max(r.position);
                }
            }
            Batch::Notifications(rows) => {
                for r in rows {
                    self.notification = self.notification.max(r.record.seq);
                }
            }
            _ => {}
        }
    }

    fn max(self, other: Seqs) -> Seqs {
        Seqs {
            event: self.event.max(other.event),
            delivery: self.delivery.max(other.delivery),
            notification: self.notification.max(other.notification),
        }
    }
}

pub(crate) struct WebhookRow {
    pub bytes: Vec<u8>,
    pub record: WebhookRecord,
}

pub(crate) struct EventRow {
    pub bytes: Vec<u8>,
    pub record: EventRecord,
}

pub(crate) struct DeliveryRow {
    pub bytes: Vec<u8>,
    /// Decoded from `bytes`; `inline_attempts` is always empty (they are in `attempts`).
    pub record: DeliveryRecord,
    /// The seq of its event (0 when a version 1 delivery's event is gone).
    pub event_seq: u64,
    /// Its place in its webhook's line while pending: its seq, or its requeued position.
    pub position: u64,
    /// Attempts that were inline in a version 1 record: (number, `Attempt` bytes).
    pub attempts: Vec<(u32, Vec<u8>)>,
}

impl DeliveryRow {
    /// A stored delivery record as the copy carries it: a version 1 record's inline
    /// attempts taken out as rows and the record re-encoded at the current version (as
    /// `ops::deliveries::save` would); any other record's bytes unchanged.
    /// `id` is the key it is stored under; `place` answers its event's seq and its
    /// position in line (used while pending).
    pub fn of(
        id: DeliveryId,
        bytes: &[u8],
        place: impl FnOnce(&DeliveryRecord) -> anyhow::Result<(u64, u64)>,
    ) -> anyhow::Result<DeliveryRow> {
        let mut record = DeliveryRecord::decode(id, bytes)?;
        let (event_seq, position) = place(&record)?;
        let inline = std::mem::take(&mut record.inline_attempts);
        let bytes = if inline.is_empty() {
            bytes.to_vec()
        } else {
            record.encode()
        };
        let position = if record.status == DeliveryStatus::Pending {
            position
        } else {
            record.seq
        };
        Ok(DeliveryRow {
            bytes,
            event_seq,
            position,
            attempts: inline
                .into_iter()
                .map(|(number, attempt)| (number, codec::encode(&attempt)))
                .collect(),
            record,
        })
    }

    /// When it is due, exactly while it is pending (the queue).
    pub fn due(&self) -> Option<Millis> {
        match self.record.status {
            DeliveryStatus::Pending => self.record.next_attempt_at,
            _ => None,
        }
    }
}

pub(crate) struct AttemptRow {
    pub delivery_seq: u64,
    pub number: u32,
    pub bytes: Vec<u8>,
}

pub(crate) struct NotificationRow {
    pub bytes: Vec<u8>,
    pub record: NotificationRecord,
}

/// Up to [`BATCH`] rows of one table. Sources send the tables in this order (a sink
/// indexes deliveries against the events already written), notifications in seq order.
pub(crate) enum Batch {
    Webhooks(Vec<WebhookRow>),
    Events(Vec<EventRow>),
    Deliveries(Vec<DeliveryRow>),
    Attempts(Vec<AttemptRow>),
    /// (webhook id, unix minute, `MinuteStats` bytes).
    Stats(Vec<(u128, u64, Vec<u8>)>),
    /// (unix minute, succeeded, failed, errored).
    Totals(Vec<(u64, u64, u64, u64)>),
    /// (webhook id, cleanup kind).
    Cleanups(Vec<(u128, u8)>),
    Notifications(Vec<NotificationRow>),
    /// (webhook id, `NotifyMarks` bytes).
    Marks(Vec<(u128, Vec<u8>)>),
}

/// Where a config's store is.
enum Location {
    Redb(PathBuf),
    Postgres(String),
}

fn location(config: &Config) -> Location {
    match pg_settings(config) {
        Some(settings) => Location::Postgres(settings.url),
        None => Location::Redb(config.db_path()),
    }
}

enum Source {
    Redb(Box<redb::Source>),
    Postgres(postgres::Source),
}

impl Source {
    async fn next(&mut self) -> anyhow::Result<Option<Batch>> {
        match self {
            Source::Redb(s) => s.next(),
            Source::Postgres(s) => s.next().await,
        }
    }

    async fn seqs(&mut self) -> anyhow::Result<Seqs> {
        match self {
            Source::Redb(s) => s.seqs(),
            Source::Postgres(s) => s.seqs().await,
        }
    }

    async fn counts(&mut self) -> anyhow::Result<Counts> {
        match self {
            Source::Redb(s) => s.counts(),
            Source::Postgres(s) => s.counts().await,
        }
    }
}

enum Sink {
    Redb(redb::Sink),
    Postgres(postgres::Sink),
}

impl Sink {
    async fn put(&mut self, batch: Batch) -> anyhow::Result<()> {
        match self {
            Sink::Redb(s) => s.put(batch),
            Sink::Postgres(s) => s.put(batch).await,
        }
    }

    async fn set_seqs(&mut self, seqs: Seqs) -> anyhow::Result<()> {
        match self {
            Sink::Redb(s) => s.set_seqs(seqs),
            Sink::Postgres(s) => s.set_seqs(seqs).await,
        }
    }

    async fn counts(&mut self) -> anyhow::Result<Counts> {
        match self {
            Sink::Redb(s) => s.counts(),
            Sink::Postgres(s) => s.counts().await,
        }
    }

    async fn commit(self) -> anyhow::Result<()> {
        match self {
            Sink::Redb(s) => s.commit(),
            Sink::Postgres(s) => s.commit().await,
        }
    }
}

/// Copies everything `from`'s store holds into `to`'s, which must be empty, and answers
/// the verified counts. Refusals (a non-empty target, a store in use, both the same)
/// are [`Refused`].
pub async fn copy(from: &Config, to: &Config) -> anyhow::Result<Counts> {
    let (from_desc, to_desc) = (describe(from), describe(to));
    let (source_at, target_at) = (location(from), location(to));
    if same_store(&source_at, &target_at) {
        return Err(Refused(format!(
            "--from and --to name the same store ({from_desc}): nothing to copy"
        ))
        .into());
    }
    let mut source = match source_at {
        Location::Redb(path) => Source::Redb(Box::new(redb::Source::open(&path)?)),
        Location::Postgres(url) => {
            Source::Postgres(postgres::Source::open(&url, &from_desc).await?)
        }
    };
    let mut sink = match target_at {
        Location::Redb(path) => Sink::Redb(redb::Sink::create(&path)?),
        Location::Postgres(url) => Sink::Postgres(postgres::Sink::create(&url, &to_desc).await?),
    };
    let mut covered = Seqs::default();
    while let Some(batch) = source.next().await.context("cannot read the source")? {
        covered.cover(&batch);
        sink.put(batch)
            .await
            .with_context(|| format!("cannot write into {to_desc}"))?;
    }
    let seqs = source.seqs().await?.max(covered);
    let expected = source.counts().await?;
    sink.set_seqs(seqs).await?;
    let got = sink.counts().await?;
    if got != expected {
        let lines: Vec<String> = expected
            .rows()
            .iter()
            .zip(got.rows())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((name, a), (_, b))| format!("{name}: {a} in the source, {b} copied"))
            .collect();
        anyhow::bail!(
            "the copy does not match the source, so it was not kept ({to_desc} is left as it \
             was): {}",
            lines.join("; ")
        );
    }
    sink.commit()
        .await
        .with_context(|| format!("cannot commit the copy into {to_desc}"))?;
    Ok(got)
}

fn same_store(a: &Location, b: &Location) -> bool {
    match (a, b) {
        (Location::Redb(a), Location::Redb(b)) => {
            let full = |p: &PathBuf| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
            full(a) == full(b)
        }
        (Location::Postgres(a), Location::Postgres(b)) => a == b,
        _ => false,
    }
}
