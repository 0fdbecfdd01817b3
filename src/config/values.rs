//! The value checkers: one TOML value in, one typed value or the user-facing problem
//! text out. The walker in `check.rs` decides where (at which key) a problem is reported;
//! these decide what is wrong and how to say it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use toml::Value;

use super::check::Refusal;
use super::{
    Backend, EgressProxy, LogFormat, MAX_RETRY_ATTEMPTS, NotificationSecret, format_duration,
    parse_duration,
};
use crate::auth;
use crate::auth::Role;

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

pub(super) fn retry_schedule(value: &Value) -> Result<Vec<Duration>, Refusal> {
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

pub(super) fn allowed_networks(value: &Value) -> Result<Vec<IpNet>, Refusal> {
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

/// Describes a wrong value type, with a hint when a scalar was quoted.
pub(super) fn found(value: &Value) -> String {
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

pub(super) fn duration_value(value: &Value, example: &str) -> Result<Duration, String> {
    match value {
        Value::String(s) => parse_duration(s).map_err(|e| e.to_string()),
        other => Err(format!(
            "expected a string like \"{example}\", found {}",
            other.type_str()
        )),
    }
}

pub(super) fn positive_duration(
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

pub(super) fn integer_in(value: &Value, min: i64, max: Option<i64>) -> Result<i64, String> {
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

pub(super) fn usize_in(value: &Value, min: usize, max: Option<usize>) -> Result<usize, String> {
    let to_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let i = integer_in(value, to_i64(min), max.map(to_i64))?;
    usize::try_from(i).map_err(|_| format!("{i} is too large for this platform"))
}

/// A size in bytes: a whole number of bytes, or a string with a unit (`"256MiB"`,
/// `"1GiB"`, `"500MB"`), as the `bytesize` crate reads it.
pub(super) fn byte_size(value: &Value) -> Result<u64, String> {
    match value {
        Value::Integer(n) => {
            u64::try_from(*n).map_err(|_| format!("must not be negative, found {n}"))
        }
        Value::String(s) => s
            .parse::<bytesize::ByteSize>()
            .map(|size| size.as_u64())
            .map_err(|_| format!("expected a size such as \"256MiB\" or \"1GiB\", found {s:?}")),
        other => Err(format!(
            "expected a size such as \"256MiB\" or \"1GiB\", found {}",
            found(other)
        )),
    }
}

/// `delivery.proxy`: `""` for none, else exactly `http://host:port`.
pub(super) fn proxy(value: &Value) -> Result<Option<EgressProxy>, String> {
    const LIKE: &str = "like \"http://proxy.internal:3128\"";
    let Value::String(text) = value else {
        return Err(format!(
            "expected a string {LIKE} (or \"\" for none), found {}",
            found(value)
        ));
    };
    if text.is_empty() {
        return Ok(None);
    }
    let quoted = format!("\"{}\"", text.escape_debug());
    let uri: hyper::Uri = text
        .parse()
        .map_err(|_| format!("{quoted} is not a URL {LIKE}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(scheme) => {
            return Err(format!(
                "must be an http:// URL {LIKE}, found {scheme}:// (hookd speaks plain HTTP to \
                 the proxy, and tunnels https:// deliveries through it with CONNECT)"
            ));
        }
        None => return Err(format!("expected a URL {LIKE}, found {quoted}")),
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("{quoted} has no host; expected a URL {LIKE}"));
    };
    if authority.as_str().contains('@') {
        return Err(format!(
            "{quoted} holds credentials (user:password@); hookd does not log in to the \
             proxy, so allow hookd's address at the proxy instead"
        ));
    }
    let host = authority.host();
    if !valid_host(host) {
        return Err(format!(
            "{quoted} has an invalid host \"{}\"; expected a host name or an IP address",
            host.escape_debug()
        ));
    }
    let port = match authority.port_u16() {
        Some(0) => return Err(format!("{quoted} has port 0; expected 1 to 65535")),
        Some(port) => port,
        None => return Err(format!("{quoted} has no port; write it {LIKE}")),
    };
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(format!(
            "{quoted} has a path or query; expected only the scheme, host and port, {LIKE}"
        ));
    }
    Ok(Some(EgressProxy {
        host: host.to_owned(),
        port,
    }))
}

/// A host name (letters, digits, `-`, `_`, dot-separated) or an IP literal, IPv6 in brackets.
fn valid_host(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    let label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    host.len() <= 253 && host.trim_end_matches('.').split('.').all(label)
}

pub(super) fn log_format(value: &Value) -> Result<LogFormat, String> {
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

/// `store.backend`.
pub(super) fn backend(value: &Value) -> Result<Backend, String> {
    match value {
        Value::String(s) if s == "redb" => Ok(Backend::Redb),
        Value::String(s) if s == "postgres" => Ok(Backend::Postgres),
        Value::String(s) if s == "postgresql" || s == "pg" => Err(format!(
            "expected \"redb\" or \"postgres\", found {s:?}; did you mean \"postgres\"?"
        )),
        Value::String(s) => Err(format!("expected \"redb\" or \"postgres\", found {s:?}")),
        other => Err(format!(
            "expected \"redb\" or \"postgres\", found {}",
            found(other)
        )),
    }
}

/// `store.postgres_url` (and `HOOKD_POSTGRES_URL`): `""` for none, else a URL that
/// tokio-postgres accepts. The URL may hold a password, so a refusal never quotes it.
pub(super) fn postgres_url(value: &Value) -> Result<Option<String>, String> {
    const LIKE: &str = "like \"postgres://hookd@db.internal:5432/hookd?sslmode=require\"";
    let Value::String(url) = value else {
        return Err(format!(
            "expected a string {LIKE} (or \"\" for none), found {}",
            found(value)
        ));
    };
    if url.is_empty() {
        return Ok(None);
    }
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!("expected a postgres:// URL {LIKE}"));
    }
    match crate::store::postgres::parse_url(url) {
        Ok(_) => Ok(Some(url.clone())),
        Err(e) => Err(format!("is not a PostgreSQL URL {LIKE}: {e}")),
    }
}

/// `cluster.node_id`: `""` for the default, else 1 to 64 of `A-Z a-z 0-9 . _ -`.
pub(super) fn node_id(value: &Value) -> Result<Option<String>, String> {
    const RULE: &str =
        "1 to 64 of A-Z a-z 0-9 . _ - (or \"\" for the host name and a random suffix)";
    match value {
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s)
            if s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) =>
        {
            Ok(Some(s.clone()))
        }
        Value::String(s) => Err(format!("expected {RULE}, found {s:?}")),
        other => Err(format!("expected a string: {RULE}; found {}", found(other))),
    }
}

