//! The store: webhooks, the event log, delivery logs and the durable delivery queue.
//!
//! Everything outside this module goes through [`Store`] ([`backend`]: the seam), which is
//! one of two backends:
//! - [`RedbStore`] ([`embedded`]), the default: one redb file (tables and their invariants:
//!   [`tables`]; queries and writes: [`ops`]; the group-committing writer thread) and its
//!   redo log ([`redo`]);
//! - [`PgStore`] ([`postgres`]): a PostgreSQL database that several hookd nodes share.
//!
//! Both store the same records in the same versioned encoding ([`records`], [`codec`]),
//! and both acknowledge a write only once it is durable (on redb: committed, or synced to
//! the redo log), so an answer sent after it survives `kill -9`. [`health`] is the failure model both report into.

pub mod backend;
pub mod backup;
pub mod codec;
pub mod copy;
pub mod embedded;
pub mod health;
pub mod ops;
pub mod postgres;
pub mod records;
pub mod redo;
pub mod space;
pub mod tables;
mod writer;

pub use backend::Store;
pub use embedded::RedbStore;
pub use postgres::PgStore;

use std::sync::Arc;

pub use health::{Fault, Health};
pub use writer::{MAX_REOPEN_WAIT, Tx};

/// Why a store operation failed. Cloneable because one failed group commit answers every
/// job in its batch with the same error.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// redb reported an I/O or consistency problem.
    #[error("storage error: {0}")]
    Storage(Arc<redb::Error>),
    /// A file operation around the database (a backup's copy, …) failed.
    #[error("cannot {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The redo log ([`redo`]) could not be opened, read or written: a storage failure
    /// like redb's own.
    #[error("cannot {what} the redo log: {source}")]
    Log {
        what: &'static str,
        #[source]
        source: Arc<std::io::Error>,
    },
    /// A stored record could not be decoded.
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
    /// A row that another one points to is missing: a broken invariant of
    /// [`tables`], never the result of a request.
    #[error("the store is inconsistent: {0}")]
    Inconsistent(String),
    /// The writer thread is gone (the daemon is shutting down).
    #[error("the store is shutting down")]
    Closed,
    /// The store cannot commit right now (see [`health`]); the writer is reopening it.
    #[error("the store cannot commit: {}", .0.code())]
    Unavailable(Fault),
    /// PostgreSQL refused or failed a statement, or its connection broke.
    #[error("database error: {}", with_causes(&**.0))]
    Postgres(Arc<tokio_postgres::Error>),
    /// No connection to PostgreSQL could be had from the pool.
    #[error("no database connection: {}", with_causes(&**.0))]
    Pool(Arc<deadpool_postgres::PoolError>),
    /// The operation does not exist on this backend (the reason says what to do instead).
    #[error("{0}")]
    Unsupported(&'static str),
    /// The database's schema is newer than this hookd knows: it was migrated by a newer
    /// hookd. Run that version, or restore the database from before the upgrade.
    #[error(
        "the database schema is version {found}, but this hookd knows versions up to {known}: it was migrated by a newer hookd"
    )]
    SchemaTooNew { found: i32, known: i32 },
    /// The redb file's store format is newer than this hookd knows
    /// ([`tables::STORE_FORMAT`]): a newer hookd wrote it. Run that version, or restore
    /// the backup taken before the upgrade.
    #[error(
        "the data file is store format {found}, but this hookd knows formats up to {known}: it was written by a newer hookd"
    )]
    FormatTooNew { found: u64, known: u64 },
    /// `store.postgres_url` cannot be used (malformed, an unknown `sslmode`, an
    /// unreadable `sslrootcert`, …); the text says which and why.
    #[error("store.postgres_url: {0}")]
    Config(String),
}

/// An error and its causes, `error: cause: cause`. tokio-postgres shows only the kind of
/// an error ("db error", "error connecting to server"); what the server said, or why the
/// connection failed, is in its causes, and is what an operator needs to read.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        let more = c.to_string();
        // Some errors repeat their cause in their own text.
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

impl StoreError {
    /// The storage fault behind this error, if it is one (an I/O error, latched or new):
    /// such errors make the writer reopen the store and the API answer 503.
    pub fn fault(&self) -> Option<Fault> {
        match self {
            StoreError::Unavailable(fault) => Some(*fault),
            StoreError::Storage(e) => match &**e {
                redb::Error::Io(io) => Some(Fault::of_io(io)),
                redb::Error::PreviousIo | redb::Error::DatabaseClosed => Some(Fault::Unavailable),
                _ => None,
            },
            // No connection: the database is down or unreachable (it passes).
            StoreError::Log { source, .. } => Some(Fault::of_io(source)),
            StoreError::Pool(_) => Some(Fault::Unavailable),
            StoreError::Postgres(e) => postgres::fault_of(e),
            _ => None,
        }
    }

    pub(crate) fn log(what: &'static str, source: std::io::Error) -> StoreError {
        StoreError::Log {
            what,
            source: Arc::new(source),
        }
    }

    pub(crate) fn io(what: &'static str, source: std::io::Error) -> StoreError {
        StoreError::Io {
            what,
            source: Arc::new(source),
        }
    }
}

/// Every redb error type converts into `redb::Error`, which keeps the cause.
macro_rules! storage_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self { StoreError::Storage(Arc::new(e.into())) }
        }
    )*};
}
storage_error_from!(
    redb::Error,
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::SetDurabilityError,
    redb::CommitError
);
