//! The receiver: the webhooks' destination, a hyper 1 HTTP/1.1 keep-alive server on
//! 127.0.0.1 (tokio, 2 worker threads) that answers 200 with an empty body (or 500 to
//! first attempts, for the retry scenario).
//!
//! For each request it records its arrival time, the webhook (from the URL path
//! `/h/<k>`), the attempt (`X-Hook-Attempt`) and the payload's `seq`/`sentNs` (found by a
//! byte search in the body: no JSON parse, so the receiver stays cheap next to hookd).
//! Waiting for the drain ends when every expected delivery was answered 200, or when
//! nothing arrived for the drain timeout (the rest then count as lost).

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

use crate::clock_ns;

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ReplyMode {
    AlwaysOk,
    /// 500 to attempt 1, 200 to every later attempt.
    FailFirstAttempt,
}

/// One request as the receiver saw it.
#[derive(Clone, Copy)]
pub struct Arrival {
    pub at_ns: u64,
    pub sent_ns: u64,
    pub seq: u32,
    pub hook: u16,
    pub attempt: u16,
    pub ok: bool,
}

pub struct ReceiverShared {
    pub mode: ReplyMode,
    pub arrivals: Mutex<Vec<Arrival>>,
    /// Requests answered 200 so far.
    pub ok_count: AtomicUsize,
    pub last_ns: AtomicU64,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub shared: Arc<ReceiverShared>,
    /// Dropping the runtime closes the listener and every connection.
    pub _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    pub fn start(listener: TcpListener, mode: ReplyMode) -> Receiver {
        let addr = listener.local_addr().expect("receiver address");
        listener
            .set_nonblocking(true)
            .expect("non-blocking receiver socket");
        let shared = Arc::new(ReceiverShared {
            mode,
            arrivals: Mutex::new(Vec::new()),
            ok_count: AtomicUsize::new(0),
            last_ns: AtomicU64::new(0),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("bench-recv")
            .enable_all()
            .build()
            .expect("receiver runtime");
        let accept_shared = Arc::clone(&shared);
        runtime.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("receiver listener");
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let shared = Arc::clone(&accept_shared);
                tokio::spawn(async move {
                    let service = service_fn(move |req| receive(Arc::clone(&shared), req));
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            addr,
            shared,
            _runtime: runtime,
        }
    }

    /// Waits until `expected` requests were answered 200, or until no request at all
    /// arrived for `quiet` (then the missing ones count as lost).
    pub fn wait_for(&self, expected: usize, quiet: Duration) {
        let mut last_seen = (self.shared.last_ns.load(Ordering::Relaxed), Instant::now());
        while self.shared.ok_count.load(Ordering::Relaxed) < expected {
            std::thread::sleep(Duration::from_millis(20));
            let last = self.shared.last_ns.load(Ordering::Relaxed);
            if last != last_seen.0 {
                last_seen = (last, Instant::now());
            } else if last_seen.1.elapsed() > quiet {
                println!(
                    "drain timeout     nothing arrived for {} s; {} of {expected} answered 200",
                    quiet.as_secs(),
                    self.shared.ok_count.load(Ordering::Relaxed)
                );
                return;
            }
        }
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.shared.arrivals.lock().expect("arrivals").clone()
    }
}

pub async fn receive(
    shared: Arc<ReceiverShared>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let at_ns = clock_ns();
    let hook = req
        .uri()
        .path()
        .strip_prefix("/h/")
        .and_then(|k| k.parse().ok())
        .unwrap_or(u16::MAX);
    let attempt = req
        .headers()
        .get("x-hook-attempt")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let body = match req.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let ok = !(shared.mode == ReplyMode::FailFirstAttempt && attempt <= 1);
    let arrival = Arrival {
        at_ns,
        sent_ns: number_after(&body, b"\"sentNs\":").unwrap_or(0),
        seq: number_after(&body, b"\"seq\":").map_or(u32::MAX, |n| n as u32),
        hook,
        attempt,
        ok,
    };
    shared.arrivals.lock().expect("arrivals").push(arrival);
    if ok {
        shared.ok_count.fetch_add(1, Ordering::Relaxed);
    }
    shared.last_ns.store(at_ns, Ordering::Relaxed);
    let mut response = Response::new(Full::new(Bytes::new()));
    if !ok {
        *response.status_mut() = hyper::StatusCode::INTERNAL_SERVER_ERROR;
    }
    Ok(response)
}

/// The unsigned integer right after the first occurrence of `key` in `body`.
pub fn number_after(body: &[u8], key: &[u8]) -> Option<u64> {
    let start = body.windows(key.len()).position(|w| w == key)? + key.len();
    body[start..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .fold(None, |acc: Option<u64>, &b| {
            Some(acc.unwrap_or(0) * 10 + u64::from(b - b'0'))
        })
}
