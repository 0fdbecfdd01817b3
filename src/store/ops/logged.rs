//! The writes the redo log carries ([`crate::store::redo`]): an event's ingestion and an
//! attempt's outcome, the two writes of every event, so the ones an everyday rate makes.
//! Every other write commits to redb durably.
//!
//! Each is an *entry*: the write's inputs as data. The daemon encodes the entry, hands the
//! bytes to the writer for the log, and runs the write by [`Entry::apply`]; after a crash
//! the writer decodes the entry and runs [`replay`], which is the same `apply`. An entry
//! holds everything the write reads that is not in the store (the clock reading, the
//! retry policy then in force), so running it again on the same state writes the same;
//! the ids it draws come from the batch's id tape ([`crate::store::Tx::fresh_id`]).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::attempts::{self, Recorded, Recording, Verdict};
use super::events::{self, Ingested, NewEvent};
use crate::delivery::retry::RetryPolicy;
use crate::model::{DeliveryId, Millis};
use crate::store::codec::{Record, decode, encode_view};
use crate::store::records::Attempt;
use crate::store::{StoreError, Tx};

/// A logged write, as the log stores it. Variants are append-only (the codec's rule).
#[derive(Serialize, Deserialize)]
enum Entry {
    Ingest(Ingest),
    Record(Outcome),
}

