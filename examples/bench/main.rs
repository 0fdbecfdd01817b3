//! Benchmark of hookd end to end, on loopback, against the real `hookd` binary.
//!
//! ```text
//! cargo build --release --bin hookd --example bench
//! cargo run --release --example bench -- [a b c d e] [--events N] [--concurrency C] …
//! ./target/release/examples/bench a b --postgres URL [--nodes N]
//! ```
//!
//! Each scenario starts a fresh `hookd serve` (found next to this example, i.e.
//! `target/release/hookd`, or `--hookd PATH`) on a temporary data dir with a generated
//! config, and runs three actors in this process:
//!
//! * a **load driver**: C threads, each with its own keep-alive ureq agent, POSTing events
//!   to `/api/hooks/events` with the publisher token, either as fast as the answers come
//!   back (closed loop) or at fixed send times (open loop, `--rate`). Every payload
//!   carries `"seq"` (the event's number in the run) and `"sentNs"` (nanoseconds since
//!   this process's shared clock origin, taken just before the request is written; in
//!   open-loop mode the *scheduled* send time, so a lagging driver shows up as latency);
//! * a **receiver**: a hyper 1 HTTP/1.1 keep-alive server on 127.0.0.1 (tokio, 2 worker
//!   threads) that answers 200 with an empty body, and records for each request its
//!   arrival time, the webhook (from the URL path `/h/<k>`), the attempt
//!   (`X-Hook-Attempt`) and `seq`/`sentNs` (found by a byte search in the body: no JSON
//!   parse);
//! * a **sampler**: hookd's `VmRSS` every 100 ms and `VmHWM` at the end (from
//!   `/proc/<pid>/status`), and the CPU time of every hookd and bench thread
//!   (`/proc/<pid>/task/*/stat`) over the measured phase, so each figure comes with who
//!   was busy. Threads are summed by name (`hookd-worker-*`); `(exited threads)` is CPU
//!   of threads that ended inside the window (the bench's driver threads; in hookd, the
//!   short-lived threads ureq spawns to resolve the destination of an attempt).
//!   `CPU others` is the rest of the machine (`/proc/stat`): on a shared box, read every
//!   figure next to it.
//!
//! Per scenario it prints: ingest events/s and latency (request written → 202 read),
//! deliveries/s at the receiver (first arrival → last arrival), end-to-end latency
//! (`sentNs` → first successful arrival), lost deliveries (expected, never answered 200
//! within the drain timeout) and duplicates (more than one 200 for the same event and
//! webhook), hookd's peak RSS, and the size of `hookd.redb` per event.
//!
//! Scenarios (default `a b c e`; `d` is long and opt-in):
//!
//! * `a` — 20,000 events, closed loop at concurrency 32, one webhook.
//! * `b` — 5,000 events × 10 webhooks of one user (all `"*"`): 50,000 deliveries.
//! * `c` — open loop, 400 events/s for 30 s, one webhook: latency at a steady rate.
//! * `d` — 100,000 deliveries (`--pending N`, 10 webhooks) queued while the receiver port
//!   refuses connections and the first attempt is `--first-delay` away, so nothing is
//!   attempted: RSS with the queue full; then SIGTERM, wait until the whole queue is due,
//!   start the receiver, restart hookd on the same data dir (spawn → `/healthz` 200 is
//!   "ready"), and measure the drain rate of the backlog.
//! * `e` — every first attempt is answered 500, the second 200, with
//!   `retry_schedule = ["0s", "1s"]`, at 400 events/s for 10 s: retry lateness =
//!   (attempt 2 arrival − attempt 1 arrival) − 1 s. Note that hookd starts the delay at
//!   the *end* of attempt 1 (when its outcome is recorded), so lateness includes the
//!   500's round trip and the wait for the writer.
//!
//! The parts, one concept per module: [`scenarios`] (what a, b, c and e send and
//! print) and [`restart`] (d), [`stage`] (a scenario's dir and store), [`config`]
//! (hookd's config file), [`node`] (hookd processes), [`api`] (setup calls and the stats
//! query), [`driver`] (the load), [`receiver`] (the webhooks' destination), [`stats`]
//! (what arrived against what was sent), [`report`] (the shared printed lines), [`rss`]
//! and [`cpu`] (memory and CPU from `/proc`), [`postgres`] (the server: databases, size,
//! its processes' CPU).
//!
//! **On PostgreSQL** (`--postgres URL`, a server URL such as
//! `postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable`; the bench connects
//! without TLS): each scenario gets a fresh database `bench_<pid>_<n>` (dropped at the
//! end unless `--keep`), and hookd's config says `[store] backend = "postgres"` with that
//! database's URL. `--nodes N` starts N hookd processes on it, each with its own port
//! and `[cluster] node_id = "bench-<i>"`; webhooks are created on node 0 and the driver
//! sends event `seq` to node `seq % N` (every driver thread keeps one keep-alive agent
//! per node). The CPU lines add `CPU postgres` (the postmaster and its children, found
//! through `SHOW data_directory` and `postmaster.pid`) and PostgreSQL's CPU per event
//! beside hookd's (summed over the nodes); the store line shows `pg_database_size` per
//! event. Scenario d stops and restarts every node on the same database.
//!
//! Everything stays on 127.0.0.1. hookd's log goes to a file in the temp dir (it logs one
//! line per attempt at the default `info` level; `--log` changes `RUST_LOG`).

