//! Analysis of what the receiver saw against what the driver sent.
//!
//! Per (event, webhook) the first 200 arrival counts: deliveries/s is first → last such
//! arrival at the receiver, end-to-end latency is `sentNs` → that arrival, lost is an
//! accepted event's delivery that never got a 200 within the drain timeout, a duplicate
//! is any further 200 for the same pair. Retry lateness (scenario e) is attempt-2 arrival
//! − attempt-1 arrival − the configured delay. Percentiles are nearest-rank.

use std::collections::HashMap;
use std::time::Duration;

use crate::driver::Driven;
use crate::receiver::Arrival;
use crate::report_losses;

/// Figures kept to compare scenarios.
pub struct Measured {
    pub delivery_rate: f64,
}

pub struct DeliveryStats {
    /// (event, webhook) pairs answered 200 at least once.
    pub unique_ok: usize,
    pub lost: usize,
    pub duplicates: usize,
    pub first_ok_ns: u64,
    pub last_ok_ns: u64,
    /// sentNs → first 200 arrival, per delivery.
    pub e2e_ns: Vec<u64>,
    /// Deliveries that arrived after the driver's last 202 (the backlog left when
    /// ingest stopped).
    pub after_ingest: usize,
}

impl DeliveryStats {
    pub fn of(
        arrivals: &[Arrival],
        events: usize,
        webhooks: usize,
        driven: &Driven,
    ) -> DeliveryStats {
        // Per (event, webhook): (first 200 arrival, the sentNs it carried).
        let mut first_ok = vec![(u64::MAX, 0); events * webhooks];
        let mut duplicates = 0;
        let mut stray = 0;
        for a in arrivals.iter().filter(|a| a.ok) {
            let (seq, hook) = (a.seq as usize, a.hook as usize);
            if seq >= events || hook >= webhooks {
                stray += 1;
                continue;
            }
            let slot = &mut first_ok[seq * webhooks + hook];
            if slot.0 == u64::MAX {
                *slot = (a.at_ns, a.sent_ns);
            } else {
                duplicates += 1;
                slot.0 = slot.0.min(a.at_ns);
            }
        }
        if stray > 0 {
            println!("WARNING           {stray} requests with an unknown seq or webhook");
        }
        let mut e2e_ns = Vec::with_capacity(first_ok.len());
        let mut lost = 0;
        for (key, &(at, sent)) in first_ok.iter().enumerate() {
            if !driven.accepted[key / webhooks] {
                continue; // hookd did not accept this event: nothing is expected
            }
            if at == u64::MAX {
                lost += 1;
            } else {
                e2e_ns.push(at.saturating_sub(sent));
            }
        }
        e2e_ns.sort_unstable();
        let received = first_ok.iter().map(|s| s.0).filter(|&at| at != u64::MAX);
        let ingest_done = driven.last_done();
        DeliveryStats {
            after_ingest: received.clone().filter(|&at| at > ingest_done).count(),
            unique_ok: e2e_ns.len(),
            lost,
            duplicates,
            first_ok_ns: received.clone().min().unwrap_or(0),
            last_ok_ns: received.max().unwrap_or(0),
            e2e_ns,
        }
    }

    pub fn span_s(&self) -> f64 {
        self.last_ok_ns.saturating_sub(self.first_ok_ns) as f64 / 1e9
    }

    pub fn delivery_rate(&self) -> f64 {
        self.unique_ok as f64 / self.span_s().max(1e-9)
    }

    pub fn print(&self, driven: &Driven) -> Measured {
        let delivery_rate = self.delivery_rate();
        println!(
            "deliveries        {} in {:.2} s = {:.0} deliveries/s (receiver: first → last arrival)",
            self.unique_ok,
            self.span_s(),
            delivery_rate
        );
        let backlog_span = self.last_ok_ns.saturating_sub(driven.last_done()) as f64 / 1e9;
        // Only worth a line when a real backlog was left (not the last few in flight).
        if self.after_ingest >= 100 && backlog_span > 0.0 {
            println!(
                "  after ingest    {} of them after the last 202, in {:.2} s = {:.0} deliveries/s \
                 (backlog with no ingest running)",
                self.after_ingest,
                backlog_span,
                self.after_ingest as f64 / backlog_span
            );
        }
        let events = driven.sent.len();
        let e2e_span = self.last_ok_ns.saturating_sub(driven.first_sent()) as f64 / 1e9;
        println!(
            "end to end        {events} events in {:.2} s = {:.0} events/s (first send → last arrival)",
            e2e_span,
            events as f64 / e2e_span.max(1e-9)
        );
        println!(
            "e2e latency       p50 {:.2} ms   p99 {:.2} ms   max {:.2} ms   (sentNs → arrival)",
            percentile_ms(&self.e2e_ns, 50.0),
            percentile_ms(&self.e2e_ns, 99.0),
            percentile_ms(&self.e2e_ns, 100.0)
        );
        report_losses(self.lost, self.duplicates);
        Measured { delivery_rate }
    }
}

/// For each delivery with attempts 1 and 2: arrival(2) − arrival(1) − `delay`, in ns,
/// sorted. Negative means early: hookd keeps due times in whole milliseconds, so a retry
/// can legitimately come up to 1 ms before the nanosecond-exact schedule.
pub fn retry_lateness(arrivals: &[Arrival], webhooks: usize, delay: Duration) -> Vec<i64> {
    let mut firsts: HashMap<usize, u64> = HashMap::new();
    let mut seconds: HashMap<usize, u64> = HashMap::new();
    for a in arrivals {
        let key = a.seq as usize * webhooks + a.hook as usize;
        match a.attempt {
            1 => firsts.entry(key).or_insert(a.at_ns),
            2 => seconds.entry(key).or_insert(a.at_ns),
            _ => continue,
        };
    }
    let delay_ns = delay.as_nanos() as i64;
    let mut lateness: Vec<i64> = seconds
        .iter()
        .filter_map(|(key, &second)| {
            let first = *firsts.get(key)?;
            Some(second as i64 - first as i64 - delay_ns)
        })
        .collect();
    lateness.sort_unstable();
    lateness
}

/// The `p`th percentile (nearest rank) of sorted signed nanoseconds, in milliseconds.
pub fn percentile_signed_ms(sorted_ns: &[i64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1e6
}

/// The `p`th percentile (nearest rank) of sorted nanoseconds, in milliseconds.
pub fn percentile_ms(sorted_ns: &[u64], p: f64) -> f64 {
    if sorted_ns.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted_ns.len() as f64).ceil() as usize;
    sorted_ns[rank.clamp(1, sorted_ns.len()) - 1] as f64 / 1e6
}
