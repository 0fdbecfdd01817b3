//! Several hookd nodes on one PostgreSQL database (CONTRACT §6.10): three real processes,
//! each with its own port and `[cluster] node_id`, a 2 s lease, the same tokens. Under a
//! kill -9 of a node, a rolling restart, one event id sent to two nodes at once and slow
//! receivers, the cluster keeps a single hookd's promises: every acknowledged event is
//! delivered at least once, a dead node's webhooks are driven again within the lease
//! plus 5 s, the per-webhook in-flight cap and rate limit hold across the nodes, and an
//! event id is stored once.
//!
//! Only under `HOOKD_TEST_STORE=postgres` (elsewhere each test skips with a note), like
//! the checks of the PostgreSQL harness itself (`common::postgres`) at the top.

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::common::postgres::{self, Database};
use crate::common::receiver::{InFlight, Receiver};
use crate::common::{self, Hookd, PUBLISHER, Settings, USER, eventually};

const LEASE: &str = "2s";
const LEASE_TIME: Duration = Duration::from_secs(2);
/// A dead node's webhooks are driven again within the lease plus this.
const TAKEOVER: Duration = Duration::from_secs(5);
const WAIT: Duration = Duration::from_secs(120);

// ---- the harness ----

/// Load tests send hundreds of events per webhook in a minute: the default rate limit
/// (100 a minute) would hold most of them back for minutes, which is not what they test.
fn unlimited() -> Settings {
    Settings {
        limits: "events_per_minute_per_webhook = 100000".into(),
        ..Settings::default()
    }
}

#[test]
fn postgres_harness_starts_and_creates_databases() {
    if common::postgres_only() {
        return;
    }
    let a = postgres::database();
    let b = postgres::database();
    assert_ne!(a.name(), b.name());
    let server = postgres::server();
    let prefix = format!("postgres://postgres@127.0.0.1:{}/", server.port);
    assert_eq!(a.url(), format!("{prefix}{}?sslmode=disable", a.name()));

    // What the suite relies on: many connections, durable commits, loopback only.
    let connections: u32 = a.query("SHOW max_connections").parse().unwrap();
    assert!(connections >= 300, "max_connections = {connections}");
    assert_eq!(a.query("SHOW fsync"), "on");
    assert_eq!(a.query("SHOW synchronous_commit"), "on");
    assert_eq!(a.query("SHOW listen_addresses"), "127.0.0.1");

    // The databases are separate.
    a.query("CREATE TABLE probe (x int); INSERT INTO probe VALUES (7)");
    assert_eq!(a.query("SELECT x FROM probe"), "7");
    assert_eq!(
        b.query("SELECT count(*) FROM pg_tables WHERE tablename = 'probe'"),
        "0"
    );

    // The cluster lives in the server's temp dir and is not root's (initdb refuses root).
    let data = PathBuf::from(a.query("SHOW data_directory"));
    assert!(data.starts_with(&server.dir), "{}", data.display());
    assert_ne!(std::fs::metadata(&data).unwrap().uid(), 0);

    // A dropped handle drops its database.
    let gone = b.name().to_string();
    drop(b);
    assert_eq!(
        a.query(&format!(
            "SELECT count(*) FROM pg_database WHERE datname = '{gone}'"
        )),
        "0"
    );
}

/// The config the harness writes: the redb one as it always was, the PostgreSQL one with
/// the backend, the URL and the `[cluster]` lines.
#[test]
fn config_text_names_the_store_and_the_cluster_on_postgres_only() {
    let data = Path::new("/var/lib/hookd-test");
    let parse = |s: &Settings| -> toml::Table {
        toml::from_str(&common::config_text(data, s)).expect("the harness writes TOML")
    };
    let redb = parse(&Settings {
        store: "min_free_space = 0".into(),
        ..Settings::default()
    });
    assert!(redb.get("cluster").is_none());
    assert!(redb["store"].get("backend").is_none());
    assert_eq!(redb["store"]["min_free_space"].as_integer(), Some(0));

    let url = "postgres://postgres@127.0.0.1:5/hookd_9?sslmode=disable";
    let pg = parse(&Settings {
        store: "pool_size = 4".into(),
        postgres_url: Some(url.into()),
        cluster: "node_id = \"node-1\"\nlease = \"2s\"".into(),
        ..Settings::default()
    });
    assert_eq!(pg["store"]["backend"].as_str(), Some("postgres"));
    assert_eq!(pg["store"]["postgres_url"].as_str(), Some(url));
    assert_eq!(pg["store"]["pool_size"].as_integer(), Some(4));
    assert_eq!(pg["cluster"]["node_id"].as_str(), Some("node-1"));
    assert_eq!(pg["cluster"]["lease"].as_str(), Some("2s"));
    assert_eq!(pg["data_dir"].as_str(), Some("/var/lib/hookd-test"));
    assert_eq!(pg["tokens"].as_array().map(Vec::len), Some(4));
}

