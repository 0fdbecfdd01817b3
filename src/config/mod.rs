//! hookd's configuration: the types the rest of hookd reads, their defaults, and loading.
//!
//! The module is split by concern:
//! * this file: the validated [`Config`] types, [`Config::load`] / [`Config::from_toml_str`]
//!   and the error types;
//! * [`keys`]: every key of the file, written once with its default and meaning;
//! * `check.rs`: the TOML walker that reports *all* problems at once, each with the dotted
//!   path of the offending key (`delivery.timeout`, `tokens[2].sha256`,
//!   `delivery.retry_schedule[1]`, `limits.bogus`) and a "did you mean" hint;
//! * `values.rs`: the checkers of single values (ranges, types, addresses, networks, tokens);
//! * `duration.rs`: the strict duration grammar (`"500ms"`, `"10s"`, `"1m"`, `"2h"`, `"5d"`).
//!
//! An empty file yields [`Config::default`], which is exactly what the checker builds
//! from the defaults written in [`keys`].
//!
//! # Invariants of a validated [`Config`]
//!
//! Every `Config` returned by [`Config::load`] or [`Config::from_toml_str`]
//! satisfies all of the following, so the rest of hookd can rely on them
//! without re-checking:
//!
//! * `data_dir` is non-empty and contains no NUL byte. A relative path stays
//!   relative; the caller resolves it against the working directory.
//! * `delivery.timeout` is in `(0, 1h]`.
//! * `delivery.retry_schedule` has between 1 and [`MAX_RETRY_ATTEMPTS`]
//!   entries; entry `i` is the delay before attempt `i + 1`, so its length is
//!   the maximum number of attempts. Entries may be zero.
//! * `delivery.workers` is in `1..=`[`MAX_WORKERS`] and
//!   `delivery.max_in_flight_per_webhook` is in `1..=workers`.
//! * `delivery.disable_after` and `retention.events` are greater than zero.
//! * `delivery.proxy`, when set, has a non-empty host (a host name or an IP literal) and
//!   a port from 1 to 65535, and nothing else: no credentials, path or query.
//! * Every duration is a whole number of milliseconds and at most
//!   [`MAX_DURATION`] (36500 days), so adding one to a timestamp or converting
//!   it to `u64` milliseconds or `i64` nanoseconds cannot overflow.
//! * `notifications.url`, when set, passes the destination rules of `[delivery]`
//!   ([`crate::delivery::destination::check_url`]); `notifications.secret`, when set, is
//!   1 to 256 bytes.
//! * `limits.max_webhooks_per_user >= 1`,
//!   `limits.events_per_minute_per_webhook >= 1` and
//!   `limits.max_payload_bytes` is in
//!   [`MIN_PAYLOAD_BYTES`]`..=`[`MAX_PAYLOAD_BYTES`] (1 KiB to 64 MiB).
//! * Every token has a `user` of 1 to [`MAX_USER_LEN`] characters from
//!   `[A-Za-z0-9._:@-]`, a known [`Role`], and a sha256 that no other token
//!   has. Only hashes are stored; plaintext tokens never appear in the config.
//!
//! Nothing in this module panics on any input.

mod check;
mod duration;
pub mod keys;
#[cfg(test)]
mod tests;
mod values;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use ipnet::IpNet;

use crate::auth::TokenConfig;
pub use duration::{DurationError, DurationProblem, MAX_DURATION, format_duration, parse_duration};
pub use values::{NetworkError, parse_network};

/// Name of the database file inside `data_dir`.
pub const DB_FILE_NAME: &str = "hookd.redb";
/// Upper bound for `delivery.timeout`.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60 * 60);
/// Upper bound for the number of entries in `delivery.retry_schedule`.
pub const MAX_RETRY_ATTEMPTS: usize = 100;
/// Upper bound for `delivery.workers`.
pub const MAX_WORKERS: usize = 4096;
/// Lower bound for `limits.max_payload_bytes` (1 KiB).
pub const MIN_PAYLOAD_BYTES: usize = 1024;
/// Upper bound for `limits.max_payload_bytes` (64 MiB).
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024 * 1024;

