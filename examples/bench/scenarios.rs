//! The scenarios: what each sends, to how many webhooks, how it is paced, and which
//! figures it prints (see the crate docs for the list a–e).
//!
//! a, b and c share [`Bench::throughput`]: a fresh hookd and a receiver answering 200,
//! the plan driven, every delivery waited for, then the block of figures. e runs the same
//! plan with the receiver failing first attempts and measures retry lateness. d (a big
//! pending queue, restart, drain) is the long one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::cpu::{CpuUse, CpuWindow};
use crate::driver::{Driven, drive};
use crate::node::{Hookd, HookdSettings};
use crate::receiver::{Arrival, Receiver, ReplyMode};
use crate::report::{
    count_lines, header, kib_to_mib, print_ingest, print_rss, print_stop, print_store,
};
use crate::stats::{DeliveryStats, Measured, percentile_signed_ms, retry_lateness};
use crate::{Bench, Rates, bind_loopback, report_losses};

/// What the driver sends and how.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub events: usize,
    pub webhooks: usize,
    pub concurrency: usize,
    /// `None`: closed loop. `Some(r)`: open loop at r events/s.
    pub rate: Option<f64>,
}

impl Plan {
    pub fn describe(&self) -> String {
        let pace = match self.rate {
            None => format!("closed loop, concurrency {}", self.concurrency),
            Some(r) => format!("open loop at {r} events/s ({} threads)", self.concurrency),
        };
        format!(
            "{} events × {} webhook(s) = {} deliveries, {pace}",
            self.events,
            self.webhooks,
            self.events * self.webhooks
        )
    }
}

impl Bench {
    pub fn closed_plan(&self, events: usize, webhooks: usize) -> Plan {
        Plan {
            events: self.args.events.unwrap_or(events),
            webhooks: self.args.webhooks.unwrap_or(webhooks),
            concurrency: self.args.concurrency.unwrap_or(32).max(1),
            rate: None,
        }
    }

    pub fn open_plan(&self, rate: u32, seconds: u64) -> Plan {
        let rate = self.args.rate.unwrap_or(rate).max(1);
        let seconds = self.args.duration.unwrap_or(seconds).max(1);
        Plan {
            events: self.args.events.unwrap_or(rate as usize * seconds as usize),
            webhooks: self.args.webhooks.unwrap_or(1),
            concurrency: self.args.concurrency.unwrap_or(16).max(1),
            rate: Some(f64::from(rate)),
        }
    }

    /// a: throughput and ingest latency with one webhook.
    pub fn scenario_a(&self) -> f64 {
        let plan = self.closed_plan(20_000, 1);
        self.throughput("a", &plan).delivery_rate
    }

    /// b: fan-out to 10 webhooks of one user.
    pub fn scenario_b(&self) -> f64 {
        let plan = self.closed_plan(5_000, 10);
        self.throughput("b", &plan).delivery_rate
    }

    /// c: latency at a steady, moderate rate.
    pub fn scenario_c(&self) {
        let plan = self.open_plan(400, 30);
        self.throughput("c", &plan);
    }

    /// Runs `plan` against a fresh hookd and a receiver that answers 200, and prints the
    /// block of figures.
    pub fn throughput(&self, name: &str, plan: &Plan) -> Measured {
        header(name, &plan.describe());
        let run = self.run_plan(plan, ReplyMode::AlwaysOk, &["0s"]);
        print_ingest(&run.driven);
        let measured = run.stats.print(&run.driven);
        run.api.print_stats_cost(run.expected);
        let stopped = run.hookd.stop();
        print_rss(&stopped.rss);
        print_store(run.dir.path(), plan.events);
        run.cpu.print();
        println!(
            "CPU cost          hookd {:.0} µs per event ({:.0} µs per delivery)",
            run.cpu.hookd_us_per(plan.events),
            run.cpu.hookd_us_per(run.expected)
        );
        print_stop(&stopped);
        self.finish(run.dir);
        measured
    }

