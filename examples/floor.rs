//! The HTTP floor: what hookd's two HTTP exchanges per event cost on this machine with
//! nothing else around them, the lower bound of `bench`'s CPU per event (issue 13).
//!
//! ```text
//! cargo build --release --example floor
//! ./target/release/examples/floor [--rate R] [--secs S] [--threads T] [--rounds N] [--fan-out F] [--no-forward] [--async-client]
//! ```
//!
//! A child process, the *forwarder*, does per event only what hookd's HTTP side must do:
//! take one POST with a hyper 1 server on tokio's multi-thread runtime and answer `202`,
//! and hand the body to one of 64 blocking threads that POSTs it with ureq 3, on a
//! keep-alive agent, to a receiver (F times with `--fan-out F`, like `bench b`'s ten
//! webhooks). No store, no signing, no scheduler, no JSON parse.
//! This process drives it (open loop like `bench c`: T threads with keep-alive ureq agents
//! sending at fixed times, R events/s for S seconds; a rate above what the forwarder
//! takes makes it a closed loop, like `bench a`) and runs the receiver (a thread per
//! keep-alive connection answering `200`). It prints the forwarder's CPU (utime + stime
//! from `/proc/<pid>/stat`) per event and per delivery for each round.
//!
//! Two variants split the figure:
//! - `--no-forward`: the forwarder answers and drops the body: the server side alone;
//! - `--async-client`: the forwarder posts with hyper's client on its own tokio threads
//!   instead of the 64 blocking ureq threads: what leaving the worker threads would save.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

/// As many blocking delivery threads as hookd's default `delivery.workers`.
const WORKERS: usize = 64;
/// The event body: about the size of `bench`'s (a 256-byte payload in an envelope).
const BODY_BYTES: usize = 300;
/// `/proc/<pid>/stat` counts CPU in these (`getconf CLK_TCK` is 100 on Linux).
const CLOCK_TICKS_PER_SEC: f64 = 100.0;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// How the forwarder sends what it takes.
#[derive(Clone, Copy, PartialEq)]
enum Onward {
    /// To one of [`WORKERS`] blocking ureq threads, as hookd does.
    Workers,
    /// With hyper's client, on the forwarder's tokio threads.
    Async,
    /// Not at all: the body is dropped after the `202`.
    Nowhere,
}

impl Onward {
    fn arg(self) -> &'static str {
        match self {
            Onward::Workers => "workers",
            Onward::Async => "async",
            Onward::Nowhere => "nowhere",
        }
    }

    fn parse(arg: &str) -> Result<Onward, Failure> {
        match arg {
            "workers" => Ok(Onward::Workers),
            "async" => Ok(Onward::Async),
            "nowhere" => Ok(Onward::Nowhere),
            other => Err(format!("unknown send mode {other:?}").into()),
        }
    }
}

struct Args {
    rate: f64,
    secs: f64,
    threads: usize,
    rounds: usize,
    fan_out: usize,
    send: Onward,
}

const USAGE: &str = "usage: floor [--rate R] [--secs S] [--threads T] [--rounds N] [--fan-out F] [--no-forward] [--async-client]";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        // The child: `floor forward <port> <receiver url> <send mode> <fan-out>`.
        Some("forward") => forward_role(&args[1..]),
        _ => parse(&args).and_then(|args| measure(&args)),
    };
    if let Err(e) = result {
        eprintln!("floor: {e}");
        std::process::exit(2);
    }
}

fn parse(raw: &[String]) -> Result<Args, Failure> {
    let mut args = Args {
        rate: 400.0,
        secs: 30.0,
        threads: 16,
        rounds: 3,
        fan_out: 1,
        send: Onward::Workers,
    };
    let mut it = raw.iter();
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--rate" => args.rate = value()?.parse()?,
            "--secs" => args.secs = value()?.parse()?,
            "--threads" => args.threads = value()?.parse()?,
            "--rounds" => args.rounds = value()?.parse()?,
            "--fan-out" => args.fan_out = value()?.parse()?,
            "--no-forward" => args.send = Onward::Nowhere,
            "--async-client" => args.send = Onward::Async,
            other => return Err(format!("unknown argument {other:?}\n{USAGE}").into()),
        }
    }
    if args.rate <= 0.0 || args.secs <= 0.0 || args.threads == 0 || args.fan_out == 0 {
        return Err(format!("rate, secs, threads and fan-out must be positive\n{USAGE}").into());
    }
    Ok(args)
}

