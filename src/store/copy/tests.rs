//! redb → redb copies of random stores (`ops::observe_tests`: every kind of write,
//! including records and tables left by an older hookd) keep every row, and the copy
//! keeps every invariant of `store::tables`; with `HOOKD_TEST_POSTGRES_URL`, so does a
//! round trip through PostgreSQL, whose derived columns, sequences and sharded counters
//! are checked here too. End to end (hookd serving each copy): `tests/it/store_copy.rs`.

use std::collections::BTreeMap;
use std::path::Path;

use redb::{
    Key, ReadTransaction, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition,
    Value,
};

use super::{Counts, Refused, copy};
use crate::config::Config;
use crate::store::codec::decode;
use crate::store::ops::deliveries::attempts_of;
use crate::store::ops::meta_get;
use crate::store::ops::observe_tests::{check_counters_and_indexes, run};
use crate::store::records::DeliveryRecord;
use crate::store::tables::*;
use crate::store::{RedbStore, StoreError};

fn config(data_dir: &Path) -> Config {
    Config::from_toml_str(&format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n",
        data_dir.display().to_string()
    ))
    .unwrap()
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A table's rows as raw bytes, in key order.
fn raw<K: Key + 'static, V: Value + 'static>(
    r: &ReadTransaction,
    def: TableDefinition<K, V>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    r.open_table(def)
        .unwrap()
        .iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (
                K::as_bytes(&k.value()).as_ref().to_vec(),
                V::as_bytes(&v.value()).as_ref().to_vec(),
            )
        })
        .collect()
}

/// Every delivery (inline attempts aside) with its attempts, read as hookd reads them.
fn deliveries(r: &ReadTransaction) -> Result<BTreeMap<u128, String>, StoreError> {
    let attempts = r.open_table(ATTEMPTS)?;
    let mut out = BTreeMap::new();
    for entry in r.open_table(DELIVERIES)?.iter()? {
        let (id, bytes) = entry?;
        let mut d = DeliveryRecord::decode(crate::model::DeliveryId(id.value()), bytes.value())?;
        let all = attempts_of(&attempts, &d)?;
        d.inline_attempts.clear();
        out.insert(d.id.0, format!("{d:?} {all:?}"));
    }
    Ok(out)
}

fn assert_same_store(source: &Path, target: &Path, seed: u64) {
    let (a, b) = (
        redb::Database::open(source).unwrap(),
        redb::Database::open(target).unwrap(),
    );
    let (a, b) = (a.begin_read().unwrap(), b.begin_read().unwrap());
    macro_rules! same {
        ($($table:ident),*) => {$(
            assert!(raw(&a, $table) == raw(&b, $table), "{} differs, seed {seed}", stringify!($table));
        )*};
    }
    same!(
        WEBHOOKS,
        USER_WEBHOOKS,
        EVENTS,
        EVENTS_BY_SEQ,
        DELIVERIES_BY_SEQ,
        QUEUE_REQUEUED,
        QUEUE_REQUEUED_AT,
        ATTEMPT_STATS,
        ATTEMPT_TOTALS,
        WEBHOOK_CLEANUP,
        NOTIFICATIONS,
        NOTIFICATION_PENDING,
        NOTIFICATION_DUE,
        NOTIFICATION_MARKS,
        WEBHOOKS_BY_STATUS
    );
    assert_eq!(
        deliveries(&a).unwrap(),
        deliveries(&b).unwrap(),
        "seed {seed}"
    );
    assert_eq!(
        queues(&a).unwrap(),
        queues(&b).unwrap(),
        "queue, seed {seed}"
    );
    let (ma, mb) = (a.open_table(META).unwrap(), b.open_table(META).unwrap());
    for name in [
        EVENT_SEQ,
        DELIVERY_SEQ,
        NOTIFICATION_SEQ,
        WEBHOOKS_HEALTHY,
        WEBHOOKS_FAILING,
        WEBHOOKS_DISABLED,
    ] {
        assert_eq!(
            meta_get(&ma, name).unwrap(),
            meta_get(&mb, name).unwrap(),
            "{name}, seed {seed}"
        );
    }
    // Everything copied is in the filter indexes (so none in the older indexes kept for
    // what an older hookd wrote); `event_deliveries` lists the deliveries still stored of
    // every event stored at version 1.
    assert_eq!(meta_get(&mb, DELIVERY_FILTER_FROM).unwrap(), 0);
    assert_eq!(meta_get(&mb, EVENT_FILTER_FROM).unwrap(), 0);
    assert_eq!(b.open_table(WEBHOOK_DELIVERIES).unwrap().len().unwrap(), 0);
    assert_eq!(b.open_table(USER_EVENTS).unwrap().len().unwrap(), 0);
    let by_seq = a.open_table(DELIVERIES_BY_SEQ).unwrap();
    let kept: Vec<_> = raw(&a, EVENT_DELIVERIES)
        .into_iter()
        .filter(|(k, _)| {
            let (_, delivery) = <(u64, u64)>::from_bytes(k);
            by_seq.get(delivery).unwrap().is_some()
        })
        .collect();
    assert!(
        kept == raw(&b, EVENT_DELIVERIES),
        "event_deliveries, seed {seed}"
    );
}

