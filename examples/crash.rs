//! Crash campaign: mixed load against the real `hookd` binary while it is `kill -9`ed at
//! random moments and restarted on the same data dir; at the end, checks that nothing
//! acknowledged was lost and that every delivery ended in a legal state.
//!
//! ```text
//! cargo build --release --example crash --bin hookd
//! cargo run --release --example crash -- --kills 20 [--seed N] [--hookd target/release/hookd]
//! ```
//!
//! Everything runs on 127.0.0.1, in bounded loops, and stops by itself. The exit status is
//! 0 when every check passed, 1 otherwise (2 for a usage or setup error).
//!
//! # What runs
//!
//! * **hookd** with a generated config: a fixed loopback port (chosen free once, so it is
//!   the same across restarts), `retry_schedule = ["0s","200ms","500ms","1s"]`,
//!   `timeout = "2s"`, no practical rate limit. Readiness is `/healthz` answering 200.
//! * **Receivers** (`std::net`, a thread per keep-alive connection): two healthy ones,
//!   one *flaky* (500 for about half of the attempts) and one *slow* (100–300 ms). Each
//!   records every request's `X-Hook-Delivery`, `X-Hook-Attempt`, `event.id`, URL path and
//!   arrival time. Answers are a function of (delivery, attempt) only, so an attempt sent
//!   twice is answered the same way twice.
//! * **Publishers** (3 threads): events with explicit ids for three users, five event
//!   types. 202 or 200 (a repeated id) is an acknowledgement; no answer is *unknown*. Half
//!   of the unknown ones are sent again with the same id until answered (idempotent
//!   ingest), the others are left unknown.
//! * **Webhooks**: eight *stable* ones created before the load (fan-out: most events
//!   match two or three of them), never changed; and *churn* ones that a mutator thread
//!   creates, disables (`PATCH {"enabled": false}`) and deletes during the load, besides
//!   `POST …/recover` on flaky webhooks. A mutation whose answer is lost is settled after
//!   the restart (a create is looked up by its unique URL; a disable or delete is sent
//!   again until answered).
//! * **Kills**: after 100–800 ms (seeded) of load, `Child::kill` (SIGKILL), reap, start
//!   again, wait for `/healthz`, repeat `--kills` times. Then the load stops, hookd drains
//!   (until no webhook has a pending delivery, or `--drain-timeout`), and the checks run
//!   against the API (events listed per user; every delivery log, paged).
//!
//! # The checks, and why each is sound
//!
//! * **No acknowledged event lost**: every id answered 202/200 is listed by
//!   `GET /api/hooks/events`, with the same type and user, and with the `deliveries`
//!   count of the answer. Sound because hookd answers only after the event and its
//!   deliveries are durably committed (retention is 30 days, so nothing is pruned).
//!   Unknown ids may or may not be stored; both are fine. A stored id that was never
//!   sent fails.
//! * **Coverage**: a stable webhook existed before any event was sent and never
//!   changed, so every stored event of its user and types has exactly one delivery in its
//!   log. For a churn webhook only the certain cases are checked: an event first sent
//!   after the create's 201 and acknowledged before the disable was sent must have one;
//!   one whose last request ended before the create was sent, or first sent after the
//!   disable's 200, must have none. No webhook has two deliveries of one event, and no
//!   event has more deliveries than its `deliveries` count.
//! * **Legal states**: `succeeded` has exactly one 2xx attempt, its last; `failed` has no
//!   2xx attempt and at least the schedule's four; `pending` has `nextAttemptAt` and no
//!   2xx, and is not on a disabled webhook; `cancelled` appears only on a webhook that was
//!   disabled and has no 2xx attempt except possibly its last (the attempt in flight at
//!   the disable is logged when it ends, and the delivery stays cancelled; counted in the
//!   summary); attempts are numbered 1, 2, 3, … Webhooks are never
//!   disabled by hookd itself here (no 410, `disable_after` is days), so a cancelled
//!   delivery elsewhere is illegal. A delivery still `pending` after the drain deadline is
//!   legal and reported.
//! * **Receivers agree with the log**: every logged attempt with a status code arrived at
//!   the receiver with that (delivery, attempt) and was answered that code (the answer is
//!   deterministic); every arrival at a live webhook is in its log, for the same event;
//!   once a delivery is `succeeded` or `failed`, every attempt that arrived is logged
//!   (an attempt cut short by a kill is made again with the same number and logged
//!   then). Every arrival's event is stored (the delivery was created in the event's
//!   transaction).
//! * **Duplicates**: arrivals of the same delivery *and attempt number* beyond the first.
//!   hookd logs an attempt's outcome after the request returns, so a kill between the
//!   send and the commit makes it send that attempt again, with the same number, after
//!   the restart, even if the receiver had answered 200. Such a duplicate is *explained*
//!   when the second arrival was sent by a later hookd process than the first: the
//!   process running at the second arrival started after the one that could have sent
//!   the first (allowing 200 ms between a send and the receiver reading it). A repeat
//!   within one process, an attempt number going backwards, or a higher attempt after a
//!   2xx answer (unless the log shows that attempt failed, e.g. by timeout) is
//!   *unexplained* and fails.
//! * **Fence** (reported; fails only with `--strict-fence`): nothing may arrive at a
//!   webhook after its DELETE answered 204 (or after a repeated DELETE answered 404), or
//!   after its disable answered 200.
//!
//! The receiver answers and all choices (event types, users, pauses, mutations, kill
//! times) come from `--seed`; thread timing does not, so two runs with one seed are alike
//! but not identical.

