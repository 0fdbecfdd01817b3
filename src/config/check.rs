//! The TOML walker: turns the parsed file into a [`Config`], collecting every problem.
//!
//! It walks the table by hand rather than deserializing, so that it can report *all*
//! problems at once, each at the dotted path of its key, and say what was meant: an
//! unknown key gets a "did you mean" hint or the section it belongs in. Accepted keys and
//! defaults come from [`keys`]; a key that is absent or refused takes its default, so the
//! walk always yields a whole `Config` (and an empty file yields [`Config::default`]).
//!
//! The small value checkers return the user-facing problem text as their error: that
//! text is the data this module produces, not a lost cause.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use toml::{Table, Value};

use super::keys::{self, Key, Section};
use super::{
    Config, DeliveryConfig, LimitsConfig, LogFormat, MAX_PAYLOAD_BYTES, MAX_RETRY_ATTEMPTS,
    MAX_TIMEOUT, MAX_WORKERS, MIN_PAYLOAD_BYTES, Problem, RetentionConfig, Role, TokenConfig,
    format_duration, parse_duration,
};
use crate::auth;

/// Parses and checks config text: the config, or every problem found.
pub(super) fn check(text: &str) -> Result<Config, Vec<Problem>> {
    let root = toml::from_str::<Table>(text).map_err(|err| vec![syntax_problem(text, &err)])?;
    let mut checker = Checker::default();
    let config = checker.config(&root);
    if checker.problems.is_empty() {
        Ok(config)
    } else {
        Err(checker.problems)
    }
}

/// The config of an empty file: every key at its default from [`keys`].
pub(super) fn defaults() -> Config {
    Checker::default().config(&Table::new())
}

/// The default of `key` as a TOML value.
///
/// # Panics
/// If the default text in [`keys`] is not valid TOML. It is a constant, not input, and
/// the unit tests build [`Config::default`], so such a typo never leaves the test run.
fn default_value(key: &Key) -> Value {
    let text = key.default.unwrap_or("\"\"");
    toml::from_str::<Table>(&format!("v = {text}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| panic!("the default of {} in keys.rs is not TOML", key.name))
}

/// Why a value was refused: messages for the key itself (`None`) and for entries of its
/// array (`Some(index)`), in the order they are reported.
struct Refusal(Vec<(Option<usize>, String)>);

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal(vec![(None, message)])
    }
}

/// Walks the parsed TOML, filling a [`Config`] and collecting problems.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
}

/// One table being checked: reads its keys, records refusals at their paths.
struct Scope<'c, 't> {
    checker: &'c mut Checker,
    table: &'t Table,
    prefix: String,
    /// Keys of this table whose value was refused, so cross-key checks stay quiet.
    failed: Vec<&'static str>,
}

impl<'c, 't> Scope<'c, 't> {
    /// Starts on `table` (at `prefix`, of kind `section`), reporting its unknown keys.
    fn open(checker: &'c mut Checker, table: &'t Table, prefix: String, section: &Section) -> Self {
        checker.unknown_keys(table, &prefix, section);
        Scope {
            checker,
            table,
            prefix,
            failed: Vec::new(),
        }
    }

    fn present(&self, key: &Key) -> bool {
        self.table.contains_key(key.name)
    }

    fn failed(&self, key: &Key) -> bool {
        self.failed.contains(&key.name)
    }

    fn refuse(&mut self, key: &Key, refusal: Refusal) {
        self.failed.push(key.name);
        let path = join_key(&self.prefix, key.name);
        for (entry, message) in refusal.0 {
            let at = match entry {
                None => path.clone(),
                Some(i) => format!("{path}[{i}]"),
            };
            self.checker.push(at, message);
        }
    }