/// The queue in due order and in line order, named by webhook and delivery ids: a copy
/// numbers the webhooks anew, and the seqs are the same.
type Queues = (Vec<(u128, u64, u64)>, BTreeMap<(u128, u64), u64>);

fn queues(r: &ReadTransaction) -> Result<Queues, StoreError> {
    let mut webhooks = BTreeMap::new();
    for entry in r.open_table(WEBHOOK_NUMBERS)?.iter()? {
        let (id, number) = entry?;
        webhooks.insert(number.value(), id.value());
    }
    let webhook = |number: u32| webhooks.get(&number).copied().unwrap_or_default();
    let mut due = Vec::new();
    for entry in r.open_table(QUEUE)?.iter()? {
        let (number, at, seq) = entry?.0.value();
        due.push((webhook(number), at, seq));
    }
    due.sort_unstable();
    let requeued_at = r.open_table(QUEUE_REQUEUED_AT)?;
    let mut line = BTreeMap::new();
    for entry in r.open_table(QUEUE_ORDER)?.iter()? {
        let (number, position) = entry?.0.value();
        let seq = crate::store::ops::order::seq_at(&requeued_at, position)?;
        line.insert((webhook(number), position), seq);
    }
    Ok((due, line))
}

/// Runs `statements` on the PostgreSQL server at `url`.
async fn sql(url: &str, statements: &str) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client.batch_execute(statements).await.unwrap();
}

/// A config whose store is a fresh database under `HOOKD_TEST_POSTGRES_URL` (dropped by
/// the returned guard), or `None` when that is unset.
fn fresh_database(name: &str) -> Option<(Config, impl Drop + use<>)> {
    let server = crate::store::postgres::tests::test_server()?;
    let name = format!("hookd_copy_unit_{}_{name}", std::process::id());
    block_on(sql(&server, &format!("CREATE DATABASE {name}")));
    let mut url: tokio_postgres::Config = server.parse().unwrap();
    url.dbname(&name);
    let (host, port) = match &url.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => (h.clone(), url.get_ports()[0]),
        tokio_postgres::config::Host::Unix(p) => (p.display().to_string(), url.get_ports()[0]),
    };
    let user = url.get_user().unwrap_or("postgres");
    let config = Config::from_toml_str(&format!(
        "listen = \"127.0.0.1:0\"\ndata_dir = \"unused\"\n[store]\nbackend = \"postgres\"\n\
         postgres_url = \"postgres://{user}@{host}:{port}/{name}\"\n"
    ))
    .unwrap();
    struct Dropped(String, String);
    impl Drop for Dropped {
        fn drop(&mut self) {
            block_on(sql(
                &self.0,
                &format!("DROP DATABASE {} WITH (FORCE)", self.1),
            ));
        }
    }
    Some((config, Dropped(server, name)))
}

