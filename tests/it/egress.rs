//! The egress proxy (`delivery.proxy`): hookd resolves and checks every destination
//! itself, then asks the proxy for the checked IP literal (`CONNECT ip:port` for https,
//! `POST http://ip:port/path` for http) with SNI and `Host` still the webhook's host, so
//! the proxy never sees a refused address; a proxy failure is recorded as the proxy's.
//!
//! The proxy is a recording one on 127.0.0.2, an address outside every allowed network
//! here (its own address is not checked); it logs each request line and forwards to
//! 127.0.0.1 at the port asked for. `localhost` resolves to 127.0.0.1 only, which the
//! guard refuses unless `allowed_networks` lists it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::common::receiver::Receiver;
use crate::common::{Hookd, Settings, USER};

const WAIT: Duration = Duration::from_secs(20);
const SECRET: &str = "egress-secret";

/// What the test proxy does with each request.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Forwards to 127.0.0.1 at the requested port.
    Forward,
    /// Answers `407 Proxy Authentication Required` to everything.
    Deny,
}

/// An HTTP forward proxy on 127.0.0.2 that records every request line.
struct RecordingProxy {
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    fn start(mode: Mode) -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.2:0").expect("bind the proxy on 127.0.0.2");
        let addr = listener.local_addr().expect("proxy address");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&lines);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let record = Arc::clone(&record);
                std::thread::spawn(move || serve(client, &record, mode));
            }
        });
        RecordingProxy { addr, lines }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("lock").clone()
    }
}

fn serve(client: TcpStream, record: &Mutex<Vec<String>>, mode: Mode) {
    let Ok(read_half) = client.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut head = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => break,
            Ok(_) => head.push(line.trim_end().to_owned()),
        }
    }
    let Some(request_line) = head.first().cloned() else {
        return;
    };
    record.lock().expect("lock").push(request_line.clone());
    let mut client = client;
    if mode == Mode::Deny {
        let _ = client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\n\
              Proxy-Authenticate: Basic realm=\"egress\"\r\nContent-Length: 0\r\n\r\n",
        );
        return;
    }
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return;
    };
    if method == "CONNECT" {
        let Some(upstream) = upstream(target) else {
            return;
        };
        if client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .is_ok()
        {
            splice(reader, client, upstream);
        }
        return;
    }
    // Absolute form: `POST http://ip:port/path HTTP/1.1` goes on as `POST /path HTTP/1.1`.
    let Some(rest) = target.strip_prefix("http://") else {
        return;
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some(mut upstream) = upstream(authority) else {
        return;
    };
    let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
    for header in &head[1..] {
        forwarded.push_str(header);
        forwarded.push_str("\r\n");
    }
    forwarded.push_str("\r\n");
    if upstream.write_all(forwarded.as_bytes()).is_ok() {
        splice(reader, client, upstream);
    }
}

/// A connection to 127.0.0.1 at the port of `authority` (`ip:port`).
fn upstream(authority: &str) -> Option<TcpStream> {
    let port: u16 = authority.rsplit(':').next()?.parse().ok()?;
    TcpStream::connect(("127.0.0.1", port)).ok()
}

/// Copies both ways until each side is done.
fn splice(mut from_client: BufReader<TcpStream>, mut client: TcpStream, mut upstream: TcpStream) {
    let Ok(mut to_upstream) = upstream.try_clone() else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_upstream);
        let _ = to_upstream.shutdown(Shutdown::Write);
    });
    let _ = std::io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(Shutdown::Write);
}

/// A TLS server's first step only: reads one ClientHello and reports its SNI host name
/// (`None` when it has none), then hangs up.
fn sni_listener() -> (u16, mpsc::Receiver<Option<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut header = [0u8; 5];
            if stream.read_exact(&mut header).is_err() || header[0] != 0x16 {
                let _ = tx.send(None);
                continue;
            }
            let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
            let mut record = vec![0u8; len];
            let read = stream.read_exact(&mut record);
            let _ = tx.send(read.ok().and_then(|()| client_hello_sni(&record)));
        }
    });
    (port, rx)
}