/// The whole validated configuration. See the module docs for its invariants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Address the HTTP API listens on.
    pub listen: SocketAddr,
    /// Directory holding `hookd.redb`; created if missing. May be relative.
    pub data_dir: PathBuf,
    /// How log lines on stderr are written.
    pub log_format: LogFormat,
    pub delivery: DeliveryConfig,
    pub limits: LimitsConfig,
    pub retention: RetentionConfig,
    pub store: StoreConfig,
    pub cluster: ClusterConfig,
    pub notifications: NotificationsConfig,
    /// API bearer tokens (hashes only).
    pub tokens: Vec<TokenConfig>,
}

/// `[delivery]`: how webhook deliveries are attempted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// One attempt: connect + send + response headers. In `(0, 1h]`.
    pub timeout: Duration,
    /// Delay before attempt 1..N; its length is the maximum number of attempts.
    pub retry_schedule: Vec<Duration>,
    /// Concurrent attempts in total.
    pub workers: usize,
    /// Concurrent attempts for one webhook; at most `workers`.
    pub max_in_flight_per_webhook: usize,
    /// Allow plain `http://` target URLs.
    pub allow_http: bool,
    /// Allow targets resolving to loopback / private / link-local addresses.
    pub allow_private_networks: bool,
    /// Exceptions to the destination guard: addresses in these networks are allowed
    /// even when they are private (e.g. an internal receiver at 10.1.2.3).
    pub allowed_networks: Vec<IpNet>,
    /// A webhook failing this long with no success is disabled.
    pub disable_after: Duration,
    /// The forward proxy every delivery goes through; `None` connects directly.
    pub proxy: Option<EgressProxy>,
}

/// `delivery.proxy`: an HTTP forward proxy at `http://host:port`.
///
/// `host` is a host name or an IP literal (an IPv6 one in brackets, as in the URL). It is
/// the operator's choice, so unlike webhook destinations it is not checked against the
/// destination guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressProxy {
    pub host: String,
    pub port: u16,
}

impl fmt::Display for EgressProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

/// `[limits]`: per-user and per-webhook quotas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitsConfig {
    pub max_webhooks_per_user: usize,
    pub events_per_minute_per_webhook: u32,
    pub max_payload_bytes: usize,
}

/// `[retention]`: how long delivered data is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Events older than this are deleted.
    pub events: Duration,
}

/// `[store]`: the storage failure model's knobs (docs/operations.md, "When the disk
/// fills or fails").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// Free bytes kept for outcomes, cancels and deletes: below it new events get 503.
    pub min_free_space: u64,
    /// How long the store may be unable to commit before the watchdog pings stop.
    pub max_unavailable: Duration,
    /// Where hookd keeps its data.
    pub backend: Backend,
    /// The PostgreSQL connection URL (`HOOKD_POSTGRES_URL` overrides the file's, see
    /// [`Config::load`]). Required with [`Backend::Postgres`]; may hold a password, so it
    /// is never logged or echoed.
    pub postgres_url: Option<String>,
    /// Connections to PostgreSQL this node keeps.
    pub pool_size: usize,
}

/// `store.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// One redb file in `data_dir` (the default).
    #[default]
    Redb,
    /// A PostgreSQL database that any number of hookd nodes may share.
    Postgres,
}

/// `[cluster]`: this node among others sharing one PostgreSQL store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// This node's name in leases; `None`: the host name and a random suffix, drawn at
    /// each start ([`ClusterConfig::node_name`]).
    pub node_id: Option<String>,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
}

/// `[notifications]`: where hookd tells operators that a webhook became failing, was
/// disabled by hookd, or recovered (`crate::notify`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotificationsConfig {
    /// Passes the destination rules of `[delivery]` (scheme, literal addresses) as a
    /// webhook URL does. `None`: notifications are recorded but not sent.
    pub url: Option<String>,
    /// Signs each notification with the Standard Webhooks headers.
    pub secret: Option<NotificationSecret>,
}

/// The notifications secret: never shown by `Debug`, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct NotificationSecret(String);

impl NotificationSecret {
    pub fn new(secret: String) -> NotificationSecret {
        NotificationSecret(secret)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NotificationSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NotificationSecret(<redacted>)")
    }
}

/// The environment variable that overrides `store.postgres_url`, so that the password
/// can live in a systemd credential or `EnvironmentFile` rather than the world-readable
/// config file.
pub const POSTGRES_URL_ENV: &str = "HOOKD_POSTGRES_URL";
/// The largest `store.pool_size`: PostgreSQL's own default `max_connections` is 100.
pub const MAX_POOL_SIZE: usize = 1000;
/// `cluster.lease` bounds: renewed every third of it, so at least a second; a dead
/// node's webhooks wait that long, so at most ten minutes.
pub const MIN_LEASE: Duration = Duration::from_secs(1);
pub const MAX_LEASE: Duration = Duration::from_secs(600);