#[test]
fn a_store_no_hookd_with_the_compact_queue_has_opened_copies_whole() {
    let (dir, file) = run(7, 300);
    let from = dir.path().join("from");
    std::fs::create_dir(&from).unwrap();
    std::fs::rename(&file, from.join("hookd.redb")).unwrap();
    // As a hookd before the compact queue (and filter) left it, and not opened since.
    let store = RedbStore::open(&from.join("hookd.redb")).unwrap();
    let pending = store.read(|r| Ok(r.open_table(QUEUE)?.len()?)).unwrap();
    assert!(pending > 0, "the random writes leave something pending");
    store
        .write_blocking(crate::store::ops::observe_tests::forget_numbers)
        .unwrap();
    store.close(std::time::Duration::ZERO);
    let to = dir.path().join("to");
    let counts = block_on(copy(&config(&from), &config(&to))).unwrap();
    assert_eq!(counts.pending, pending);
    let store = RedbStore::open(&to.join("hookd.redb")).unwrap();
    check_counters_and_indexes(&store, "the copy of a store with the first forms");
    store.close(std::time::Duration::ZERO);
}

#[test]
fn random_stores_copy_whole_and_keep_every_invariant() {
    for seed in [0x9e37_79b9_7f4a_7c15, 7, 1_234_567] {
        let (dir, file) = run(seed, 300);
        let from = dir.path().join("from");
        std::fs::create_dir(&from).unwrap();
        std::fs::rename(&file, from.join("hookd.redb")).unwrap();
        let to = dir.path().join("to");
        let counts = block_on(copy(&config(&from), &config(&to))).unwrap();
        assert_ne!(counts, Counts::default(), "seed {seed}");
        assert!(!to.join("hookd.redb.copying").exists());
        assert_same_store(&from.join("hookd.redb"), &to.join("hookd.redb"), seed);
        let store = RedbStore::open(&to.join("hookd.redb")).unwrap();
        check_counters_and_indexes(&store, &format!("the copy, seed {seed}"));
        store.close(std::time::Duration::ZERO);

        // A second copy into it is refused, and leaves it as it was.
        let again = block_on(copy(&config(&from), &config(&to))).unwrap_err();
        let refused = again.downcast_ref::<Refused>().unwrap();
        assert!(refused.0.contains("is not empty"), "{refused}");
        assert_same_store(&from.join("hookd.redb"), &to.join("hookd.redb"), seed);

        // Through PostgreSQL and back, when there is a server to test with.
        let Some((pg, _dropped)) = fresh_database(&format!("{seed}")) else {
            continue;
        };
        let there = block_on(copy(&config(&from), &pg)).unwrap();
        assert_eq!(there, counts, "seed {seed}");
        let back = dir.path().join("back");
        assert_eq!(block_on(copy(&pg, &config(&back))).unwrap(), counts);
        assert_same_store(&from.join("hookd.redb"), &back.join("hookd.redb"), seed);
        let store = RedbStore::open(&back.join("hookd.redb")).unwrap();
        check_counters_and_indexes(&store, &format!("the round trip, seed {seed}"));
        store.close(std::time::Duration::ZERO);
    }
}

/// The one-row, all-bigint answer of `query` on `url`.
async fn ints(url: &str, query: &str) -> Vec<i64> {
    let client = crate::store::postgres::connect_one(url).await.unwrap();
    let row = client.query_one(query, &[]).await.unwrap();
    (0..row.len()).map(|i| row.get::<_, i64>(i)).collect()
}

/// `config`'s PostgreSQL URL.
fn url_of(config: &Config) -> String {
    crate::store::backend::pg_settings(config).unwrap().url
}

