//! The egress proxy (`delivery.proxy`): reaching a destination through an HTTP forward
//! proxy without letting the proxy choose the address.
//!
//! The destination is resolved and checked exactly as without a proxy: ureq runs the
//! agent's resolver, the destination guard ([`GuardedResolver`]), before any connector,
//! and a refused address ends the attempt there, before the proxy hears of it. Then
//! [`ProxyConnector`] connects to the proxy (its address is the operator's choice and is
//! not checked) and names the destination by the first checked address, as an IP literal:
//!
//! - `https://`: `CONNECT ip:port`; on a 2xx answer the tunnel goes on to ureq's TLS
//!   connector, which still uses the webhook's host name for SNI and the certificate;
//! - `http://`: the request itself goes to the proxy in absolute form,
//!   `POST http://ip:port/path`, its `Host` header still the webhook's host.
//!
//! So a proxy never resolves a webhook's host name: a name re-pointed at an internal
//! address (DNS rebinding) is caught by the guard here, and a proxy cannot be steered by
//! it. A failure of the proxy itself (no connection, a non-2xx answer to `CONNECT`, a
//! `407`) is a [`ProxyFailed`], which the attempt's log and record show as
//! `proxy_error: …`, distinct from anything a receiver answered.
//!
//! Why not ureq's own [`ureq::Proxy`] (3.5, read in its source): it resolves the proxy's
//! host through the agent's resolver, that is through the guard, which would refuse a
//! proxy on an internal network, with nothing to tell the two lookups apart; with
//! `resolve_target(true)` it writes the resolved socket address and then the port again
//! (`CONNECT 1.2.3.4:443:443`); and ureq 3 writes every request line in origin form, so
//! an `http://` destination could only be reached with `CONNECT` to port 80, which
//! common proxies refuse by default (Squid's `CONNECT` is for port 443). TCP, TLS,
//! timeouts and the request itself stay ureq's; this module adds only the `CONNECT`
//! exchange and the absolute-form request target.
//!
//! [`GuardedResolver`]: super::http::GuardedResolver

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use ureq::http::Uri;
use ureq::unversioned::resolver::DefaultResolver;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, NextTimeout, TcpConnector, Transport, TransportAdapter,
};

use crate::config::EgressProxy;

/// The largest answer header to `CONNECT` hookd reads.
const MAX_CONNECT_ANSWER: usize = 16 * 1024;
/// Header fields parsed in an answer to `CONNECT`; more is a broken proxy.
const MAX_CONNECT_HEADERS: usize = 64;

/// The proxy failed: hookd could not reach it, or it refused to go on. Carried through
/// ureq as the source of an I/O error, like the guard's refusals.
#[derive(Debug)]
pub struct ProxyFailed(pub String);

impl fmt::Display for ProxyFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "proxy_error: {}", self.0)
    }
}

impl std::error::Error for ProxyFailed {}

impl ProxyFailed {
    fn into_ureq(self, proxy: &EgressProxy) -> ureq::Error {
        tracing::warn!(proxy = %proxy, error = %self.0, "egress proxy failed");
        ureq::Error::Io(io::Error::other(self))
    }
}

/// First in the agent's connector chain when `delivery.proxy` is set: opens the
/// connection to the proxy and asks it for the checked destination address.
#[derive(Debug)]
pub struct ProxyConnector {
    proxy: EgressProxy,
    /// `http://host:port/`, for ureq's lookup and TCP connector.
    uri: Uri,
    resolver: DefaultResolver,
    tcp: TcpConnector,
}

impl ProxyConnector {
    /// A connector for `proxy`; `None` if its host and port do not form a URI, which a
    /// checked config never gives.
    pub fn new(proxy: EgressProxy) -> Option<ProxyConnector> {
        let uri = format!("{proxy}/").parse().ok()?;
        Some(ProxyConnector {
            proxy,
            uri,
            resolver: DefaultResolver::default(),
            tcp: TcpConnector::default(),
        })
    }

