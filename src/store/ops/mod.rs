//! Queries and write operations over the tables. Every write keeps the invariants listed
//! in [`super::tables`]; every function here is synchronous and runs either inside a read
//! snapshot or inside one job of the group commit ([`super::Tx`]).

pub mod attempts;
pub mod deliveries;
pub mod events;
pub mod queue;
pub mod retention;
pub mod stats;
pub mod webhooks;

use redb::{Database, ReadableTable};

use super::StoreError;
use super::codec::{self, Record};
use super::tables::*;

/// Creates every table so that read transactions never meet a missing one.
pub fn ensure_tables(db: &Database) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    txn.open_table(META)?;
    txn.open_table(WEBHOOKS)?;
    txn.open_table(USER_WEBHOOKS)?;
    txn.open_table(EVENTS)?;
    txn.open_table(USER_EVENTS)?;
    txn.open_table(DELIVERIES)?;
    txn.open_table(WEBHOOK_DELIVERIES)?;
    txn.open_table(QUEUE)?;
    txn.open_table(EVENTS_BY_SEQ)?;
    txn.open_table(DELIVERIES_BY_SEQ)?;
    txn.open_table(ATTEMPT_STATS)?;
    txn.open_table(EVENT_DELIVERIES)?;
    txn.open_table(WEBHOOK_CLEANUP)?;
    txn.commit()?;
    Ok(())
}

/// Loads and decodes one record by key.
fn load<'k, K, R>(
    table: &impl ReadableTable<K, &'static [u8]>,
    key: impl std::borrow::Borrow<K::SelfType<'k>>,
) -> Result<Option<R>, StoreError>
where
    K: redb::Key + 'static,
    R: Record,
{
    match table.get(key)? {
        Some(bytes) => Ok(Some(codec::decode(bytes.value())?)),
        None => Ok(None),
    }
}

/// How much one chunk of a big job (a webhook's removal or cancellation, a recover,
/// retention) may do in its write job: at most [`CLEANUP_CHUNK`] rows, and no more than
/// [`CHUNK_TIME`] of work once [`CHUNK_MIN`] rows are done. The time bound keeps the
/// commit that other writes share short whatever the hardware (or an unoptimized
/// build); the row minimum keeps small jobs whole and makes progress certain.
pub(crate) struct Chunk {
    started: std::time::Instant,
    pub(crate) rows: usize,
}

pub(crate) const CHUNK_MIN: usize = 32;
pub(crate) const CHUNK_TIME: std::time::Duration = std::time::Duration::from_millis(8);

impl Chunk {
    pub(crate) fn start() -> Chunk {
        Chunk {
            started: std::time::Instant::now(),
            rows: 0,
        }
    }

    /// Whether another row fits; count it with [`Chunk::did`].
    pub(crate) fn room(&self) -> bool {
        self.rows < CLEANUP_CHUNK && (self.rows < CHUNK_MIN || self.started.elapsed() < CHUNK_TIME)
    }

    pub(crate) fn did(&mut self) {
        self.rows += 1;
    }
}

/// A page of a newest-first listing and the cursor of the next page.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<u64>,
}