#[test]
fn postgres_shards_merge_and_new_seqs_follow_the_copied_ones() {
    let seed = 7;
    let (dir, file) = run(seed, 300);
    let from = dir.path().join("from");
    std::fs::create_dir(&from).unwrap();
    std::fs::rename(&file, from.join("hookd.redb")).unwrap();
    let Some((pg, _dropped)) = fresh_database("shards") else {
        return;
    };
    let counts = block_on(copy(&config(&from), &pg)).unwrap();
    assert!(counts.attempt_stats > 0 && counts.attempt_totals > 0);
    let url = url_of(&pg);

    // A seq given out after the copy is above every copied seq and queue position,
    // though delivery_seq steps by 1024; the copy wrote every row the backend derives.
    let seqs = block_on(ints(
        &url,
        "SELECT nextval('delivery_seq'), (SELECT max(greatest(seq, coalesce(position, 0))) \
         FROM deliveries), nextval('event_seq'), (SELECT max(seq) FROM events), \
         (SELECT count(*) FROM events WHERE first_delivery IS NOT NULL AND deliveries > 0), \
         (SELECT count(*) FROM deliveries d JOIN events e ON e.seq = d.event_seq \
          WHERE d.created_at <> e.received_at), \
         (SELECT count(*) FROM attempt_stats WHERE shard <> 0), \
         (SELECT count(*) FROM hookd_schema)",
    ));
    assert!(seqs[0] > seqs[1] && seqs[2] > seqs[3], "{seqs:?}");
    assert!(
        seqs[4] > 0,
        "events carry where their deliveries are: {seqs:?}"
    );
    assert_eq!(seqs[5..], [0, 0, 1], "{seqs:?}");

    // Counters split in shards, as several nodes leave them: every key gets a second
    // shard holding the same counts, so a copy must merge each key into twice its counts.
    block_on(sql(
        &url,
        "INSERT INTO attempt_stats (webhook_id, minute, shard, record) \
             SELECT webhook_id, minute, 5, record FROM attempt_stats; \
         INSERT INTO attempt_totals (minute, shard, succeeded, failed, errored) \
             SELECT minute, 3, succeeded, failed, errored FROM attempt_totals;",
    ));
    let back = dir.path().join("back");
    assert_eq!(
        block_on(copy(&pg, &config(&back))).unwrap(),
        counts,
        "keys are counted, not shards"
    );
    let (a, b) = (
        redb::Database::open(from.join("hookd.redb")).unwrap(),
        redb::Database::open(back.join("hookd.redb")).unwrap(),
    );
    let (a, b) = (a.begin_read().unwrap(), b.begin_read().unwrap());
    let (sa, sb) = (raw(&a, ATTEMPT_STATS), raw(&b, ATTEMPT_STATS));
    assert_eq!(sa.len(), sb.len());
    for ((ka, va), (kb, vb)) in sa.iter().zip(&sb) {
        assert_eq!(ka, kb);
        let mut twice: crate::store::ops::stats::MinuteStats = decode(va).unwrap();
        let once = twice.clone();
        twice.merge(&once);
        assert_eq!(twice, decode(vb).unwrap());
    }
    let (ta, tb) = (
        a.open_table(ATTEMPT_TOTALS).unwrap(),
        b.open_table(ATTEMPT_TOTALS).unwrap(),
    );
    for (ea, eb) in ta.iter().unwrap().zip(tb.iter().unwrap()) {
        let ((ma, va), (mb, vb)) = (ea.unwrap(), eb.unwrap());
        assert_eq!(ma.value(), mb.value());
        let ((s, f, e), got) = (va.value(), vb.value());
        assert_eq!(got, (2 * s, 2 * f, 2 * e));
    }
}