/// How [`Entry`] is encoded without moving the write into it.
#[derive(Serialize)]
enum EntryView<'a> {
    Ingest(&'a Ingest),
    Record(&'a Outcome),
}

impl Record for Entry {
    const NAME: &'static str = "redo log entry";
    const VERSION: u8 = 1;
}

/// [`events::ingest`]'s inputs.
#[derive(Serialize, Deserialize)]
pub struct Ingest {
    new: NewEvent,
    due: Millis,
}

/// [`attempts::record`]'s inputs.
#[derive(Serialize, Deserialize)]
pub struct Outcome {
    id: DeliveryId,
    verdict: Verdict,
    attempt: Attempt,
    recording: Recording,
    policy: Arc<RetryPolicy>,
    now: Millis,
}

impl Ingest {
    fn apply(self, tx: &mut Tx<'_>) -> Result<Ingested, StoreError> {
        events::ingest(tx, self.new, self.due)
    }
}

impl Outcome {
    fn apply(self, tx: &mut Tx<'_>) -> Result<Option<Recorded>, StoreError> {
        attempts::record(
            tx,
            self.id,
            self.verdict,
            self.attempt,
            self.recording,
            &self.policy,
            self.now,
        )
    }
}

/// The bytes the log keeps for a write, and the write.
pub struct Logged<F> {
    pub entry: Vec<u8>,
    pub write: F,
}

/// Stores an event and its deliveries ([`events::ingest`]), logged.
pub fn ingest(
    new: NewEvent,
    due: Millis,
) -> Logged<impl FnOnce(&mut Tx<'_>) -> Result<Ingested, StoreError> + Send + 'static> {
    let write = Ingest { new, due };
    Logged {
        entry: encode_view::<Entry>(&EntryView::Ingest(&write)),
        write: move |tx: &mut Tx<'_>| write.apply(tx),
    }
}

/// Records an attempt's outcome ([`attempts::record`]) as of `now`, logged.
pub fn record(
    id: DeliveryId,
    verdict: Verdict,
    attempt: Attempt,
    recording: Recording,
    policy: Arc<RetryPolicy>,
    now: Millis,
) -> Logged<impl FnOnce(&mut Tx<'_>) -> Result<Option<Recorded>, StoreError> + Send + 'static> {
    let write = Outcome {
        id,
        verdict,
        attempt,
        recording,
        policy,
        now,
    };
    Logged {
        entry: encode_view::<Entry>(&EntryView::Record(&write)),
        write: move |tx: &mut Tx<'_>| write.apply(tx),
    }
}

/// Runs a logged write again from its entry (the writer's recovery).
pub fn replay(tx: &mut Tx<'_>, entry: &[u8]) -> Result<(), StoreError> {
    match decode::<Entry>(entry)? {
        Entry::Ingest(write) => write.apply(tx).map(drop),
        Entry::Record(write) => write.apply(tx).map(drop),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use redb::{ReadableTable, ReadableTableMetadata};

    use super::*;
    use crate::store::RedbStore;
    use crate::store::redo::RedoLog;
    use crate::store::tables::{ATTEMPTS, DELIVERIES, EVENTS};

    /// Every table a logged write touches that the test compares: event ids, delivery
    /// ids, attempt rows.
    fn contents(store: &RedbStore) -> (Vec<String>, Vec<u128>, usize) {
        store
            .read(|r| {
                let events = r.open_table(EVENTS)?;
                let events = events
                    .iter()?
                    .map(|e| e.map(|(k, _)| k.value().to_string()))
                    .collect::<Result<Vec<_>, _>>()?;
                let deliveries = r.open_table(DELIVERIES)?;
                let deliveries = deliveries
                    .iter()?
                    .map(|d| d.map(|(k, _)| k.value()))
                    .collect::<Result<Vec<_>, _>>()?;
                let attempts = r.open_table(ATTEMPTS)?.len()? as usize;
                Ok((events, deliveries, attempts))
            })
            .expect("read")
    }

    /// A crash, in one process: the files as the disk holds them while the store is open
    /// (the logged batches' pages are still in redb's memory), copied for another store
    /// to open. redb lets a file be open once, so the original cannot be reopened here.
    fn crash_copy(store: &RedbStore, to: &std::path::Path) {
        std::fs::copy(store.path(), to).expect("copy the store");
        std::fs::copy(RedoLog::path_for(store.path()), RedoLog::path_for(to))
            .expect("copy the log");
    }

    #[test]
    fn a_crash_before_the_checkpoint_loses_no_logged_write_and_replays_the_same_ids() {
        let (dir, store, webhook) = crate::store::ops::test_store_with_webhook();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        for i in 0..3 {
            let ingested = runtime
                .block_on(store.write_logged(ingest(
                    events::test_event(&format!("e{i}"), Millis(1_000)),
                    Millis(2_000),
                )))
                .expect("ingest");
            assert!(matches!(ingested, Ingested::Created { deliveries: 1, .. }));
        }
        let (_, delivery_ids, _) = contents(&store);
        let (sent, answer) = std::sync::mpsc::channel();
        let attempt = Attempt {
            at: Millis(2_000),
            status_code: Some(500),
            duration_ms: 3,
            error: None,
            response_body: None,
        };
        let policy = Arc::new(RetryPolicy {
            schedule: vec![Duration::ZERO, Duration::from_secs(60)],
            disable_after: Duration::from_secs(3600),
        });
        store
            .write_riding(
                record(
                    DeliveryId(delivery_ids[0]),
                    Verdict::Failure { retry_after: None },
                    attempt,
                    Recording::First,
                    policy,
                    Millis(2_003),
                ),
                move |result| {
                    let _ = sent.send(result);
                },
            )
            .expect("submit the outcome");
        let recorded = answer
            .recv_timeout(Duration::from_secs(5))
            .expect("answered")
            .expect("recorded");
        assert!(recorded.is_some(), "the delivery and its webhook exist");
        let live = contents(&store);
        assert_eq!((live.0.len(), live.1.len(), live.2), (3, 3, 1));

        let crashed = dir.path().join("crashed.redb");
        crash_copy(&store, &crashed);
        // The store file alone lacks the writes (they were logged, not checkpointed)...
        let bare = dir.path().join("bare.redb");
        std::fs::copy(&crashed, &bare).expect("copy");
        let without_log = RedbStore::open(&bare).expect("open the bare copy");
        assert_eq!(contents(&without_log).0, Vec::<String>::new());
        // ...and the log brings them back as they were: the same delivery ids and the
        // attempt recorded.
        let recovered = RedbStore::open(&crashed).expect("open the crashed copy");
        assert_eq!(contents(&recovered), live);
        let _ = webhook;
    }
}

#[cfg(test)]
mod layout_tests {
    use std::time::Duration;

    use super::*;
    use crate::store::ops::events::test_event;

    /// The log's entries are read back by the next start, maybe by the next version: their
    /// bytes are a stored format like the records'. A change here is a new `Entry`
    /// version with a decoder for this one, never an edit of these bytes.
    #[test]
    fn the_entries_layout_is_frozen() {
        let ingest = ingest(test_event("e1", Millis(1_000)), Millis(2_000));
        let outcome = record(
            DeliveryId(7),
            Verdict::Failure {
                retry_after: Some(Duration::from_secs(3)),
            },
            Attempt {
                at: Millis(2_000),
                status_code: Some(503),
                duration_ms: 4,
                error: None,
                response_body: Some("busy".into()),
            },
            Recording::First,
            Arc::new(RetryPolicy {
                schedule: vec![Duration::ZERO, Duration::from_secs(60)],
                disable_after: Duration::from_secs(3600),
            }),
            Millis(2_004),
        );
        assert_eq!(
            hex::encode(&ingest.entry),
            "0100026531017501017314323032342d30312d30315430303a30303a30305a027b7dfbd00700fba00f"
        );
        assert_eq!(
            hex::encode(&outcome.entry),
            "01010701010300fba00f01fbf7010400010462757379000200003c00fb100e00fba80f"
        );
    }
}
