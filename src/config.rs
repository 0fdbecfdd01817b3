//! Loading and validating hookd's configuration.
//!
//! This module owns the single TOML file hookd reads at startup: reading it,
//! parsing it, applying defaults for every key that is absent, and checking
//! every value. [`Config::from_toml_str`] walks the parsed TOML table by hand
//! so that it can report *all* problems at once, each with the dotted path of
//! the offending key (`delivery.timeout`, `tokens[2].sha256`,
//! `delivery.retry_schedule[1]`, `limits.bogus`), instead of stopping at the
//! first one. An empty file yields [`Config::default`].
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
//! * Every duration is a whole number of milliseconds and at most
//!   [`MAX_DURATION`] (36500 days), so adding one to a timestamp or converting
//!   it to `u64` milliseconds or `i64` nanoseconds cannot overflow.
//! * `limits.max_webhooks_per_user >= 1`,
//!   `limits.events_per_minute_per_webhook >= 1` and
//!   `limits.max_payload_bytes` is in
//!   [`MIN_PAYLOAD_BYTES`]`..=`[`MAX_PAYLOAD_BYTES`] (1 KiB to 64 MiB).
//! * Every token has a `user` of 1 to [`MAX_USER_LEN`] characters from
//!   `[A-Za-z0-9._:@-]`, a known [`Role`], and a sha256 that no other token
//!   has. Only hashes are stored; plaintext tokens never appear in the config.
//!
//! Nothing in this module panics on any input.

use crate::delivery::destination::Cidr;
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use toml::{Table, Value};

/// Name of the database file inside `data_dir`.
pub const DB_FILE_NAME: &str = "hookd.redb";
/// Default API listen address.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 8080);
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/hookd";
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
/// Maximum length of a token's `user`.
pub const MAX_USER_LEN: usize = 128;
/// Largest duration [`parse_duration`] accepts: 36500 days (about 100 years).
pub const MAX_DURATION: Duration = Duration::from_secs(36_500 * 86_400);

/// How durations are written, for error messages.
const DURATION_FORMS: &str = "a whole number followed by one unit: ms, s, m, h or d \
     (e.g. \"500ms\", \"10s\", \"1m\", \"2h\", \"5d\")";

const TOP_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "log_format",
    "delivery",
    "limits",
    "retention",
    "tokens",
];
const DELIVERY_KEYS: &[&str] = &[
    "timeout",
    "retry_schedule",
    "workers",
    "max_in_flight_per_webhook",
    "allow_http",
    "allow_private_networks",
    "allowed_networks",
    "disable_after",
];
const LIMITS_KEYS: &[&str] = &[
    "max_webhooks_per_user",
    "events_per_minute_per_webhook",
    "max_payload_bytes",
];
const RETENTION_KEYS: &[&str] = &["events"];
const TOKEN_KEYS: &[&str] = &["user", "role", "sha256"];

/// Every table and the keys it accepts; used to say where a misplaced key belongs.
const SECTIONS: &[(&str, &[&str])] = &[
    ("", TOP_KEYS),
    ("delivery", DELIVERY_KEYS),
    ("limits", LIMITS_KEYS),
    ("retention", RETENTION_KEYS),
    ("tokens", TOKEN_KEYS),
];

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
    pub allowed_networks: Vec<Cidr>,
    /// A webhook failing this long with no success is disabled.
    pub disable_after: Duration,
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

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Manages their own webhooks.
    User,
    /// Publishes events.
    Publisher,
    /// Operations: online backups.
    Admin,
}

/// One `[[tokens]]` entry. Its `Debug` output shows only a prefix of the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenConfig {
    pub user: String,
    pub role: Role,
    /// sha256 of the token string.
    pub sha256: [u8; 32],
}

/// Everything wrong with a config file, collected in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
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

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: DEFAULT_LISTEN,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            log_format: LogFormat::Text,
            delivery: DeliveryConfig::default(),
            limits: LimitsConfig::default(),
            retention: RetentionConfig::default(),
            tokens: Vec::new(),
        }
    }
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            timeout: Duration::from_secs(10),
            retry_schedule: [0, 60, 5 * 60, 30 * 60, 2 * 60 * 60]
                .into_iter()
                .map(Duration::from_secs)
                .collect(),
            workers: 64,
            max_in_flight_per_webhook: 8,
            allow_http: false,
            allow_private_networks: false,
            allowed_networks: Vec::new(),
            disable_after: Duration::from_secs(5 * 86_400),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_webhooks_per_user: 10,
            events_per_minute_per_webhook: 100,
            max_payload_bytes: 256 * 1024,
        }
    }
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            events: Duration::from_secs(30 * 86_400),
        }
    }
}

impl Config {
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
        Self::from_toml_str(&text).map_err(|mut err| {
            err.path = Some(path.to_path_buf());
            err
        })
    }

    /// Parses and validates config text, collecting every problem.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigError> {
        let root = match toml::from_str::<Table>(text) {
            Ok(root) => root,
            Err(err) => {
                return Err(ConfigError {
                    path: None,
                    problems: vec![syntax_problem(text, &err)],
                });
            }
        };
        let mut checker = Checker::default();
        let config = checker.config(&root);
        if checker.problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError {
                path: None,
                problems: checker.problems,
            })
        }
    }

    /// Path of the database file: `data_dir/hookd.redb`.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join(DB_FILE_NAME)
    }
}

impl Role {
    /// The name used in the config file.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Publisher => "publisher",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        const ACCEPTED: &str = "accepted roles: \"user\", \"publisher\", \"admin\"";
        match s {
            "user" => Ok(Role::User),
            "publisher" => Ok(Role::Publisher),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}; {ACCEPTED}")),
        }
    }
}

impl fmt::Debug for TokenConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = hex::encode(&self.sha256[..4]);
        f.debug_struct("TokenConfig")
            .field("user", &self.user)
            .field("role", &self.role)
            .field("sha256", &format_args!("{prefix}…"))
            .finish()
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

impl fmt::Display for ConfigError {
    /// One problem per line: `<path>: <key>: <message>`; the path is left out
    /// when unknown and the key when empty.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.problems.is_empty() {
            return f.write_str("invalid configuration");
        }
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if let Some(path) = &self.path {
                write!(f, "{}: ", path.display())?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Parses a duration written as a whole number followed by one unit:
/// `ms`, `s`, `m`, `h` or `d` (e.g. `"500ms"`, `"10s"`, `"1m"`, `"2h"`, `"5d"`).
///
/// Rejects empty input, whitespace anywhere, signs, fractions, a missing or
/// unknown unit, combined units (`"1h30m"`) and values above
/// [`MAX_DURATION`]. The error message quotes the bad value and lists the
/// accepted forms.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let fail = |why: &str| -> Result<Duration, String> {
        Err(format!(
            "invalid duration {s:?}: {why}; expected {DURATION_FORMS}"
        ))
    };
    if s.is_empty() {
        return fail("it is empty");
    }
    if s.chars().any(char::is_whitespace) {
        return fail("whitespace is not allowed");
    }
    if s.starts_with('-') {
        return fail("negative durations are not allowed");
    }
    let digits_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits_end);
    if number.is_empty() {
        return fail("it must start with a whole number");
    }
    if unit.starts_with(['.', ',']) {
        return fail(
            "fractional values are not allowed (use a smaller unit, e.g. \"1500ms\" instead of \"1.5s\")",
        );
    }
    if unit.is_empty() {
        return fail("the unit is missing");
    }
    let Ok(n) = number.parse::<u64>() else {
        return fail("the number is too large");
    };
    let duration = match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(60 * 60).map(Duration::from_secs),
        "d" => n.checked_mul(24 * 60 * 60).map(Duration::from_secs),
        _ if unit.contains(|c: char| c.is_ascii_digit()) => {
            return fail("only one number and one unit are allowed (e.g. \"90m\", not \"1h30m\")");
        }
        _ if ["ms", "s", "m", "h", "d"].contains(&unit.to_ascii_lowercase().as_str()) => {
            return fail(&format!("unknown unit {unit:?} (units are lowercase)"));
        }
        _ => return fail(&format!("unknown unit {unit:?}")),
    };
    match duration {
        Some(d) if d <= MAX_DURATION => Ok(d),
        _ => fail("it is too large (the maximum is \"36500d\", about 100 years)"),
    }
}