// ---- the cluster ----

/// Three nodes on one fresh database.
struct Cluster {
    nodes: Vec<Hookd>,
    /// Dropped after the nodes (fields drop in order).
    _db: Database,
}

impl Cluster {
    fn start(settings: Settings) -> Cluster {
        let db = postgres::database();
        // One after the other: the first one applies the schema.
        let nodes = (0..3)
            .map(|i| postgres::node(&db, &format!("node-{i}"), LEASE, settings.clone()))
            .collect();
        Cluster { nodes, _db: db }
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.addr).collect()
    }

    /// Each node's last log lines, for a failure message.
    fn logs(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let log = node.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            out.push_str(&format!("\n--- node-{i} (last 40 lines) ---\n{tail}"));
        }
        out
    }

    /// The node whose attempts succeeded most often, once `at_least` attempts succeeded in
    /// all (a receiver sees a request before its sender counts it): one that holds
    /// webhook leases. Every node must be running.
    fn busiest(&self, at_least: f64) -> usize {
        let counts = eventually(WAIT, "too few successful attempts", || {
            let counts: Vec<f64> = self.nodes.iter().map(successes).collect();
            (counts.iter().sum::<f64>() >= at_least).then_some(counts)
        });
        (0..counts.len())
            .max_by(|&a, &b| counts[a].total_cmp(&counts[b]))
            .expect("a node")
    }
}

