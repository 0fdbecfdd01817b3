//! hookd's HTTP API as the bench's setup and side measurements use it: `/healthz` (the
//! readiness probe), creating the bench user's webhooks (all subscribed to `"*"`, each
//! pointing at `http://<receiver>/h/<k>` so the receiver knows which webhook a request
//! is for), and the cost of the dashboard's widest query: 200 sequential
//! `GET …/stats?window=24h` on the first webhook, after a scenario filled the store
//! (p50/p99, so the figure says what a read costs next to N deliveries).
//!
//! Also the ureq agent every HTTP client of the bench is built from.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::USER_TOKEN;
use crate::stats::percentile_ms;

/// Setup calls to hookd's API (webhooks, health), on one keep-alive agent.
pub struct Api {
    pub agent: ureq::Agent,
    pub base: String,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        Api {
            agent: agent(Duration::from_secs(10)),
            base: format!("http://{addr}"),
        }
    }

    pub fn get_status(&self, path: &str) -> Option<u16> {
        let mut answer = self.agent.get(format!("{}{path}", self.base)).call().ok()?;
        let _ = answer.body_mut().read_to_vec();
        Some(answer.status().as_u16())
    }

    /// Times `GET …/stats?window=24h` (the dashboard's widest query) on the first
    /// webhook, `calls` times one after another; answers (p50, p99) in milliseconds.
    pub fn time_stats(&self, calls: usize) -> (f64, f64) {
        let mut list = self
            .agent
            .get(format!("{}/api/hooks/webhooks", self.base))
            .header("Authorization", format!("Bearer {USER_TOKEN}"))
            .call()
            .expect("list webhooks");
        let text = list.body_mut().read_to_string().unwrap_or_default();
        let hooks: serde_json::Value = serde_json::from_str(&text).expect("webhook list JSON");
        let id = hooks[0]["id"].as_str().expect("a webhook id").to_owned();
        let url = format!("{}/api/hooks/webhooks/{id}/stats?window=24h", self.base);
        let mut took: Vec<u64> = (0..calls)
            .map(|_| {
                let started = Instant::now();
                let mut answer = self
                    .agent
                    .get(&url)
                    .header("Authorization", format!("Bearer {USER_TOKEN}"))
                    .call()
                    .expect("stats request");
                let _ = answer.body_mut().read_to_vec();
                assert_eq!(answer.status().as_u16(), 200, "stats answered");
                u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX)
            })
            .collect();
        took.sort_unstable();
        (percentile_ms(&took, 50.0), percentile_ms(&took, 99.0))
    }

    /// Prints the stats query's cost next to how much the store holds.
    pub fn print_stats_cost(&self, deliveries_in_store: usize) {
        let (p50, p99) = self.time_stats(200);
        println!(
            "stats query       GET …/stats?window=24h p50 {p50:.2} ms   p99 {p99:.2} ms \
             (200 calls; {deliveries_in_store} deliveries in the store)"
        );
    }

    /// Creates `n` webhooks of the bench user, subscribed to everything, pointing at
    /// `http://<receiver>/h/<k>`.
    pub fn create_webhooks(&self, n: usize, receiver: SocketAddr, secret: bool) {
        for k in 0..n {
            let secret_field = if secret {
                format!(",\"secret\":\"bench-secret-{k}\"")
            } else {
                String::new()
            };
            let body = format!(
                "{{\"name\":\"bench {k}\",\"url\":\"http://{receiver}/h/{k}\",\"eventTypes\":[\"*\"]{secret_field}}}"
            );
            let mut answer = self
                .agent
                .post(format!("{}/api/hooks/webhooks", self.base))
                .header("Authorization", format!("Bearer {USER_TOKEN}"))
                .header("Content-Type", "application/json")
                .send(body.as_bytes())
                .expect("create a webhook: request failed");
            let text = answer.body_mut().read_to_string().unwrap_or_default();
            assert_eq!(answer.status().as_u16(), 201, "create a webhook: {text}");
        }
    }
}

/// A keep-alive agent. Deliberately no global timeout: with one, ureq 3 resolves the
/// host on a freshly spawned thread for every request (even on a pooled connection),
/// which would charge the driver a thread spawn per event.
pub fn agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(timeout))
        .timeout_recv_response(Some(timeout))
        .build();
    ureq::Agent::new_with_config(config)
}