/// The `server_name` of a ClientHello handshake message (RFC 8446 §4.1.2, RFC 6066 §3).
fn client_hello_sni(msg: &[u8]) -> Option<String> {
    let take = |at: &mut usize, n: usize| -> Option<&[u8]> {
        let piece = msg.get(*at..*at + n)?;
        *at += n;
        Some(piece)
    };
    let u16_at = |bytes: &[u8]| usize::from(u16::from_be_bytes([bytes[0], bytes[1]]));
    let mut at = 0;
    if take(&mut at, 1)? != [1] {
        return None; // not a ClientHello
    }
    take(&mut at, 3 + 2 + 32)?; // length, legacy_version, random
    let session = usize::from(take(&mut at, 1)?[0]);
    take(&mut at, session)?;
    let suites = u16_at(take(&mut at, 2)?);
    take(&mut at, suites)?;
    let compression = usize::from(take(&mut at, 1)?[0]);
    take(&mut at, compression)?;
    let end = at + u16_at(take(&mut at, 2)?);
    while at < end {
        let kind = u16_at(take(&mut at, 2)?);
        let len = u16_at(take(&mut at, 2)?);
        let data = take(&mut at, len)?;
        if kind == 0 {
            // server_name_list: length, then name_type 0 (host_name), length, name
            let len = u16_at(data.get(3..5)?);
            return String::from_utf8(data.get(5..5 + len)?.to_vec()).ok();
        }
    }
    None
}

fn hookd_with(proxy: &RecordingProxy, allowed_networks: &str) -> Hookd {
    Hookd::start_with(Settings {
        delivery: format!(
            "allow_http = true\nallowed_networks = {allowed_networks}\n\
             retry_schedule = [\"0s\"]\nproxy = \"{}\"",
            proxy.url()
        ),
        strict_destinations: true,
        ..Settings::default()
    })
}

