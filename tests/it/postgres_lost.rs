//! The database goes away and comes back (docs/scaling-out.md: "hookd then answers `503
//! store_unavailable` … until the server is back. Either way nothing acknowledged is
//! lost, and hookd recovers by itself"). hookd reaches the suite's PostgreSQL through a
//! TCP relay on 127.0.0.1 that the test cuts: every open connection is shut down and new
//! ones are closed at once, as when the server's host or the network between goes. The
//! server itself stays up for the rest of the suite.
//!
//! Only under `HOOKD_TEST_STORE=postgres` (elsewhere the test skips with a note).

use std::collections::HashSet;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::postgres;
use crate::common::receiver::Receiver;
use crate::common::{self, Hookd, Settings, USER, eventually};

const WAIT: Duration = Duration::from_secs(60);

/// A TCP relay to `upstream` that can be cut and restored.
struct Relay {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    /// Both ends of every relayed connection, to shut down when cut.
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let relay = Relay {
            addr: listener.local_addr().unwrap(),
            up: Arc::new(AtomicBool::new(true)),
            open: Arc::new(Mutex::new(Vec::new())),
        };
        let (up, open) = (Arc::clone(&relay.up), Arc::clone(&relay.open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                // Cut: the connection is closed at once (dropped).
                if !up.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut open = open.lock().unwrap();
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (mut from, mut to) = (from.try_clone().unwrap(), to.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
                open.extend([client, server]);
            }
        });
        relay
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for stream in self.open.lock().unwrap().drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[test]
fn a_lost_database_is_reported_refused_and_recovered_from_without_losing_an_event() {
    if common::postgres_only() {
        return;
    }
    let server = postgres::server();
    let db = postgres::database();
    let relay = Relay::start(SocketAddr::from(([127, 0, 0, 1], server.port)));
    let url = format!(
        "postgres://postgres@{}/{}?sslmode=disable",
        relay.addr,
        db.name()
    );
    let hookd = Hookd::start_with(Settings {
        postgres_url: Some(url),
        ..Settings::default()
    });
    let rx = Receiver::ok();
    hookd.create_webhook(USER, &rx.url("/lost"), &["message:received"], None);
    let mut acked: HashSet<String> = HashSet::new();
    acked.insert(hookd.publish("message:received", "user-123", "{}", Some("before")));
    rx.wait_for(1, WAIT);

    relay.cut();
    // Until hookd notices, an ingest may still be acknowledged (then it must arrive);
    // once it has, /healthz says degraded and ingest is refused with a clear error.
    let mut n = 0;
    eventually(
        WAIT,
        "a 503 store_unavailable while the database is gone",
        || {
            n += 1;
            let r = hookd.ingest(
                "message:received",
                "user-123",
                "{}",
                Some(&format!("gone-{n}")),
            );
            match r.status {
                202 => {
                    acked.insert(format!("gone-{n}"));
                    None
                }
                503 => {
                    r.assert_error(503, "store_unavailable");
                    Some(())
                }
                other => panic!("ingest while the database is gone: {other} {}", r.body),
            }
        },
    );
    let health = hookd.get("/healthz", USER);
    assert_eq!(health.status, 503, "{}", health.body);
    assert_eq!(health.json()["status"], "degraded", "{}", health.body);

    relay.restore();
    eventually(WAIT, "/healthz back to 200 once the database is", || {
        (hookd.get("/healthz", USER).status == 200).then_some(())
    });
    acked.insert(hookd.publish("message:received", "user-123", "{}", Some("after")));
    let got = rx.wait_until(WAIT, |got| {
        let ids: HashSet<String> = got.iter().map(|r| r.event_id()).collect();
        acked.is_subset(&ids)
    });
    let ids: HashSet<String> = got.iter().map(|r| r.event_id()).collect();
    assert!(
        acked.is_subset(&ids),
        "acknowledged {acked:?}, received {ids:?}"
    );
}
