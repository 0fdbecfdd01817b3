//! A scriptable webhook receiver on 127.0.0.1 for delivery tests: records every request
//! (headers, raw body, arrival time) and answers as the test says.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: Instant,
    /// Wall-clock arrival, to compare with hookd's timestamps.
    pub wall: std::time::SystemTime,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }

    pub fn event_id(&self) -> String {
        self.json()["event"]["id"].as_str().unwrap().to_string()
    }
}

/// How the receiver answers one request.
#[derive(Clone, Debug)]
pub enum Reply {
    Status(u16),
    /// Status, extra headers, body.
    Full(u16, Vec<(String, String)>, String),
    /// Waits this long before answering 200 (or until the client gives up).
    Hang(Duration),
    /// Waits this long, then answers with this status.
    Delayed(Duration, u16),
    /// Closes the connection without answering.
    Reset,
    /// 200, then a body that never ends (stops after 30 s or when the client leaves).
    EndlessBody,
    /// Sends the status line, then headers one byte every 100 ms, never finishing.
    DripHeaders,
    /// 200 with a 1 MiB header.
    HugeHeader,
}

type Behaviour = Box<dyn Fn(&Received, usize) -> Reply + Send + Sync>;

struct Shared {
    received: Mutex<Vec<Received>>,
    /// Requests that broke off before their end (headers or the announced body), each
    /// described; any one fails the test at its next look at the receiver.
    broken: Mutex<Vec<String>>,
    arrived: Condvar,
    behaviour: Mutex<Arc<Behaviour>>,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    /// Starts a receiver that answers every request with `reply(request, index)`.
    pub fn start(reply: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) -> Receiver {
        Receiver::start_on("127.0.0.1:0".parse().unwrap(), reply)
    }

    /// [`Receiver::start`] on a given address (e.g. one that hookd already sends to while
    /// nothing listened there).
    pub fn start_on(
        addr: SocketAddr,
        reply: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind(addr).expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            received: Mutex::new(Vec::new()),
            broken: Mutex::new(Vec::new()),
            arrived: Condvar::new(),
            behaviour: Mutex::new(Arc::new(Box::new(reply))),
        });
        let accept_shared = Arc::clone(&shared);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Receiver { addr, shared }
    }

    pub fn ok() -> Receiver {
        Receiver::start(|_, _| Reply::Status(200))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Changes how later requests are answered.
    pub fn set(&self, reply: impl Fn(&Received, usize) -> Reply + Send + Sync + 'static) {
        *self.shared.behaviour.lock().unwrap() = Arc::new(Box::new(reply));
    }

    pub fn received(&self) -> Vec<Received> {
        self.assert_none_broken();
        self.shared.received.lock().unwrap().clone()
    }

    /// Fails if any request arrived incomplete (see `Shared::broken`).
    fn assert_none_broken(&self) {
        let broken = self.shared.broken.lock().unwrap();
        assert!(
            broken.is_empty(),
            "the receiver got {} incomplete request(s):\n{}",
            broken.len(),
            broken.join("\n")
        );
    }

    /// Waits until `pred` holds for the requests received so far (at most `timeout`).
    pub fn wait_until(
        &self,
        timeout: Duration,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        let mut got = self.shared.received.lock().unwrap();
        loop {
            self.assert_none_broken();
            if pred(&got) {
                break;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "receiver condition not met within {timeout:?}; got {} requests",
                got.len()
            );
            got = self.shared.arrived.wait_timeout(got, left).unwrap().0;
        }
        got.clone()
    }

    /// Waits for at least `n` requests.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        self.wait_until(timeout, |r| r.len() >= n)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.assert_none_broken();
        }
    }
}

/// Counts, per path, the requests a receiver is answering at once: a behaviour that calls
/// [`InFlight::hold`] keeps each request open for a while, so the counts show how many a
/// sender keeps in flight. The count ends just before the answer is written, so it never
/// exceeds what the sender has open.
#[derive(Clone, Default)]
pub struct InFlight {
    /// Path → (open now, most ever open at once).
    counts: Arc<Mutex<HashMap<String, (usize, usize)>>>,
}

impl InFlight {
    /// Holds `request` open for `delay`, counted, then answers 200.
    pub fn hold(&self, request: &Received, delay: Duration) -> Reply {
        {
            let mut counts = self.counts.lock().unwrap();
            let (now, most) = counts.entry(request.path.clone()).or_default();
            *now += 1;
            *most = (*most).max(*now);
        }
        std::thread::sleep(delay);
        self.counts
            .lock()
            .unwrap()
            .get_mut(&request.path)
            .expect("counted on arrival")
            .0 -= 1;
        Reply::Status(200)
    }

    /// The most requests to `path` that were open at once.
    pub fn most(&self, path: &str) -> usize {
        self.counts.lock().unwrap().get(path).map_or(0, |c| c.1)
    }
}

fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
    let mut writer = stream;
    let broken = |what: String| {
        shared.broken.lock().unwrap().push(what);
        shared.arrived.notify_all();
    };
    let mut request_line = String::new();
    match reader.read_line(&mut request_line) {
        // A connection closed before sending anything is not a request.
        Ok(0) => return,
        Ok(_) => {}
        Err(e) => return broken(format!("reading the request line: {e}")),
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => {
                return broken(format!(
                    "{request_line:?}: the connection closed inside the headers {headers:?}"
                ));
            }
            Ok(_) => {}
            Err(e) => {
                return broken(format!(
                    "{request_line:?}: reading the headers {headers:?}: {e}"
                ));
            }
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; length];
    if let Err(e) = reader.read_exact(&mut body) {
        return broken(format!(
            "{request_line:?}: a body shorter than its Content-Length {length}: {e}"
        ));
    }
    let request = Received {
        path,
        headers,
        body,
        at: Instant::now(),
        wall: std::time::SystemTime::now(),
    };
    let behaviour = Arc::clone(&shared.behaviour.lock().unwrap());
    let index = {
        let mut got = shared.received.lock().unwrap();
        got.push(request.clone());
        shared.arrived.notify_all();
        got.len() - 1
    };
    let (status, extra, text) = match behaviour(&request, index) {
        Reply::Status(s) => (s, Vec::new(), String::new()),
        Reply::Full(s, h, b) => (s, h, b),
        Reply::Hang(d) => {
            std::thread::sleep(d);
            (200, Vec::new(), String::new())
        }
        Reply::Delayed(d, s) => {
            std::thread::sleep(d);
            (s, Vec::new(), String::new())
        }
        Reply::EndlessBody => {
            let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n");
            let chunk = [b'x'; 16 * 1024];
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until && writer.write_all(&chunk).is_ok() {}
            return;
        }
        Reply::DripHeaders => {
            let _ = writer.write_all(b"HTTP/1.1 200 OK\r\n");
            let until = Instant::now() + Duration::from_secs(30);
            while Instant::now() < until && writer.write_all(b"X").is_ok() {
                std::thread::sleep(Duration::from_millis(100));
            }
            return;
        }
        Reply::HugeHeader => {
            let big = "h".repeat(1024 * 1024);
            let _ = writer.write_all(
                format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 0\r\n\r\n").as_bytes(),
            );
            return;
        }
        Reply::Reset => {
            let _ = writer.shutdown(std::net::Shutdown::Both);
            return;
        }
    };
    let mut answer = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        text.len()
    );
    for (k, v) in extra {
        answer.push_str(&format!("{k}: {v}\r\n"));
    }
    answer.push_str("\r\n");
    answer.push_str(&text);
    let _ = writer.write_all(answer.as_bytes());
}
