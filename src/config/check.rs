//! The TOML walker: turns the parsed file into a [`Config`], collecting every problem.
//!
//! It walks the table by hand rather than deserializing, so that it can report *all*
//! problems at once, each at the dotted path of its key, and say what was meant: an
//! unknown key gets a "did you mean" hint or the section it belongs in. Accepted keys and
//! defaults come from [`keys`]; a key that is absent or refused takes its default, so the
//! walk always yields a whole `Config` (and an empty file yields [`Config::default`]).
//!
//! The value checkers themselves are in `values.rs`; they return the user-facing problem
//! text as their error: that text is the data this module produces, not a lost cause.

use std::collections::HashMap;

use toml::{Table, Value};

use super::keys::{self, Key, Section};
use super::values::{
    allowed_networks, boolean, byte_size, data_dir, integer_in, log_format, notification_secret,
    notification_url, positive_duration, proxy, retry_schedule, role, sha256, socket_addr, user,
    usize_in,
};
use super::values::{backend, node_id, postgres_url};
use super::{
    Backend, ClusterConfig, Config, DeliveryConfig, LimitsConfig, MAX_LEASE, MAX_PAYLOAD_BYTES,
    MAX_POOL_SIZE, MAX_TIMEOUT, MAX_WORKERS, MIN_LEASE, MIN_PAYLOAD_BYTES, NotificationsConfig,
    Problem, RetentionConfig, StoreConfig,
};
use crate::auth::{Role, TokenConfig};

/// Parses and checks config text: the config, or every problem found.
pub(super) fn check(text: &str, env_url: Option<String>) -> Result<Config, Vec<Problem>> {
    let root = toml::from_str::<Table>(text).map_err(|err| vec![syntax_problem(text, &err)])?;
    let mut checker = Checker {
        env_url,
        ..Checker::default()
    };
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
pub(super) struct Refusal(pub(super) Vec<(Option<usize>, String)>);

impl From<String> for Refusal {
    fn from(message: String) -> Refusal {
        Refusal(vec![(None, message)])
    }
}

/// Walks the parsed TOML, filling a [`Config`] and collecting problems.
#[derive(Default)]
struct Checker {
    problems: Vec<Problem>,
    /// `HOOKD_POSTGRES_URL`, which overrides `store.postgres_url`.
    env_url: Option<String>,
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
        let table = self.section(root, &keys::STORE).unwrap_or(&empty);
        let store = self.store(table);
        let table = self.section(root, &keys::CLUSTER).unwrap_or(&empty);
        let cluster = self.cluster(table);
        let table = self.section(root, &keys::NOTIFICATIONS).unwrap_or(&empty);
        let notifications = self.notifications(table, &delivery);
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
            store,
            cluster,
            notifications,
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
            proxy: s.get(&keys::PROXY, proxy),
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

    fn store(&mut self, t: &Table) -> StoreConfig {
        let section = &keys::STORE;
        let mut s = Scope::open(self, t, section.name.to_owned(), section);
        let backend = s.get(&keys::BACKEND, backend);
        let file_url = s.get(&keys::POSTGRES_URL, postgres_url);
        let env_url = s.checker.env_url.clone();
        let mut env_refused = false;
        let postgres_url = match env_url {
            Some(url) => match postgres_url(&Value::String(url)) {
                Ok(url) => url,
                Err(message) => {
                    s.checker.push(
                        crate::config::POSTGRES_URL_ENV.to_owned(),
                        format!("(which overrides store.postgres_url) {message}"),
                    );
                    env_refused = true;
                    None
                }
            },
            None => file_url,
        };
        // One bad URL, one problem: a refused one is not also reported missing.
        if backend == Backend::Postgres
            && postgres_url.is_none()
            && !env_refused
            && !s.failed(&keys::POSTGRES_URL)
        {
            let message = format!(
                "required with backend = \"postgres\" (or set {} in the environment)",
                crate::config::POSTGRES_URL_ENV
            );
            s.refuse(&keys::POSTGRES_URL, message.into());
        }
        StoreConfig {
            min_free_space: s.get(&keys::MIN_FREE_SPACE, byte_size),
            max_unavailable: s.get(&keys::MAX_UNAVAILABLE, |v| positive_duration(v, "5m", None)),
            backend,
            postgres_url,
            pool_size: s.get(&keys::POOL_SIZE, |v| usize_in(v, 1, Some(MAX_POOL_SIZE))),
        }
    }

    fn cluster(&mut self, t: &Table) -> ClusterConfig {
        let section = &keys::CLUSTER;
        let mut s = Scope::open(self, t, section.name.to_owned(), section);
        ClusterConfig {
            node_id: s.get(&keys::NODE_ID, node_id),
            lease: s.get(&keys::LEASE, |v| {
                positive_duration(v, "10s", Some(MAX_LEASE)).and_then(|lease| {
                    if lease < MIN_LEASE {
                        Err(format!(
                            "must be at least {} (a node renews its leases every third of it)",
                            crate::config::format_duration(MIN_LEASE)
                        ))
                    } else {
                        Ok(lease)
                    }
                })
            }),
        }
    }

    /// `[notifications]`; the URL is held to the destination rules of `delivery`.
    fn notifications(&mut self, t: &Table, delivery: &DeliveryConfig) -> NotificationsConfig {
        let section = &keys::NOTIFICATIONS;
        let mut s = Scope::open(self, t, section.name.to_owned(), section);
        let policy = crate::delivery::destination::Policy::from_config(delivery);
        NotificationsConfig {
            url: s.get(&keys::NOTIFICATIONS_URL, |v| notification_url(v, &policy)),
            secret: s.get(&keys::NOTIFICATIONS_SECRET, notification_secret),
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