#[path = "crash/daemon.rs"]
mod daemon;
#[path = "crash/load.rs"]
mod load;
#[path = "crash/receiver.rs"]
mod receiver;
#[path = "crash/verify.rs"]
mod verify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use clap::Parser;

use daemon::{Api, Hookd, USERS};
use load::{Existence, Hook, Pace, SentEvent};
use receiver::{Behaviour, Receivers};

#[derive(Parser, Debug)]
#[command(
    about = "Crash campaign: mixed load while hookd is kill -9ed and restarted; then checks."
)]
struct Args {
    /// How many times hookd is killed with SIGKILL.
    #[arg(long, default_value_t = 20)]
    kills: usize,
    /// Seed of every random choice.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Path of the hookd binary (default: next to this example, target/<profile>/hookd).
    #[arg(long)]
    hookd: Option<PathBuf>,
    /// Shortest run between a restart and the next kill, in ms.
    #[arg(long, default_value_t = 100)]
    min_run_ms: u64,
    /// Longest run between a restart and the next kill, in ms.
    #[arg(long, default_value_t = 800)]
    max_run_ms: u64,
    /// Publisher threads.
    #[arg(long, default_value_t = 3)]
    publishers: usize,
    /// Seconds to wait, after the last restart, for nothing to be pending.
    #[arg(long, default_value_t = 120)]
    drain_timeout: u64,
    /// Fail when anything arrives after a DELETE 204 or a disable 200.
    #[arg(long)]
    strict_fence: bool,
    /// RUST_LOG for hookd (its log goes to hookd.log in the temp dir).
    #[arg(long, default_value = "warn")]
    log: String,
    /// Parent directory of the temp dir (default: the system temp dir).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Keep the temp dir (config, data, hookd.log); it is always kept when a check fails.
    #[arg(long)]
    keep: bool,
}