#[test]
fn a_postgres_schema_newer_than_this_hookd_is_refused_both_ways() {
    let Some((pg, _dropped)) = fresh_database("newer") else {
        return;
    };
    let (empty, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    RedbStore::open(&empty.path().join("hookd.redb"))
        .unwrap()
        .close(std::time::Duration::ZERO);
    // An empty store into an empty database: the backend's migrations make the schema.
    assert_eq!(
        block_on(copy(&config(empty.path()), &pg)).unwrap(),
        Counts::default()
    );
    let url = url_of(&pg);
    let known = crate::store::postgres::known_version();
    assert_eq!(
        block_on(ints(&url, "SELECT max(version)::bigint FROM hookd_schema")),
        [i64::from(known)]
    );
    block_on(sql(
        &url,
        &format!("INSERT INTO hookd_schema (version) VALUES ({})", known + 1),
    ));
    for err in [
        block_on(copy(&config(empty.path()), &pg)).unwrap_err(),
        block_on(copy(&pg, &config(other.path()))).unwrap_err(),
    ] {
        let refused = err.downcast_ref::<Refused>().unwrap();
        assert!(refused.0.contains("newer hookd"), "{refused}");
    }
    assert!(!other.path().join("hookd.redb").exists());
}

#[test]
fn a_store_in_use_and_the_same_store_twice_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(&dir.path().join("hookd.redb")).unwrap();
    let other = tempfile::tempdir().unwrap();
    let err = block_on(copy(&config(dir.path()), &config(other.path()))).unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    assert!(err.downcast_ref::<Refused>().is_some());
    store.close(std::time::Duration::ZERO);
    let err = block_on(copy(&config(dir.path()), &config(dir.path()))).unwrap_err();
    assert!(err.to_string().contains("the same store"), "{err}");
    // An empty store file is a fine target: it is replaced by the copy.
    let counts = block_on(copy(&config(other.path()), &config(dir.path())));
    assert!(counts.is_err(), "no source file");
    let counts = block_on(copy(&config(dir.path()), &config(other.path()))).unwrap();
    assert_eq!(counts, Counts::default());
    let again = block_on(copy(&config(dir.path()), &config(other.path()))).unwrap();
    assert_eq!(
        again,
        Counts::default(),
        "an empty target may be copied into"
    );
}

#[test]
fn a_store_written_by_a_newer_hookd_is_refused_by_hookd_and_by_the_copy() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hookd.redb");
    let format = |file: &Path| {
        let db = redb::Database::open(file).unwrap();
        let r = db.begin_read().unwrap();
        meta_get(&r.open_table(META).unwrap(), FORMAT).unwrap()
    };
    // A file from before the number (as an older hookd left it) gets it at its open.
    let db = redb::Database::create(&file).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META).unwrap().insert(EVENT_SEQ, 3).unwrap();
    txn.commit().unwrap();
    drop(db);
    RedbStore::open(&file)
        .unwrap()
        .close(std::time::Duration::ZERO);
    assert_eq!(format(&file), STORE_FORMAT);

    let db = redb::Database::open(&file).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META)
        .unwrap()
        .insert(FORMAT, STORE_FORMAT + 1)
        .unwrap();
    txn.commit().unwrap();
    drop(db);
    let Err(err) = RedbStore::open(&file) else {
        panic!("a newer store format was opened")
    };
    assert!(
        matches!(err, StoreError::FormatTooNew { found, known } if found == STORE_FORMAT + 1 && known == STORE_FORMAT),
        "{err}"
    );
    let other = tempfile::tempdir().unwrap();
    let err = block_on(copy(&config(dir.path()), &config(other.path()))).unwrap_err();
    assert!(
        format!("{err:#}").contains("written by a newer hookd"),
        "{err:#}"
    );
    assert_eq!(
        format(&file),
        STORE_FORMAT + 1,
        "the refusals wrote nothing"
    );
    assert!(
        !other.path().join("hookd.redb").exists(),
        "no copy was made"
    );
}
