//! The config file the bench writes for hookd: loopback listen address (port 0, learned
//! from the log), http and private destinations allowed (the receiver is on 127.0.0.1),
//! the scenario's retry schedule, the rate limit out of the way (the bench measures the
//! engine, not the limiter), the bench's two tokens, and with `--postgres` the
//! `[store]` and `[cluster]` tables of one node.

use std::fmt::Write as _;
use std::path::Path;

use hookd::auth::token_sha256_hex;

use crate::{Args, NO_RATE_LIMIT, PUBLISHER, PUBLISHER_TOKEN, USER, USER_TOKEN};

/// What a scenario sets in hookd's config.
pub struct HookdSettings {
    pub webhooks: usize,
    pub retry_schedule: Vec<String>,
}

impl HookdSettings {
    pub fn new(webhooks: usize, retry_schedule: &[&str]) -> HookdSettings {
        HookdSettings {
            webhooks,
            retry_schedule: retry_schedule.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The config file of one node. `postgres`: the database URL and the node's number,
    /// for `[store] backend = "postgres"` and `[cluster] node_id = "bench-<i>"`; `None`
    /// keeps the redb store in `data_dir`.
    pub fn toml(&self, data_dir: &Path, args: &Args, postgres: Option<(&str, usize)>) -> String {
        let schedule: Vec<String> = self
            .retry_schedule
            .iter()
            .map(|d| format!("\"{d}\""))
            .collect();
        let mut delivery = format!(
            "allow_http = true\nallow_private_networks = true\nretry_schedule = [{}]\n",
            schedule.join(", ")
        );
        if let Some(w) = args.workers {
            let _ = writeln!(delivery, "workers = {w}");
        }
        if let Some(m) = args.max_in_flight {
            let _ = writeln!(delivery, "max_in_flight_per_webhook = {m}");
        }
        let mut text = format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\n\n[delivery]\n{delivery}\n\
             [limits]\nmax_webhooks_per_user = {}\nevents_per_minute_per_webhook = {NO_RATE_LIMIT}\n\n\
             [[tokens]]\nuser = \"{USER}\"\nrole = \"user\"\nsha256 = \"{}\"\n\n\
             [[tokens]]\nuser = \"{PUBLISHER}\"\nrole = \"publisher\"\nsha256 = \"{}\"\n",
            data_dir.display(),
            self.webhooks.max(10),
            token_sha256_hex(USER_TOKEN),
            token_sha256_hex(PUBLISHER_TOKEN),
        );
        if let Some((url, node)) = postgres {
            // Appended after the [[tokens]] array: a new table header ends it.
            let _ = write!(
                text,
                "\n[store]\nbackend = \"postgres\"\npostgres_url = {}\n\n\
                 [cluster]\nnode_id = \"bench-{node}\"\n",
                toml_string(url)
            );
        }
        text
    }
}

/// `s` as a TOML basic string (quotes and backslashes escaped).
fn toml_string(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for c in s.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(quoted, "\\u{:04X}", u32::from(c));
            }
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::HookdSettings;
    use crate::Args;

    #[test]
    fn postgres_nodes_get_the_store_and_cluster_tables() {
        let args = Args::parse_from(["bench"]);
        let settings = HookdSettings::new(10, &["0s"]);
        let url = r#"postgres://u@127.0.0.1:5432/bench_1_0?options=-c"x"\y"#;
        let text = settings.toml(Path::new("/tmp/d"), &args, Some((url, 2)));
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["store"]["backend"].as_str(), Some("postgres"));
        assert_eq!(table["store"]["postgres_url"].as_str(), Some(url));
        assert_eq!(table["cluster"]["node_id"].as_str(), Some("bench-2"));
        assert_eq!(table["tokens"].as_array().map(Vec::len), Some(2));

        let redb: toml::Table = settings
            .toml(Path::new("/tmp/d"), &args, None)
            .parse()
            .unwrap();
        assert!(!redb.contains_key("store") && !redb.contains_key("cluster"));
    }
}