    /// Starts a fresh hookd (with `retry_schedule`) and a receiver answering as `reply`,
    /// creates the plan's webhooks, drives the plan and waits for every delivery.
    pub fn run_plan(&self, plan: &Plan, reply: ReplyMode, retry_schedule: &[&str]) -> PlanRun {
        let dir = self.temp_dir();
        let receiver = Receiver::start(bind_loopback(0), reply);
        let settings = HookdSettings::new(plan.webhooks, retry_schedule);
        let config = self.write_config(dir.path(), &settings);
        let hookd = Hookd::spawn(
            &self.bin,
            &config,
            &dir.path().join("hookd.log"),
            &self.args,
        );
        let api = Api::new(hookd.addr);
        api.create_webhooks(plan.webhooks, receiver.addr, self.args.secret);

        let cpu = CpuWindow::start(hookd.pid);
        let driven = drive(hookd.addr, plan, self.args.payload_bytes);
        let expected = plan.events * plan.webhooks;
        receiver.wait_for(expected, Duration::from_secs(self.args.drain_timeout));
        let cpu = cpu.finish();
        let arrivals = receiver.arrivals();
        let stats = DeliveryStats::of(&arrivals, plan.events, plan.webhooks, &driven);
        PlanRun {
            dir,
            hookd,
            api,
            cpu,
            driven,
            arrivals,
            stats,
            expected,
        }
    }

    /// d: a big pending queue: RSS, restart time, drain rate.
    pub fn scenario_d(&self, rates: &Rates) {
        let webhooks = self.args.webhooks.unwrap_or(10).max(1);
        let events = (self.args.pending / webhooks).max(1);
        let pending = events * webhooks;
        let first_delay = self.args.first_delay.unwrap_or(30 + pending as u64 / 5_000);
        let plan = Plan {
            events,
            webhooks,
            concurrency: self.args.concurrency.unwrap_or(32).max(1),
            rate: None,
        };
        header(
            "d",
            &format!(
                "{} pending deliveries ({}), first attempt {first_delay} s after ingest",
                pending,
                plan.describe()
            ),
        );
        let dir = self.temp_dir();
        // The receiver's port refuses connections until the receiver starts on it.
        let port = bind_loopback(0).local_addr().expect("reserved port").port();
        let receiver_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let delay = format!("{first_delay}s");
        let settings = HookdSettings::new(webhooks, &[delay.as_str(), "1s"]);
        let config = self.write_config(dir.path(), &settings);

        // Phase 1: fill the queue.
        let hookd = Hookd::spawn(
            &self.bin,
            &config,
            &dir.path().join("hookd-1.log"),
            &self.args,
        );
        let api = Api::new(hookd.addr);
        api.create_webhooks(webhooks, receiver_addr, self.args.secret);
        std::thread::sleep(Duration::from_millis(500));
        let empty_rss = hookd.rss_now();
        let cpu = CpuWindow::start(hookd.pid);
        let driven = drive(hookd.addr, &plan, self.args.payload_bytes);
        let cpu = cpu.finish();
        let ingest_end = Instant::now();
        println!("-- phase 1: queue {pending} deliveries (receiver down)");
        print_ingest(&driven);
        println!(
            "queueing          {:.0} deliveries/s committed",
            pending as f64 / driven.span_s()
        );
        cpu.print();
        println!(
            "CPU cost          hookd {:.0} µs per event ({:.0} µs per queued delivery)",
            cpu.hookd_us_per(events),
            cpu.hookd_us_per(pending)
        );
        std::thread::sleep(Duration::from_secs(2));
        let full_rss = hookd.rss_now();
        let attempted = count_lines(&hookd.log_path, "delivery attempt");
        let stopped = hookd.stop();
        println!(
            "hookd RSS         empty queue {:.1} MiB → idle with {pending} pending {:.1} MiB \
             (growth {:+.1} MiB); peak during ingest {:.1} MiB (VmHWM)",
            kib_to_mib(empty_rss),
            kib_to_mib(full_rss),
            kib_to_mib(full_rss) - kib_to_mib(empty_rss),
            kib_to_mib(stopped.rss.hwm_kib),
        );
        print_store(dir.path(), events);
        print_stop(&stopped);
        if attempted > 0 {
            println!(
                "WARNING           {attempted} attempts were made before the restart: \
                 raise --first-delay (ingest took longer than {first_delay} s)"
            );
        }

        // Phase 2: wait (hookd down) until every delivery is due, then restart and drain.
        let due = ingest_end + Duration::from_secs(first_delay) + Duration::from_millis(500);
        let wait = due.saturating_duration_since(Instant::now());
        println!(
            "-- phase 2: waiting {:.0} s until the whole queue is due, then restart",
            wait.as_secs_f64()
        );
        std::thread::sleep(wait);
        let receiver = Receiver::start(bind_loopback(port), ReplyMode::AlwaysOk);
        let hookd = Hookd::spawn(
            &self.bin,
            &config,
            &dir.path().join("hookd-2.log"),
            &self.args,
        );
        let ready_rss = hookd.rss_now();
        println!(
            "restart           spawn → /healthz 200 in {:.0} ms with {pending} pending \
             (RSS at ready {:.1} MiB)",
            hookd.ready.as_secs_f64() * 1e3,
            kib_to_mib(ready_rss)
        );
        let cpu = CpuWindow::start(hookd.pid);
        receiver.wait_for(pending, Duration::from_secs(self.args.drain_timeout));
        let cpu = cpu.finish();
        let arrivals = receiver.arrivals();
        let stats = DeliveryStats::of(&arrivals, events, webhooks, &driven);
        let drain = stats.delivery_rate();
        println!(
            "drain             {} deliveries in {:.2} s = {:.0} deliveries/s (first → last arrival)",
            stats.unique_ok,
            stats.span_s(),
            drain
        );
        for (label, rate) in [("a", rates.a), ("b", rates.b)] {
            if let Some(rate) = rate {
                println!(
                    "                  = {:.0} % of scenario {label}'s empty-queue rate ({rate:.0}/s)",
                    100.0 * drain / rate
                );
            }
        }
        report_losses(stats.lost, stats.duplicates);
        Api::new(hookd.addr).print_stats_cost(pending);
        let stopped = hookd.stop();
        println!(
            "hookd RSS (drain) peak {:.1} MiB (VmHWM; sampled max {:.1} MiB)",
            kib_to_mib(stopped.rss.hwm_kib),
            kib_to_mib(stopped.rss.sampled_max_kib)
        );
        print_store(dir.path(), events);
        cpu.print();
        println!(
            "CPU cost          hookd {:.0} µs per delivery drained",
            cpu.hookd_us_per(pending)
        );
        print_stop(&stopped);
        self.finish(dir);
    }