    /// The value of `key` converted, else its default: when the key is absent, or when
    /// its value is refused (the refusal is recorded).
    fn get<T, E: Into<Refusal>>(
        &mut self,
        key: &Key,
        convert: impl Fn(&Value) -> Result<T, E>,
    ) -> T {
        if let Some(value) = self.table.get(key.name) {
            match convert(value) {
                Ok(v) => return v,
                Err(refusal) => self.refuse(key, refusal.into()),
            }
        }
        match convert(&default_value(key)) {
            Ok(v) => v,
            Err(_) => panic!(
                "the default of {} in keys.rs is refused by its checker",
                key.name
            ),
        }
    }

    /// The value of a key without a default; its absence is a problem.
    fn required<T>(
        &mut self,
        key: &Key,
        what: &str,
        convert: impl FnOnce(&Value) -> Result<T, String>,
    ) -> Option<T> {
        let Some(value) = self.table.get(key.name) else {
            let message = format!("missing required key (expected {what})");
            self.refuse(key, message.into());
            return None;
        };
        match convert(value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.refuse(key, message.into());
                None
            }
        }
    }
}

impl Checker {
    fn push(&mut self, key: String, message: impl Into<String>) {
        self.problems.push(Problem {
            key,
            message: message.into(),
        });
    }

    /// Reports every key of `table` (at `prefix`, a table of kind `section`) that the
    /// section does not accept.
    fn unknown_keys(&mut self, table: &Table, prefix: &str, section: &Section) {
        let known = section.accepted();
        for key in table.keys() {
            if known.contains(&key.as_str()) {
                continue;
            }
            let mut message = String::from("unknown key");
            if let Some(home) = home_of(key, section.name) {
                message.push_str(&format!(" (it belongs {home})"));
            } else if let Some(close) = suggestion(key, &known) {
                message.push_str(&format!(" (did you mean \"{close}\"?)"));
            }
            message.push_str(&format!("; accepted keys here: {}", known.join(", ")));
            self.push(join_key(prefix, key), message);
        }
    }

