//! The printed lines shared by the scenarios: the scenario header, ingest rate and
//! latency, hookd's RSS, the store's size per event, and the stop time. Every line starts
//! with an 18-column label so the blocks of several scenarios read as one table.

use std::path::Path;

use crate::MIB;
use crate::driver::Driven;
use crate::node::Stopped;
use crate::rss::RssStats;
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

pub fn print_rss(rss: &RssStats) {
    println!(
        "hookd RSS         peak {:.1} MiB (VmHWM; max of 100 ms VmRSS samples {:.1} MiB)",
        kib_to_mib(rss.hwm_kib),
        kib_to_mib(rss.sampled_max_kib)
    );
}

pub fn print_store(dir: &Path, events: usize) {
    let path = dir.join("data").join(hookd::config::DB_FILE_NAME);
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "store             hookd.redb {:.1} MiB = {:.0} bytes/event",
        bytes as f64 / MIB,
        bytes as f64 / events.max(1) as f64
    );
}

pub fn print_stop(stopped: &Stopped) {
    let status = stopped
        .status
        .map_or("unknown".to_string(), |s| s.to_string());
    println!(
        "stop              SIGTERM → exit in {:.0} ms ({status})",
        stopped.stop_time.as_secs_f64() * 1e3
    );
}

pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

pub fn count_lines(path: &Path, needle: &str) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().filter(|l| l.contains(needle)).count())
        .unwrap_or(0)
}
