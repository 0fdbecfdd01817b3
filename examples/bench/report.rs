//! The printed lines shared by the scenarios: the scenario header, ingest rate and
//! latency, hookd's RSS, the store's size per event, and the stop time. Every line starts
//! with an 18-column label so the blocks of several scenarios read as one table.

use crate::MIB;
use crate::driver::Driven;
use crate::node::Stopped;
use crate::stats::percentile_ms;

pub fn header(name: &str, what: &str) {
    println!("== scenario {name}: {what}");
}

pub fn print_ingest(driven: &Driven) {
    let mut latencies: Vec<u64> = driven
        .sent
        .iter()
        .map(|s| s.done_ns.saturating_sub(s.sent_ns))
        .collect();
    latencies.sort_unstable();
    let late = driven.sent.iter().filter(|s| s.late).count();
    println!(
        "ingest            {} events in {:.2} s = {:.0} events/s (202s; errors {}{})",
        driven.sent.len(),
        driven.span_s(),
        driven.sent.len() as f64 / driven.span_s().max(1e-9),
        driven.errors,
        if late > 0 {
            format!("; {late} sent > 1 ms behind schedule")
        } else {
            String::new()
        }
    );
    if let Some(e) = &driven.first_error {
        println!("first error       {e}");
    }
    println!(
        "ingest latency    p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0),
        percentile_ms(&latencies, 100.0)
    );
}

/// Each node's peak RSS; one line per node when there are several.
pub fn print_rss(stopped: &[Stopped]) {
    for (i, s) in stopped.iter().enumerate() {
        println!(
            "{:<18}peak {:.1} MiB (VmHWM; max of 100 ms VmRSS samples {:.1} MiB)",
            node_label("hookd RSS", i, stopped.len()),
            kib_to_mib(s.rss.hwm_kib),
            kib_to_mib(s.rss.sampled_max_kib)
        );
    }
}

/// The store's size per event: `what` is the file or the database size function.
pub fn print_store_size(what: &str, bytes: u64, events: usize) {
    println!(
        "store             {what} {:.1} MiB = {:.0} bytes/event",
        bytes as f64 / MIB,
        bytes as f64 / events.max(1) as f64
    );
}

/// Each node's SIGTERM → exit.
pub fn print_stop(stopped: &[Stopped]) {
    for (i, s) in stopped.iter().enumerate() {
        let status = s.status.map_or("unknown".to_string(), |s| s.to_string());
        println!(
            "{:<18}SIGTERM → exit in {:.0} ms ({status})",
            node_label("stop", i, stopped.len()),
            s.stop_time.as_secs_f64() * 1e3
        );
    }
}

/// `label` alone for a single node, `label node <i>` among several.
pub fn node_label(label: &str, node: usize, nodes: usize) -> String {
    if nodes > 1 {
        format!("{label} node {node}")
    } else {
        label.to_string()
    }
}

pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}