pub(super) fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Boolean(b) => Ok(*b),
        other => Err(format!(
            "expected a boolean (true or false), found {}",
            found(other)
        )),
    }
}

pub(super) fn socket_addr(value: &Value) -> Result<SocketAddr, String> {
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

pub(super) fn data_dir(value: &Value) -> Result<PathBuf, String> {
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

pub(super) fn user(value: &Value) -> Result<String, String> {
    let Value::String(s) = value else {
        return Err(format!(
            "expected a string like \"user-123\", found {}",
            value.type_str()
        ));
    };
    auth::check_user(s).map_err(|e| e.to_string())?;
    Ok(s.clone())
}

pub(super) fn role(value: &Value) -> Result<Role, String> {
    match value {
        Value::String(s) => s.parse().map_err(|e: auth::UnknownRole| e.to_string()),
        other => Err(format!(
            "expected a string ({}), found {}",
            Role::choices(),
            other.type_str()
        )),
    }
}

/// `notifications.url`: `""` for none, else a URL that a webhook could have under
/// `policy` (the rule is [`destination::check_url`]'s, written once).
///
/// [`destination::check_url`]: crate::delivery::destination::check_url
pub(super) fn notification_url(
    value: &Value,
    policy: &crate::delivery::destination::Policy,
) -> Result<Option<String>, String> {
    use crate::delivery::destination::{UrlProblem, check_url};
    let Value::String(s) = value else {
        return Err(format!(
            "expected a string like \"https://ops.example.com/hookd\" (or \"\" for none), found {}",
            value.type_str()
        ));
    };
    if s.is_empty() {
        return Ok(None);
    }
    match check_url(s, policy) {
        Ok(_) => Ok(Some(s.clone())),
        Err(UrlProblem::Invalid(why) | UrlProblem::NotAllowed(why)) => Err(why),
    }
}

/// `notifications.secret`: `""` for none, else at most as long as a webhook's secret.
/// Never echoed.
pub(super) fn notification_secret(value: &Value) -> Result<Option<NotificationSecret>, String> {
    use crate::delivery::signing::MAX_SECRET_BYTES;
    match value {
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) if s.len() > MAX_SECRET_BYTES => Err(format!(
            "is {} bytes long; at most {MAX_SECRET_BYTES} are accepted",
            s.len()
        )),
        Value::String(s) => Ok(Some(NotificationSecret::new(s.clone()))),
        other => Err(format!(
            "expected a string like \"whsec_…\" (or \"\" for none), found {}",
            other.type_str()
        )),
    }
}

/// Parses a stored token hash. The value itself is never echoed: a user who
/// pasted the plaintext token here must not see it repeated in logs.
pub(super) fn sha256(value: &Value) -> Result<[u8; 32], String> {
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