    /// e: retry punctuality.
    pub fn scenario_e(&self) {
        let plan = self.open_plan(400, 10);
        header(
            "e",
            &format!(
                "{}; attempt 1 answered 500, attempt 2 200; retry_schedule [\"0s\", \"1s\"]",
                plan.describe()
            ),
        );
        let run = self.run_plan(&plan, ReplyMode::FailFirstAttempt, &["0s", "1s"]);
        print_ingest(&run.driven);
        let lateness = retry_lateness(&run.arrivals, plan.webhooks, Duration::from_secs(1));
        println!(
            "retry lateness    p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms   min {:.1} ms   \
             ({} retries; attempt-2 arrival − attempt-1 arrival − 1 s)",
            percentile_signed_ms(&lateness, 50.0),
            percentile_signed_ms(&lateness, 99.0),
            percentile_signed_ms(&lateness, 100.0),
            percentile_signed_ms(&lateness, 0.0),
            lateness.len()
        );
        let within = lateness.iter().filter(|&&l| l <= 50_000_000).count();
        let early = lateness.iter().filter(|&&l| l < -1_000_000).count();
        println!(
            "                  {:.2} % within 50 ms; {early} more than 1 ms early",
            100.0 * within as f64 / lateness.len().max(1) as f64
        );
        report_losses(run.stats.lost, run.stats.duplicates);
        let stopped = run.hookd.stop();
        print_rss(&stopped.rss);
        run.cpu.print();
        print_stop(&stopped);
        self.finish(run.dir);
    }

    pub fn temp_dir(&self) -> tempfile::TempDir {
        let mut builder = tempfile::Builder::new();
        builder.prefix("hookd-bench-");
        match &self.args.dir {
            Some(parent) => builder.tempdir_in(parent),
            None => builder.tempdir(),
        }
        .expect("create a temp dir")
    }

    pub fn finish(&self, dir: tempfile::TempDir) {
        if self.args.keep {
            println!("kept              {}", dir.keep().display());
        }
        println!();
    }

    pub fn write_config(&self, dir: &Path, settings: &HookdSettings) -> PathBuf {
        let path = dir.join("hookd.toml");
        let text = settings.toml(&dir.join("data"), &self.args);
        std::fs::write(&path, text).expect("write the hookd config");
        path
    }
}

/// A plan run to the end by [`Bench::run_plan`], hookd still running.
pub struct PlanRun {
    pub dir: tempfile::TempDir,
    pub hookd: Hookd,
    pub api: Api,
    pub cpu: CpuUse,
    pub driven: Driven,
    pub arrivals: Vec<Arrival>,
    pub stats: DeliveryStats,
    /// Deliveries the plan makes: events × webhooks.
    pub expected: usize,
}