    /// A TCP connection to the proxy, within the attempt's connect timeout.
    fn open(&self, details: &ConnectionDetails) -> Result<Box<dyn Transport>, ProxyFailed> {
        let cannot = |e: &ureq::Error| {
            ProxyFailed(format!(
                "cannot connect to the proxy {}: {}",
                self.proxy,
                short(e)
            ))
        };
        let addrs = super::http::lookup(&self.resolver, &self.uri, details.config, details.timeout)
            .map_err(|e| cannot(&e))?;
        let proxy_details = ConnectionDetails {
            uri: &self.uri,
            addrs,
            config: details.config,
            request_level: details.request_level,
            resolver: details.resolver,
            now: details.now,
            timeout: details.timeout,
            current_time: details.current_time.clone(),
            run_connector: details.run_connector.clone(),
            register_shutdown: details.register_shutdown.clone(),
        };
        match Connector::<()>::connect(&self.tcp, &proxy_details, None) {
            Ok(Some(transport)) => Ok(Box::new(transport)),
            Ok(None) => Err(ProxyFailed(format!(
                "cannot connect to the proxy {}",
                self.proxy
            ))),
            Err(e) => Err(cannot(&e)),
        }
    }

    /// Asks the proxy for a tunnel to `target` and returns the connection once it is one.
    fn tunnel(
        &self,
        transport: Box<dyn Transport>,
        target: SocketAddr,
        details: &ConnectionDetails,
    ) -> Result<Box<dyn Transport>, ProxyFailed> {
        let mut io = TransportAdapter::new(transport, details.current_time.clone());
        io.set_timeout(details.timeout);
        let request = format!(
            "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: {}\r\n\r\n",
            super::http::USER_AGENT
        );
        let failed = |what: &str, e: io::Error| {
            let why = if e.kind() == io::ErrorKind::TimedOut {
                "timed out".to_owned()
            } else {
                e.to_string()
            };
            ProxyFailed(format!("{what} CONNECT {target} at {}: {why}", self.proxy))
        };
        io.write_all(request.as_bytes())
            .map_err(|e| failed("cannot send", e))?;
        let mut answer = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = io.read(&mut chunk).map_err(|e| failed("no answer to", e))?;
            if n == 0 {
                return Err(ProxyFailed(format!(
                    "the proxy {} closed the connection before answering CONNECT {target}",
                    self.proxy
                )));
            }
            answer.extend_from_slice(&chunk[..n]);
            let mut headers = [httparse::EMPTY_HEADER; MAX_CONNECT_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response.parse(&answer) {
                Ok(httparse::Status::Complete(len)) => {
                    let code = response.code.unwrap_or(0);
                    if !(200..300).contains(&code) {
                        let reason = response.reason.unwrap_or("").trim();
                        return Err(ProxyFailed(format!(
                            "the proxy {} answered {code} {reason} to CONNECT {target}",
                            self.proxy
                        )));
                    }
                    // The destination speaks first only after TLS starts, so anything
                    // after a 2xx header is the proxy's, and breaks the tunnel.
                    if len != answer.len() {
                        return Err(ProxyFailed(format!(
                            "the proxy {} sent data after its answer to CONNECT {target}",
                            self.proxy
                        )));
                    }
                    return Ok(io.into_inner());
                }
                Ok(httparse::Status::Partial) if answer.len() < MAX_CONNECT_ANSWER => {}
                Ok(httparse::Status::Partial) => {
                    return Err(ProxyFailed(format!(
                        "the proxy {} answered CONNECT {target} with a header over {} KiB",
                        self.proxy,
                        MAX_CONNECT_ANSWER / 1024
                    )));
                }
                Err(e) => {
                    return Err(ProxyFailed(format!(
                        "the proxy {} answered CONNECT {target} with invalid HTTP ({e})",
                        self.proxy
                    )));
                }
            }
        }
    }
}

