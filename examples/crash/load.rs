//! The load: publisher threads ingesting events with known ids, and one mutator thread
//! that creates, disables and deletes webhooks and asks for recovers, all while hookd is
//! being killed and restarted underneath them. Each records what it sent and what, if
//! anything, hookd answered, with times on the campaign clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::daemon::{Api, PUBLISHER_TOKEN, USERS};
use crate::{Rng, now_ns};

/// The event types the publishers send.
pub const EVENT_TYPES: [&str; 5] = [
    "app:connected",
    "app:health_warning",
    "message:received",
    "message:sent",
    "agent:invoked",
];

/// `eventTypes` patterns the mutator gives the webhooks it creates.
const CHURN_PATTERNS: [&str; 5] = ["*", "app:*", "message:*", "agent:invoked", "app:connected"];

/// Whether a webhook subscribed to `pattern` gets events of type `event_type`.
pub fn matches(pattern: &str, event_type: &str) -> bool {
    pattern == "*"
        || pattern == event_type
        || pattern
            .strip_suffix('*')
            .is_some_and(|group| event_type.starts_with(group))
}

/// What became of one ingest.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// 202 (stored now) or 200 (a repeat of an id already stored): acknowledged.
    Acked { status: u16, deliveries: u64 },
    /// No answer (connection refused or cut by a kill): it may or may not be stored.
    Unknown,
    /// Any other answer; the campaign sends only valid events, so this is a failure.
    Rejected { status: u16, body: String },
}

/// One event a publisher sent (possibly several times, with the same id).
#[derive(Clone, Debug)]
pub struct SentEvent {
    pub id: String,
    pub user: usize,
    pub event_type: &'static str,
    /// Start of the first request for this id.
    pub first_send_ns: u64,
    /// End of the last request for this id (the acknowledgement, if there was one).
    pub done_ns: u64,
    /// Requests made for this id.
    pub tries: u32,
    pub outcome: Outcome,
}

/// Pace of the load.
#[derive(Clone, Copy)]
pub struct Pace {
    /// Pause between two events of one publisher, in ms (inclusive range).
    pub publish_ms: (u64, u64),
    /// Pause between two mutator actions, in ms.
    pub mutate_ms: (u64, u64),
}