/// Formats a duration in the largest unit that represents it exactly, the
/// inverse of [`parse_duration`]: `"0s"`, `"500ms"`, `"90s"`, `"1m"`, `"5d"`.
///
/// Durations with sub-millisecond precision (which [`parse_duration`] never
/// produces) are written in nanoseconds, e.g. `"1500ns"`; those do not parse
/// back.
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if !d.subsec_nanos().is_multiple_of(1_000_000) {
        return format!("{}ns", d.as_nanos());
    }
    let ms = d.as_millis();
    for (unit, per) in [
        ("d", 86_400_000u128),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(per) {
            return format!("{}{unit}", ms / per);
        }
    }
    format!("{ms}ms")
}

/// Lowercase hex sha256 of the token string, as stored in `[[tokens]].sha256`.
pub fn token_sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Turns a TOML parse error into one problem with a one-line message. The
/// offending source line is deliberately not quoted: it could hold a secret.
fn syntax_problem(text: &str, err: &toml::de::Error) -> Problem {
    let detail = err
        .message()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let message = match err.span() {
        Some(span) => {
            let (line, column) = line_column(text, span.start);
            format!("TOML syntax error at line {line}, column {column}: {detail}")
        }
        None => format!("TOML syntax error: {detail}"),
    };
    Problem {
        key: String::new(),
        message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = match text.get(line_start..offset) {
        Some(s) => s.chars().count() + 1,
        None => offset - line_start + 1,
    };
    (line, column)
}

/// Appends `key` to a dotted path, quoting it unless it is a bare TOML key.
fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

/// Levenshtein distance, for "did you mean" hints.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = Vec::with_capacity(b.len() + 1);
        cur.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            let delete = prev[j + 1] + 1;
            let insert = cur[j] + 1;
            cur.push(substitute.min(delete).min(insert));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The accepted key closest to `key`, if it is plausibly a typo of it.
fn suggestion<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    if key.chars().count() > 64 {
        return None;
    }
    let key = key.to_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Where a key that is misplaced in `section` belongs, if it is known elsewhere.
fn home_of(key: &str, section: &str) -> Option<String> {
    SECTIONS
        .iter()
        .find(|(name, keys)| *name != section && keys.contains(&key))
        .map(|(name, _)| match *name {
            "" => "at the top level, before any [section]".to_owned(),
            "tokens" => "in a [[tokens]] entry".to_owned(),
            name => format!("in [{name}]"),
        })
}

/// Describes a wrong value type, with a hint when a scalar was quoted.
fn found(value: &Value) -> String {
    match value {
        Value::String(s) if s == "true" || s == "false" => {
            format!("string (write {s} without quotes)")
        }
        Value::String(s) if !s.is_empty() && s.chars().all(|c| c.is_ascii_digit()) => {
            format!("string (write {s} without quotes)")
        }
        other => other.type_str().to_owned(),
    }
}

fn duration_value(value: &Value, example: &str) -> Result<Duration, String> {
    match value {
        Value::String(s) => parse_duration(s),
        other => Err(format!(
            "expected a string like \"{example}\", found {}",
            other.type_str()
        )),
    }
}

fn positive_duration(
    value: &Value,
    example: &str,
    max: Option<Duration>,
) -> Result<Duration, String> {
    let d = duration_value(value, example)?;
    if d.is_zero() {
        return Err(format!(
            "must be greater than 0, found \"{}\"",
            format_duration(d)
        ));
    }
    match max {
        Some(max) if d > max => Err(format!(
            "must be at most \"{}\", found \"{}\"",
            format_duration(max),
            format_duration(d)
        )),
        _ => Ok(d),
    }
}

fn integer_in(value: &Value, min: i64, max: Option<i64>) -> Result<i64, String> {
    let Value::Integer(i) = value else {
        return Err(format!("expected an integer, found {}", found(value)));
    };
    let i = *i;
    match max {
        Some(max) if i < min || i > max => {
            Err(format!("must be between {min} and {max}, found {i}"))
        }
        None if i < min => Err(format!("must be at least {min}, found {i}")),
        _ => Ok(i),
    }
}

fn usize_in(value: &Value, min: usize, max: Option<usize>) -> Result<usize, String> {
    let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let i = integer_in(value, to_i64(min), max.map(to_i64))?;
    usize::try_from(i).map_err(|_| format!("{i} is too large for this platform"))
}

/// `log_format`: human-readable lines, or one JSON object per line for log shippers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

fn log_format(value: &Value) -> Result<LogFormat, String> {
    match value {
        Value::String(s) if s == "text" => Ok(LogFormat::Text),
        Value::String(s) if s == "json" => Ok(LogFormat::Json),
        Value::String(s) => Err(format!("expected \"text\" or \"json\", found {s:?}")),
        other => Err(format!(
            "expected \"text\" or \"json\", found {}",
            found(other)
        )),
    }
}

fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Boolean(b) => Ok(*b),
        other => Err(format!(
            "expected a boolean (true or false), found {}",
            found(other)
        )),
    }
}

fn socket_addr(value: &Value) -> Result<SocketAddr, String> {
    let Value::String(s) = value else {
        return Err(format!(
            "expected a string like \"127.0.0.1:8080\", found {}",
            value.type_str()
        ));
    };
    s.parse::<SocketAddr>().map_err(|_| {
        format!(
            "invalid address {s:?}: expected IP:PORT, e.g. \"127.0.0.1:8080\", \
             \"0.0.0.0:8080\" or \"[::1]:8080\" (host names are not accepted)"
        )
    })
}

fn data_dir(value: &Value) -> Result<PathBuf, String> {
    match value {
        Value::String(s) if s.is_empty() => Err("must not be empty".to_owned()),
        Value::String(s) if s.contains('\0') => Err("must not contain a NUL character".to_owned()),
        Value::String(s) => Ok(PathBuf::from(s)),
        other => Err(format!(
            "expected a string (a directory path) like \"/var/lib/hookd\", found {}",
            other.type_str()
        )),
    }
}

fn user(value: &Value) -> Result<String, String> {
    let Value::String(s) = value else {
        return Err(format!(
            "expected a string like \"user-123\", found {}",
            value.type_str()
        ));
    };
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    let len = s.chars().count();
    if len > MAX_USER_LEN {
        return Err(format!(
            "is too long: {len} characters (at most {MAX_USER_LEN})"
        ));
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._:@-".contains(c);
    if let Some((pos, c)) = s.chars().enumerate().find(|(_, c)| !allowed(*c)) {
        return Err(format!(
            "invalid character {c:?} at position {} in {s:?}; allowed: letters A-Z a-z, \
             digits and . _ : @ -",
            pos + 1
        ));
    }
    Ok(s.clone())
}

fn role(value: &Value) -> Result<Role, String> {
    match value {
        Value::String(s) => s.parse(),
        other => Err(format!(
            "expected a string (\"user\" or \"publisher\"), found {}",
            other.type_str()
        )),
    }
}

/// Parses a stored token hash. The value itself is never echoed: a user who
/// pasted the plaintext token here must not see it repeated in logs.
fn sha256(value: &Value) -> Result<[u8; 32], String> {
    const HINT: &str = "expected the token's sha256 as 64 lowercase hex characters, \
         as printed by `hookd token new` (never the token itself)";
    let Value::String(s) = value else {
        return Err(format!("{HINT}; found {}", value.type_str()));
    };
    let len = s.chars().count();
    if len != 64 {
        return Err(format!("wrong length: {len} characters; {HINT}"));
    }
    if let Some(pos) = s.chars().position(|c| !c.is_ascii_hexdigit()) {
        return Err(format!("non-hex character at position {}; {HINT}", pos + 1));
    }
    if s.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(format!("uppercase hex is not accepted; {HINT}"));
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| HINT.to_owned())?;
    Ok(out)
}

