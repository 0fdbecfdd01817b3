//! `hookd listen`, the receiver for trying hookd: the real binary gets real deliveries
//! from a real hookd and prints valid verdicts; a tampered body is `invalid`, a
//! re-signed old timestamp `stale`; every request is answered with `--status`.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::common::receiver::{Received, Receiver};
use crate::common::{Hookd, USER, eventually, http};

const WAIT: Duration = Duration::from_secs(20);
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const PLAIN: &str = "optional-hmac-secret";

/// A running `hookd listen`, its stdout collected line by line.
struct Listen {
    child: Child,
    addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Listen {
    /// Starts `hookd listen --port 0` with `args` and reads the address it prints.
    fn start(args: &[&str]) -> Listen {
        let mut child = Command::new(env!("CARGO_BIN_EXE_hookd"))
            .args(["listen", "--port", "0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hookd listen");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lock").push(line);
            }
        });
        let first = eventually(WAIT, "hookd listen printed its address", || {
            lines.lock().expect("lock").first().cloned()
        });
        let addr = first
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no address in {first:?}"));
        Listen { child, addr, lines }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Waits for `n` printed requests and returns each one's text.
    fn blocks(&self, n: usize) -> Vec<String> {
        eventually(
            WAIT,
            &format!("hookd listen printed {n} request(s)"),
            || {
                let lines = self.lines.lock().expect("lock");
                let mut blocks = Vec::new();
                let mut current = Vec::new();
                for line in lines.iter().skip(1) {
                    current.push(line.clone());
                    if line.starts_with("-> answered") {
                        blocks.push(current.join("\n"));
                        current.clear();
                    }
                }
                (blocks.len() >= n).then_some(blocks)
            },
        )
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn has_line(block: &str, line: &str) -> bool {
    block.lines().any(|l| l == line)
}

#[test]
fn real_deliveries_verify_and_get_the_status_asked_for() {
    let ok = Listen::start(&["--secret", WHSEC]);
    let failing = Listen::start(&["--secret", PLAIN, "--status", "503"]);
    let hookd = Hookd::start();
    let a = hookd.create_webhook(USER, &ok.url("/webhook"), &["app:connected"], Some(WHSEC));
    let b = hookd.create_webhook(USER, &failing.url("/in"), &["app:connected"], Some(PLAIN));
    let event = hookd.publish(
        "app:connected",
        "user-123",
        r#"{"appType":"whatsapp","nested":{"list":[1,2]}}"#,
        None,
    );

    let block = &ok.blocks(1)[0];
    assert!(block.starts_with("POST /webhook\n"), "{block}");
    for line in [
        "x-hook-event: app:connected",
        "x-hook-attempt: 1",
        &format!("webhook-id: {event}"),
        &format!("event id: {event}"),
        "    \"payload\": {",
        "      \"appType\": \"whatsapp\",",
        "X-Hook-Signature: valid",
        "webhook-signature: valid",
        "-> answered 200",
    ] {
        assert!(has_line(block, line), "no line {line:?} in:\n{block}");
    }
    let log = hookd.wait_deliveries(USER, &a, WAIT, |d| {
        d.first().is_some_and(|d| d["status"] == "succeeded")
    });
    assert_eq!(log[0]["attempts"][0]["statusCode"], 200);
    assert_eq!(log[0]["attempts"][0]["responseBody"], "{\"received\":true}");

    let block = &failing.blocks(1)[0];
    assert!(block.starts_with("POST /in\n"), "{block}");
    for line in [
        "X-Hook-Signature: valid",
        "webhook-signature: valid",
        "-> answered 503",
    ] {
        assert!(has_line(block, line), "no line {line:?} in:\n{block}");
    }
    let log = hookd.wait_deliveries(USER, &b, WAIT, |d| {
        d.first()
            .is_some_and(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
    });
    assert_eq!(log[0]["attempts"][0]["statusCode"], 503);
}

/// Sends `got` (a delivery as a receiver saw it) to `to`, with `body` and the headers
/// changed as given, and returns the answer's status.
fn replay(to: SocketAddr, got: &Received, body: &[u8], changed: &[(&str, String)]) -> u16 {
    let mut headers: Vec<(String, String)> = got
        .headers
        .iter()
        .filter(|(name, _)| {
            let name = name.to_ascii_lowercase();
            name != "host" && name != "content-length" && name != "connection"
        })
        .filter(|(name, _)| !changed.iter().any(|(c, _)| c.eq_ignore_ascii_case(name)))
        .cloned()
        .collect();
    headers.extend(changed.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    http(to, "POST", &got.path, &headers, Some(body)).status
}

#[test]
fn tampered_and_stale_deliveries_are_called_out() {
    // A real delivery, as a receiver got it.
    let receiver = Receiver::ok();
    let hookd = Hookd::start();
    hookd.create_webhook(
        USER,
        &receiver.url("/hook"),
        &["app:connected"],
        Some(PLAIN),
    );
    let event = hookd.publish(
        "app:connected",
        "user-123",
        r#"{"appType":"whatsapp"}"#,
        None,
    );
    let got = receiver.wait_for(1, WAIT).remove(0);

    let listen = Listen::start(&["--secret", PLAIN, "--status", "202"]);
    // As sent: valid.
    assert_eq!(replay(listen.addr, &got, &got.body, &[]), 202);
    // One byte of the body changed: both signatures fail.
    let tampered = got.body_str().replace("whatsapp", "whatsapq");
    assert_eq!(replay(listen.addr, &got, tampered.as_bytes(), &[]), 202);
    // Signed properly (independently of hookd's code), but an hour ago: stale.
    let hour_ago = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3600;
    let mut mac = Hmac::<Sha256>::new_from_slice(PLAIN.as_bytes()).unwrap();
    mac.update(format!("{event}.{hour_ago}.").as_bytes());
    mac.update(&got.body);
    let old = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
    let stale = [
        ("webhook-timestamp", hour_ago.to_string()),
        ("webhook-signature", old),
    ];
    assert_eq!(replay(listen.addr, &got, &got.body, &stale), 202);

    let blocks = listen.blocks(3);
    let expect = [
        ("X-Hook-Signature: valid", "webhook-signature: valid"),
        ("X-Hook-Signature: invalid", "webhook-signature: invalid"),
        ("X-Hook-Signature: valid", "webhook-signature: stale"),
    ];
    for (block, (hook, standard)) in blocks.iter().zip(expect) {
        assert!(has_line(block, hook), "no {hook:?} in:\n{block}");
        assert!(has_line(block, standard), "no {standard:?} in:\n{block}");
        assert!(has_line(block, "-> answered 202"), "{block}");
        assert!(has_line(block, &format!("event id: {event}")), "{block}");
    }
    assert!(
        blocks[2].contains("webhook-timestamp is 3600 s old"),
        "{}",
        blocks[2]
    );
}

#[test]
fn bad_arguments_are_refused() {
    for status in ["99", "600", "abc"] {
        let o = Command::new(env!("CARGO_BIN_EXE_hookd"))
            .args(["listen", "--port", "0", "--status", status])
            .output()
            .expect("run hookd listen");
        assert_eq!(o.status.code(), Some(2), "--status {status}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("--status"));
    }
    // A port that is taken: a clear error, exit 1.
    let taken = Listen::start(&[]);
    let o = Command::new(env!("CARGO_BIN_EXE_hookd"))
        .args(["listen", "--port", &taken.addr.port().to_string()])
        .output()
        .expect("run hookd listen");
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("cannot listen on {}", taken.addr)),
        "{err}"
    );
}