/// Publishes one event for `USER` and returns each webhook's one finished delivery.
fn deliver(hookd: &Hookd, webhooks: &[&str]) -> Vec<Value> {
    let _event = hookd.publish("message:received", "user-123", r#"{"via":"proxy"}"#, None);
    webhooks
        .iter()
        .map(|id| {
            let list = hookd.wait_deliveries(USER, id, WAIT, |d| {
                d.len() == 1 && d[0]["status"] != "pending"
            });
            list[0].clone()
        })
        .collect()
}

fn first_attempt(delivery: &Value) -> &Value {
    &delivery["attempts"][0]
}

#[test]
fn a_refused_destination_never_reaches_the_proxy() {
    let proxy = RecordingProxy::start(Mode::Forward);
    let receiver = Receiver::ok();
    let (tls_port, hellos) = sni_listener();
    // Nothing non-public is allowed: `localhost` (127.0.0.1) is refused.
    let hookd = hookd_with(&proxy, "[]");
    let port = receiver.addr.port();
    let http = hookd.create_webhook(
        USER,
        &format!("http://localhost:{port}/hook"),
        &["message:received"],
        Some(SECRET),
    );
    let https = hookd.create_webhook(
        USER,
        &format!("https://localhost:{tls_port}/hook"),
        &["message:received"],
        None,
    );
    for delivery in deliver(&hookd, &[&http, &https]) {
        assert_eq!(delivery["status"], "failed", "{delivery}");
        let attempt = first_attempt(&delivery);
        assert_eq!(
            attempt["error"], "destination_not_allowed: 127.0.0.1 is a loopback address",
            "{delivery}"
        );
        assert!(attempt.get("statusCode").is_none(), "{delivery}");
    }
    assert_eq!(proxy.lines(), Vec::<String>::new(), "the proxy was asked");
    assert!(receiver.received().is_empty());
    assert!(hellos.try_recv().is_err(), "a TLS connection was opened");
}

#[test]
fn an_allowed_destination_is_asked_for_by_its_checked_address() {
    let proxy = RecordingProxy::start(Mode::Forward);
    let receiver = Receiver::ok();
    let (tls_port, hellos) = sni_listener();
    // 127.0.0.1 is allowed; the proxy's 127.0.0.2 is not, and need not be.
    let hookd = hookd_with(&proxy, "[\"127.0.0.1/32\"]");
    let port = receiver.addr.port();
    let http = hookd.create_webhook(
        USER,
        &format!("http://localhost:{port}/hook?via=proxy"),
        &["message:received"],
        Some(SECRET),
    );
    let https = hookd.create_webhook(
        USER,
        &format!("https://localhost:{tls_port}/hook"),
        &["message:received"],
        None,
    );
    let done = deliver(&hookd, &[&http, &https]);
    assert!(hookd.log().contains(&format!(
        "deliveries go through the egress proxy proxy={}",
        proxy.url()
    )));

    // http://: absolute form to the checked address; the receiver sees the webhook's
    // host and a delivery signed as usual.
    assert_eq!(done[0]["status"], "succeeded", "{}", done[0]);
    assert_eq!(first_attempt(&done[0])["statusCode"], 200);
    let got = receiver.wait_for(1, WAIT);
    assert_eq!(got[0].path, "/hook?via=proxy");
    assert_eq!(
        got[0].header("host"),
        Some(format!("localhost:{port}").as_str())
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&got[0].body);
    assert_eq!(
        got[0].header("x-hook-signature"),
        Some(format!("sha256={}", hex::encode(mac.finalize().into_bytes())).as_str())
    );
    assert_eq!(got[0].json()["event"]["payload"]["via"], "proxy");

    // https://: CONNECT to the checked address; TLS still names the webhook's host. The
    // test's server hangs up after the ClientHello: the attempt fails past the proxy.
    let sni = hellos
        .recv_timeout(WAIT)
        .expect("a ClientHello through the tunnel");
    assert_eq!(sni.as_deref(), Some("localhost"));
    assert_eq!(done[1]["status"], "failed", "{}", done[1]);
    assert_eq!(first_attempt(&done[1])["error"], "connection reset");

    let mut lines = proxy.lines();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            format!("CONNECT 127.0.0.1:{tls_port} HTTP/1.1"),
            format!("POST http://127.0.0.1:{port}/hook?via=proxy HTTP/1.1"),
        ]
    );
}

#[test]
fn a_proxy_that_refuses_is_recorded_as_the_proxys_failure() {
    let proxy = RecordingProxy::start(Mode::Deny);
    let receiver = Receiver::ok();
    let hookd = hookd_with(&proxy, "[\"127.0.0.1/32\"]");
    let port = receiver.addr.port();
    let https = hookd.create_webhook(
        USER,
        &format!("https://localhost:{port}/hook"),
        &["message:received"],
        None,
    );
    let http = hookd.create_webhook(
        USER,
        &format!("http://localhost:{port}/hook"),
        &["message:received"],
        None,
    );
    let done = deliver(&hookd, &[&https, &http]);
    let expected = [
        format!(
            "proxy_error: the proxy {} answered 407 Proxy Authentication Required to \
             CONNECT 127.0.0.1:{port}",
            proxy.url()
        ),
        format!(
            "proxy_error: the proxy {} answered 407 Proxy Authentication Required",
            proxy.url()
        ),
    ];
    for (delivery, expected) in done.iter().zip(expected) {
        assert_eq!(delivery["status"], "failed", "{delivery}");
        let attempt = first_attempt(delivery);
        assert_eq!(attempt["error"], expected.as_str(), "{delivery}");
        assert!(attempt.get("statusCode").is_none(), "{delivery}");
    }
    assert!(receiver.received().is_empty());
    assert!(
        hookd.wait_for_log("egress proxy failed", WAIT),
        "no log line for the proxy's failure:\n{}",
        hookd.log()
    );
    assert!(
        hookd
            .log()
            .contains("answered 407 Proxy Authentication Required")
    );
}
