//! `hookd store copy`: a real hookd fills a redb store (a signed webhook, a disabled one,
//! a FIFO one whose line holds a retried delivery behind the pending ones, operator
//! notifications waiting for their receiver), stops, and its store goes redb →
//! PostgreSQL → redb with two copies. The PostgreSQL rows are checked in SQL; hookd on
//! the round-tripped file, and then hookd on the PostgreSQL copy (`backend =
//! "postgres"`), each serve the same webhooks, events, logs and statistics, sign with the
//! same secret, and send the pending deliveries in their line's order. A non-empty
//! target and a store in use (a redb file hookd holds, a database a node runs on) are
//! refused.
//!
//! Needs a PostgreSQL server: `HOOKD_TEST_POSTGRES_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/postgres`), under which each run creates (and
//! drops) a database of its own. Unset, the test is skipped with a note; under
//! `CI=true` it fails.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::common::receiver::{Receiver, Reply};
use crate::common::{Hookd, Settings, USER, config_text, in_ci};

const WAIT: Duration = Duration::from_secs(30);
const SECRET: &str = "copy-test-secret";
/// Notifications' secret, in the Standard Webhooks form.
const NOTIFY_SECRET: &str = "whsec_KioqKioqKioqKioqKioqKioqKioqKioqKioqKio=";

/// A database of its own under the test server, dropped at the end.
struct Database {
    server: String,
    name: String,
    url: String,
}

impl Database {
    fn create(server: &str) -> Database {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!("hookd_copy_{}_{nanos}", std::process::id());
        sql(server, &format!("CREATE DATABASE {name}"));
        Database {
            server: server.to_owned(),
            url: with_db(server, &name),
            name,
        }
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::panic::catch_unwind(|| sql(&self.server, &drop));
    }
}

/// `server` with its database name replaced by `db`.
fn with_db(server: &str, db: &str) -> String {
    let (base, query) = server
        .split_once('?')
        .map_or((server, None), |(b, q)| (b, Some(q)));
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[host_start..]
        .find('/')
        .map_or(base.len(), |i| host_start + i);
    let mut url = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        url.push('?');
        url.push_str(q);
    }
    url
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Runs statements (no results) on `url`.
fn sql(url: &str, statements: &str) {
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client.batch_execute(statements).await.unwrap();
    })
}

/// The one-row, all-bigint answer of `query` on `url`.
fn sql_ints(url: &str, query: &str) -> Vec<i64> {
    runtime().block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        let row = client.query_one(query, &[]).await.unwrap();
        (0..row.len()).map(|i| row.get::<_, i64>(i)).collect()
    })
}

fn store_copy(from: &Path, to: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["store", "copy", "--from"])
        .arg(from)
        .arg("--to")
        .arg(to)
        .output()
        .expect("run hookd store copy")
}

/// Runs a copy that must succeed; answers the counts it printed.
fn copied(from: &Path, to: &Path) -> HashMap<String, i64> {
    let out = store_copy(from, to);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "store copy failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("counts verified"), "{stdout}");
    stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next()?;
            let n = words.next()?.parse().ok()?;
            words.next().is_none().then(|| (name.to_owned(), n))
        })
        .collect()
}

/// A copy that must be refused (exit 2) with `why` in its message.
fn refused(from: &Path, to: &Path, why: &str) {
    let out = store_copy(from, to);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(why), "expected {why:?} in: {stderr}");
}

fn settings(notify: std::net::SocketAddr) -> Settings {
    Settings {
        delivery: r#"retry_schedule = ["0s", "10s", "10s"]"#.into(),
        notifications: format!("url = \"http://{notify}/ops\"\nsecret = \"{NOTIFY_SECRET}\""),
        ..Settings::default()
    }
}

/// A config file for `settings` with the store at `data_dir` (and `[store]` lines).
fn config(dir: &Path, name: &str, settings: &Settings) -> std::path::PathBuf {
    let data = settings
        .data_dir
        .clone()
        .unwrap_or_else(|| dir.join("data"));
    let path = dir.join(name);
    std::fs::write(&path, config_text(&data, settings)).unwrap();
    path
}

fn free_addr() -> std::net::SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

fn get_json(hookd: &Hookd, path: &str) -> Value {
    let r = hookd.get(path, USER);
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.json()
}

fn log(hookd: &Hookd, hook: &str) -> Vec<Value> {
    get_json(
        hookd,
        &format!("/api/hooks/webhooks/{hook}/deliveries?limit=100"),
    )["deliveries"]
        .as_array()
        .unwrap()
        .clone()
}