    /// The sub-table `section` of `root`, if present and a table.
    fn section<'a>(&mut self, root: &'a Table, section: &Section) -> Option<&'a Table> {
        let name = section.name;
        match root.get(name)? {
            Value::Table(table) => Some(table),
            other => {
                self.push(
                    name.to_owned(),
                    format!("expected a table ([{name}]), found {}", other.type_str()),
                );
                None
            }
        }
    }

    fn config(&mut self, root: &Table) -> Config {
        let mut top = Scope::open(self, root, String::new(), &keys::TOP);
        let listen = top.get(&keys::LISTEN, socket_addr);
        let data_dir = top.get(&keys::DATA_DIR, data_dir);
        let log_format = top.get(&keys::LOG_FORMAT, log_format);
        // An absent (or mistyped) section is an empty one: all its defaults.
        let empty = Table::new();
        let table = self.section(root, &keys::DELIVERY).unwrap_or(&empty);
        let delivery = self.delivery(table);
        let table = self.section(root, &keys::LIMITS).unwrap_or(&empty);
        let limits = self.limits(table);
        let table = self.section(root, &keys::RETENTION).unwrap_or(&empty);
        let retention = self.retention(table);
        let tokens = match root.get(keys::TOKENS.name) {
            Some(value) => self.tokens(value),
            None => Vec::new(),
        };
        Config {
            listen,
            data_dir,
            log_format,
            delivery,
            limits,
            retention,
            tokens,
        }
    }

    fn delivery(&mut self, t: &Table) -> DeliveryConfig {
        use keys::{MAX_IN_FLIGHT_PER_WEBHOOK as IN_FLIGHT, WORKERS};
        let section = &keys::DELIVERY;
        let mut s = Scope::open(self, t, section.name.to_owned(), section);
        let timeout = s.get(&keys::TIMEOUT, |v| {
            positive_duration(v, "10s", Some(MAX_TIMEOUT))
        });
        let retry_schedule = s.get(&keys::RETRY_SCHEDULE, retry_schedule);
        let workers = s.get(&WORKERS, |v| usize_in(v, 1, Some(MAX_WORKERS)));
        let in_flight = |v: &Value| usize_in(v, 1, Some(MAX_WORKERS));
        let max_in_flight_per_webhook = if s.present(&IN_FLIGHT) {
            let n = s.get(&IN_FLIGHT, in_flight);
            // Checked only between two valid values: one bad value, one problem.
            if !s.failed(&WORKERS) && !s.failed(&IN_FLIGHT) && n > workers {
                let message = format!("must not exceed delivery.workers ({workers}), found {n}");
                s.refuse(&IN_FLIGHT, message.into());
            }
            n
        } else {
            // The default shrinks to fit a smaller worker pool.
            s.get(&IN_FLIGHT, in_flight).min(workers)
        };
        DeliveryConfig {
            timeout,
            retry_schedule,
            workers,
            max_in_flight_per_webhook,
            allow_http: s.get(&keys::ALLOW_HTTP, boolean),
            allow_private_networks: s.get(&keys::ALLOW_PRIVATE_NETWORKS, boolean),
            allowed_networks: s.get(&keys::ALLOWED_NETWORKS, allowed_networks),
            disable_after: s.get(&keys::DISABLE_AFTER, |v| positive_duration(v, "5d", None)),
        }
    }

    fn limits(&mut self, t: &Table) -> LimitsConfig {
        let section = &keys::LIMITS;
        let mut s = Scope::open(self, t, section.name.to_owned(), section);
        LimitsConfig {
            max_webhooks_per_user: s.get(&keys::MAX_WEBHOOKS_PER_USER, |v| usize_in(v, 1, None)),
            events_per_minute_per_webhook: s.get(&keys::EVENTS_PER_MINUTE_PER_WEBHOOK, |v| {
                let n = integer_in(v, 1, Some(i64::from(u32::MAX)))?;
                u32::try_from(n).map_err(|_| format!("{n} is out of range"))
            }),
            max_payload_bytes: s.get(&keys::MAX_PAYLOAD_BYTES, |v| {
                usize_in(v, MIN_PAYLOAD_BYTES, Some(MAX_PAYLOAD_BYTES))
                    .map_err(|m| format!("{m} (bytes: 1 KiB to 64 MiB)"))
            }),
        }
    }

    fn retention(&mut self, t: &Table) -> RetentionConfig {
        let section = &keys::RETENTION;
        let mut s = Scope::open(self, t, section.name.to_owned(), section);
        RetentionConfig {
            events: s.get(&keys::EVENTS, |v| positive_duration(v, "30d", None)),
        }
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
            let (hash, token) = self.token(table, prefix.clone());
            if let Some(hash) = hash {
                if let Some(first) = seen.get(&hash) {
                    self.push(
                        join_key(&prefix, keys::SHA256.name),
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
    fn token(&mut self, t: &Table, prefix: String) -> (Option<[u8; 32]>, Option<TokenConfig>) {
        let mut s = Scope::open(self, t, prefix, &keys::TOKENS);
        let user = s.required(&keys::USER, "a user id like \"user-123\"", user);
        let role = s.required(&keys::ROLE, &Role::choices(), role);
        let hash = s.required(
            &keys::SHA256,
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

/// Why a string is not a network for `delivery.allowed_networks`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("\"{}\" is not a CIDR network like \"10.1.0.0/16\" or \"fd00::/8\"", .0.escape_debug())]
    NotCidr(String),
    #[error("prefix /{prefix} is longer than {max} bits in \"{}\"", .input.escape_debug())]
    PrefixTooLong { input: String, prefix: u8, max: u8 },
}

/// Parses `ADDRESS/PREFIX` (`10.1.0.0/16`, `fd00::/8`) into a network.
///
/// Stricter than `IpNet`'s own parser on purpose, and exactly as strict as hookd has
/// always been: the address goes through std's parser, which refuses forms such as
/// `010.0.0.1` that some tools read as octal. Host bits may be set (`10.0.0.1/8` is
/// `10.0.0.0/8`); the network is stored truncated.
pub fn parse_network(s: &str) -> Result<IpNet, NetworkError> {
    let bad = || NetworkError::NotCidr(s.to_owned());
    let (addr, prefix) = s.split_once('/').ok_or_else(bad)?;
    let addr: std::net::IpAddr = addr.parse().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    IpNet::new(addr, prefix)
        .map(|net| net.trunc())
        .map_err(|_| NetworkError::PrefixTooLong {
            input: s.to_owned(),
            prefix,
            max: if addr.is_ipv4() { 32 } else { 128 },
        })
}

fn retry_schedule(value: &Value) -> Result<Vec<Duration>, Refusal> {
    let Value::Array(items) = value else {
        return Err(format!(
            "expected an array of durations like [\"0s\", \"1m\", \"5m\"], found {}",
            value.type_str()
        )
        .into());
    };
    let mut problems = Vec::new();
    if items.is_empty() {
        problems.push((
            None,
            "must not be empty: it needs at least one entry, the delay before the \
             first attempt (usually \"0s\")"
                .to_owned(),
        ));
    } else if items.len() > MAX_RETRY_ATTEMPTS {
        problems.push((
            None,
            format!(
                "has {} entries; at most {MAX_RETRY_ATTEMPTS} (one per delivery attempt) \
                 are allowed",
                items.len()
            ),
        ));
    }
    let mut schedule = Vec::with_capacity(items.len().min(MAX_RETRY_ATTEMPTS));
    for (i, item) in items.iter().enumerate() {
        match duration_value(item, "1m") {
            Ok(delay) => schedule.push(delay),
            Err(message) => problems.push((Some(i), message)),
        }
    }
    if problems.is_empty() {
        Ok(schedule)
    } else {
        Err(Refusal(problems))
    }
}

fn allowed_networks(value: &Value) -> Result<Vec<IpNet>, Refusal> {
    let Value::Array(items) = value else {
        return Err(format!(
            "expected an array of CIDR networks like [\"10.1.0.0/16\", \"fd00::/8\"], found {}",
            value.type_str()
        )
        .into());
    };
    let mut networks = Vec::with_capacity(items.len());
    let mut problems = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let parsed = match item {
            Value::String(s) => parse_network(s).map_err(|e| e.to_string()),
            other => Err(format!(
                "expected a CIDR string like \"10.1.0.0/16\", found {}",
                other.type_str()
            )),
        };
        match parsed {
            Ok(net) => networks.push(net),
            Err(message) => problems.push((Some(i), message)),
        }
    }
    if problems.is_empty() {
        Ok(networks)
    } else {
        Err(Refusal(problems))
    }
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
pub(super) fn line_column(text: &str, offset: usize) -> (usize, usize) {
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

/// The accepted key closest to `key`, if it is plausibly a typo of it.
fn suggestion<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    if key.chars().count() > 64 {
        return None;
    }
    let key = key.to_lowercase();
    known
        .iter()
        .map(|k| (strsim::levenshtein(&key, k), *k))
        .filter(|(d, k)| *d <= 2 && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Where a key that is misplaced in `section` belongs, if it is known elsewhere.
fn home_of(key: &str, section: &str) -> Option<String> {
    keys::SECTIONS
        .iter()
        .find(|s| s.name != section && s.accepted().contains(&key))
        .map(|s| match s.name {
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
    auth::check_user(s).map_err(|e| e.to_string())?;
    Ok(s.clone())
}

fn role(value: &Value) -> Result<Role, String> {
    match value {
        Value::String(s) => s.parse().map_err(|e: auth::UnknownRole| e.to_string()),
        other => Err(format!(
            "expected a string ({}), found {}",
            Role::choices(),
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
