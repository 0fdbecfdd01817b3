//! One HTTP attempt, on a blocking ureq agent shared by the worker threads (connections
//! are pooled and reused per destination).
//!
//! Outcome rules (docs/guide.md, "Receiving webhooks"): the status decides. A 2xx status line and headers
//! within `timeout` is a success; a redirect is never followed; anything else fails the
//! attempt. After the headers, at most [`MAX_BODY_READ`] bytes of the body are read within
//! the same deadline and the connection is dropped if there is more, so an endless or
//! dripping body costs one bounded attempt. Every address a host resolves to is checked
//! by the destination guard before connecting ([`GuardedResolver`]), with or without the
//! egress proxy (`delivery.proxy`, [`super::proxy`]).

use std::fmt;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use ureq::Agent;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::{Connector, DefaultConnector, NextTimeout, RustlsConnector};

use super::destination::Policy;
use super::proxy::{ProxyConnector, ProxyFailed};
use super::retry::parse_retry_after;
use crate::config::EgressProxy;
use crate::store::ops::attempts::Verdict;

/// The `User-Agent` of every request hookd sends, `CONNECT` included.
pub const USER_AGENT: &str = concat!("hookd/", env!("CARGO_PKG_VERSION"));

/// How much of a response body is read at most.
pub const MAX_BODY_READ: u64 = 4096;
/// How much of it is kept in the delivery log.
pub const KEPT_BODY_BYTES: usize = 1024;
/// Response header sections larger than this fail the attempt.
const MAX_RESPONSE_HEADER_BYTES: usize = 64 * 1024;

/// What one attempt produced, ready to be logged.
#[derive(Debug)]
pub struct AttemptOutcome {
    pub verdict: Verdict,
    pub status_code: Option<u16>,
    pub error: Option<String>,
    pub response_body: Option<String>,
    pub duration: Duration,
}

/// Refusal by the destination guard, carried through ureq as the source of an I/O error.
#[derive(Debug)]
pub struct DestinationRefused(pub String);

impl fmt::Display for DestinationRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "destination_not_allowed: {}", self.0)
    }
}

impl std::error::Error for DestinationRefused {}

/// Resolves names with `inner` and refuses the connection if any address is blocked.
/// This is where DNS rebinding is stopped: the check runs on exactly the addresses that
/// the connector will use, at send time.
#[derive(Debug)]
pub struct GuardedResolver<R: Resolver = DefaultResolver> {
    pub inner: R,
    pub policy: Policy,
}

impl<R: Resolver> Resolver for GuardedResolver<R> {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let addrs = lookup(&self.inner, uri, config, timeout)?;
        let refused: Option<(&SocketAddr, &str)> = addrs
            .iter()
            .find_map(|a| self.policy.refusal(a.ip()).map(|why| (a, why)));
        if let Some((addr, why)) = refused {
            let refusal = DestinationRefused(format!("{} is a {why} address", addr.ip()));
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::PermissionDenied,
                refusal,
            )));
        }
        Ok(addrs)
    }
}

/// The addresses of `uri`'s host, unchecked: an IP literal as it is, a name through
/// `inner`. (ureq's default resolver runs every lookup on a fresh thread when a timeout
/// is set, which would cost a thread per attempt for a literal.)
pub(super) fn lookup(
    inner: &impl Resolver,
    uri: &ureq::http::Uri,
    config: &ureq::config::Config,
    timeout: NextTimeout,
) -> Result<ResolvedSocketAddrs, ureq::Error> {
    let literal = uri
        .host()
        .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<std::net::IpAddr>().ok());
    let Some(ip) = literal else {
        return inner.resolve(uri, config, timeout);
    };
    let port = uri
        .port_u16()
        .unwrap_or(if uri.scheme_str() == Some("http") {
            80
        } else {
            443
        });
    let mut addrs = inner.empty();
    addrs.push(SocketAddr::new(ip, port));
    Ok(addrs)
}

pub struct HttpSender {
    agent: Agent,
    timeout: Duration,
    /// `delivery.proxy`, when requests go through it.
    proxy: Option<EgressProxy>,
}

impl HttpSender {
    pub fn new(
        timeout: Duration,
        policy: Policy,
        pool_size: usize,
        proxy: Option<EgressProxy>,
    ) -> HttpSender {
        let resolver = GuardedResolver {
            inner: DefaultResolver::default(),
            policy,
        };
        Self::with_resolver(timeout, pool_size, resolver, proxy)
    }

    /// `proxy` is a checked `delivery.proxy`; one whose host and port do not form a URI
    /// (which the config check never lets through) is not used.
    pub fn with_resolver(
        timeout: Duration,
        pool_size: usize,
        resolver: impl Resolver,
        proxy: Option<EgressProxy>,
    ) -> HttpSender {
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            // ureq reads HTTP_PROXY/HTTPS_PROXY/ALL_PROXY by default; a proxy would then
            // resolve and connect to the webhook's host itself, after the guard checked
            // only the proxy's address. Outbound requests never follow the environment;
            // `delivery.proxy` is ProxyConnector's, which keeps the guard in charge.
            .proxy(None)
            .timeout_global(Some(timeout))
            .user_agent(USER_AGENT)
            .max_response_header_size(MAX_RESPONSE_HEADER_BYTES)
            .max_idle_connections(pool_size.max(1))
            .max_idle_connections_per_host(pool_size.clamp(1, 64))
            .build();
        match proxy.and_then(|p| ProxyConnector::new(p.clone()).map(|c| (p, c))) {
            Some((proxy, connector)) => HttpSender {
                agent: Agent::with_parts(
                    config,
                    connector.chain(RustlsConnector::default()),
                    resolver,
                ),
                timeout,
                proxy: Some(proxy),
            },
            None => HttpSender {
                agent: Agent::with_parts(config, DefaultConnector::default(), resolver),
                timeout,
                proxy: None,
            },
        }
    }