/// Nanoseconds on the campaign's clock (shared by every thread).
pub fn now_ns() -> u64 {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    u64::try_from(ORIGIN.get_or_init(Instant::now).elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// xorshift64*: small, seedable, good enough to pick pauses and actions.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so nearby seeds give unrelated streams (never 0).
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `percent` %.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let _ = now_ns();
    if args.min_run_ms > args.max_run_ms || args.publishers == 0 {
        eprintln!("crash: need --min-run-ms <= --max-run-ms and --publishers >= 1");
        return ExitCode::from(2);
    }
    let bin = locate_hookd(args.hookd.as_deref());
    let dir = {
        let mut b = tempfile::Builder::new();
        b.prefix("hookd-crash-");
        match &args.dir {
            Some(parent) => b.tempdir_in(parent),
            None => b.tempdir(),
        }
        .expect("create a temp dir")
    };
    match campaign(&args, &bin, dir.path()) {
        Ok(true) => {
            if args.keep {
                println!("kept {}", dir.keep().display());
            }
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("kept {} (config, data, hookd.log)", dir.keep().display());
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("crash: {e}");
            println!("kept {} (config, data, hookd.log)", dir.keep().display());
            ExitCode::from(1)
        }
    }
}

/// Runs the whole campaign; Ok(passed).
fn campaign(args: &Args, bin: &Path, dir: &Path) -> Result<bool, String> {
    let started = Instant::now();
    let behaviours = [
        Behaviour::Healthy,
        Behaviour::Healthy,
        Behaviour::Flaky { percent: 50 },
        Behaviour::Slow,
    ];
    let (healthy0, healthy1, flaky, slow) = (0, 1, 2, 3);
    let receivers = Receivers::start(&behaviours);
    let mut hookd = Hookd::new(bin, dir, daemon::free_port(), &args.log);
    println!(
        "hookd crash campaign: {} kills, seed {}, hookd {} on 127.0.0.1:{}, dir {}",
        args.kills,
        args.seed,
        bin.display(),
        hookd.port,
        dir.display()
    );
    hookd.start()?;
    let api = Api::new(hookd.port, Duration::from_secs(30));

    // Stable webhooks: (key, user, receiver, types).
    let stable_plan: [(&str, usize, usize, &[&str]); 8] = [
        ("a-all", 0, healthy0, &["*"]),
        ("a-flaky", 0, flaky, &["app:*", "message:received"]),
        ("a-slow", 0, slow, &["app:connected", "agent:invoked"]),
        ("a-msg", 0, healthy1, &["message:*"]),
        ("b-all", 1, healthy1, &["*"]),
        ("b-flaky", 1, flaky, &["*"]),
        ("c-slow", 2, slow, &["agent:*", "message:sent"]),
        ("c-app", 2, healthy0, &["app:*"]),
    ];
    let mut hooks: Vec<Hook> = Vec::new();
    for (key, user, receiver, types) in stable_plan {
        let types = types.iter().map(|t| t.to_string()).collect();
        let mut hook = Hook::planned(key.to_string(), user, receiver, types, true);
        load::create_hook(&api, &mut hook, &receivers.addrs)?;
        if hook.existence != Existence::Live {
            return Err(format!("creating webhook {key} got no answer"));
        }
        hooks.push(hook);
    }
    let stable_flaky: Vec<(usize, String)> = hooks
        .iter()
        .filter(|h| h.receiver == flaky)
        .map(|h| (h.user, h.id.clone().unwrap_or_default()))
        .collect();

    // Load.
    let pace = Pace {
        publish_ms: (2, 20),
        mutate_ms: (100, 400),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let publishers: Vec<_> = (0..args.publishers)
        .map(|i| {
            let stop = Arc::clone(&stop);
            let (seed, port) = (args.seed, hookd.port);
            std::thread::Builder::new()
                .name(format!("publisher-{i}"))
                .spawn(move || load::publisher(i, seed, port, pace, stop))
                .expect("spawn a publisher")
        })
        .collect();
    let mutator = {
        let stop = Arc::clone(&stop);
        let (seed, port, addrs) = (args.seed, hookd.port, receivers.addrs.clone());
        std::thread::Builder::new()
            .name("mutator".into())
            .spawn(move || {
                let targets = load::Targets {
                    receivers: addrs,
                    churn_receivers: vec![healthy0, healthy1, flaky],
                    flaky_receiver: flaky,
                    stable_flaky,
                };
                load::mutator(seed, port, &targets, pace, &stop)
            })
            .expect("spawn the mutator")
    };

    // Kills.
    let mut rng = Rng::new(args.seed);
    let every = (args.kills / 10).max(1);
    for k in 1..=args.kills {
        std::thread::sleep(Duration::from_millis(
            rng.range(args.min_run_ms, args.max_run_ms),
        ));
        hookd.kill9();
        if let Err(e) = hookd.start() {
            stop.store(true, Ordering::Relaxed);
            return Err(format!("restart after kill {k}: {e}"));
        }
        if k % every == 0 || k == args.kills {
            println!(
                "  kill {k}/{}  {:.0} s  restart {:.0} ms  arrivals {}",
                args.kills,
                started.elapsed().as_secs_f64(),
                hookd.ready.last().map_or(0.0, |d| d.as_secs_f64() * 1e3),
                receivers.arrival_count(),
            );
        }
    }
    // Some load on the last process too, then stop it and settle the mutations.
    std::thread::sleep(Duration::from_millis(
        rng.range(args.min_run_ms, args.max_run_ms),
    ));
    stop.store(true, Ordering::Relaxed);
    let mut events: Vec<SentEvent> = Vec::new();
    for p in publishers {
        events.extend(p.join().map_err(|_| "a publisher panicked")?);
    }
    let (churn, mutations) = mutator.join().map_err(|_| "the mutator panicked")?;
    hooks.extend(churn);
    let load_secs = started.elapsed().as_secs_f64();

    // Drain.
    let drain_started = Instant::now();
    let drained = drain(&api, &hooks, Duration::from_secs(args.drain_timeout))?;
    let drain_secs = drain_started.elapsed().as_secs_f64();

    // Verify.
    let arrivals = receivers.arrivals();
    let report = verify::verify(&api, &hookd, &events, &hooks, &arrivals, behaviours.len())?;
    hookd.stop();
    let mut passed = true;

    // Summary.
    println!();
    println!(
        "kills             {} (restarts {})",
        hookd.kills.len(),
        hookd.spawns.len() - 1
    );
    let mut ready: Vec<Duration> = hookd.ready.clone();
    ready.sort();
    println!(
        "restart           spawn -> /healthz 200: p50 {:.0} ms, max {:.0} ms",
        ready[ready.len() / 2].as_secs_f64() * 1e3,
        ready.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
    println!(
        "time              load {load_secs:.1} s, drain {drain_secs:.1} s ({}), total {:.1} s",
        if drained {
            "nothing pending"
        } else {
            "DEADLINE REACHED"
        },
        started.elapsed().as_secs_f64()
    );
    println!(
        "events            sent {}, acknowledged {} (202 {}, 200 on a resend {}), unknown {} \
         (of which stored {}), sent more than once {}",
        report.events_sent,
        report.acked_202 + report.acked_200,
        report.acked_202,
        report.acked_200,
        report.unknown,
        report.unknown_stored,
        report.resent_events,
    );
    println!("                  found stored {}", report.stored);
    println!(
        "webhooks          {} stable, churn: created {} (+{} with a lost answer), disabled {}, \
         deleted {} ({} after a lost answer); live at the end {} ({} disabled)",
        hooks.iter().filter(|h| h.stable).count(),
        mutations.created,
        mutations.create_lost,
        mutations.disabled,
        mutations.deleted,
        mutations.delete_lost,
        report.live_hooks,
        report.disabled_hooks,
    );
    println!(
        "recover           {} calls, {} deliveries queued again",
        mutations.recovers, mutations.recovered
    );
    let statuses: Vec<String> = report
        .by_status
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    println!(
        "deliveries        {} in live webhooks' logs: {}",
        report.by_status.values().sum::<usize>(),
        statuses.join(", ")
    );
    println!(
        "                  cancelled whose last attempt, in flight at the disable, got a 2xx: {}",
        report.cancelled_after_2xx
    );
    println!(
        "attempts logged   {} ({} without an HTTP answer)",
        report.attempts_logged, report.attempts_with_error
    );
    let per_receiver: Vec<String> = behaviours
        .iter()
        .zip(&report.arrivals_by_receiver)
        .map(|(b, n)| format!("{} {n}", b.name()))
        .collect();
    println!(
        "receiver arrivals {} ({})",
        report.arrivals,
        per_receiver.join(", ")
    );
    println!(
        "duplicates        {} (same delivery and attempt), explained by a kill {}, unexplained {}",
        report.duplicates, report.duplicates_explained, report.unexplained_duplicates.count
    );
    println!(
        "                  re-sent after a 2xx the log shows as failed: {}",
        report.resent_after_2xx_explained
    );
    println!("lost ack'd events {}", report.lost_events.count);
    println!(
        "fence violations  {} (sends after DELETE 204 / disable 200){}",
        report.fence.count,
        if args.strict_fence {
            ""
        } else {
            "; not a failure without --strict-fence"
        }
    );
    print_samples("fence violations", &report.fence);
    let malformed = receivers.malformed();
    if !malformed.is_empty() {
        passed = false;
        println!(
            "FAIL  malformed requests at the receivers: {}",
            malformed.len()
        );
    }
    for e in &mutations.errors {
        passed = false;
        println!("FAIL  mutation answer: {e}");
    }
    for (name, problems) in report.failures(args.strict_fence) {
        if problems.count > 0 {
            passed = false;
            println!("FAIL  {name}: {}", problems.count);
            print_samples(name, problems);
        }
    }
    println!("{}", if passed { "PASS" } else { "FAIL" });
    Ok(passed)
}

fn print_samples(_name: &str, problems: &verify::Problems) {
    for s in &problems.samples {
        println!("        {s}");
    }
    if problems.count > problems.samples.len() {
        println!(
            "        … and {} more",
            problems.count - problems.samples.len()
        );
    }
}

/// Waits until no webhook that exists has a pending delivery; Ok(false) at the deadline.
fn drain(api: &Api, hooks: &[Hook], timeout: Duration) -> Result<bool, String> {
    let deadline = Instant::now() + timeout;
    let live: Vec<&Hook> = hooks
        .iter()
        .filter(|h| h.existence == Existence::Live)
        .collect();
    loop {
        let mut pending = false;
        for h in &live {
            let id = h.id.as_deref().unwrap_or_default();
            let page = api.get_json(
                &format!("/api/hooks/webhooks/{id}/deliveries?status=pending&limit=1"),
                USERS[h.user].1,
            )?;
            if page["deliveries"].as_array().is_some_and(|d| !d.is_empty()) {
                pending = true;
                break;
            }
        }
        if !pending {
            return Ok(true);
        }
        if Instant::now() > deadline {
            return Ok(false);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Finds the hookd binary, or exits with a message saying how to build it.
fn locate_hookd(explicit: Option<&Path>) -> PathBuf {
    let path = match explicit {
        Some(p) => p.to_path_buf(),
        None => {
            // target/<profile>/examples/crash → target/<profile>/hookd
            let exe = std::env::current_exe().expect("path of the crash executable");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("the campaign runs from target/<profile>/examples");
            profile_dir.join("hookd")
        }
    };
    if !path.is_file() {
        eprintln!(
            "crash: hookd binary not found at {}\n\
             build it first with `cargo build --release --bin hookd`, or pass --hookd PATH",
            path.display()
        );
        std::process::exit(2);
    }
    path
}