mod api;
mod config;
mod cpu;
mod driver;
mod node;
mod postgres;
mod receiver;
mod report;
mod restart;
mod rss;
mod scenarios;
mod stage;
mod stats;

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

use clap::Parser;

const USER: &str = "bench-user";
const USER_TOKEN: &str = "bench-user-token-for-loopback-benchmarks-only";
const PUBLISHER: &str = "bench-publisher";
const PUBLISHER_TOKEN: &str = "bench-publisher-token-for-loopback-benchmarks-only";
/// Effectively no rate limit: the benchmark measures the engine, not the limiter.
const NO_RATE_LIMIT: u32 = 100_000_000;
/// Linux reports thread CPU times in clock ticks of 1/100 s (USER_HZ).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;
const MIB: f64 = 1024.0 * 1024.0;

#[derive(Parser, Debug)]
#[command(
    about = "Benchmarks hookd on loopback: ingest, delivery throughput, latency, RSS, restart.",
    after_help = "Scenarios: a (20k events, 1 webhook), b (5k events x 10 webhooks), \
                  c (400 events/s for 30 s), d (1M-style pending queue + restart; opt-in), \
                  e (retry lateness). Default: a b c e."
)]
struct Args {
    /// Scenarios to run, by name (a b c d e). Default: a b c e.
    scenarios: Vec<String>,
    /// Events per scenario (a: 20000, b: 5000; c and e derive it from --rate × --duration).
    #[arg(long)]
    events: Option<usize>,
    /// Driver threads (closed loop: requests in flight; default 32, open loop 16).
    #[arg(long)]
    concurrency: Option<usize>,
    /// Webhooks subscribed to every event (a, c, e: 1; b, d: 10).
    #[arg(long)]
    webhooks: Option<usize>,
    /// Open-loop send rate in events/s (c and e: 400).
    #[arg(long)]
    rate: Option<u32>,
    /// Open-loop duration in seconds (c: 30, e: 10).
    #[arg(long)]
    duration: Option<u64>,
    /// Scenario d: deliveries to queue (events = pending / webhooks).
    #[arg(long, default_value_t = 100_000)]
    pending: usize,
    /// Scenario d: delay before the first attempt, in seconds (must exceed the time it
    /// takes to queue everything; default 30 + pending / 5000).
    #[arg(long)]
    first_delay: Option<u64>,
    /// Seconds without a new delivery after which the missing ones count as lost.
    #[arg(long, default_value_t = 30)]
    drain_timeout: u64,
    /// hookd `delivery.workers` (default: hookd's default, 64).
    #[arg(long)]
    workers: Option<usize>,
    /// hookd `delivery.max_in_flight_per_webhook` (default: hookd's default, 8).
    #[arg(long)]
    max_in_flight: Option<usize>,
    /// Bytes of filler text in each event payload.
    #[arg(long, default_value_t = 128)]
    payload_bytes: usize,
    /// Give each webhook a secret, so deliveries are signed (as in production).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    secret: bool,
    /// Path of the hookd binary (default: next to this example, target/<profile>/hookd).
    #[arg(long)]
    hookd: Option<PathBuf>,
    /// RUST_LOG for hookd (its log goes to a file in the temp dir).
    #[arg(long, default_value = "info")]
    log: String,
    /// Parent directory of the temp dirs (data, config, logs); default: the system temp
    /// dir. E.g. /dev/shm to take the disk's fsync out of the picture.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the temp dirs (data, config, hookd logs), and the databases with --postgres,
    /// and print where they are.
    #[arg(long)]
    keep: bool,
    /// Store in PostgreSQL: a server URL (e.g.
    /// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable; no TLS). Each
    /// scenario creates a database bench_<pid>_<n> on it and drops it at the end.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// hookd nodes sharing the database (only with --postgres); events are spread
    /// round-robin over them, webhooks are created on node 0.
    #[arg(long, default_value_t = 1, value_name = "N")]
    nodes: usize,
}

