//! Issue 14 end to end, with real receivers on 127.0.0.1: custom headers per webhook
//! (`headers`), W3C trace context from ingest to every attempt (`trace`), strict ordering
//! (`fifo`), a store written by the previous hookd (`upgrade`), and what a backup keeps
//! (`backup`).

mod backup;
mod fifo;
mod headers;
mod trace;
mod upgrade;

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::common::Settings;
use crate::common::receiver::{Receiver, Reply};

pub const WAIT: Duration = Duration::from_secs(20);

pub fn settings(delivery: &str) -> Settings {
    Settings {
        delivery: delivery.into(),
        ..Settings::default()
    }
}

/// A receiver whose answers are planned per event id (200 when nothing is planned),
/// that can hold an event's requests until the test lets them go, and that counts how
/// many requests it is answering at once: every request is held `hold` before its
/// answer, so deliveries that overlapped would show.
pub struct Scripted {
    pub rx: Receiver,
    shared: Arc<Script>,
}

#[derive(Default)]
struct Script {
    plan: Mutex<HashMap<String, VecDeque<Reply>>>,
    held: Mutex<HashSet<String>>,
    released: Condvar,
    inside: AtomicUsize,
    most: AtomicUsize,
}

impl Scripted {
    pub fn start(hold: Duration) -> Scripted {
        let shared = Arc::new(Script::default());
        let script = Arc::clone(&shared);
        let rx = Receiver::start(move |req, _| {
            let now = script.inside.fetch_add(1, Ordering::SeqCst) + 1;
            script.most.fetch_max(now, Ordering::SeqCst);
            let event = req.event_id();
            let mut held = script.held.lock().unwrap();
            while held.contains(&event) {
                // Bounded, so a test that fails while holding cannot hang the receiver.
                let (guard, timeout) = script
                    .released
                    .wait_timeout(held, Duration::from_secs(30))
                    .unwrap();
                held = guard;
                if timeout.timed_out() {
                    break;
                }
            }
            drop(held);
            std::thread::sleep(hold);
            let reply = script
                .plan
                .lock()
                .unwrap()
                .get_mut(&event)
                .and_then(VecDeque::pop_front)
                .unwrap_or(Reply::Status(200));
            script.inside.fetch_sub(1, Ordering::SeqCst);
            reply
        });
        Scripted { rx, shared }
    }

    /// The answers to the next requests for `event`, in order.
    pub fn plan(&self, event: &str, replies: impl IntoIterator<Item = Reply>) {
        self.shared
            .plan
            .lock()
            .unwrap()
            .entry(event.to_string())
            .or_default()
            .extend(replies);
    }

    /// Requests for `event` wait (unanswered) until [`Scripted::release`].
    pub fn hold(&self, event: &str) {
        self.shared.held.lock().unwrap().insert(event.to_string());
    }

    pub fn release(&self, event: &str) {
        self.shared.held.lock().unwrap().remove(event);
        self.shared.released.notify_all();
    }

    /// The most requests it was answering at the same time.
    pub fn most_at_once(&self) -> usize {
        self.shared.most.load(Ordering::SeqCst)
    }

    /// How many requests it is answering now.
    pub fn answering(&self) -> usize {
        self.shared.inside.load(Ordering::SeqCst)
    }

    /// The event ids of the requests received so far, in arrival order.
    pub fn order(&self) -> Vec<String> {
        self.rx.received().iter().map(|r| r.event_id()).collect()
    }

    /// Waits until `n` requests have arrived; answers their event ids in arrival order.
    pub fn wait_order(&self, n: usize) -> Vec<String> {
        self.rx
            .wait_for(n, WAIT)
            .iter()
            .map(|r| r.event_id())
            .collect()
    }
}