/// Starts the receiver and the forwarder, then drives `rounds` rounds and prints each.
fn measure(args: &Args) -> Result<(), Failure> {
    let receiver = TcpListener::bind("127.0.0.1:0")?;
    let receiver_url = format!("http://{}/r", receiver.local_addr()?);
    let arrived = Arc::new(AtomicUsize::new(0));
    let counter = arrived.clone();
    std::thread::spawn(move || receive(receiver, &counter));
    let port = free_port()?;
    let forwarder = Forwarder(
        Command::new(std::env::current_exe()?)
            .args(["forward", &port.to_string(), &receiver_url, args.send.arg()])
            .arg(args.fan_out.to_string())
            .spawn()?,
    );
    let url = format!("http://127.0.0.1:{port}/e");
    wait_until_listening(port)?;
    println!(
        "forwarder: hyper server, sends by {} (fan-out {}); {} events/s for {} s from {} threads",
        args.send.arg(),
        args.fan_out,
        args.rate,
        args.secs,
        args.threads
    );
    for round in 1..=args.rounds {
        let before = cpu_ticks(forwarder.0.id())?;
        let arrived_before = arrived.load(Ordering::Acquire);
        let (sent, start) = drive(&url, args)?;
        let deliveries = match args.send {
            Onward::Nowhere => 0,
            Onward::Workers | Onward::Async => sent * args.fan_out,
        };
        // The forwards go on after the driver's last 202: the round ends at the last
        // arrival (or, if some never arrive, 30 s after the last 202).
        let deadline = Instant::now() + Duration::from_secs(30);
        while arrived.load(Ordering::Acquire) - arrived_before < deliveries
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let elapsed = start.elapsed().as_secs_f64();
        let missing = deliveries.saturating_sub(arrived.load(Ordering::Acquire) - arrived_before);
        if missing > 0 {
            println!("round {round}: {missing} deliveries never arrived");
        }
        let used = (cpu_ticks(forwarder.0.id())? - before) as f64 / CLOCK_TICKS_PER_SEC;
        let per_delivery = match deliveries {
            0 => String::new(),
            n => format!(
                ", {:.0} deliveries/s, {:.0} µs per delivery",
                n as f64 / elapsed,
                used * 1e6 / n as f64
            ),
        };
        println!(
            "round {round}: {sent} events in {elapsed:.1} s ({:.0}/s): forwarder {:.3} cores, {:.0} µs per event{per_delivery}",
            sent as f64 / elapsed,
            used / elapsed,
            used * 1e6 / sent as f64,
        );
    }
    Ok(())
}

/// The forwarder child, killed when the measurement ends.
struct Forwarder(Child);

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> Result<u16, Failure> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_until_listening(port: u16) -> Result<(), Failure> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return Err("the forwarder did not listen within 10 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// utime + stime of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, Failure> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after_name = stat.rfind(')').map_or("", |i| &stat[i + 1..]);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    match (fields.get(11), fields.get(12)) {
        (Some(utime), Some(stime)) => Ok(utime.parse::<u64>()? + stime.parse::<u64>()?),
        _ => Err(format!("/proc/{pid}/stat has no utime and stime").into()),
    }
}

/// Sends `rate × secs` events at fixed times from `threads` threads; returns how many
/// were answered `202` and the first send time.
fn drive(url: &str, args: &Args) -> Result<(usize, Instant), Failure> {
    let body = Arc::new(format!("{{\"pad\":\"{}\"}}", "x".repeat(BODY_BYTES - 10)));
    let total = (args.rate * args.secs) as usize;
    let start = Instant::now() + Duration::from_millis(100);
    let senders: Vec<_> = (0..args.threads)
        .map(|first| {
            let (url, body, rate, step) = (url.to_string(), body.clone(), args.rate, args.threads);
            std::thread::spawn(move || {
                let agent = ureq::Agent::new_with_defaults();
                let mut accepted = 0;
                for n in (first..total).step_by(step) {
                    let at = start + Duration::from_secs_f64(n as f64 / rate);
                    if let Some(wait) = at.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let answer = agent.post(&url).send(body.as_bytes());
                    if let Ok(mut response) = answer {
                        let _ = response.body_mut().read_to_vec();
                        accepted += usize::from(response.status() == 202);
                    }
                }
                accepted
            })
        })
        .collect();
    let mut sent = 0;
    for sender in senders {
        sent += sender.join().map_err(|_| "a driver thread panicked")?;
    }
    Ok((sent, start))
}