/// Sends events until `stop`; half of the events whose answer was lost are sent again
/// (same id) until answered, the other half are left unknown.
pub fn publisher(
    index: usize,
    seed: u64,
    port: u16,
    pace: Pace,
    stop: Arc<AtomicBool>,
) -> Vec<SentEvent> {
    let mut rng = Rng::new(seed ^ (0x1000 + index as u64));
    let api = Api::new(port, Duration::from_secs(5));
    let mut sent = Vec::new();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let id = format!("evt-crash-{seed}-p{index}-{n}");
        let user = rng.below(USERS.len() as u64) as usize;
        let event_type = EVENT_TYPES[rng.below(EVENT_TYPES.len() as u64) as usize];
        let body = json!({
            "id": id,
            "type": event_type,
            "userId": USERS[user].0,
            "source": "crash",
            "payload": {"publisher": index, "n": n},
        })
        .to_string();
        let retry_lost = rng.chance(50);
        let mut event = SentEvent {
            id,
            user,
            event_type,
            first_send_ns: now_ns(),
            done_ns: 0,
            tries: 0,
            outcome: Outcome::Unknown,
        };
        loop {
            event.tries += 1;
            let reply = api.call(
                "POST",
                "/api/hooks/events",
                Some(PUBLISHER_TOKEN),
                Some(&body),
            );
            event.done_ns = now_ns();
            match reply {
                Ok((status @ (200 | 202), text)) => {
                    let deliveries = serde_json::from_str::<Value>(&text)
                        .ok()
                        .and_then(|v| v["deliveries"].as_u64())
                        .unwrap_or(u64::MAX);
                    event.outcome = Outcome::Acked { status, deliveries };
                    break;
                }
                Ok((status, body)) => {
                    event.outcome = Outcome::Rejected { status, body };
                    break;
                }
                Err(_) => {
                    if !retry_lost || stop.load(Ordering::Relaxed) || event.tries >= 200 {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        sent.push(event);
        std::thread::sleep(Duration::from_millis(
            rng.range(pace.publish_ms.0, pace.publish_ms.1),
        ));
    }
    sent
}

/// Does a webhook exist? Known from the create answer, or found out after a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existence {
    /// The create request got no answer; not yet looked up.
    Unknown,
    /// Exists (201, or found by its URL after a lost answer).
    Live,
    /// The create request got no answer and the webhook is not there: never created.
    NeverCreated,
    /// Deleted (204, or 404 when a DELETE was repeated after a lost answer).
    Deleted,
}

/// One webhook of the campaign, with the times of what was done to it.
#[derive(Clone, Debug)]
pub struct Hook {
    /// Unique path key: the webhook's URL is `http://<receiver>/h/<key>`.
    pub key: String,
    pub user: usize,
    /// Index of its receiver.
    pub receiver: usize,
    pub types: Vec<String>,
    /// Created before the load and never disabled or deleted.
    pub stable: bool,
    pub id: Option<String>,
    pub existence: Existence,
    /// Start of the (only) create request.
    pub create_sent_ns: u64,
    /// The 201 arrived (None if the answer was lost).
    pub created_ns: Option<u64>,
    /// Start of the first disable request, and the 200 that confirmed it.
    pub disable_sent_ns: Option<u64>,
    pub disabled_ns: Option<u64>,
    /// Start of the first DELETE, and the 204 (or 404 on a repeat) that confirmed it.
    pub delete_sent_ns: Option<u64>,
    pub deleted_ns: Option<u64>,
}

impl Hook {
    /// A webhook about to be created: nothing sent or known yet.
    pub fn planned(
        key: String,
        user: usize,
        receiver: usize,
        types: Vec<String>,
        stable: bool,
    ) -> Hook {
        Hook {
            key,
            user,
            receiver,
            types,
            stable,
            id: None,
            existence: Existence::Unknown,
            create_sent_ns: 0,
            created_ns: None,
            disable_sent_ns: None,
            disabled_ns: None,
            delete_sent_ns: None,
            deleted_ns: None,
        }
    }

    pub fn url(&self, receivers: &[std::net::SocketAddr]) -> String {
        format!("http://{}/h/{}", receivers[self.receiver], self.key)
    }

    pub fn subscribes(&self, event_type: &str) -> bool {
        self.types.iter().any(|p| matches(p, event_type))
    }

    fn enabled_live(&self) -> bool {
        self.existence == Existence::Live
            && self.disable_sent_ns.is_none()
            && self.delete_sent_ns.is_none()
    }
}

/// Creates a webhook; its `existence` stays `Unknown` when the answer was lost (a kill).
pub fn create_hook(
    api: &Api,
    hook: &mut Hook,
    receivers: &[std::net::SocketAddr],
) -> Result<(), String> {
    let body = json!({
        "name": format!("crash {}", hook.key),
        "url": hook.url(receivers),
        "eventTypes": hook.types,
        "secret": format!("crash-secret-{}", hook.key),
    })
    .to_string();
    hook.create_sent_ns = now_ns();
    match api.call(
        "POST",
        "/api/hooks/webhooks",
        Some(USERS[hook.user].1),
        Some(&body),
    ) {
        Ok((201, text)) => {
            hook.created_ns = Some(now_ns());
            let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            hook.id = v["id"].as_str().map(str::to_string);
            hook.existence = Existence::Live;
            Ok(())
        }
        Ok((status, text)) => Err(format!("create webhook {}: {status} {text}", hook.key)),
        Err(_) => {
            hook.existence = Existence::Unknown;
            Ok(())
        }
    }
}

/// Where the mutator points the webhooks it creates, and what it may recover.
pub struct Targets {
    /// Every receiver's address, by index.
    pub receivers: Vec<std::net::SocketAddr>,
    /// The receivers churn webhooks point at (not the slow one: see `verify`).
    pub churn_receivers: Vec<usize>,
    /// The flaky receiver, whose webhooks get recovers.
    pub flaky_receiver: usize,
    /// (user, id) of the stable webhooks on the flaky receiver.
    pub stable_flaky: Vec<(usize, String)>,
}

/// What the mutator did, for the summary.
#[derive(Default, Debug, Clone)]
pub struct Mutations {
    pub created: usize,
    pub create_lost: usize,
    pub disabled: usize,
    pub deleted: usize,
    pub delete_lost: usize,
    pub recovers: usize,
    pub recovered: u64,
    /// Answers that should not happen (e.g. 500, 409 on a recover of an enabled webhook).
    pub errors: Vec<String>,
}

/// Creates, disables and deletes webhooks and asks for recovers until `stop`; then
/// settles every request whose answer was lost (hookd is up by then) and returns.
pub fn mutator(
    seed: u64,
    port: u16,
    targets: &Targets,
    pace: Pace,
    stop: &AtomicBool,
) -> (Vec<Hook>, Mutations) {
    let Targets {
        receivers,
        churn_receivers,
        flaky_receiver,
        stable_flaky,
    } = targets;
    let flaky_receiver = *flaky_receiver;
    let mut rng = Rng::new(seed ^ 0x2000);
    // A long timeout: a lost answer should mean a kill, not a slow hookd.
    let api = Api::new(port, Duration::from_secs(10));
    let mut hooks: Vec<Hook> = Vec::new();
    let mut m = Mutations::default();
    let mut next_key = 0usize;
    let mut stopping_since: Option<Instant> = None;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let settled = settle(&api, &mut hooks, receivers, &mut m);
        if stopping {
            let since = *stopping_since.get_or_insert_with(Instant::now);
            if settled {
                break;
            }
            if since.elapsed() > Duration::from_secs(60) {
                m.errors
                    .push("could not settle the webhooks within 60 s of the stop".into());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        if settled {
            let live: Vec<usize> = (0..hooks.len())
                .filter(|&i| hooks[i].enabled_live())
                .collect();
            let deletable: Vec<usize> = (0..hooks.len())
                .filter(|&i| {
                    hooks[i].existence == Existence::Live && hooks[i].delete_sent_ns.is_none()
                })
                .collect();
            let roll = rng.below(100);
            if roll < 35 && live.len() < 6 {
                next_key += 1;
                let types: Vec<String> = (0..1 + rng.below(2))
                    .map(|_| {
                        CHURN_PATTERNS[rng.below(CHURN_PATTERNS.len() as u64) as usize].to_string()
                    })
                    .collect();
                let mut hook = Hook::planned(
                    format!("churn-{next_key}"),
                    rng.below(USERS.len() as u64) as usize,
                    churn_receivers[rng.below(churn_receivers.len() as u64) as usize],
                    types,
                    false,
                );
                if let Err(e) = create_hook(&api, &mut hook, receivers) {
                    m.errors.push(e);
                } else if hook.existence == Existence::Live {
                    m.created += 1;
                } else {
                    m.create_lost += 1;
                }
                hooks.push(hook);
            } else if roll < 55 && !deletable.is_empty() {
                let i = deletable[rng.below(deletable.len() as u64) as usize];
                hooks[i].delete_sent_ns = Some(now_ns());
            } else if roll < 70 && !live.is_empty() {
                let i = live[rng.below(live.len() as u64) as usize];
                hooks[i].disable_sent_ns = Some(now_ns());
            } else {
                // Recover on a flaky webhook: a stable one or an enabled churn one.
                let mut targets = stable_flaky.clone();
                for h in hooks
                    .iter()
                    .filter(|h| h.enabled_live() && h.receiver == flaky_receiver)
                {
                    targets.push((h.user, h.id.clone().unwrap_or_default()));
                }
                let (user, id) = &targets[rng.below(targets.len() as u64) as usize];
                let body = r#"{"since":"2000-01-01T00:00:00Z"}"#;
                match api.call(
                    "POST",
                    &format!("/api/hooks/webhooks/{id}/recover"),
                    Some(USERS[*user].1),
                    Some(body),
                ) {
                    Ok((202, text)) => {
                        m.recovers += 1;
                        m.recovered += serde_json::from_str::<Value>(&text)
                            .ok()
                            .and_then(|v| v["queued"].as_u64())
                            .unwrap_or(0);
                    }
                    Ok((status, text)) => m.errors.push(format!("recover {id}: {status} {text}")),
                    Err(_) => {}
                }
            }
            // A disable or delete just chosen is sent by the next settle().
            settle(&api, &mut hooks, receivers, &mut m);
        }
        std::thread::sleep(Duration::from_millis(
            rng.range(pace.mutate_ms.0, pace.mutate_ms.1),
        ));
    }
    (hooks, m)
}

/// Brings every webhook to a known state: looks up creates whose answer was lost, and
/// (re)sends disables and deletes until answered. Returns whether all are settled.
fn settle(
    api: &Api,
    hooks: &mut [Hook],
    receivers: &[std::net::SocketAddr],
    m: &mut Mutations,
) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut settled = true;
    for hook in hooks.iter_mut() {
        if Instant::now() > deadline {
            return false;
        }
        if hook.existence == Existence::Unknown {
            let token = USERS[hook.user].1;
            let Ok(list) = api.get_json("/api/hooks/webhooks", token) else {
                settled = false;
                continue;
            };
            let url = hook.url(receivers);
            let found = list
                .as_array()
                .into_iter()
                .flatten()
                .find(|w| w["url"].as_str() == Some(url.as_str()));
            match found {
                Some(w) => {
                    hook.id = w["id"].as_str().map(str::to_string);
                    hook.existence = Existence::Live;
                }
                None => hook.existence = Existence::NeverCreated,
            }
        }
        if hook.existence != Existence::Live {
            continue;
        }
        let id = hook.id.clone().unwrap_or_default();
        let token = USERS[hook.user].1;
        if hook.delete_sent_ns.is_some() {
            match api.call(
                "DELETE",
                &format!("/api/hooks/webhooks/{id}"),
                Some(token),
                None,
            ) {
                Ok((204, _)) => {
                    hook.deleted_ns = Some(now_ns());
                    hook.existence = Existence::Deleted;
                    m.deleted += 1;
                }
                Ok((404, _)) => {
                    // An earlier DELETE whose answer was lost did it.
                    hook.deleted_ns = Some(now_ns());
                    hook.existence = Existence::Deleted;
                    m.deleted += 1;
                    m.delete_lost += 1;
                }
                Ok((status, text)) => {
                    m.errors.push(format!("delete {id}: {status} {text}"));
                    hook.existence = Existence::Deleted;
                }
                Err(_) => settled = false,
            }
        } else if hook.disable_sent_ns.is_some() && hook.disabled_ns.is_none() {
            match api.call(
                "PATCH",
                &format!("/api/hooks/webhooks/{id}"),
                Some(token),
                Some(r#"{"enabled":false}"#),
            ) {
                Ok((200, _)) => {
                    hook.disabled_ns = Some(now_ns());
                    m.disabled += 1;
                }
                Ok((status, text)) => {
                    m.errors.push(format!("disable {id}: {status} {text}"));
                    hook.disabled_ns = Some(now_ns());
                }
                Err(_) => settled = false,
            }
        }
    }
    settled
}
