//! Scenario d: a big pending queue, then a restart, then the drain.
//!
//! `--pending N` deliveries (10 webhooks by default) are queued while the receiver's
//! port refuses connections and the first attempt is `--first-delay` away, so nothing is
//! attempted: hookd's RSS with the queue full. Then SIGTERM, a wait until the whole queue
//! is due, the receiver started, hookd restarted on the same store (spawn → `/healthz`
//! 200 is "ready"), and the backlog's drain rate measured, next to scenarios a and b's
//! empty-queue rates when they ran before. With `--postgres` every node is stopped and
//! restarted on the same database; RSS figures are then summed over the nodes (peaks
//! per node for the drain).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::api::Api;
use crate::config::HookdSettings;
use crate::driver::drive;
use crate::receiver::{Receiver, ReplyMode};
use crate::report::{header, kib_to_mib, node_label, print_ingest, print_stop};
use crate::scenarios::Plan;
use crate::stats::DeliveryStats;
use crate::{Bench, Rates, bind_loopback, report_losses};

impl Bench {
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
        let stage = self.stage();
        // The receiver's port refuses connections until the receiver starts on it.
        let port = bind_loopback(0).local_addr().expect("reserved port").port();
        let receiver_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let delay = format!("{first_delay}s");
        let settings = HookdSettings::new(webhooks, &[delay.as_str(), "1s"]);
        let configs = stage.write_configs(&settings);

        // Phase 1: fill the queue.
        let nodes = stage.spawn(&configs, "hookd-1");
        let api = Api::new(nodes.first().addr);
        api.create_webhooks(webhooks, receiver_addr, self.args.secret);
        std::thread::sleep(Duration::from_millis(500));
        let empty_rss = nodes.rss_now();
        let cpu = stage.cpu_window(&nodes);
        let driven = drive(&nodes.addrs(), &plan, self.args.payload_bytes);
        let cpu = cpu.finish();
        let ingest_end = Instant::now();
        println!("-- phase 1: queue {pending} deliveries (receiver down)");
        print_ingest(&driven);
        println!(
            "queueing          {:.0} deliveries/s committed",
            pending as f64 / driven.span_s()
        );
        cpu.print();
        cpu.print_cost((events, "event"), Some((pending, "queued delivery")));
        std::thread::sleep(Duration::from_secs(2));
        let full_rss = nodes.rss_now();
        let attempted = nodes.count_log_lines("delivery attempt");
        let stopped = nodes.stop();
        let hwm: u64 = stopped.iter().map(|s| s.rss.hwm_kib).sum();
        println!(
            "hookd RSS         empty queue {:.1} MiB → idle with {pending} pending {:.1} MiB \
             (growth {:+.1} MiB); peak during ingest {:.1} MiB (VmHWM){}",
            kib_to_mib(empty_rss),
            kib_to_mib(full_rss),
            kib_to_mib(full_rss) - kib_to_mib(empty_rss),
            kib_to_mib(hwm),
            summed(stopped.len()),
        );
        stage.print_store(events);
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
        let nodes = stage.spawn(&configs, "hookd-2");
        let ready_rss = nodes.rss_now();
        println!(
            "restart           spawn → /healthz 200 in {:.0} ms with {pending} pending \
             (RSS at ready {:.1} MiB){}",
            nodes.ready().as_secs_f64() * 1e3,
            kib_to_mib(ready_rss),
            if nodes.nodes.len() > 1 {
                " (the slowest node; RSS summed over the nodes)"
            } else {
                ""
            }
        );
        let cpu = stage.cpu_window(&nodes);
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
        Api::new(nodes.first().addr).print_stats_cost(pending);
        let stopped = nodes.stop();
        for (i, s) in stopped.iter().enumerate() {
            println!(
                "{} peak {:.1} MiB (VmHWM; sampled max {:.1} MiB)",
                node_label("hookd RSS (drain)", i, stopped.len()),
                kib_to_mib(s.rss.hwm_kib),
                kib_to_mib(s.rss.sampled_max_kib)
            );
        }
        stage.print_store(events);
        cpu.print();
        cpu.print_cost((pending, "delivery drained"), None);
        print_stop(&stopped);
        stage.finish();
    }
}

/// The suffix of a figure summed over several nodes.
fn summed(nodes: usize) -> String {
    if nodes > 1 {
        format!(" (summed over {nodes} nodes)")
    } else {
        String::new()
    }
}
