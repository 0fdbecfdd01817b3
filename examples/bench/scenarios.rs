//! The scenarios: what each sends, to how many webhooks, how it is paced, and which
//! figures it prints (see the crate docs for the list a–e).
//!
//! a, b and c share [`Bench::throughput`]: a fresh stage (hookd node(s) and their
//! store) and a receiver answering 200, the plan driven, every delivery waited for, then
//! the block of figures. e runs the same plan with the receiver failing first attempts
//! and measures retry lateness. d (a big pending queue, restart, drain) is in
//! [`crate::restart`].

use std::time::Duration;

use crate::api::Api;
use crate::config::HookdSettings;
use crate::cpu::CpuUse;
use crate::driver::{Driven, drive};
use crate::node::Nodes;
use crate::receiver::{Arrival, Receiver, ReplyMode};
use crate::report::{header, print_ingest, print_rss, print_stop};
use crate::stage::Stage;
use crate::stats::{DeliveryStats, Measured, percentile_signed_ms, retry_lateness};
use crate::{Bench, bind_loopback, report_losses};

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
        let stopped = run.nodes.stop();
        print_rss(&stopped);
        run.stage.print_store(plan.events);
        run.cpu.print();
        run.cpu
            .print_cost((plan.events, "event"), Some((run.expected, "delivery")));
        print_stop(&stopped);
        run.stage.finish();
        measured
    }

    /// Starts a fresh hookd (with `retry_schedule`) and a receiver answering as `reply`,
    /// creates the plan's webhooks, drives the plan and waits for every delivery.
    pub fn run_plan(&self, plan: &Plan, reply: ReplyMode, retry_schedule: &[&str]) -> PlanRun<'_> {
        let stage = self.stage();
        let receiver = Receiver::start(bind_loopback(0), reply);
        let settings = HookdSettings::new(plan.webhooks, retry_schedule);
        let configs = stage.write_configs(&settings);
        let nodes = stage.spawn(&configs, "hookd");
        let api = Api::new(nodes.first().addr);
        api.create_webhooks(plan.webhooks, receiver.addr, self.args.secret);

        let cpu = stage.cpu_window(&nodes);
        let driven = drive(&nodes.addrs(), plan, self.args.payload_bytes);
        let expected = plan.events * plan.webhooks;
        receiver.wait_for(expected, Duration::from_secs(self.args.drain_timeout));
        let cpu = cpu.finish();
        let arrivals = receiver.arrivals();
        let stats = DeliveryStats::of(&arrivals, plan.events, plan.webhooks, &driven);
        PlanRun {
            nodes,
            stage,
            api,
            cpu,
            driven,
            arrivals,
            stats,
            expected,
        }
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
        let stopped = run.nodes.stop();
        print_rss(&stopped);
        run.cpu.print();
        print_stop(&stopped);
        run.stage.finish();
    }
}

/// A plan run to the end by [`Bench::run_plan`], hookd still running.
pub struct PlanRun<'b> {
    /// Before `stage`: dropped first, so a panicking run kills hookd before its database
    /// is dropped.
    pub nodes: Nodes,
    pub stage: Stage<'b>,
    pub api: Api,
    pub cpu: CpuUse,
    pub driven: Driven,
    pub arrivals: Vec<Arrival>,
    pub stats: DeliveryStats,
    /// Deliveries the plan makes: events × webhooks.
    pub expected: usize,
}
