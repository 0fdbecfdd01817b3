//! The webhook receivers: plain HTTP/1.1 keep-alive servers on 127.0.0.1 (std::net, one
//! thread per connection) that record every request and answer it.
//!
//! The answer to a request depends only on its receiver's behaviour and on
//! `(X-Hook-Delivery, X-Hook-Attempt)`, never on timing or on how often it was seen: a
//! re-send of the same attempt after a crash gets the same answer as the first send. That
//! is what lets the verifier compare the receivers' view with hookd's delivery log
//! exactly (an attempt the receiver answered 500 must be logged as 500, and so on).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::now_ns;

/// How a receiver answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 at once.
    Healthy,
    /// 500 for about `percent` % of the (delivery, attempt) pairs, 200 otherwise.
    Flaky { percent: u64 },
    /// 200 after 100–300 ms.
    Slow,
}

impl Behaviour {
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Healthy => "healthy",
            Behaviour::Flaky { .. } => "flaky",
            Behaviour::Slow => "slow",
        }
    }

    /// The status this receiver answers to `attempt` of `delivery`, and how long it waits
    /// before answering. Deterministic in its arguments.
    pub fn answer(self, delivery: &str, attempt: u32) -> (u16, Duration) {
        let h = fnv1a(delivery.as_bytes()) ^ u64::from(attempt).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let h = mix(h);
        match self {
            Behaviour::Healthy => (200, Duration::ZERO),
            Behaviour::Flaky { percent } => {
                let status = if h % 100 < percent { 500 } else { 200 };
                (status, Duration::ZERO)
            }
            Behaviour::Slow => (200, Duration::from_millis(100 + h % 201)),
        }
    }
}

/// One request as a receiver saw it.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// Index of the receiver (in the order given to [`Receivers::start`]).
    pub receiver: usize,
    /// The webhook's key, from the URL path `/h/<key>`.
    pub hook: String,
    pub delivery: String,
    pub attempt: u32,
    pub event: String,
    /// When the request's head was read (ns on the campaign clock).
    pub at_ns: u64,
    /// The status it was (or would have been, if hookd died first) answered.
    pub status: u16,
}

/// Every receiver of the campaign and what they saw.
pub struct Receivers {
    pub addrs: Vec<SocketAddr>,
    arrivals: Arc<Mutex<Vec<Arrival>>>,
    /// Requests that could not be parsed (should stay 0).
    malformed: Arc<Mutex<Vec<String>>>,
}

impl Receivers {
    pub fn start(behaviours: &[Behaviour]) -> Receivers {
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let malformed = Arc::new(Mutex::new(Vec::new()));
        let mut addrs = Vec::new();
        for (index, &behaviour) in behaviours.iter().enumerate() {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind a receiver");
            addrs.push(listener.local_addr().expect("receiver address"));
            let arrivals = Arc::clone(&arrivals);
            let malformed = Arc::clone(&malformed);
            std::thread::Builder::new()
                .name(format!("receiver-{index}"))
                .spawn(move || {
                    // Ends with the process: the campaign exits when it is done.
                    for stream in listener.incoming().map_while(Result::ok) {
                        let arrivals = Arc::clone(&arrivals);
                        let malformed = Arc::clone(&malformed);
                        let _ = std::thread::Builder::new()
                            .name(format!("receiver-{index}-conn"))
                            .spawn(move || serve(stream, index, behaviour, &arrivals, &malformed));
                    }
                })
                .expect("spawn a receiver thread");
        }
        Receivers {
            addrs,
            arrivals,
            malformed,
        }
    }

    pub fn arrivals(&self) -> Vec<Arrival> {
        self.arrivals.lock().unwrap().clone()
    }

    pub fn arrival_count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    pub fn malformed(&self) -> Vec<String> {
        self.malformed.lock().unwrap().clone()
    }
}

/// Serves one keep-alive connection until the peer closes it (or 60 s of silence).
fn serve(
    stream: TcpStream,
    receiver: usize,
    behaviour: Behaviour,
    arrivals: &Mutex<Vec<Arrival>>,
    malformed: &Mutex<Vec<String>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = stream.set_nodelay(true);
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        match reader.read_line(&mut request_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let at_ns = now_ns();
        let mut delivery = None;
        let mut attempt = None;
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                let value = value.trim();
                match name.trim().to_ascii_lowercase().as_str() {
                    "x-hook-delivery" => delivery = Some(value.to_string()),
                    "x-hook-attempt" => attempt = value.parse::<u32>().ok(),
                    "content-length" => length = value.parse().unwrap_or(0),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            // hookd died mid-request; the head was read, so record what we know.
            if let (Some(d), Some(a)) = (&delivery, attempt) {
                record(
                    arrivals,
                    receiver,
                    behaviour,
                    &request_line,
                    d,
                    a,
                    "",
                    at_ns,
                );
            }
            return;
        }
        let (Some(delivery), Some(attempt)) = (delivery, attempt) else {
            malformed
                .lock()
                .unwrap()
                .push(request_line.trim_end().to_string());
            let _ = writer.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        };
        let event = event_id(&body).unwrap_or_default();
        let (status, wait) = record(
            arrivals,
            receiver,
            behaviour,
            &request_line,
            &delivery,
            attempt,
            &event,
            at_ns,
        );
        if !wait.is_zero() {
            std::thread::sleep(wait);
        }
        let reason = if status == 200 {
            "OK"
        } else {
            "Internal Server Error"
        };
        let answer = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn record(
    arrivals: &Mutex<Vec<Arrival>>,
    receiver: usize,
    behaviour: Behaviour,
    request_line: &str,
    delivery: &str,
    attempt: u32,
    event: &str,
    at_ns: u64,
) -> (u16, Duration) {
    let hook = request_line
        .split_whitespace()
        .nth(1)
        .and_then(|path| path.strip_prefix("/h/"))
        .unwrap_or("")
        .to_string();
    let (status, wait) = behaviour.answer(delivery, attempt);
    arrivals.lock().unwrap().push(Arrival {
        receiver,
        hook,
        delivery: delivery.to_string(),
        attempt,
        event: event.to_string(),
        at_ns,
        status,
    });
    (status, wait)
}

/// `event.id` from the delivery body `{"event":{"id":"…",…},…}` (no JSON parse needed:
/// hookd writes exactly this key order).
fn event_id(body: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(body).ok()?;
    let rest = text.strip_prefix("{\"event\":{\"id\":\"")?;
    Some(rest[..rest.find('"')?].to_string())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}