    /// POSTs `body` to `url` with `headers` and classifies the answer.
    pub fn send(&self, url: &str, headers: &[(&str, String)], body: &[u8]) -> AttemptOutcome {
        let started = Instant::now();
        let mut request = self.agent.post(url);
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let result = request.send(body);
        let failed = |error: String| AttemptOutcome {
            verdict: Verdict::Failure { retry_after: None },
            status_code: None,
            error: Some(error),
            response_body: None,
            duration: started.elapsed(),
        };
        let response = match result {
            Ok(r) => r,
            Err(e) => return failed(describe_error(&e, self.timeout)),
        };
        let status = response.status().as_u16();
        // A 407 to an absolute-form http:// request is the proxy's (one to CONNECT is a
        // ProxyFailed already): the receiver never saw the request. (Schemes ignore case:
        // `HTTP://` is an http:// webhook too.)
        if let Some(proxy) = &self.proxy
            && status == 407
            && url
                .get(.."http://".len())
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
        {
            let why = format!("the proxy {proxy} answered 407 Proxy Authentication Required");
            tracing::warn!(proxy = %proxy, error = %why, "egress proxy failed");
            return failed(ProxyFailed(why).to_string());
        }
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let mut kept = Vec::new();
        let mut reader = response.into_body().into_reader().take(MAX_BODY_READ);
        // The status already decided the outcome; a body that errors or stalls only
        // shortens what the log keeps.
        let _ = reader.read_to_end(&mut kept);
        let duration = started.elapsed();
        let (verdict, error) = match status {
            200..=299 => (Verdict::Success, None),
            410 => (
                Verdict::Gone,
                Some("410 Gone: the receiver asked to stop; webhook disabled".to_owned()),
            ),
            300..=399 => (
                Verdict::Failure { retry_after: None },
                Some("redirects are not followed".to_owned()),
            ),
            429 | 503 => (Verdict::Failure { retry_after }, None),
            _ => (Verdict::Failure { retry_after: None }, None),
        };
        AttemptOutcome {
            verdict,
            status_code: Some(status),
            error,
            response_body: keep_prefix(&kept),
            duration,
        }
    }
}

/// The first KiB of a body as text (cut at a character boundary); `None` when empty.
fn keep_prefix(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(KEPT_BODY_BYTES)]);
    let mut end = text.len().min(KEPT_BODY_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Some(text[..end].to_owned())
}

/// A short, stable description for the delivery log.
fn describe_error(e: &ureq::Error, timeout: Duration) -> String {
    match e {
        ureq::Error::Timeout(_) => format!(
            "timeout: no complete answer within {}",
            crate::config::format_duration(timeout)
        ),
        ureq::Error::HostNotFound => "host not found".to_owned(),
        ureq::Error::Io(io) => {
            if let Some(refused) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<DestinationRefused>())
            {
                return refused.to_string();
            }
            if let Some(failed) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<ProxyFailed>())
            {
                return failed.to_string();
            }
            if io.to_string().contains("lookup address") {
                return "host not found".to_owned();
            }
            match io.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => "connection reset".to_owned(),
                io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => {
                    format!(
                        "timeout: no complete answer within {}",
                        crate::config::format_duration(timeout)
                    )
                }
                _ => format!("network error: {io}"),
            }
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A resolver that answers every name with one fixed address: DNS rebinding in a box.
    #[derive(Debug)]
    pub(in crate::delivery) struct Rebinding(pub SocketAddr);

    impl Resolver for Rebinding {
        fn resolve(
            &self,
            _uri: &ureq::http::Uri,
            _config: &ureq::config::Config,
            _timeout: NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            let mut addrs = self.empty();
            addrs.push(self.0);
            Ok(addrs)
        }
    }

    #[test]
    fn ip_literals_are_checked_without_a_lookup() {
        let resolver = GuardedResolver {
            inner: Rebinding("8.8.8.8:1".parse().unwrap()),
            policy: Policy::default(),
        };
        let sender = HttpSender::with_resolver(Duration::from_secs(1), 1, resolver, None);
        for url in [
            "http://127.0.0.1:9/x",
            "https://[::1]/x",
            "https://169.254.169.254/latest",
        ] {
            let error = sender.send(url, &[], b"{}").error.unwrap();
            assert!(
                error.starts_with("destination_not_allowed: "),
                "{url}: {error}"
            );
        }
    }

    #[test]
    fn the_guard_checks_the_addresses_actually_resolved() {
        for target in [
            "127.0.0.1:443",
            "169.254.169.254:80",
            "[::1]:443",
            "[::ffff:10.0.0.1]:443",
        ] {
            let resolver = GuardedResolver {
                inner: Rebinding(target.parse().unwrap()),
                policy: Policy::default(),
            };
            let sender = HttpSender::with_resolver(Duration::from_secs(1), 1, resolver, None);
            let outcome = sender.send("https://passed-at-create-time.example/hook", &[], b"{}");
            let error = outcome.error.unwrap();
            assert!(
                error.starts_with("destination_not_allowed: "),
                "{target}: {error}"
            );
            assert_eq!(outcome.status_code, None);
        }
    }

    #[test]
    fn keeps_the_first_kib_on_a_char_boundary() {
        assert_eq!(keep_prefix(b""), None);
        assert_eq!(keep_prefix(b"ok").as_deref(), Some("ok"));
        let long = "é".repeat(1000);
        let kept = keep_prefix(long.as_bytes()).unwrap();
        assert!(kept.len() <= KEPT_BODY_BYTES && kept.chars().all(|c| c == 'é'));
    }
}
