//! The PostgreSQL side of `hookd store copy`: reading the tables of
//! `store/postgres/migrations` in one `REPEATABLE READ` snapshot (`read`), and writing
//! them into an empty database in one transaction (`write`) — records as the codec's
//! bytes, the other columns derived from them as the backend derives them.
//!
//! The backend owns the database: the copy connects through its code (TLS as the
//! URL's `sslmode` says), creates or upgrades a target's schema with its migrations
//! runner, and reads a source only at the schema version this hookd knows.

mod read;
mod write;

pub(super) use read::Source;
pub(super) use write::Sink;

use std::sync::Arc;

use anyhow::Context;
use tokio_postgres::Client;
use uuid::Uuid;

use super::{Counts, Refused};
use crate::store::StoreError;
use crate::store::postgres::{connect_one, known_version};

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(Arc::new(e))
}

/// Connects to `url` as the backend does: TLS per `sslmode`, `sslrootcert` trusted.
async fn connect(url: &str, desc: &str) -> anyhow::Result<Client> {
    connect_one(url)
        .await
        .with_context(|| format!("cannot connect to {desc}"))
}

fn int(v: u64, what: &str) -> anyhow::Result<i64> {
    i64::try_from(v).with_context(|| format!("{what} {v} does not fit PostgreSQL's bigint"))
}

fn uint(v: i64, what: &str) -> anyhow::Result<u64> {
    u64::try_from(v)
        .map_err(|_| StoreError::Inconsistent(format!("{what} is {v}, a negative number")).into())
}

fn uuid(id: u128) -> Uuid {
    Uuid::from_u128(id)
}

/// The schema version the database is at (0: no hookd schema), refusing one newer than
/// this hookd knows, as the backend's migrations runner does.
async fn schema_version(client: &Client, desc: &str) -> anyhow::Result<i32> {
    let row = client
        .query_one("SELECT to_regclass('hookd_schema') IS NOT NULL", &[])
        .await
        .map_err(pg)?;
    if !row.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client
        .query_one("SELECT coalesce(max(version), 0) FROM hookd_schema", &[])
        .await
        .map_err(pg)?;
    let version: i32 = row.get(0);
    let known = known_version();
    if version > known {
        return Err(Refused(format!(
            "{desc}: {}",
            StoreError::SchemaTooNew {
                found: version,
                known
            }
        ))
        .into());
    }
    Ok(version)
}

/// Refuses a database that live hookd nodes are using (their `nodes` rows not expired).
async fn refuse_live_nodes(client: &Client, desc: &str) -> anyhow::Result<()> {
    let row = client
        .query_one("SELECT count(*) FROM nodes WHERE expires_at > now()", &[])
        .await
        .map_err(pg)?;
    let live: i64 = row.get(0);
    if live > 0 {
        return Err(Refused(format!(
            "{desc} is in use: {live} hookd node(s) are running on it (their `nodes` rows \
             have not expired); stop them first"
        ))
        .into());
    }
    Ok(())
}

/// The rows of each table as the copy counts them. Statistics are counted by key, not
/// by row: the backend splits a minute's counters in shards (`stats.rs`), which the
/// copy merges into one row per key, so the counts compare across backends.
const COUNTS: &str = "SELECT \
    (SELECT count(*) FROM webhooks), (SELECT count(*) FROM events), \
    (SELECT count(*) FROM deliveries), (SELECT count(*) FROM attempts), \
    (SELECT count(*) FROM deliveries WHERE due IS NOT NULL), \
    (SELECT count(*) FROM (SELECT DISTINCT webhook_id, minute FROM attempt_stats) s), \
    (SELECT count(DISTINCT minute) FROM attempt_totals), \
    (SELECT count(*) FROM webhook_cleanup), (SELECT count(*) FROM notifications), \
    (SELECT count(*) FROM notification_marks)";

async fn counts(client: &Client) -> anyhow::Result<Counts> {
    let row = client.query_one(COUNTS, &[]).await.map_err(pg)?;
    let n = |i: usize| uint(row.get::<_, i64>(i), "a count");
    Ok(Counts {
        webhooks: n(0)?,
        events: n(1)?,
        deliveries: n(2)?,
        attempts: n(3)?,
        pending: n(4)?,
        attempt_stats: n(5)?,
        attempt_totals: n(6)?,
        cleanups: n(7)?,
        notifications: n(8)?,
        notification_marks: n(9)?,
    })
}
