//! The harness itself: its helpers fail loudly, with context, where they used to let a
//! broken exchange pass (a truncated answer, a receiver that got half a request, a kill
//! of a process that is not running).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use crate::common::receiver::Receiver;
use crate::common::{self, Hookd};

/// A one-shot server on 127.0.0.1 that reads the request head and answers `answer`.
fn answering(answer: &'static [u8]) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        s.write_all(answer).unwrap();
    });
    addr
}

#[test]
#[should_panic(expected = "the body ends after 5 of its 100 bytes")]
fn a_truncated_answer_fails_the_request() {
    let addr = answering(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
    let _ = common::http(addr, "GET", "/", &[], None);
}

#[test]
#[should_panic(expected = "closed without a whole response head")]
fn no_answer_fails_the_request() {
    let addr = answering(b"");
    let _ = common::http(addr, "GET", "/", &[], None);
}

#[test]
fn a_whole_answer_passes() {
    let addr = answering(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}");
    let r = common::http(addr, "GET", "/", &[], None);
    assert_eq!((r.status, r.body.as_str()), (201, "{}"));
}

#[test]
#[should_panic(expected = "a body shorter than its Content-Length 100")]
fn a_short_request_body_fails_the_receiver() {
    let rx = Receiver::ok();
    let mut s = std::net::TcpStream::connect(rx.addr).unwrap();
    s.write_all(b"POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhello")
        .unwrap();
    drop(s);
    rx.wait_for(1, Duration::from_secs(10));
}

#[test]
#[should_panic(expected = "kill9: hookd is not running")]
fn kill_9_of_a_stopped_hookd_fails() {
    let mut hookd = Hookd::start();
    hookd.kill9();
    hookd.kill9();
}
