//! Online backup: a consistent copy of the store taken while hookd runs.
//!
//! redb lets one process open a file, so a backup goes through the running daemon. All
//! tables are copied from a single read transaction — one snapshot, unaffected by the
//! writes that continue meanwhile — into a new redb file, which is renamed into place
//! only when complete. Restoring is replacing `hookd.redb` with the copy while hookd is
//! stopped.

use std::path::Path;

use redb::{
    Database, Key, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, Value,
    WriteTransaction,
};

use super::StoreError;
use super::tables::*;

fn copy<K: Key + 'static, V: Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    table: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let source = from.open_table(table)?;
    let mut target = to.open_table(table)?;
    let mut rows = 0;
    for entry in source.iter()? {
        let (k, v) = entry?;
        target.insert(k.value(), v.value())?;
        rows += 1;
    }
    Ok(rows)
}

/// Writes a consistent copy of `db` to `dest` and returns how many events it holds.
pub fn write_copy(db: &Database, dest: &Path) -> Result<u64, StoreError> {
    let snapshot = db.begin_read()?;
    let partial = dest.with_extension("partial");
    let _ = std::fs::remove_file(&partial);
    let events = {
        let copy_db = Database::create(&partial)?;
        let txn = copy_db.begin_write()?;
        copy(&snapshot, &txn, META)?;
        // The copy is another store: no stretch of this one's redo log follows it.
        txn.open_table(META)?.remove(LOG_STRETCH)?;
        copy(&snapshot, &txn, WEBHOOKS)?;
        copy(&snapshot, &txn, USER_WEBHOOKS)?;
        let events = copy(&snapshot, &txn, EVENTS)?;
        copy(&snapshot, &txn, USER_EVENTS)?;
        copy(&snapshot, &txn, EVENTS_BY_SEQ)?;
        copy(&snapshot, &txn, DELIVERIES)?;
        copy(&snapshot, &txn, WEBHOOK_DELIVERIES)?;
        copy(&snapshot, &txn, DELIVERIES_BY_SEQ)?;
        copy(&snapshot, &txn, QUEUE)?;
        copy(&snapshot, &txn, ATTEMPT_STATS)?;
        copy(&snapshot, &txn, EVENT_DELIVERIES)?;
        copy(&snapshot, &txn, WEBHOOK_CLEANUP)?;
        copy(&snapshot, &txn, DELIVERY_FILTER)?;
        copy(&snapshot, &txn, WEBHOOK_NUMBERS)?;
        copy(&snapshot, &txn, USER_TYPE_EVENTS)?;
        copy(&snapshot, &txn, ATTEMPTS)?;
        copy(&snapshot, &txn, QUEUE_ORDER)?;
        copy(&snapshot, &txn, QUEUE_REQUEUED)?;
        copy(&snapshot, &txn, QUEUE_REQUEUED_AT)?;
        copy(&snapshot, &txn, QUEUE_MOVED)?;
        copy(&snapshot, &txn, NOTIFICATIONS)?;
        copy(&snapshot, &txn, NOTIFICATION_PENDING)?;
        copy(&snapshot, &txn, NOTIFICATION_DUE)?;
        copy(&snapshot, &txn, NOTIFICATION_MARKS)?;
        copy(&snapshot, &txn, WEBHOOKS_BY_STATUS)?;
        copy(&snapshot, &txn, ATTEMPT_TOTALS)?;
        txn.commit()?;
        events
    };
    std::fs::rename(&partial, dest).map_err(|e| StoreError::io("move the backup into place", e))?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase, TableHandle};

    use super::*;
    use crate::store::ops::ensure_tables;

    fn table_names(db: &Database) -> Vec<String> {
        let txn = db.begin_read().expect("read");
        let mut names: Vec<String> = txn
            .list_tables()
            .expect("list tables")
            .map(|t| t.name().to_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_copy_has_every_table_of_the_store() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Database::create(dir.path().join("hookd.redb")).expect("create");
        ensure_tables(&db).expect("tables");
        let dest = dir.path().join("copy.redb");
        write_copy(&db, &dest).expect("backup");
        let copy = Database::open(&dest).expect("open the copy");
        assert_eq!(table_names(&copy), table_names(&db));
        for table in [
            "attempt_stats",
            "event_deliveries",
            "webhook_cleanup",
            "delivery_filter2",
            "webhook_numbers",
            "user_type_events",
            "attempts",
            "queue",
            "queue2",
            "queue_order2",
            "queue_requeued",
            "queue_requeued_at",
            "notifications",
            "notification_pending",
            "notification_due",
            "notification_marks",
            "webhooks_by_status",
            "attempt_totals",
        ] {
            assert!(table_names(&db).contains(&table.to_owned()), "{table}");
        }
    }
}
