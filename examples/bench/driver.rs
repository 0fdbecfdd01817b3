//! The load driver: C threads, each with its own keep-alive ureq agent (one per hookd
//! node with `--nodes`: event `seq` goes to node `seq % N`), POSTing events to
//! `/api/hooks/events` with the publisher token, either as fast as the answers come back
//! (closed loop) or at fixed send times (open loop, `--rate`).
//!
//! Every payload carries `"seq"` (the event's number in the run) and `"sentNs"`
//! (nanoseconds since the process's shared clock origin, taken just before the request
//! is written; in open-loop mode the *scheduled* send time, so a lagging driver shows up
//! as latency). Per request it keeps the send and answer times (ingest latency = request
//! written → 202 read) and whether hookd accepted it, so the analysis expects deliveries
//! only for accepted events.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::api::agent;
use crate::scenarios::Plan;
use crate::{PUBLISHER_TOKEN, USER, clock_ns};

/// One ingest request.
pub struct Sent {
    pub sent_ns: u64,
    pub done_ns: u64,
    /// The request was written later than 1 ms after its scheduled time (open loop).
    pub late: bool,
}

pub struct Driven {
    pub sent: Vec<Sent>,
    /// `seq` → hookd answered 202.
    pub accepted: Vec<bool>,
    pub errors: usize,
    pub first_error: Option<String>,
}

impl Driven {
    pub fn first_sent(&self) -> u64 {
        self.sent.iter().map(|s| s.sent_ns).min().unwrap_or(0)
    }

    pub fn last_done(&self) -> u64 {
        self.sent.iter().map(|s| s.done_ns).max().unwrap_or(0)
    }

    pub fn span_s(&self) -> f64 {
        (self.last_done().saturating_sub(self.first_sent())) as f64 / 1e9
    }
}

/// Sends `plan.events` events from `plan.concurrency` threads; returns when all answered.
///
/// With several hookd nodes (`addrs`), event `seq` goes to node `seq % nodes`: every
/// thread keeps one keep-alive agent per node, so the nodes get the same share of
/// requests and each its own connections, whatever the thread count.
pub fn drive(addrs: &[SocketAddr], plan: &Plan, payload_bytes: usize) -> Driven {
    let urls: Vec<String> = addrs
        .iter()
        .map(|addr| format!("http://{addr}/api/hooks/events"))
        .collect();
    let auth = format!("Bearer {PUBLISHER_TOKEN}");
    let filler = "x".repeat(payload_bytes);
    let next = AtomicUsize::new(0);
    let errors = AtomicUsize::new(0);
    let first_error = Mutex::new(None);
    let start_ns = clock_ns() + 20_000_000; // all threads start together, 20 ms from now
    let interval_ns = plan.rate.map(|r| 1e9 / r);
    let per_thread: Vec<(Vec<Sent>, Vec<usize>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.concurrency)
            .map(|t| {
                let (urls, auth, filler, next, errors, first_error) =
                    (&urls, &auth, &filler, &next, &errors, &first_error);
                std::thread::Builder::new()
                    .name(format!("bench-drive-{t}"))
                    .spawn_scoped(scope, move || {
                        let agents: Vec<_> =
                            urls.iter().map(|_| agent(Duration::from_secs(60))).collect();
                        let mut sent = Vec::new();
                        let mut accepted = Vec::new();
                        sleep_until_ns(start_ns);
                        loop {
                            let seq = next.fetch_add(1, Ordering::Relaxed);
                            if seq >= plan.events {
                                break;
                            }
                            let scheduled = interval_ns.map(|i| start_ns + (seq as f64 * i) as u64);
                            if let Some(at) = scheduled {
                                sleep_until_ns(at);
                            }
                            let now = clock_ns();
                            let sent_ns = scheduled.unwrap_or(now);
                            let body = format!(
                                "{{\"type\":\"message:received\",\"userId\":\"{USER}\",\"source\":\"bench\",\
                                 \"payload\":{{\"seq\":{seq},\"sentNs\":{sent_ns},\"text\":\"{filler}\"}}}}"
                            );
                            let node = seq % urls.len();
                            let result = agents[node]
                                .post(urls[node].as_str())
                                .header("Authorization", auth.as_str())
                                .header("Content-Type", "application/json")
                                .send(body.as_bytes());
                            let outcome = match result {
                                Ok(mut answer) => {
                                    let status = answer.status().as_u16();
                                    let text = answer.body_mut().read_to_string().unwrap_or_default();
                                    if status == 202 {
                                        Ok(())
                                    } else {
                                        Err(format!("status {status}: {text}"))
                                    }
                                }
                                Err(e) => Err(format!("request failed: {e}")),
                            };
                            let done_ns = clock_ns();
                            match outcome {
                                Ok(()) => {
                                    sent.push(Sent {
                                        sent_ns,
                                        done_ns,
                                        late: now > sent_ns + 1_000_000,
                                    });
                                    accepted.push(seq);
                                }
                                Err(e) => {
                                    errors.fetch_add(1, Ordering::Relaxed);
                                    first_error.lock().expect("error slot").get_or_insert(e);
                                }
                            }
                        }
                        (sent, accepted)
                    })
                    .expect("spawn a driver thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("driver thread panicked"))
            .collect()
    });
    let mut accepted = vec![false; plan.events];
    let mut sent = Vec::with_capacity(plan.events);
    for (s, seqs) in per_thread {
        sent.extend(s);
        for seq in seqs {
            accepted[seq] = true;
        }
    }
    Driven {
        sent,
        accepted,
        errors: errors.into_inner(),
        first_error: first_error.into_inner().expect("error slot"),
    }
}

pub fn sleep_until_ns(at: u64) {
    let now = clock_ns();
    if at > now {
        std::thread::sleep(Duration::from_nanos(at - now));
    }
}