/// The receiver: a thread per keep-alive connection, answering every request `200` and
/// counting it in `arrived`.
fn receive(listener: TcpListener, arrived: &Arc<AtomicUsize>) {
    for stream in listener.incoming().flatten() {
        let arrived = arrived.clone();
        std::thread::spawn(move || {
            let _ = answer_each(stream, &arrived);
        });
    }
}

fn answer_each(stream: TcpStream, arrived: &AtomicUsize) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut out = stream.try_clone()?;
    let mut input = BufReader::new(stream);
    let mut line = String::new();
    loop {
        let mut length = 0;
        loop {
            line.clear();
            if input.read_line(&mut line)? == 0 {
                return Ok(()); // the connection closed
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        std::io::copy(&mut (&mut input).take(length), &mut std::io::sink())?;
        out.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")?;
        arrived.fetch_add(1, Ordering::AcqRel);
    }
}

/// The forwarder: `forward <port> <receiver url> <send mode> <fan-out>`.
fn forward_role(args: &[String]) -> Result<(), Failure> {
    let [port, receiver, send, fan_out] = args else {
        return Err("usage: floor forward <port> <receiver url> <send mode> <fan-out>".into());
    };
    let address: SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let send = Onward::parse(send)?;
    let fan_out: usize = fan_out.parse()?;
    let (to_workers, bodies) = mpsc::channel::<Bytes>();
    if send == Onward::Workers {
        let bodies = Arc::new(Mutex::new(bodies));
        for _ in 0..WORKERS {
            let (bodies, receiver) = (bodies.clone(), receiver.clone());
            std::thread::spawn(move || post_each(&bodies, &receiver));
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(
        address,
        receiver.clone(),
        (send, fan_out),
        to_workers,
    ))
}

/// A blocking worker: takes bodies one at a time and POSTs each with ureq.
fn post_each(bodies: &Mutex<mpsc::Receiver<Bytes>>, receiver: &str) {
    let agent = ureq::Agent::new_with_defaults();
    loop {
        let next = match bodies.lock() {
            Ok(bodies) => bodies.recv(),
            Err(_) => return,
        };
        let Ok(body) = next else { return };
        if let Ok(mut response) = agent.post(receiver).send(&body[..]) {
            let _ = response.body_mut().read_to_vec();
        }
    }
}

async fn serve(
    address: SocketAddr,
    receiver: String,
    (send, fan_out): (Onward, usize),
    to_workers: mpsc::Sender<Bytes>,
) -> Result<(), Failure> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let listener = tokio::net::TcpListener::bind(address).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        let (client, receiver, to_workers) = (client.clone(), receiver.clone(), to_workers.clone());
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let (client, receiver, to_workers) =
                    (client.clone(), receiver.clone(), to_workers.clone());
                async move {
                    let body = request.into_body().collect().await?.to_bytes();
                    match send {
                        Onward::Workers => {
                            for _ in 0..fan_out {
                                let _ = to_workers.send(body.clone());
                            }
                        }
                        Onward::Async => {
                            for _ in 0..fan_out {
                                let (client, body) = (client.clone(), body.clone());
                                let post = Request::post(receiver.as_str()).body(Full::new(body));
                                tokio::spawn(async move {
                                    if let Ok(post) = post
                                        && let Ok(response) = client.request(post).await
                                    {
                                        let _ = response.into_body().collect().await;
                                    }
                                });
                            }
                        }
                        Onward::Nowhere => {}
                    }
                    let mut accepted = Response::new(Full::new(Bytes::from_static(b"{}")));
                    *accepted.status_mut() = StatusCode::ACCEPTED;
                    Ok::<_, hyper::Error>(accepted)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