/// `hookd_attempts_total{result="success"}` of a running node.
fn successes(node: &Hookd) -> f64 {
    let metrics = node.request("GET", "/metrics", None, None);
    assert_eq!(metrics.status, 200, "{}", metrics.body);
    metrics
        .body
        .lines()
        .find_map(|l| l.strip_prefix("hookd_attempts_total{result=\"success\"} "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no successful-attempts counter in\n{}", metrics.body))
}

fn event_body(id: &str) -> String {
    format!(
        r#"{{"type":"message:received","userId":"user-123","source":"cluster","payload":{{"id":"{id}"}},"id":"{id}"}}"#
    )
}

/// What the publishers sent, and what a node acknowledged (202, or 200 for a repeat).
#[derive(Default)]
struct Published {
    sent: HashSet<String>,
    acked: HashSet<String>,
}

/// Publishers spreading events over the nodes until stopped. A request that gets no
/// answer (its node is down or going down) or a 503 is sent again, same id, to the next
/// node: the answer there is 202, or 200 when the first node had stored it after all.
struct Load {
    addrs: Arc<RwLock<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    threads: Vec<JoinHandle<Published>>,
}

impl Load {
    fn start(addrs: Vec<SocketAddr>, publishers: usize, pace: Duration) -> Load {
        let addrs = Arc::new(RwLock::new(addrs));
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let threads = (0..publishers)
            .map(|t| {
                let (addrs, stop, count) =
                    (Arc::clone(&addrs), Arc::clone(&stop), Arc::clone(&acked));
                std::thread::spawn(move || publish(t, &addrs, &stop, &count, pace))
            })
            .collect();
        Load {
            addrs,
            stop,
            acked,
            threads,
        }
    }

    /// Waits until `more` events beyond those acknowledged so far are acknowledged.
    fn wait_acked(&self, more: usize) {
        let target = self.acked.load(Ordering::Relaxed) + more;
        eventually(Duration::from_secs(60), "the publishers stalled", || {
            (self.acked.load(Ordering::Relaxed) >= target).then_some(())
        });
    }

    /// A restarted node listens on a new port.
    fn set_addr(&self, node: usize, addr: SocketAddr) {
        self.addrs.write().unwrap()[node] = addr;
    }

    fn finish(self) -> Published {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Published::default();
        for thread in self.threads {
            let p = thread.join().expect("a publisher failed");
            all.sent.extend(p.sent);
            all.acked.extend(p.acked);
        }
        all
    }
}

fn publish(
    t: usize,
    addrs: &RwLock<Vec<SocketAddr>>,
    stop: &AtomicBool,
    count: &AtomicUsize,
    pace: Duration,
) -> Published {
    let auth = format!("Bearer {PUBLISHER}");
    let headers = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let mut published = Published::default();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) {
        let id = format!("load-{t}-{i}");
        let body = event_body(&id);
        published.sent.insert(id.clone());
        let nodes = addrs.read().unwrap().len();
        let mut problems = Vec::new();
        for attempt in 0.. {
            let addr = addrs.read().unwrap()[(t + i + attempt) % nodes];
            match common::try_http(
                addr,
                "POST",
                "/api/hooks/events",
                &headers,
                Some(body.as_bytes()),
            ) {
                // A first try cannot meet a stored id: the ids are fresh.
                Ok(r) if r.status == 202 || (r.status == 200 && attempt > 0) => {
                    published.acked.insert(id.clone());
                    count.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Ok(r) if r.status == 503 => problems.push(format!("{addr}: 503 {}", r.body)),
                Ok(r) => panic!("{id} to {addr} (try {attempt}): {} {}", r.status, r.body),
                Err(e) => problems.push(e),
            }
            assert!(
                attempt < 250,
                "{id}: no node took it in 250 tries: {problems:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        i += 1;
        std::thread::sleep(pace);
    }
    published
}

/// Waits until every acknowledged event reached every one of `paths` on `rx`, at least
/// once, and checks that nothing else came (no event nobody sent, no other path).
/// Answers each path's arrival times.
fn wait_delivered(
    cluster: &Cluster,
    rx: &Receiver,
    paths: &[String],
    published: &Published,
) -> HashMap<String, Vec<Instant>> {
    let mut ids: HashMap<String, HashSet<String>> = HashMap::new();
    let mut arrivals: HashMap<String, Vec<Instant>> = HashMap::new();
    let mut looked_at = 0;
    let deadline = Instant::now() + WAIT;
    loop {
        let got = rx.received();
        for r in &got[looked_at..] {
            assert!(paths.contains(&r.path), "a request to {}", r.path);
            let id = r.event_id();
            assert!(published.sent.contains(&id), "{id} was never sent");
            ids.entry(r.path.clone()).or_default().insert(id);
            arrivals.entry(r.path.clone()).or_default().push(r.at);
        }
        looked_at = got.len();
        let missing: Vec<(&String, usize, Vec<&String>)> = paths
            .iter()
            .map(|p| {
                let seen = ids.get(p);
                let gaps: Vec<&String> = published
                    .acked
                    .iter()
                    .filter(|id| !seen.is_some_and(|s| s.contains(*id)))
                    .collect();
                (p, gaps.len(), gaps.into_iter().take(5).collect())
            })
            .filter(|(_, n, _)| *n > 0)
            .collect();
        if missing.is_empty() {
            return arrivals;
        }
        assert!(
            Instant::now() < deadline,
            "acknowledged events not delivered within {WAIT:?} ({} acknowledged; per path: \
             missing count and a few ids): {missing:?}{}",
            published.acked.len(),
            cluster.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn webhooks(cluster: &Cluster, rx: &Receiver, n: usize) -> Vec<String> {
    let paths: Vec<String> = (0..n).map(|i| format!("/h{i}")).collect();
    for path in &paths {
        cluster.nodes[0].create_webhook(USER, &rx.url(path), &["*"], None);
    }
    paths
}

#[test]
fn a_kill_9_under_load_loses_no_acknowledged_event_and_its_webhooks_move_on() {
    if common::postgres_only() {
        return;
    }
    let mut cluster = Cluster::start(unlimited());
    let rx = Receiver::ok();
    let paths = webhooks(&cluster, &rx, 4);
    let load = Load::start(cluster.addrs(), 6, Duration::from_millis(20));
    load.wait_acked(300);
    // The node that delivered most holds leases: killing it moves webhooks.
    let victim = cluster.busiest(100.0);
    cluster.nodes[victim].kill9();
    let killed = Instant::now();
    // The load goes on past the lease, so every webhook has new work after the kill.
    load.wait_acked(200);
    eventually(WAIT, "clock", || {
        (killed.elapsed() >= LEASE_TIME + Duration::from_secs(1)).then_some(())
    });
    let published = load.finish();
    let arrivals = wait_delivered(&cluster, &rx, &paths, &published);

    // The first request of each webhook after the kill (past what the dead node had
    // already put on the wire) came within the lease plus TAKEOVER.
    let mut resumed = Vec::new();
    for path in &paths {
        let first = arrivals[path]
            .iter()
            .filter(|at| **at > killed + Duration::from_millis(200))
            .min()
            .unwrap_or_else(|| panic!("{path}: nothing after the kill"));
        resumed.push((path, *first - killed));
    }
    eprintln!(
        "killed node-{victim}; {} events acknowledged; first request after the kill: {resumed:?}",
        published.acked.len()
    );
    for (path, after) in resumed {
        assert!(
            after <= LEASE_TIME + TAKEOVER,
            "{path} resumed {after:?} after the kill (lease {LEASE}){}",
            cluster.logs()
        );
    }
}

#[test]
fn the_in_flight_cap_holds_across_the_nodes_and_a_handover() {
    if common::postgres_only() {
        return;
    }
    let mut cluster = Cluster::start(Settings {
        delivery: "max_in_flight_per_webhook = 2".into(),
        limits: "events_per_minute_per_webhook = 1000".into(),
        ..Settings::default()
    });
    let in_flight = InFlight::default();
    let counter = in_flight.clone();
    let rx = Receiver::start(move |r, _| counter.hold(r, Duration::from_millis(250)));
    let paths = webhooks(&cluster, &rx, 2);
    let mut published = Published::default();
    for i in 0..30 {
        let id = format!("cap-{i}");
        cluster.nodes[i % 3].publish("message:received", "user-123", "{}", Some(&id));
        published.sent.insert(id.clone());
        published.acked.insert(id);
    }
    rx.wait_for(16, WAIT);
    // The busiest node stops gracefully (its attempts under way finish), another takes its
    // webhooks over: the cap holds through the handover too.
    let holder = cluster.busiest(10.0);
    let status = cluster.nodes[holder].terminate();
    assert!(
        status.success(),
        "node-{holder}: {status}{}",
        cluster.logs()
    );
    wait_delivered(&cluster, &rx, &paths, &published);
    let most: Vec<usize> = paths.iter().map(|p| in_flight.most(p)).collect();
    assert!(most.iter().all(|m| *m <= 2), "in flight at once: {most:?}");
    assert!(
        most.contains(&2),
        "the cap was never reached, so this proves nothing: {most:?}"
    );
}

#[test]
fn the_rate_limit_holds_across_the_nodes_and_a_handover() {
    if common::postgres_only() {
        return;
    }
    let mut cluster = Cluster::start(Settings {
        limits: "events_per_minute_per_webhook = 5".into(),
        ..Settings::default()
    });
    let rx = Receiver::ok();
    let hook = cluster.nodes[0].create_webhook(USER, &rx.url("/r"), &["*"], None);
    for i in 0..5 {
        cluster.nodes[i % 3].publish(
            "message:received",
            "user-123",
            "{}",
            Some(&format!("rate-{i}")),
        );
    }
    rx.wait_for(5, WAIT);
    // The node that sent them stops; whoever takes the webhook over must count those five
    // (from the database), not start again from nothing.
    let holder = cluster.busiest(5.0);
    let status = cluster.nodes[holder].terminate();
    assert!(
        status.success(),
        "node-{holder}: {status}{}",
        cluster.logs()
    );
    let other = &cluster.nodes[(holder + 1) % 3];
    for i in 5..8 {
        other.publish(
            "message:received",
            "user-123",
            "{}",
            Some(&format!("rate-{i}")),
        );
    }
    // Held back: pending, no attempt, due at least half a minute after it was created.
    let ms = |v: &Value| {
        hookd::model::parse_rfc3339_millis(v.as_str().unwrap())
            .unwrap()
            .0
    };
    let held_back = |d: &Value| {
        d["status"] == "pending"
            && d["attempts"] == json!([])
            && ms(&d["nextAttemptAt"]) - ms(&d["createdAt"]) > 30_000
    };
    other.wait_deliveries(USER, &hook, WAIT, |d| {
        d.len() == 8 && d.iter().filter(|d| held_back(d)).count() == 3
    });
    assert_eq!(rx.received().len(), 5, "five per minute");

    // They go when the minute allows: no 60 s window holds more than five starts (a second
    // of slack for the way from the attempt's start to the receiver).
    let mut got: Vec<Instant> = rx
        .wait_for(8, Duration::from_secs(150))
        .iter()
        .map(|r| r.at)
        .collect();
    got.sort();
    for (i, later) in got.iter().enumerate().skip(5) {
        let window = *later - got[i - 5];
        assert!(
            window >= Duration::from_secs(59),
            "six requests within {window:?}: {got:?}{}",
            cluster.logs()
        );
    }
}

#[test]
fn a_rolling_restart_under_load_loses_nothing() {
    if common::postgres_only() {
        return;
    }
    let mut cluster = Cluster::start(unlimited());
    let rx = Receiver::ok();
    let paths = webhooks(&cluster, &rx, 3);
    let load = Load::start(cluster.addrs(), 6, Duration::from_millis(10));
    load.wait_acked(200);
    for i in 0..cluster.nodes.len() {
        let status = cluster.nodes[i].terminate();
        assert!(status.success(), "node-{i}: {status}{}", cluster.logs());
        cluster.nodes[i].restart();
        load.set_addr(i, cluster.nodes[i].addr);
        load.wait_acked(200);
    }
    let published = load.finish();
    wait_delivered(&cluster, &rx, &paths, &published);
    eprintln!(
        "{} events acknowledged through the rolling restart",
        published.acked.len()
    );
}

/// Sends `body` as a new event to `addr` once the other sender is ready too: both
/// connections are open before either request goes.
fn ingest_together(addr: SocketAddr, body: String, together: Arc<Barrier>) -> common::Resp {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "POST /api/hooks/events HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Authorization: Bearer {PUBLISHER}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    together.wait();
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    common::parse_response(&answer)
}

#[test]
fn one_event_id_sent_to_two_nodes_at_once_is_stored_once() {
    if common::postgres_only() {
        return;
    }
    let cluster = Cluster::start(Settings::default());
    let rx = Receiver::ok();
    let paths = webhooks(&cluster, &rx, 2);
    let hooks: Vec<String> = {
        let r = cluster.nodes[0].get("/api/hooks/webhooks", USER);
        assert_eq!(r.status, 200, "{}", r.body);
        r.json()
            .as_array()
            .expect("the webhook list is an array")
            .iter()
            .map(|w| w["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(hooks.len(), 2);
    let mut published = Published::default();
    for k in 0..30 {
        let id = format!("twice-{k}");
        let pair = [cluster.nodes[k % 3].addr, cluster.nodes[(k + 1) % 3].addr];
        let together = Arc::new(Barrier::new(2));
        let senders: Vec<_> = pair
            .into_iter()
            .map(|addr| {
                let (body, together) = (event_body(&id), Arc::clone(&together));
                std::thread::spawn(move || ingest_together(addr, body, together))
            })
            .collect();
        let answers: Vec<common::Resp> = senders.into_iter().map(|s| s.join().unwrap()).collect();
        // The contract: the first answer is 202, a repeat answers 200 with the original.
        let mut statuses: Vec<u16> = answers.iter().map(|a| a.status).collect();
        statuses.sort();
        assert_eq!(statuses, [200, 202], "{id}: {answers:#?}");
        assert_eq!(answers[0].json(), answers[1].json(), "{id}: {answers:#?}");
        assert_eq!(answers[0].json(), json!({"id": id, "deliveries": 2}));
        published.sent.insert(id.clone());
        published.acked.insert(id);
    }

    // Stored once: one event per id, one delivery per id and webhook (asked of a node
    // that did not take part in the first pair).
    let reader = &cluster.nodes[2];
    let events = reader.get("/api/hooks/events?limit=100", USER);
    assert_eq!(events.status, 200, "{}", events.body);
    let listed: Vec<String> = events.json()["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed.len(), 30, "{listed:?}");
    assert_eq!(
        listed.iter().collect::<HashSet<_>>().len(),
        30,
        "{listed:?}"
    );
    for hook in &hooks {
        let log = reader.wait_deliveries(USER, hook, WAIT, |d| {
            d.len() >= 30 && d.iter().all(|d| d["status"] == "succeeded")
        });
        let mut per_event: HashMap<&str, usize> = HashMap::new();
        for d in &log {
            *per_event.entry(d["eventId"].as_str().unwrap()).or_default() += 1;
        }
        assert!(
            log.len() == 30 && per_event.values().all(|n| *n == 1),
            "{hook}: {per_event:?}"
        );
    }
    wait_delivered(&cluster, &rx, &paths, &published);
}