/// Walks the parsed TOML, filling a [`Config`] and collecting problems.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn push(&mut self, key: String, message: impl Into<String>) {
        self.problems.push(Problem {
            key,
            message: message.into(),
        });
    }

    /// Reports every key of `table` (at `prefix`, a table of kind `section`)
    /// that is not in `known`.
    fn unknown_keys(&mut self, table: &Table, prefix: &str, section: &str, known: &[&str]) {
        for key in table.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let mut message = String::from("unknown key");
            if let Some(home) = home_of(key, section) {
                message.push_str(&format!(" (it belongs {home})"));
            } else if let Some(close) = suggestion(key, known) {
                message.push_str(&format!(" (did you mean \"{close}\"?)"));
            }
            message.push_str(&format!("; accepted keys here: {}", known.join(", ")));
            self.push(join_key(prefix, key), message);
        }
    }

    /// If `key` is present, converts it into `slot` or records a problem.
    /// Returns false if it was present and invalid.
    fn field<T>(
        &mut self,
        table: &Table,
        prefix: &str,
        key: &str,
        slot: &mut T,
        convert: impl FnOnce(&Value) -> Result<T, String>,
    ) -> bool {
        let Some(value) = table.get(key) else {
            return true;
        };
        match convert(value) {
            Ok(v) => {
                *slot = v;
                true
            }
            Err(message) => {
                self.push(join_key(prefix, key), message);
                false
            }
        }
    }

    /// Like [`Checker::field`] for a key without a default.
    fn required<T>(
        &mut self,
        table: &Table,
        prefix: &str,
        key: &str,
        what: &str,
        convert: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        let Some(value) = table.get(key) else {
            self.push(
                join_key(prefix, key),
                format!("missing required key (expected {what})"),
            );
            return None;
        };
        match convert(value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.push(join_key(prefix, key), message);
                None
            }
        }
    }

    fn section<'a>(&mut self, root: &'a Table, key: &str) -> Option<&'a Table> {
        match root.get(key)? {
            Value::Table(table) => Some(table),
            other => {
                self.push(
                    key.to_owned(),
                    format!("expected a table ([{key}]), found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn config(&mut self, root: &Table) -> Config {
        let mut config = Config::default();
        self.unknown_keys(root, "", "", TOP_KEYS);
        self.field(root, "", "listen", &mut config.listen, socket_addr);
        self.field(root, "", "data_dir", &mut config.data_dir, data_dir);
        self.field(root, "", "log_format", &mut config.log_format, log_format);
        if let Some(table) = self.section(root, "delivery") {
            self.delivery(table, &mut config.delivery);
        }
        if let Some(table) = self.section(root, "limits") {
            self.limits(table, &mut config.limits);
        }
        if let Some(table) = self.section(root, "retention") {
            self.retention(table, &mut config.retention);
        }
        if let Some(value) = root.get("tokens") {
            config.tokens = self.tokens(value);
        }
        config
    }

    fn delivery(&mut self, t: &Table, d: &mut DeliveryConfig) {
        const P: &str = "delivery";
        self.unknown_keys(t, P, P, DELIVERY_KEYS);
        self.field(t, P, "timeout", &mut d.timeout, |v| {
            positive_duration(v, "10s", Some(MAX_TIMEOUT))
        });
        if let Some(value) = t.get("retry_schedule") {
            self.retry_schedule(value, d);
        }
        let workers_ok = self.field(t, P, "workers", &mut d.workers, |v| {
            usize_in(v, 1, Some(MAX_WORKERS))
        });
        if t.contains_key("max_in_flight_per_webhook") {
            let ok = self.field(
                t,
                P,
                "max_in_flight_per_webhook",
                &mut d.max_in_flight_per_webhook,
                |v| usize_in(v, 1, Some(MAX_WORKERS)),
            );
            if ok && workers_ok && d.max_in_flight_per_webhook > d.workers {
                self.push(
                    join_key(P, "max_in_flight_per_webhook"),
                    format!(
                        "must not exceed delivery.workers ({}), found {}",
                        d.workers, d.max_in_flight_per_webhook
                    ),
                );
            }
        } else {
            // The default (8) shrinks to fit a smaller worker pool.
            d.max_in_flight_per_webhook = d.max_in_flight_per_webhook.min(d.workers);
        }
        self.field(t, P, "allow_http", &mut d.allow_http, boolean);
        self.field(
            t,
            P,
            "allow_private_networks",
            &mut d.allow_private_networks,
            boolean,
        );
        if let Some(value) = t.get("allowed_networks") {
            self.allowed_networks(value, d);
        }
        self.field(t, P, "disable_after", &mut d.disable_after, |v| {
            positive_duration(v, "5d", None)
        });
    }

    fn allowed_networks(&mut self, value: &Value, d: &mut DeliveryConfig) {
        let key = join_key("delivery", "allowed_networks");
        let Value::Array(items) = value else {
            self.push(
                key,
                format!(
                    "expected an array of CIDR networks like [\"10.1.0.0/16\", \"fd00::/8\"], found {}",
                    value.type_str()
                ),
            );
            return;
        };
        let mut networks = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let parsed = match item {
                Value::String(s) => s.parse::<Cidr>(),
                other => Err(format!(
                    "expected a CIDR string like \"10.1.0.0/16\", found {}",
                    other.type_str()
                )),
            };
            match parsed {
                Ok(net) => networks.push(net),
                Err(message) => self.push(format!("{key}[{i}]"), message),
            }
        }
        d.allowed_networks = networks;
    }

    fn retry_schedule(&mut self, value: &Value, d: &mut DeliveryConfig) {
        let key = join_key("delivery", "retry_schedule");
        let Value::Array(items) = value else {
            self.push(
                key,
                format!(
                    "expected an array of durations like [\"0s\", \"1m\", \"5m\"], found {}",
                    value.type_str()
                ),
            );
            return;
        };
        let mut ok = true;
        if items.is_empty() {
            ok = false;
            self.push(
                key.clone(),
                "must not be empty: it needs at least one entry, the delay before the \
                 first attempt (usually \"0s\")",
            );
        } else if items.len() > MAX_RETRY_ATTEMPTS {
            ok = false;
            self.push(
                key.clone(),
                format!(
                    "has {} entries; at most {MAX_RETRY_ATTEMPTS} (one per delivery attempt) \
                     are allowed",
                    items.len()
                ),
            );
        }
        let mut schedule = Vec::with_capacity(items.len().min(MAX_RETRY_ATTEMPTS));
        for (i, item) in items.iter().enumerate() {
            match duration_value(item, "1m") {
                Ok(delay) => schedule.push(delay),
                Err(message) => {
                    ok = false;
                    self.push(format!("{key}[{i}]"), message);
                }
            }
        }
        if ok {
            d.retry_schedule = schedule;
        }
    }

    fn limits(&mut self, t: &Table, l: &mut LimitsConfig) {
        const P: &str = "limits";
        self.unknown_keys(t, P, P, LIMITS_KEYS);
        self.field(
            t,
            P,
            "max_webhooks_per_user",
            &mut l.max_webhooks_per_user,
            |v| usize_in(v, 1, None),
        );
        self.field(
            t,
            P,
            "events_per_minute_per_webhook",
            &mut l.events_per_minute_per_webhook,
            |v| {
                let n = integer_in(v, 1, Some(i64::from(u32::MAX)))?;
                u32::try_from(n).map_err(|_| format!("{n} is out of range"))
            },
        );
        self.field(t, P, "max_payload_bytes", &mut l.max_payload_bytes, |v| {
            usize_in(v, MIN_PAYLOAD_BYTES, Some(MAX_PAYLOAD_BYTES))
                .map_err(|m| format!("{m} (bytes: 1 KiB to 64 MiB)"))
        });
    }

    fn retention(&mut self, t: &Table, r: &mut RetentionConfig) {
        const P: &str = "retention";
        self.unknown_keys(t, P, P, RETENTION_KEYS);
        self.field(t, P, "events", &mut r.events, |v| {
            positive_duration(v, "30d", None)
        });
    }

    fn tokens(&mut self, value: &Value) -> Vec<TokenConfig> {
        let items = match value {
            Value::Array(items) => items,
            Value::Table(_) => {
                self.push(
                    "tokens".to_owned(),
                    "expected an array of tables: write each token as a [[tokens]] block \
                     (double brackets), not [tokens]",
                );
                return Vec::new();
            }
            other => {
                self.push(
                    "tokens".to_owned(),
                    format!(
                        "expected an array of tables ([[tokens]] blocks), found {}",
                        other.type_str()
                    ),
                );
                return Vec::new();
            }
        };
        let mut tokens = Vec::new();
        let mut seen: HashMap<[u8; 32], usize> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("tokens[{i}]");
            let Value::Table(table) = item else {
                self.push(
                    prefix,
                    format!(
                        "expected a table with user, role and sha256 ([[tokens]] block), found {}",
                        item.type_str()
                    ),
                );
                continue;
            };
            let (hash, token) = self.token(table, &prefix);
            if let Some(hash) = hash {
                if let Some(first) = seen.get(&hash) {
                    self.push(
                        join_key(&prefix, "sha256"),
                        format!(
                            "duplicate token: the same sha256 as tokens[{first}]; every token \
                             must be different"
                        ),
                    );
                    continue;
                }
                seen.insert(hash, i);
            }
            tokens.extend(token);
        }
        tokens
    }

    /// Returns the hash (if valid, for duplicate detection) and the token (if
    /// entirely valid).
    fn token(&mut self, t: &Table, prefix: &str) -> (Option<[u8; 32]>, Option<TokenConfig>) {
        self.unknown_keys(t, prefix, "tokens", TOKEN_KEYS);
        let user = self.required(t, prefix, "user", "a user id like \"user-123\"", user);
        let role = self.required(t, prefix, "role", "\"user\" or \"publisher\"", role);
        let hash = self.required(
            t,
            prefix,
            "sha256",
            "64 lowercase hex characters from `hookd token new`",
            sha256,
        );
        let token = match (user, role, hash) {
            (Some(user), Some(role), Some(sha256)) => Some(TokenConfig { user, role, sha256 }),
            _ => None,
        };
        (hash, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV_TOKENS: [(&str, &str, Role); 4] = [
        ("user-123", "dev-user-token-NOT-FOR-PRODUCTION", Role::User),
        (
            "user-456",
            "dev-other-user-token-NOT-FOR-PRODUCTION",
            Role::User,
        ),
        (
            "openwork",
            "dev-publisher-token-NOT-FOR-PRODUCTION",
            Role::Publisher,
        ),
        ("ops", "dev-admin-token-NOT-FOR-PRODUCTION", Role::Admin),
    ];

    fn problems(text: &str) -> Vec<Problem> {
        match Config::from_toml_str(text) {
            Ok(config) => panic!("expected problems for {text:?}, got {config:?}"),
            Err(err) => {
                assert!(err.path.is_none());
                assert!(!err.problems.is_empty());
                err.problems
            }
        }
    }

    /// Asserts `text` has exactly one problem, at `key`, and returns its message.
    fn problem_at(text: &str, key: &str) -> String {
        let problems = problems(text);
        assert_eq!(problems.len(), 1, "{text:?} gave {problems:#?}");
        assert_eq!(problems[0].key, key, "{text:?} gave {problems:#?}");
        problems[0].message.clone()
    }

    fn ok(text: &str) -> Config {
        match Config::from_toml_str(text) {
            Ok(config) => config,
            Err(err) => panic!("expected {text:?} to be valid, got:\n{err}"),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn hash_line(token: &str) -> String {
        format!("sha256 = \"{}\"", token_sha256_hex(token))
    }

    fn token_block(user: &str, role: &str, token: &str) -> String {
        format!(
            "[[tokens]]\nuser = \"{user}\"\nrole = \"{role}\"\n{}\n",
            hash_line(token)
        )
    }

    fn manifest_path(relative: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
    }

    // ---- defaults -------------------------------------------------------

    #[test]
    fn empty_file_gives_defaults() {
        let config = ok("");
        assert_eq!(config, Config::default());
        assert_eq!(ok("# only a comment\n\n   \n"), Config::default());
        assert_eq!(ok("[delivery]\n[limits]\n[retention]\n"), Config::default());
    }

    #[test]
    fn default_values() {
        let c = Config::default();
        assert_eq!(c.listen, "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/hookd"));
        assert_eq!(c.db_path(), PathBuf::from("/var/lib/hookd/hookd.redb"));
        assert_eq!(c.delivery.timeout, secs(10));
        assert_eq!(
            c.delivery.retry_schedule,
            vec![secs(0), secs(60), secs(300), secs(1800), secs(7200)]
        );
        assert_eq!(c.delivery.workers, 64);
        assert_eq!(c.delivery.max_in_flight_per_webhook, 8);
        assert!(!c.delivery.allow_http);
        assert!(!c.delivery.allow_private_networks);
        assert_eq!(c.delivery.disable_after, secs(5 * 86_400));
        assert_eq!(c.limits.max_webhooks_per_user, 10);
        assert_eq!(c.limits.events_per_minute_per_webhook, 100);
        assert_eq!(c.limits.max_payload_bytes, 262_144);
        assert_eq!(c.retention.events, secs(30 * 86_400));
        assert!(c.tokens.is_empty());
    }

    // ---- full config ----------------------------------------------------

    #[test]
    fn full_valid_config() {
        let text = format!(
            r#"
listen = "[::1]:9090"
data_dir = "./data"

[delivery]
timeout = "1500ms"
retry_schedule = ["0s", "30s", "2m"]
workers = 16
max_in_flight_per_webhook = 16
allow_http = true
allow_private_networks = true
disable_after = "12h"

[limits]
max_webhooks_per_user = 3
events_per_minute_per_webhook = 4294967295
max_payload_bytes = 1024

[retention]
events = "7d"

{}
{}"#,
            token_block("user-1", "user", "t1"),
            token_block("svc@example.com:ci_bot.v2", "publisher", "t2"),
        );
        let c = ok(&text);
        assert_eq!(c.listen, "[::1]:9090".parse::<SocketAddr>().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./data"));
        assert!(c.data_dir.is_relative());
        assert_eq!(c.db_path(), PathBuf::from("./data/hookd.redb"));
        assert_eq!(c.delivery.timeout, Duration::from_millis(1500));
        assert_eq!(
            c.delivery.retry_schedule,
            vec![secs(0), secs(30), secs(120)]
        );
        assert_eq!(c.delivery.workers, 16);
        assert_eq!(c.delivery.max_in_flight_per_webhook, 16);
        assert!(c.delivery.allow_http);
        assert!(c.delivery.allow_private_networks);
        assert_eq!(c.delivery.disable_after, secs(12 * 3600));
        assert_eq!(c.limits.max_webhooks_per_user, 3);
        assert_eq!(c.limits.events_per_minute_per_webhook, u32::MAX);
        assert_eq!(c.limits.max_payload_bytes, 1024);
        assert_eq!(c.retention.events, secs(7 * 86_400));
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.tokens[0].user, "user-1");
        assert_eq!(c.tokens[0].role, Role::User);
        assert_eq!(hex::encode(c.tokens[0].sha256), token_sha256_hex("t1"));
        assert_eq!(c.tokens[1].user, "svc@example.com:ci_bot.v2");
        assert_eq!(c.tokens[1].role, Role::Publisher);
        assert_eq!(hex::encode(c.tokens[1].sha256), token_sha256_hex("t2"));
    }

    /// Renders a config the way an operator would write it.
    fn render(c: &Config) -> String {
        let d = &c.delivery;
        let schedule: Vec<String> = d
            .retry_schedule
            .iter()
            .map(|x| format!("\"{}\"", format_duration(*x)))
            .collect();
        let mut text = format!(
            "listen = \"{}\"\ndata_dir = \"{}\"\n[delivery]\ntimeout = \"{}\"\n\
             retry_schedule = [{}]\nworkers = {}\nmax_in_flight_per_webhook = {}\n\
             allow_http = {}\nallow_private_networks = {}\ndisable_after = \"{}\"\n\
             [limits]\nmax_webhooks_per_user = {}\nevents_per_minute_per_webhook = {}\n\
             max_payload_bytes = {}\n[retention]\nevents = \"{}\"\n",
            c.listen,
            c.data_dir.display(),
            format_duration(d.timeout),
            schedule.join(", "),
            d.workers,
            d.max_in_flight_per_webhook,
            d.allow_http,
            d.allow_private_networks,
            format_duration(d.disable_after),
            c.limits.max_webhooks_per_user,
            c.limits.events_per_minute_per_webhook,
            c.limits.max_payload_bytes,
            format_duration(c.retention.events),
        );
        for t in &c.tokens {
            text.push_str(&format!(
                "[[tokens]]\nuser = \"{}\"\nrole = \"{}\"\nsha256 = \"{}\"\n",
                t.user,
                t.role,
                hex::encode(t.sha256)
            ));
        }
        text
    }

    #[test]
    fn round_trip_through_text() {
        let mut c = Config::default();
        assert_eq!(ok(&render(&c)), c);
        c.listen = "0.0.0.0:1".parse().unwrap();
        c.data_dir = PathBuf::from("rel/dir");
        c.delivery.timeout = Duration::from_millis(250);
        c.delivery.retry_schedule = vec![secs(0), Duration::from_millis(1), secs(90), secs(86_400)];
        c.delivery.workers = 4096;
        c.delivery.max_in_flight_per_webhook = 1;
        c.delivery.allow_http = true;
        c.delivery.disable_after = secs(3600);
        c.limits.max_payload_bytes = MAX_PAYLOAD_BYTES;
        c.retention.events = secs(1);
        c.tokens = vec![
            TokenConfig {
                user: "a".into(),
                role: Role::Publisher,
                sha256: [7; 32],
            },
            TokenConfig {
                user: "b".into(),
                role: Role::User,
                sha256: [8; 32],
            },
        ];
        assert_eq!(ok(&render(&c)), c);
    }

    // ---- durations ------------------------------------------------------

    #[test]
    fn duration_forms() {
        let cases = [
            ("0s", Duration::ZERO),
            ("0ms", Duration::ZERO),
            ("500ms", Duration::from_millis(500)),
            ("1500ms", Duration::from_millis(1500)),
            ("5s", secs(5)),
            ("007s", secs(7)),
            ("1m", secs(60)),
            ("90m", secs(5400)),
            ("2h", secs(7200)),
            ("5d", secs(5 * 86_400)),
            ("36500d", MAX_DURATION),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn bad_duration_forms() {
        let cases = [
            ("", "empty"),
            (" 5s", "whitespace"),
            ("5s ", "whitespace"),
            ("5 s", "whitespace"),
            ("\t5s", "whitespace"),
            ("5s\n", "whitespace"),
            ("-5s", "negative"),
            ("+5s", "whole number"),
            ("s", "whole number"),
            ("ms", "whole number"),
            ("1.5s", "fractional"),
            ("0.5h", "fractional"),
            ("1,5s", "fractional"),
            ("5", "unit is missing"),
            ("5x", "unknown unit \"x\""),
            ("5sec", "unknown unit \"sec\""),
            ("5min", "unknown unit \"min\""),
            ("5us", "unknown unit \"us\""),
            ("5S", "lowercase"),
            ("5MS", "lowercase"),
            ("1h30m", "one unit"),
            ("1e3s", "one unit"),
            ("\u{ff15}s", "whole number"),
            ("99999999999999999999s", "too large"),
            ("213503982334602d", "too large"),
            ("18446744073709551615s", "too large"),
            ("36501d", "too large"),
            ("876001h", "too large"),
        ];
        for (text, why) in cases {
            let err = parse_duration(text).expect_err(text);
            assert!(err.contains(why), "{text:?}: {err}");
            assert!(err.contains(&format!("{text:?}")), "{text:?}: {err}");
            assert!(err.contains("ms, s, m, h or d"), "{text:?}: {err}");
            assert!(err.contains("\"500ms\""), "{text:?}: {err}");
        }
    }

    #[test]
    fn format_duration_forms() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(1), "1ms"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1500ms"),
            (secs(1), "1s"),
            (secs(90), "90s"),
            (secs(60), "1m"),
            (secs(3600), "1h"),
            (secs(5400), "90m"),
            (secs(86_400), "1d"),
            (secs(5 * 86_400), "5d"),
            (secs(25 * 3600), "25h"),
            (Duration::from_nanos(1500), "1500ns"),
        ];
        for (d, text) in cases {
            assert_eq!(format_duration(d), text);
        }
        // Never panics at the extremes.
        assert!(format_duration(Duration::MAX).ends_with("ns"));
        assert_eq!(format_duration(secs(u64::MAX)), format!("{}s", u64::MAX));
    }

    #[test]
    fn format_is_inverse_of_parse() {
        for text in [
            "0s", "1ms", "999ms", "1s", "59s", "1m", "61m", "1h", "23h", "1d", "36500d",
        ] {
            let d = parse_duration(text).unwrap();
            assert_eq!(format_duration(d), text);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        for ms in [
            0u64, 1, 1000, 60_000, 61_000, 3_600_000, 86_400_000, 90_061_001,
        ] {
            let d = Duration::from_millis(ms);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{ms}");
        }
    }

    #[test]
    fn bad_duration_in_config_names_key_and_value() {
        let msg = problem_at("[delivery]\ntimeout = \"10 s\"", "delivery.timeout");
        assert!(msg.contains("\"10 s\""), "{msg}");
        assert!(msg.contains("ms, s, m, h or d"), "{msg}");
        let msg = problem_at("[retention]\nevents = \"1.5d\"", "retention.events");
        assert!(msg.contains("fractional"), "{msg}");
        let msg = problem_at(
            "[delivery]\nretry_schedule = [\"0s\", \"-1m\", \"5m\"]",
            "delivery.retry_schedule[1]",
        );
        assert!(msg.contains("negative"), "{msg}");
        let msg = problem_at(
            "[delivery]\ndisable_after = \"5\"",
            "delivery.disable_after",
        );
        assert!(msg.contains("unit is missing"), "{msg}");
    }

    // ---- unknown keys ---------------------------------------------------

    #[test]
    fn unknown_keys_everywhere() {
        let cases = [
            ("listen2 = \"127.0.0.1:1\"", "listen2", Some("listen")),
            (
                "[delivery]\ntimeoutt = \"1s\"",
                "delivery.timeoutt",
                Some("timeout"),
            ),
            ("[limits]\nbogus = 1", "limits.bogus", None),
            (
                "[retention]\nevnts = \"1d\"",
                "retention.evnts",
                Some("events"),
            ),
            (
                "[[tokens]]\nusr = \"a\"\nuser = \"a\"\nrole = \"user\"\nsha256 = \"\"",
                "tokens[0].usr",
                Some("user"),
            ),
            ("[bogus]\nx = 1", "bogus", None),
            ("\"a.b\" = 1", "\"a.b\"", None),
            ("[delivery]\n\"\" = 1", "delivery.\"\"", None),
            ("[delivery.sub]\nx = 1", "delivery.sub", None),
        ];
        for (text, key, hint) in cases {
            let problems = problems(text);
            let problem = problems
                .iter()
                .find(|p| p.key == key)
                .unwrap_or_else(|| panic!("{text:?}: no problem at {key}: {problems:#?}"));
            assert!(problem.message.starts_with("unknown key"), "{problem:?}");
            assert!(
                problem.message.contains("accepted keys here"),
                "{problem:?}"
            );
            if let Some(hint) = hint {
                assert!(
                    problem
                        .message
                        .contains(&format!("did you mean \"{hint}\"")),
                    "{problem:?}"
                );
            }
        }
    }

    #[test]
    fn unknown_key_in_second_token() {
        let text = format!(
            "{}{}extra = true\n",
            token_block("a", "user", "1"),
            token_block("b", "user", "2")
        );
        problem_at(&text, "tokens[1].extra");
    }

    #[test]
    fn misplaced_keys_say_where_they_belong() {
        let msg = problem_at("timeout = \"10s\"", "timeout");
        assert!(msg.contains("belongs in [delivery]"), "{msg}");
        let msg = problem_at("[delivery]\nevents = \"1d\"", "delivery.events");
        assert!(msg.contains("belongs in [retention]"), "{msg}");
        let msg = problem_at("[limits]\nlisten = \"127.0.0.1:1\"", "limits.listen");
        assert!(msg.contains("at the top level"), "{msg}");
        let msg = problem_at("sha256 = \"x\"", "sha256");
        assert!(msg.contains("[[tokens]]"), "{msg}");
    }

    // ---- wrong types ----------------------------------------------------

    #[test]
    fn wrong_types() {
        let cases = [
            (
                "listen = 8080",
                "listen",
                "expected a string like \"127.0.0.1:8080\", found integer",
            ),
            ("data_dir = 1", "data_dir", "found integer"),
            ("data_dir = [\"a\"]", "data_dir", "found array"),
            (
                "delivery = \"x\"",
                "delivery",
                "expected a table ([delivery]), found string",
            ),
            (
                "limits = 1",
                "limits",
                "expected a table ([limits]), found integer",
            ),
            (
                "retention = []",
                "retention",
                "expected a table ([retention]), found array",
            ),
            ("tokens = \"x\"", "tokens", "found string"),
            ("tokens = 1979-05-27", "tokens", "found datetime"),
            ("[tokens]\nuser = \"a\"", "tokens", "[[tokens]]"),
            ("tokens = [1]", "tokens[0]", "found integer"),
            ("tokens = [[]]", "tokens[0]", "found array"),
            (
                "[delivery]\ntimeout = 10",
                "delivery.timeout",
                "expected a string like \"10s\", found integer",
            ),
            (
                "[delivery]\ntimeout = 1.5",
                "delivery.timeout",
                "expected a string like \"10s\", found float",
            ),
            (
                "[delivery]\ntimeout = true",
                "delivery.timeout",
                "found boolean",
            ),
            (
                "[delivery]\nretry_schedule = \"0s\"",
                "delivery.retry_schedule",
                "expected an array of durations",
            ),
            (
                "[delivery]\nretry_schedule = [0, \"1m\"]",
                "delivery.retry_schedule[0]",
                "expected a string like \"1m\", found integer",
            ),
            (
                "[delivery]\nretry_schedule = [\"0s\", [\"1m\"]]",
                "delivery.retry_schedule[1]",
                "found array",
            ),
            (
                "[delivery]\nworkers = \"64\"",
                "delivery.workers",
                "expected an integer, found string (write 64 without quotes)",
            ),
            (
                "[delivery]\nworkers = 64.0",
                "delivery.workers",
                "expected an integer, found float",
            ),
            (
                "[delivery]\nmax_in_flight_per_webhook = true",
                "delivery.max_in_flight_per_webhook",
                "expected an integer, found boolean",
            ),
            (
                "[delivery]\nallow_http = \"true\"",
                "delivery.allow_http",
                "expected a boolean (true or false), found string (write true without quotes)",
            ),
            (
                "[delivery]\nallow_http = \"yes\"",
                "delivery.allow_http",
                "found string",
            ),
            (
                "[delivery]\nallow_private_networks = 1",
                "delivery.allow_private_networks",
                "expected a boolean (true or false), found integer",
            ),
            (
                "[delivery]\ndisable_after = 5",
                "delivery.disable_after",
                "expected a string like \"5d\", found integer",
            ),
            (
                "[limits]\nmax_webhooks_per_user = \"10\"",
                "limits.max_webhooks_per_user",
                "expected an integer, found string",
            ),
            (
                "[limits]\nevents_per_minute_per_webhook = {}",
                "limits.events_per_minute_per_webhook",
                "expected an integer, found table",
            ),
            (
                "[limits]\nmax_payload_bytes = 1e6",
                "limits.max_payload_bytes",
                "expected an integer, found float",
            ),
            (
                "[retention]\nevents = 30",
                "retention.events",
                "expected a string like \"30d\", found integer",
            ),
            (
                "[[tokens]]\nuser = 1\nrole = \"user\"\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
                "tokens[0].user",
                "found integer",
            ),
            (
                "[[tokens]]\nuser = \"a\"\nrole = 1\nsha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"",
                "tokens[0].role",
                "found integer",
            ),
            (
                "[[tokens]]\nuser = \"a\"\nrole = \"user\"\nsha256 = 1",
                "tokens[0].sha256",
                "found integer",
            ),
        ];
        for (text, key, expected) in cases {
            let msg = problem_at(text, key);
            assert!(msg.contains(expected), "{text:?}: {msg}");
        }
    }

    // ---- ranges and values ---------------------------------------------

    #[test]
    fn listen_and_data_dir_values() {
        assert_eq!(ok("listen = \"0.0.0.0:80\"").listen.port(), 80);
        assert!(ok("listen = \"[::]:8080\"").listen.is_ipv6());
        for bad in [
            "localhost:8080",
            "127.0.0.1",
            "127.0.0.1:99999",
            "",
            ":8080",
        ] {
            let msg = problem_at(&format!("listen = \"{bad}\""), "listen");
            assert!(msg.contains(&format!("{bad:?}")), "{msg}");
            assert!(msg.contains("IP:PORT"), "{msg}");
        }
        assert!(problem_at("data_dir = \"\"", "data_dir").contains("empty"));
        assert!(problem_at("data_dir = \"a\\u0000b\"", "data_dir").contains("NUL"));
        assert_eq!(ok("data_dir = \"data\"").data_dir, PathBuf::from("data"));
    }

    #[test]
    fn timeout_range() {
        assert_eq!(
            ok("[delivery]\ntimeout = \"1ms\"").delivery.timeout,
            Duration::from_millis(1)
        );
        assert_eq!(
            ok("[delivery]\ntimeout = \"1h\"").delivery.timeout,
            secs(3600)
        );
        assert_eq!(
            ok("[delivery]\ntimeout = \"3600s\"").delivery.timeout,
            secs(3600)
        );
        let msg = problem_at("[delivery]\ntimeout = \"0s\"", "delivery.timeout");
        assert!(msg.contains("greater than 0"), "{msg}");
        let msg = problem_at("[delivery]\ntimeout = \"3600001ms\"", "delivery.timeout");
        assert!(msg.contains("at most \"1h\""), "{msg}");
        let msg = problem_at("[delivery]\ntimeout = \"2d\"", "delivery.timeout");
        assert!(msg.contains("found \"2d\""), "{msg}");
    }

    #[test]
    fn retry_schedule_range() {
        let msg = problem_at("[delivery]\nretry_schedule = []", "delivery.retry_schedule");
        assert!(msg.contains("must not be empty"), "{msg}");
        let list = |n: usize| vec!["\"1s\""; n].join(", ");
        let c = ok(&format!("[delivery]\nretry_schedule = [{}]", list(100)));
        assert_eq!(c.delivery.retry_schedule, vec![secs(1); 100]);
        let msg = problem_at(
            &format!("[delivery]\nretry_schedule = [{}]", list(101)),
            "delivery.retry_schedule",
        );
        assert!(
            msg.contains("101 entries") && msg.contains("at most 100"),
            "{msg}"
        );
        assert_eq!(
            ok("[delivery]\nretry_schedule = [\"0s\"]")
                .delivery
                .retry_schedule,
            vec![Duration::ZERO]
        );
        // Zero is fine anywhere; the order is not constrained.
        assert_eq!(
            ok("[delivery]\nretry_schedule = [\"1h\", \"0s\", \"0ms\"]")
                .delivery
                .retry_schedule,
            vec![secs(3600), Duration::ZERO, Duration::ZERO]
        );
        // Every bad entry is reported.
        let keys: Vec<String> =
            problems("[delivery]\nretry_schedule = [\"x\", \"0s\", 5, \"1.5m\"]")
                .into_iter()
                .map(|p| p.key)
                .collect();
        assert_eq!(
            keys,
            [
                "delivery.retry_schedule[0]",
                "delivery.retry_schedule[2]",
                "delivery.retry_schedule[3]"
            ]
        );
    }

    #[test]
    fn workers_and_in_flight_ranges() {
        assert_eq!(ok("[delivery]\nworkers = 4096").delivery.workers, 4096);
        for bad in [
            "0",
            "-1",
            "4097",
            "-9223372036854775808",
            "9223372036854775807",
        ] {
            let msg = problem_at(&format!("[delivery]\nworkers = {bad}"), "delivery.workers");
            assert!(msg.contains("between 1 and 4096"), "{msg}");
            assert!(msg.contains(&format!("found {bad}")), "{msg}");
        }
        let msg = problem_at(
            "[delivery]\nmax_in_flight_per_webhook = 0",
            "delivery.max_in_flight_per_webhook",
        );
        assert!(msg.contains("between 1 and 4096"), "{msg}");
        let msg = problem_at(
            "[delivery]\nworkers = 4\nmax_in_flight_per_webhook = 5",
            "delivery.max_in_flight_per_webhook",
        );
        assert!(
            msg.contains("must not exceed delivery.workers (4), found 5"),
            "{msg}"
        );
        // Against the default worker count.
        let msg = problem_at(
            "[delivery]\nmax_in_flight_per_webhook = 65",
            "delivery.max_in_flight_per_webhook",
        );
        assert!(msg.contains("(64)"), "{msg}");
        let c = ok("[delivery]\nworkers = 4\nmax_in_flight_per_webhook = 4");
        assert_eq!(c.delivery.max_in_flight_per_webhook, 4);
        // The default shrinks to fit a small pool instead of failing.
        let c = ok("[delivery]\nworkers = 2");
        assert_eq!(c.delivery.max_in_flight_per_webhook, 2);
        // A bad workers value is reported once, with no cross-field noise.
        problem_at(
            "[delivery]\nworkers = 0\nmax_in_flight_per_webhook = 8",
            "delivery.workers",
        );
    }

    #[test]
    fn other_ranges() {
        let msg = problem_at(
            "[delivery]\ndisable_after = \"0d\"",
            "delivery.disable_after",
        );
        assert!(msg.contains("greater than 0"), "{msg}");
        assert_eq!(
            ok("[delivery]\ndisable_after = \"36500d\"")
                .delivery
                .disable_after,
            MAX_DURATION
        );
        let msg = problem_at("[retention]\nevents = \"0ms\"", "retention.events");
        assert!(msg.contains("greater than 0"), "{msg}");
        let msg = problem_at(
            "[limits]\nmax_webhooks_per_user = 0",
            "limits.max_webhooks_per_user",
        );
        assert!(msg.contains("at least 1, found 0"), "{msg}");
        assert_eq!(
            ok("[limits]\nmax_webhooks_per_user = 1")
                .limits
                .max_webhooks_per_user,
            1
        );
        for bad in ["0", "-5", "4294967296"] {
            let msg = problem_at(
                &format!("[limits]\nevents_per_minute_per_webhook = {bad}"),
                "limits.events_per_minute_per_webhook",
            );
            assert!(msg.contains("between 1 and 4294967295"), "{msg}");
        }
        for good in [1024usize, 262_144, MAX_PAYLOAD_BYTES] {
            let c = ok(&format!("[limits]\nmax_payload_bytes = {good}"));
            assert_eq!(c.limits.max_payload_bytes, good);
        }
        for bad in [0, 1023, MAX_PAYLOAD_BYTES + 1] {
            let msg = problem_at(
                &format!("[limits]\nmax_payload_bytes = {bad}"),
                "limits.max_payload_bytes",
            );
            assert!(msg.contains("between 1024 and 67108864"), "{msg}");
            assert!(msg.contains("1 KiB to 64 MiB"), "{msg}");
        }
    }

    #[test]
    fn token_user_values() {
        let block = |user: &str| {
            format!(
                "[[tokens]]\nuser = {user:?}\nrole = \"user\"\n{}",
                hash_line("t")
            )
        };
        let longest = "a".repeat(MAX_USER_LEN);
        for good in ["u", "A-z_0.9:x@y", longest.as_str()] {
            assert_eq!(ok(&block(good)).tokens[0].user, good);
        }
        let msg = problem_at(&block(""), "tokens[0].user");
        assert!(msg.contains("must not be empty"), "{msg}");
        let msg = problem_at(&block(&"a".repeat(MAX_USER_LEN + 1)), "tokens[0].user");
        assert!(msg.contains("129 characters"), "{msg}");
        for (bad, c) in [
            ("a b", "' '"),
            ("a/b", "'/'"),
            ("é", "'é'"),
            ("a\nb", "'\\n'"),
        ] {
            let msg = problem_at(&block(bad), "tokens[0].user");
            assert!(msg.contains(c), "{bad:?}: {msg}");
            assert!(msg.contains(". _ : @ -"), "{msg}");
        }
    }

    #[test]
    fn token_required_keys() {
        let problems = problems("[[tokens]]\n");
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            ["tokens[0].user", "tokens[0].role", "tokens[0].sha256"]
        );
        assert!(
            problems
                .iter()
                .all(|p| p.message.starts_with("missing required key"))
        );
        assert!(ok("tokens = []").tokens.is_empty());
    }

    // ---- sha256 ---------------------------------------------------------

    #[test]
    fn token_sha256_validation() {
        let block =
            |sha: &str| format!("[[tokens]]\nuser = \"u\"\nrole = \"user\"\nsha256 = {sha:?}");
        let good = token_sha256_hex("secret");
        let c = ok(&block(&good));
        assert_eq!(c.tokens[0].sha256.to_vec(), hex::decode(&good).unwrap());

        let msg = problem_at(&block(&good.to_uppercase()), "tokens[0].sha256");
        assert!(msg.contains("uppercase"), "{msg}");
        let msg = problem_at(&block(&good[..63]), "tokens[0].sha256");
        assert!(msg.contains("wrong length: 63"), "{msg}");
        let msg = problem_at(&block(&format!("{good}0")), "tokens[0].sha256");
        assert!(msg.contains("wrong length: 65"), "{msg}");
        let msg = problem_at(&block(""), "tokens[0].sha256");
        assert!(msg.contains("wrong length: 0"), "{msg}");
        let non_hex = format!("{}g", &good[..63]);
        let msg = problem_at(&block(&non_hex), "tokens[0].sha256");
        assert!(msg.contains("non-hex character at position 64"), "{msg}");
        let multibyte = format!("{}é", &good[..63]);
        let msg = problem_at(&block(&multibyte), "tokens[0].sha256");
        assert!(msg.contains("non-hex"), "{msg}");
        // A pasted plaintext token is never echoed back.
        let pasted = "my-very-secret-token-value";
        let msg = problem_at(&block(pasted), "tokens[0].sha256");
        assert!(!msg.contains(pasted), "{msg}");
        assert!(msg.contains("never the token itself"), "{msg}");
    }

    #[test]
    fn token_sha256_hex_known_vectors() {
        assert_eq!(
            token_sha256_hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            token_sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn token_debug_hides_hash() {
        let hash = token_sha256_hex("secret");
        let c = ok(&format!(
            "[[tokens]]\nuser = \"u\"\nrole = \"publisher\"\nsha256 = \"{hash}\""
        ));
        let debug = format!("{:?}", c.tokens[0]);
        assert!(!debug.contains(&hash), "{debug}");
        assert!(!debug.contains(&hash[..9]), "{debug}");
        assert!(debug.contains(&format!("{}…", &hash[..8])), "{debug}");
        assert!(
            debug.contains("\"u\"") && debug.contains("Publisher"),
            "{debug}"
        );
        let config_debug = format!("{c:?}");
        assert!(!config_debug.contains(&hash), "{config_debug}");
    }

    #[test]
    fn duplicate_tokens() {
        let text = format!(
            "{}{}{}",
            token_block("a", "user", "same"),
            token_block("b", "user", "other"),
            token_block("c", "publisher", "same"),
        );
        let msg = problem_at(&text, "tokens[2].sha256");
        assert!(
            msg.contains("duplicate") && msg.contains("tokens[0]"),
            "{msg}"
        );

        // Detected even when the first holder of the hash has other problems.
        let text = format!(
            "{}{}",
            token_block("bad user", "user", "same"),
            token_block("c", "user", "same"),
        );
        let keys: Vec<String> = problems(&text).into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["tokens[0].user", "tokens[1].sha256"]);

        // The same user may hold several different tokens.
        let text = format!(
            "{}{}",
            token_block("a", "user", "one"),
            token_block("a", "publisher", "two"),
        );
        assert_eq!(ok(&text).tokens.len(), 2);
    }

    // ---- roles ----------------------------------------------------------

    #[test]
    fn role_parsing() {
        assert_eq!("user".parse::<Role>(), Ok(Role::User));
        assert_eq!("publisher".parse::<Role>(), Ok(Role::Publisher));
        for role in [Role::User, Role::Publisher, Role::Admin] {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert_eq!(role.to_string(), role.as_str());
        }
        for bad in ["User", "PUBLISHER", "", " user", "root"] {
            let err = bad.parse::<Role>().unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
            assert!(
                err.contains("accepted roles: \"user\", \"publisher\", \"admin\""),
                "{err}"
            );
        }
        let text = format!(
            "[[tokens]]\nuser = \"u\"\nrole = \"root\"\n{}",
            hash_line("t")
        );
        let msg = problem_at(&text, "tokens[0].role");
        assert!(
            msg.contains("root") && msg.contains("accepted roles"),
            "{msg}"
        );
    }

    // ---- many problems at once ------------------------------------------

    #[test]
    fn collects_all_problems() {
        let text = r#"
listen = "nope"
listen2 = 1

[delivery]
timeout = "0s"
retry_schedule = ["0s", "1x"]
workers = 8
max_in_flight_per_webhook = 9
allow_http = "no"
timeoutt = "1s"

[limits]
max_payload_bytes = 1

[retention]
events = 30

[[tokens]]
user = ""
role = "root"
sha256 = "ABC"
"#;
        let err = Config::from_toml_str(text).unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        let expected = [
            "listen2",
            "listen",
            "delivery.timeoutt",
            "delivery.timeout",
            "delivery.retry_schedule[1]",
            "delivery.max_in_flight_per_webhook",
            "delivery.allow_http",
            "limits.max_payload_bytes",
            "retention.events",
            "tokens[0].user",
            "tokens[0].role",
            "tokens[0].sha256",
        ];
        assert_eq!(keys, expected);
        let shown = err.to_string();
        assert_eq!(shown.lines().count(), expected.len(), "{shown}");
        for (line, key) in shown.lines().zip(expected) {
            assert!(line.starts_with(&format!("{key}: ")), "{line}");
        }
    }

    // ---- syntax errors and files ----------------------------------------

    #[test]
    fn syntax_error_is_one_problem_with_position() {
        let problems = problems("listen = \"127.0.0.1:8080\"\ndata_dir = \n");
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].key, "");
        assert!(
            problems[0]
                .message
                .starts_with("TOML syntax error at line 2, column"),
            "{:?}",
            problems[0]
        );
        assert!(!problems[0].message.contains('\n'));

        let problems = problems_of("a = 1\na = 2\n");
        assert_eq!(problems.len(), 1);
        assert!(problems[0].message.contains("line 2"), "{:?}", problems[0]);

        // The offending line is not echoed (it might hold a secret).
        let problems = problems_of("[[tokens]]\nsha256 = super-secret-token\n");
        assert_eq!(problems.len(), 1);
        assert!(
            !problems[0].message.contains("super-secret-token"),
            "{:?}",
            problems[0]
        );
    }

    fn problems_of(text: &str) -> Vec<Problem> {
        problems(text)
    }

    #[test]
    fn line_column_is_safe() {
        assert_eq!(line_column("", 0), (1, 1));
        assert_eq!(line_column("", 10), (1, 1));
        assert_eq!(line_column("ab\ncd", 4), (2, 2));
        assert_eq!(line_column("é\né", 4), (2, 2));
        assert_eq!(line_column("é", 1), (1, 2));
    }

    #[test]
    fn missing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.toml");
        let err = Config::load(&path).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].key, "");
        let shown = path.display().to_string();
        assert!(err.problems[0].message.contains(&shown), "{err}");
        assert!(err.problems[0].message.contains("does not exist"), "{err}");
        assert_eq!(err.path.as_deref(), Some(path.as_path()));
        assert!(err.to_string().contains(&shown));

        // A directory is not a readable file either.
        let err = Config::load(dir.path()).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert!(
            err.problems[0]
                .message
                .starts_with("cannot read config file"),
            "{err}"
        );
    }

    #[test]
    fn load_reports_path_in_display() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookd.toml");
        std::fs::write(&path, "[delivery]\ntimeout = \"0s\"\nworkers = 0\n").unwrap();
        let err = Config::load(&path).unwrap_err();
        let shown = err.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 2, "{shown}");
        assert!(
            lines[0].starts_with(&format!("{}: delivery.timeout: ", path.display())),
            "{shown}"
        );
        assert!(
            lines[1].starts_with(&format!("{}: delivery.workers: ", path.display())),
            "{shown}"
        );

        std::fs::write(&path, "listen = \"127.0.0.1:9\"\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().listen.port(), 9);

        std::fs::write(&path, [0xff, 0xfe, 0x00]).unwrap();
        let err = Config::load(&path).unwrap_err();
        assert_eq!(err.problems.len(), 1);
    }

    #[test]
    fn config_error_display_without_path() {
        let err = ConfigError {
            path: None,
            problems: vec![
                Problem {
                    key: "a.b".into(),
                    message: "bad".into(),
                },
                Problem {
                    key: String::new(),
                    message: "whole file".into(),
                },
            ],
        };
        assert_eq!(err.to_string(), "a.b: bad\nwhole file");
        let err = ConfigError {
            path: Some(PathBuf::from("/etc/hookd.toml")),
            problems: err.problems,
        };
        assert_eq!(
            err.to_string(),
            "/etc/hookd.toml: a.b: bad\n/etc/hookd.toml: whole file"
        );
    }

    // ---- shipped configs ------------------------------------------------

    #[test]
    fn shipped_production_config_is_all_defaults() {
        let path = manifest_path("config/hookd.toml");
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config, Config::default());

        // Every key is spelled out.
        let text = std::fs::read_to_string(&path).unwrap();
        let root: Table = toml::from_str(&text).unwrap();
        for key in TOP_KEYS.iter().filter(|k| **k != "tokens") {
            assert!(root.contains_key(*key), "missing {key}");
        }
        for (section, keys) in [
            ("delivery", DELIVERY_KEYS),
            ("limits", LIMITS_KEYS),
            ("retention", RETENTION_KEYS),
        ] {
            let table = root[section].as_table().unwrap();
            for key in keys {
                assert!(table.contains_key(*key), "missing {section}.{key}");
            }
        }
        assert!(!root.contains_key("tokens"));
        assert!(text.contains("hookd token new --user USER --role user"));
    }

    #[test]
    fn shipped_dev_config_loads_with_dev_tokens() {
        let path = manifest_path("config/dev.toml");
        let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.listen, DEFAULT_LISTEN);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert!(config.delivery.allow_http);
        assert!(config.delivery.allow_private_networks);
        assert_eq!(config.tokens.len(), DEV_TOKENS.len());
        for (token, (user, plain, role)) in config.tokens.iter().zip(DEV_TOKENS) {
            assert_eq!(token.user, user);
            assert_eq!(token.role, role);
            assert_eq!(hex::encode(token.sha256), token_sha256_hex(plain));
        }
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("DEV ONLY"));
        for (_, plain, _) in DEV_TOKENS {
            assert!(text.contains(plain), "plain token {plain} not documented");
        }
    }

    // ---- robustness -----------------------------------------------------

    #[test]
    fn never_panics_on_junk() {
        // A small deterministic generator: no extra crates needed.
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pieces = [
            "[delivery]\n",
            "[limits]\n",
            "[retention]\n",
            "[[tokens]]\n",
            "[tokens]\n",
            "timeout = ",
            "workers = ",
            "retry_schedule = ",
            "user = ",
            "sha256 = ",
            "role = ",
            "listen = ",
            "data_dir = ",
            "events = ",
            "\"1s\"",
            "\"-1s\"",
            "9999999999999999999",
            "-1",
            "0",
            "[\"0s\", 1]",
            "{ a = 1 }",
            "true",
            "\"é\"",
            "\n",
            "=",
            "\"",
            "[",
            "]",
            "max_in_flight_per_webhook = ",
            "max_payload_bytes = ",
            "1979-05-27T07:32:00Z",
        ];
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..(next() % 12) {
                let i = usize::try_from(next() % pieces.len() as u64).unwrap();
                text.push_str(pieces[i]);
            }
            let _ = Config::from_toml_str(&text);
            let mut junk = String::new();
            for _ in 0..(next() % 8) {
                let c = char::from_u32(u32::try_from(next() % 0x3000).unwrap()).unwrap_or('x');
                junk.push(c);
            }
            let _ = parse_duration(&junk);
            let _ = Config::from_toml_str(&junk);
        }
    }
}