impl ClusterConfig {
    /// This node's name: `node_id`, or the host name and a random suffix (a restarted
    /// node is then a new node; its old leases expire or were handed back at stop).
    pub fn node_name(&self) -> String {
        if let Some(id) = &self.node_id {
            return id.clone();
        }
        let host = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        let mut suffix = [0u8; 3];
        // Without randomness the host name alone still names the node; two nodes on one
        // host then need node_id set, as the docs say.
        let _ = getrandom::fill(&mut suffix);
        format!("{host}-{}", hex::encode(suffix))
    }
}

/// `log_format`: human-readable lines, or one JSON object per line for log shippers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Everything wrong with a config file, collected in one pass.
///
/// The problems are the error's content, not lost causes: an unreadable file's I/O
/// error is in its problem's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.path.as_deref(), .problems))]
pub struct ConfigError {
    /// The file the problems were found in; `None` for [`Config::from_toml_str`].
    pub path: Option<PathBuf>,
    /// Never empty when returned by this module.
    pub problems: Vec<Problem>,
}

/// One problem with one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted path of the key, e.g. `delivery.timeout` or `tokens[2].sha256`;
    /// empty for problems with the file as a whole (unreadable, bad syntax).
    pub key: String,
    pub message: String,
}

/// Built once: the checker's result for an empty file.
static DEFAULT: LazyLock<Config> = LazyLock::new(check::defaults);

impl Default for Config {
    /// Every key at the default written in [`keys`].
    fn default() -> Self {
        DEFAULT.clone()
    }
}

impl Config {
    /// Settings that are valid but likely not what was meant, each with its reason.
    /// `check-config` prints them and `serve` logs them at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let schedule: Duration = self.delivery.retry_schedule.iter().sum();
        if schedule >= self.retention.events {
            warnings.push(format!(
                "delivery.retry_schedule spans {} in all, not less than retention.events ({}): \
                 events whose deliveries are still being retried are kept past their \
                 retention until those deliveries end",
                format_duration(schedule),
                format_duration(self.retention.events)
            ));
        }
        match (&self.notifications.url, &self.notifications.secret) {
            (Some(_), None) => warnings.push(
                "notifications.url is set without notifications.secret: notifications are sent \
                 unsigned, so their receiver cannot tell them from forged ones"
                    .to_owned(),
            ),
            (None, Some(_)) => warnings.push(
                "notifications.secret is set but notifications.url is not: no notification is sent"
                    .to_owned(),
            ),
            _ => {}
        }
        warnings
    }

    /// Reads, parses and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(err) => {
                let message = if err.kind() == io::ErrorKind::NotFound {
                    format!("config file \"{}\" does not exist", path.display())
                } else {
                    format!("cannot read config file \"{}\": {err}", path.display())
                };
                return Err(ConfigError {
                    path: Some(path.to_path_buf()),
                    problems: vec![Problem {
                        key: String::new(),
                        message,
                    }],
                });
            }
        };
        let env_url = std::env::var(POSTGRES_URL_ENV)
            .ok()
            .filter(|u| !u.is_empty());
        check::check(&text, env_url).map_err(|problems| ConfigError {
            path: Some(path.to_path_buf()),
            problems,
        })
    }

    /// Parses and validates config text, collecting every problem (the environment is
    /// not read: see [`Config::load`]).
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        check::check(text, None).map_err(|problems| ConfigError {
            path: None,
            problems,
        })
    }

    /// Path of the database file: `data_dir/hookd.redb`.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(DB_FILE_NAME)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

/// One problem per line: `<path>: <key>: <message>`; the path is left out when unknown
/// and the key when empty.
fn render(path: Option<&Path>, problems: &[Problem]) -> String {
    if problems.is_empty() {
        return "invalid configuration".to_owned();
    }
    let lines: Vec<String> = problems
        .iter()
        .map(|problem| match path {
            Some(path) => format!("{}: {problem}", path.display()),
            None => problem.to_string(),
        })
        .collect();
    lines.join("\n")
}