fn main() {
    let args = Args::parse();
    let _ = clock_ns();
    let bin = node::locate_hookd(args.hookd.as_deref());
    let mut scenarios: Vec<String> = args.scenarios.iter().map(|s| s.to_lowercase()).collect();
    if scenarios.is_empty() {
        scenarios = ["a", "b", "c", "e"].map(String::from).to_vec();
    }
    if let Some(bad) = scenarios
        .iter()
        .find(|s| !["a", "b", "c", "d", "e"].contains(&s.as_str()))
    {
        eprintln!("bench: unknown scenario {bad:?}; choose from a b c d e");
        std::process::exit(2);
    }
    if args.nodes != 1 && args.postgres.is_none() {
        eprintln!("bench: --nodes needs --postgres (several nodes share one database)");
        std::process::exit(2);
    }
    if args.nodes == 0 {
        eprintln!("bench: --nodes must be at least 1");
        std::process::exit(2);
    }
    println!("hookd benchmark — binary {}", bin.display());
    println!(
        "{} CPUs; all traffic on 127.0.0.1; hookd log level {:?}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        args.log
    );
    let postgres = args.postgres.as_deref().map(postgres::PgServer::connect);
    if postgres.is_some() {
        println!(
            "store             PostgreSQL, a fresh database per scenario; {} hookd node(s)",
            args.nodes
        );
    }
    let bench = Bench {
        args,
        bin,
        postgres,
    };
    let mut rates = Rates::default();
    for scenario in &scenarios {
        match scenario.as_str() {
            "a" => rates.a = Some(bench.scenario_a()),
            "b" => rates.b = Some(bench.scenario_b()),
            "c" => bench.scenario_c(),
            "d" => bench.scenario_d(&rates),
            "e" => bench.scenario_e(),
            _ => unreachable!("checked above"),
        }
    }
    if LOSSES.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("bench: deliveries were lost or duplicated (see above): failing");
        std::process::exit(1);
    }
}

/// Set when any scenario lost or duplicated a delivery: the run then exits 1, so a
/// script (or CI) running the benchmark cannot miss it. Scenarios kill nothing, so the
/// bound for both is zero.
static LOSSES: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Prints a scenario's lost and duplicated deliveries and remembers any.
fn report_losses(lost: usize, duplicates: usize) {
    println!("lost / duplicates {lost} / {duplicates}");
    if lost > 0 || duplicates > 0 {
        LOSSES.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Delivery rates of the empty-queue scenarios, to compare the backlog drain with.
#[derive(Default)]
struct Rates {
    a: Option<f64>,
    b: Option<f64>,
}

struct Bench {
    args: Args,
    bin: PathBuf,
    /// `Some` with `--postgres`: the server the scenarios' databases are created on.
    postgres: Option<postgres::PgServer>,
}

/// Nanoseconds since this process's clock origin (shared by driver and receiver).
fn clock_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    ORIGIN.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

fn bind_loopback(port: u16) -> TcpListener {
    TcpListener::bind(("127.0.0.1", port))
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:{port}: {e}"))
}