impl Connector<()> for ProxyConnector {
    type Out = Box<dyn Transport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        _chained: Option<()>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        // Every address here passed the guard; the resolver refuses the lot otherwise.
        let Some(&target) = details.addrs.first() else {
            return Err(ureq::Error::HostNotFound);
        };
        let transport = self.open(details).map_err(|e| e.into_ureq(&self.proxy))?;
        let transport = if details.needs_tls() {
            self.tunnel(transport, target, details)
                .map_err(|e| e.into_ureq(&self.proxy))?
        } else {
            Box::new(AbsoluteForm {
                inner: transport,
                origin: format!("http://{target}"),
                sent: false,
            })
        };
        Ok(Some(transport))
    }
}

/// A connection to the proxy for one `http://` request, whose request line it writes in
/// absolute form: ureq writes `POST /path HTTP/1.1`, the proxy gets
/// `POST http://ip:port/path HTTP/1.1`. The headers, `Host` included, pass unchanged.
///
/// The connection carries that one request and is then not reused: the request line is
/// the first thing ureq sends on it, which is all this needs to know about HTTP.
#[derive(Debug)]
struct AbsoluteForm {
    inner: Box<dyn Transport>,
    /// `http://ip:port`, put in front of the origin-form target.
    origin: String,
    sent: bool,
}

impl Transport for AbsoluteForm {
    fn buffers(&mut self) -> &mut dyn Buffers {
        self.inner.buffers()
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        if self.sent || amount == 0 {
            return self.inner.transmit_output(amount, timeout);
        }
        self.sent = true;
        let output = self.inner.buffers().output();
        let written = output.get(..amount).unwrap_or(output);
        let target = written
            .iter()
            .position(|&b| b == b' ')
            .map(|space| space + 1)
            .filter(|&at| written.get(at) == Some(&b'/'));
        let Some(at) = target else {
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::InvalidData,
                "the request line is not in origin form",
            )));
        };
        let mut line = Vec::with_capacity(written.len() + self.origin.len());
        line.extend_from_slice(&written[..at]);
        line.extend_from_slice(self.origin.as_bytes());
        line.extend_from_slice(&written[at..]);
        // The output buffer held `amount` bytes; the longer text goes in buffer-sized parts.
        let room = output.len().max(1);
        for part in line.chunks(room) {
            self.inner.buffers().output()[..part.len()].copy_from_slice(part);
            self.inner.transmit_output(part.len(), timeout)?;
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.inner.await_input(timeout)
    }

    fn is_open(&mut self) -> bool {
        !self.sent && self.inner.is_open()
    }
}