/// The counters of a webhook's statistics (the series moves with the clock).
fn stats(hookd: &Hookd, hook: &str) -> Value {
    let s = get_json(
        hookd,
        &format!("/api/hooks/webhooks/{hook}/stats?window=1h"),
    );
    json!([
        s["attempts"],
        s["succeeded"],
        s["failed"],
        s["lastAttemptAt"]
    ])
}

/// What the API shows of the store, but for what the FIFO webhook's line changes as it
/// is sent (its status, its log, its statistics).
fn snapshot(hookd: &Hookd, [signed, disabled, fifo]: [&str; 3]) -> Value {
    let mut hooks = get_json(hookd, "/api/hooks/webhooks");
    for hook in hooks.as_array_mut().unwrap() {
        if hook["id"] == fifo {
            let obj = hook.as_object_mut().unwrap();
            obj.remove("status");
            obj.remove("updatedAt");
        }
    }
    json!({
        "webhooks": hooks,
        "events": get_json(hookd, "/api/hooks/events?limit=100"),
        "signed": [log(hookd, signed), stats(hookd, signed)],
        "disabled": [log(hookd, disabled), stats(hookd, disabled)],
    })
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

#[test]
fn a_store_goes_redb_to_postgres_and_back_with_everything_in_it() {
    // It starts from a redb hookd and makes its own PostgreSQL databases; the redb pass
    // of the suite runs it.
    if crate::common::redb_only("the copy starts from a redb store and makes its own databases") {
        return;
    }
    let Ok(server) = std::env::var("HOOKD_TEST_POSTGRES_URL") else {
        assert!(!in_ci(), "CI=true, but HOOKD_TEST_POSTGRES_URL is not set");
        eprintln!("skipping store copy: HOOKD_TEST_POSTGRES_URL is not set");
        return;
    };
    let db = Database::create(&server);
    // Nothing listens at `closed` or `notify` while the first hookd runs.
    let (closed, notify) = (free_addr(), free_addr());

    // 1. A redb store with a bit of everything.
    let mut a = Hookd::start_with(settings(notify));
    let ok = Receiver::ok();
    let gone = Receiver::start(|_, _| Reply::Status(410));
    let signed = a.create_webhook(USER, &ok.url("/signed"), &["app:connected"], Some(SECRET));
    let disabled = a.create_webhook(USER, &ok.url("/disabled"), &["app:connected"], None);
    let body = json!({"name": "line", "url": gone.url("/gone"), "eventTypes": ["message:sent"],
        "ordering": "fifo"});
    let r = a.post("/api/hooks/webhooks", USER, &body.to_string());
    assert_eq!(r.status, 201, "{}", r.body);
    let fifo = r.json()["id"].as_str().unwrap().to_owned();

    a.publish("app:connected", "user-123", r#"{"n":1}"#, Some("c1"));
    a.publish("app:connected", "user-123", r#"{"n":2}"#, Some("c2"));
    for hook in [&signed, &disabled] {
        a.wait_deliveries(USER, hook, WAIT, |d| {
            d.len() == 2 && d.iter().all(|d| d["status"] == "succeeded")
        });
    }
    let r = a.patch(
        &format!("/api/hooks/webhooks/{disabled}"),
        USER,
        r#"{"enabled":false}"#,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // m1 meets a 410: failed, and the webhook disabled (a notification is queued).
    a.publish("message:sent", "user-123", "{}", Some("m1"));
    let m1 = a.wait_deliveries(USER, &fifo, WAIT, |d| {
        d.first().is_some_and(|d| d["status"] == "failed")
    })[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let patch = json!({"enabled": true, "url": format!("http://{closed}/line")});
    let r = a.patch(
        &format!("/api/hooks/webhooks/{fifo}"),
        USER,
        &patch.to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // m2 heads the line (its first attempt meets a closed port), m3 waits behind it, and
    // m1, retried by hand, queues behind both.
    a.publish("message:sent", "user-123", "{}", Some("m2"));
    a.publish("message:sent", "user-123", "{}", Some("m3"));
    a.wait_deliveries(USER, &fifo, WAIT, |d| {
        d.iter()
            .any(|d| d["eventId"] == "m2" && d["attempts"].as_array().unwrap().len() == 1)
    });
    let r = a.post(
        &format!("/api/hooks/webhooks/{fifo}/deliveries/{m1}/retry"),
        USER,
        "{}",
    );
    assert_eq!(r.status, 202, "{}", r.body);
    let before_fifo = a.wait_deliveries(USER, &fifo, WAIT, |d| {
        d.iter().filter(|d| d["status"] == "pending").count() == 3
    });
    let before = snapshot(&a, [&signed, &disabled, &fifo]);
    assert!(a.terminate().success());

    // 2. redb → PostgreSQL.
    let dir = tempfile::tempdir().unwrap();
    let pg_settings = Settings {
        store: format!("backend = \"postgres\"\npostgres_url = \"{}\"", db.url),
        ..settings(notify)
    };
    let pg = config(dir.path(), "pg.toml", &pg_settings);
    let counts = copied(&a.config_path, &pg);
    assert_eq!(counts["webhooks"], 3, "{counts:?}");
    assert_eq!(counts["events"], 5, "{counts:?}");
    assert_eq!(counts["deliveries"], 7, "{counts:?}");
    assert_eq!(counts["pending"], 3, "{counts:?}");
    assert!(counts["attempts"] >= 6, "{counts:?}");
    assert!(counts["notifications"] >= 1, "{counts:?}");
    let rows = sql_ints(
        &db.url,
        "SELECT (SELECT count(*) FROM webhooks), (SELECT count(*) FROM events), \
         (SELECT count(*) FROM deliveries), (SELECT count(*) FROM attempts), \
         (SELECT count(*) FROM deliveries WHERE due IS NOT NULL), \
         (SELECT count(*) FROM attempt_stats), (SELECT count(*) FROM notifications), \
         (SELECT count(*) FROM notifications WHERE due IS NOT NULL), \
         (SELECT count(*) FROM hookd_schema WHERE version = 1)",
    );
    let printed = [
        "webhooks",
        "events",
        "deliveries",
        "attempts",
        "pending",
        "attempt_stats",
        "notifications",
    ]
    .map(|k| counts[k]);
    assert_eq!(rows[..7], printed, "SQL counts are the printed ones");
    assert!(rows[7] >= 1, "the oldest open notification is due");
    assert_eq!(rows[8], 1, "the schema version is recorded");
    // The line: m1's requeued position is behind m3, and the sequences are past every
    // copied number.
    let line = sql_ints(
        &db.url,
        "SELECT count(*) FILTER (WHERE position IS NOT NULL), max(position), max(seq), \
         (SELECT last_value FROM delivery_seq), (SELECT last_value FROM event_seq), \
         (SELECT max(seq) FROM events) FROM deliveries",
    );
    assert_eq!(line[0], 3);
    assert!(
        line[1] > line[2],
        "the retried delivery's position is a fresh seq"
    );
    assert!(line[3] >= line[1] && line[4] >= line[5], "{line:?}");
    // The columns the backend derives from the records: where each event's deliveries
    // are (c1 and c2 went to two webhooks, m1..m3 to one), when each delivery's event
    // came, counters in one shard, notifications unclaimed.
    let derived = sql_ints(
        &db.url,
        "SELECT (SELECT count(*) FROM events WHERE first_delivery IS NOT NULL), \
         (SELECT sum(deliveries)::bigint FROM events), \
         (SELECT count(*) FROM deliveries d JOIN events e ON e.seq = d.event_seq \
          AND d.seq >= e.first_delivery AND d.seq < e.first_delivery + e.deliveries \
          WHERE d.created_at = e.received_at), \
         (SELECT count(*) FROM attempt_stats WHERE shard = 0), \
         (SELECT count(*) FROM notifications WHERE claimed_by IS NULL \
          AND claimed_until IS NULL)",
    );
    assert_eq!(
        derived,
        [5, 7, 7, counts["attempt_stats"], counts["notifications"]],
        "events' first_delivery and deliveries, deliveries' created_at, shard, claims"
    );
    refused(&a.config_path, &pg, "is not empty");

    // 3. PostgreSQL → a fresh redb file.
    let b_settings = Settings {
        data_dir: Some(dir.path().join("b-data")),
        ..settings(notify)
    };
    let b_config = config(dir.path(), "b.toml", &b_settings);
    assert_eq!(copied(&pg, &b_config), counts, "the same counts both ways");
    refused(&pg, &b_config, "is not empty");

    // 4. hookd on the round-tripped file has it all.
    let rx = Receivers {
        line: Receiver::start_on(closed, |_, _| Reply::Status(200)),
        notify: Receiver::start_on(notify, |_, _| Reply::Status(204)),
        ok: &ok,
    };
    let hooks = [signed.as_str(), disabled.as_str(), fifo.as_str()];
    let seen = rx.seen();
    let mut b = Hookd::start_with(b_settings);
    // A store that hookd holds is refused as a source.
    let c = config(
        dir.path(),
        "c.toml",
        &Settings {
            data_dir: Some(dir.path().join("c-data")),
            ..Settings::default()
        },
    );
    refused(&b.config_path, &c, "in use");
    serves_the_copy(&b, hooks, &before, &before_fifo, &rx, seen);
    assert!(b.terminate().success());

    // 5. hookd on the PostgreSQL copy (unchanged since step 2: copying out only reads)
    // has it all too, and a database a node runs on is refused as a source.
    let seen = rx.seen();
    let p = Hookd::start_with(Settings {
        postgres_url: Some(db.url.clone()),
        data_dir: Some(dir.path().join("p-data")),
        ..settings(notify)
    });
    serves_the_copy(&p, hooks, &before, &before_fifo, &rx, seen);
    // Only now: a node joins the cluster (its `nodes` row) just after it listens, and
    // it has joined once it has sent its webhooks' deliveries.
    refused(&p.config_path, &c, "in use");
}

/// The receivers a copy's hookd sends to (they outlive each hookd).
struct Receivers<'a> {
    /// The FIFO webhook's (at the address that was closed).
    line: Receiver,
    notify: Receiver,
    /// The signed and the disabled webhooks'.
    ok: &'a Receiver,
}

impl Receivers<'_> {
    /// How many requests each has had: (line, notify, `/signed`). Taken before a hookd
    /// starts, as it sends at once.
    fn seen(&self) -> (usize, usize, usize) {
        let signed = self.ok.received();
        (
            self.line.received().len(),
            self.notify.received().len(),
            signed.iter().filter(|r| r.path == "/signed").count(),
        )
    }
}

/// What hookd started on a copy of the first one's store must do: show what the first
/// one showed, send the FIFO line's pending deliveries in the line's order keeping their
/// earlier attempts, send the operator notification that was waiting, and take a new
/// event with a new seq, signed with the same secret.
fn serves_the_copy(
    h: &Hookd,
    [signed, disabled, fifo]: [&str; 3],
    before: &Value,
    before_fifo: &[Value],
    rx: &Receivers<'_>,
    (line_seen, notify_seen, signed_seen): (usize, usize, usize),
) {
    let after = snapshot(h, [signed, disabled, fifo]);
    assert_eq!(&after, before);

    // The pending deliveries go, in their line's order, keeping their earlier attempts.
    let sent = rx.line.wait_for(line_seen + 3, WAIT);
    let order: Vec<String> = sent[line_seen..].iter().map(|r| r.event_id()).collect();
    assert_eq!(order, ["m2", "m3", "m1"]);
    let done = h.wait_deliveries(USER, fifo, WAIT, |d| {
        d.iter().all(|d| d["status"] == "succeeded")
    });
    for was in before_fifo {
        let now = done.iter().find(|d| d["id"] == was["id"]).unwrap();
        let (was_a, now_a) = (
            was["attempts"].as_array().unwrap(),
            now["attempts"].as_array().unwrap(),
        );
        assert_eq!(now_a[..was_a.len()], was_a[..], "earlier attempts are kept");
        assert_eq!(now_a.len(), was_a.len() + 1);
    }
    // The operator notifications waiting in the first hookd are sent by this one.
    let told = |r: &[crate::common::receiver::Received]| {
        r[notify_seen..]
            .iter()
            .any(|n| n.json()["webhook"]["id"] == fifo)
    };
    let deadline = std::time::Instant::now() + WAIT;
    while !told(&rx.notify.received()) {
        assert!(
            std::time::Instant::now() < deadline,
            "no notification about {fifo} after the {notify_seen} seen before: {:?}\nlog:\n{}",
            rx.notify
                .received()
                .iter()
                .map(|n| n.json())
                .collect::<Vec<_>>(),
            h.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // New events take new seqs, and the secret still signs.
    h.publish("app:connected", "user-123", r#"{"n":3}"#, Some("c3"));
    let got = rx.ok.wait_until(WAIT, |r| {
        r.iter().filter(|r| r.path == "/signed").count() == signed_seen + 1
    });
    let req = got.iter().rfind(|r| r.path == "/signed").unwrap();
    assert_eq!(req.event_id(), "c3");
    assert_eq!(
        req.header("x-hook-signature").unwrap(),
        format!("sha256={}", hmac_hex(SECRET, &req.body))
    );
    let events = get_json(h, "/api/hooks/events?limit=100")["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect::<Vec<_>>();
    assert_eq!(events, ["c3", "m3", "m2", "m1", "c2", "c1"]);
    assert_eq!(h.webhook(USER, disabled)["status"], "disabled");
    assert_eq!(log(h, signed).len(), 3);
}