/// A ureq error in a few words, for a proxy failure's message.
fn short(e: &ureq::Error) -> String {
    match e {
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
            "connection refused".to_owned()
        }
        ureq::Error::Io(e) if e.kind() == io::ErrorKind::TimedOut => "timed out".to_owned(),
        ureq::Error::Timeout(_) => "timed out".to_owned(),
        ureq::Error::HostNotFound => "its host name does not resolve".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::delivery::destination::Policy;
    use crate::delivery::http::tests::Rebinding;
    use crate::delivery::http::{GuardedResolver, HttpSender};

    /// A one-connection proxy on 127.0.0.1 that reports the request line and headers it
    /// got and answers `answer`; it never connects anywhere.
    fn fake_proxy(answer: &'static str) -> (EgressProxy, mpsc::Receiver<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                head.push(line.trim_end().to_owned());
            }
            (&stream).write_all(answer.as_bytes()).unwrap();
            tx.send(head).unwrap();
        });
        let proxy = EgressProxy {
            host: "127.0.0.1".into(),
            port,
        };
        (proxy, rx)
    }

    /// A sender whose every host name resolves to `to`, through `proxy`.
    fn sender(to: &str, proxy: EgressProxy) -> HttpSender {
        let resolver = GuardedResolver {
            inner: Rebinding(to.parse().unwrap()),
            policy: Policy::default(),
        };
        HttpSender::with_resolver(Duration::from_secs(5), 1, resolver, Some(proxy))
    }

    const DENIED: &str = "HTTP/1.1 407 Proxy Authentication Required\r\n\
                          Proxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn https_asks_for_the_checked_address_by_connect() {
        for (resolved, line) in [
            ("8.8.8.8:443", "CONNECT 8.8.8.8:443 HTTP/1.1"),
            (
                "[2606:4700::1111]:8443",
                "CONNECT [2606:4700::1111]:8443 HTTP/1.1",
            ),
        ] {
            let (proxy, seen) = fake_proxy(DENIED);
            let port = resolved.rsplit(':').next().unwrap();
            let url = format!("https://hooks.example.com:{port}/in");
            let outcome = sender(resolved, proxy.clone()).send(&url, &[], b"{}");
            let head = seen.recv_timeout(Duration::from_secs(5)).unwrap();
            assert_eq!(head[0], line);
            let error = outcome.error.unwrap();
            assert_eq!(
                error,
                format!(
                    "proxy_error: the proxy {proxy} answered 407 Proxy Authentication Required \
                     to CONNECT {resolved}"
                )
            );
            assert_eq!(outcome.status_code, None);
        }
    }

    #[test]
    fn http_goes_in_absolute_form_with_the_webhooks_host() {
        let (proxy, seen) = fake_proxy("HTTP/1.1 204 No Content\r\n\r\n");
        let outcome =
            sender("8.8.8.8:8080", proxy).send("http://hooks.example.com:8080/in?x=1", &[], b"{}");
        let head = seen.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(head[0], "POST http://8.8.8.8:8080/in?x=1 HTTP/1.1");
        assert!(
            head.iter()
                .any(|h| h.eq_ignore_ascii_case("host: hooks.example.com:8080"))
        );
        assert_eq!(outcome.status_code, Some(204), "{:?}", outcome.error);
    }

    #[test]
    fn a_407_to_an_absolute_form_request_is_the_proxys() {
        let (proxy, _seen) = fake_proxy(DENIED);
        let outcome =
            sender("8.8.8.8:80", proxy.clone()).send("http://hooks.example.com/in", &[], b"{}");
        assert_eq!(
            outcome.error.unwrap(),
            format!("proxy_error: the proxy {proxy} answered 407 Proxy Authentication Required")
        );
        assert_eq!(outcome.status_code, None);
    }

    #[test]
    fn a_refused_address_never_reaches_the_proxy() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = EgressProxy {
            host: "127.0.0.1".into(),
            port: listener.local_addr().unwrap().port(),
        };
        listener.set_nonblocking(true).unwrap();
        for url in [
            "https://rebound.example.com/in",
            "http://rebound.example.com/in",
        ] {
            let outcome = sender("169.254.169.254:443", proxy.clone()).send(url, &[], b"{}");
            let error = outcome.error.unwrap();
            assert_eq!(
                error, "destination_not_allowed: 169.254.169.254 is a link-local address",
                "{url}"
            );
        }
        let accepted = listener.accept();
        assert!(
            matches!(&accepted, Err(e) if e.kind() == io::ErrorKind::WouldBlock),
            "the proxy got a connection: {accepted:?}"
        );
    }

    #[test]
    fn an_unreachable_proxy_is_a_proxy_error() {
        // A port nothing listens on: bound, then closed.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let proxy = EgressProxy {
            host: "127.0.0.1".into(),
            port,
        };
        let outcome =
            sender("8.8.8.8:443", proxy.clone()).send("https://h.example.com/", &[], b"{}");
        assert_eq!(
            outcome.error.unwrap(),
            format!("proxy_error: cannot connect to the proxy {proxy}: connection refused")
        );
    }
}
