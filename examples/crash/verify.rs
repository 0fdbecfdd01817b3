//! The end-of-campaign checks: what the publishers were told, what the receivers saw and
//! what hookd's API reports, compared with each other. See the module doc of
//! `examples/crash.rs` for why each check is sound.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::daemon::{Api, Hookd, RETRY_SCHEDULE, USERS};
use crate::load::{Existence, Hook, Outcome, SentEvent};
use crate::receiver::Arrival;

/// An arrival read up to this long after a kill may have been sent by the killed
/// process (the bytes were in the socket; the receiver thread read them late).
const SEND_SLACK_NS: u64 = 200_000_000;

/// How many examples of each kind of problem are printed.
const SAMPLES: usize = 8;

/// A kind of problem: how many, and the first few.
#[derive(Default, Debug)]
pub struct Problems {
    pub count: usize,
    pub samples: Vec<String>,
}

impl Problems {
    fn add(&mut self, what: String) {
        self.count += 1;
        if self.samples.len() < SAMPLES {
            self.samples.push(what);
        }
    }
}

#[derive(Default, Debug)]
pub struct Report {
    pub events_sent: usize,
    pub acked_202: usize,
    pub acked_200: usize,
    pub unknown: usize,
    pub unknown_stored: usize,
    pub resent_events: usize,
    pub stored: usize,
    pub by_status: BTreeMap<String, usize>,
    /// Cancelled deliveries whose last attempt (in flight at the disable) got a 2xx.
    pub cancelled_after_2xx: usize,
    pub attempts_logged: usize,
    pub attempts_with_error: usize,
    pub arrivals: usize,
    pub arrivals_by_receiver: Vec<usize>,
    pub duplicates: usize,
    pub duplicates_explained: usize,
    pub resent_after_2xx_explained: usize,
    pub live_hooks: usize,
    pub deleted_hooks: usize,
    pub disabled_hooks: usize,
    /// Failures.
    pub lost_events: Problems,
    pub rejected: Problems,
    pub phantom_events: Problems,
    pub ack_mismatch: Problems,
    pub illegal: Problems,
    pub missing_deliveries: Problems,
    pub unexpected_deliveries: Problems,
    pub unexplained_duplicates: Problems,
    pub receiver_vs_log: Problems,
    /// Reported; a failure only with --strict-fence.
    pub fence: Problems,
}

impl Report {
    /// Everything that fails the campaign, by name.
    pub fn failures(&self, strict_fence: bool) -> Vec<(&'static str, &Problems)> {
        let mut all = vec![
            ("lost acknowledged events", &self.lost_events),
            ("ingest answers other than 200/202", &self.rejected),
            ("stored events never sent", &self.phantom_events),
            (
                "202 `deliveries` differs from the stored event",
                &self.ack_mismatch,
            ),
            ("deliveries in an illegal state", &self.illegal),
            (
                "deliveries missing (event stored, webhook subscribed)",
                &self.missing_deliveries,
            ),
            (
                "deliveries that should not exist",
                &self.unexpected_deliveries,
            ),
            ("unexplained duplicates", &self.unexplained_duplicates),
            ("receiver and delivery log disagree", &self.receiver_vs_log),
        ];
        if strict_fence {
            all.push(("sends after DELETE 204 / disable 200", &self.fence));
        }
        all
    }
}

/// One stored event, as `GET /api/hooks/events` lists it.
struct StoredEvent {
    user: usize,
    event_type: String,
    deliveries: u64,
}

/// Runs every check (hookd must be up, with the load stopped and drained).
pub fn verify(
    api: &Api,
    hookd: &Hookd,
    events: &[SentEvent],
    hooks: &[Hook],
    arrivals: &[Arrival],
    receivers: usize,
) -> Result<Report, String> {
    let mut r = Report {
        events_sent: events.len(),
        arrivals: arrivals.len(),
        arrivals_by_receiver: vec![0; receivers],
        ..Report::default()
    };
    for a in arrivals {
        r.arrivals_by_receiver[a.receiver] += 1;
    }

    // --- Events: every acknowledged one stored, nothing stored that was not sent.
    let mut stored: HashMap<String, StoredEvent> = HashMap::new();
    for (user, (_, token)) in USERS.iter().enumerate() {
        for e in api.get_all("/api/hooks/events", "events", token)? {
            let id = e["id"].as_str().unwrap_or_default().to_string();
            let se = StoredEvent {
                user,
                event_type: e["type"].as_str().unwrap_or_default().to_string(),
                deliveries: e["deliveries"].as_u64().unwrap_or(u64::MAX),
            };
            if stored.insert(id.clone(), se).is_some() {
                r.illegal.add(format!("event {id} listed twice"));
            }
        }
    }
    r.stored = stored.len();
    let sent: HashMap<&str, &SentEvent> = events.iter().map(|e| (e.id.as_str(), e)).collect();
    for e in events {
        if e.tries > 1 {
            r.resent_events += 1;
        }
        let found = stored.get(&e.id);
        if let Some(s) = found
            && (s.user != e.user || s.event_type != e.event_type)
        {
            r.illegal.add(format!(
                "event {} stored as {} of user {}",
                e.id, s.event_type, s.user
            ));
        }
        match &e.outcome {
            Outcome::Acked { status, deliveries } => {
                if *status == 202 {
                    r.acked_202 += 1;
                } else {
                    r.acked_200 += 1;
                }
                match found {
                    None => r.lost_events.add(format!("{} (answered {status})", e.id)),
                    Some(s) if s.deliveries != *deliveries => r.ack_mismatch.add(format!(
                        "{}: answered deliveries {deliveries}, stored {}",
                        e.id, s.deliveries
                    )),
                    Some(_) => {}
                }
            }
            Outcome::Unknown => {
                r.unknown += 1;
                if found.is_some() {
                    r.unknown_stored += 1;
                }
            }
            Outcome::Rejected { status, body } => {
                r.rejected.add(format!("{}: {status} {body}", e.id))
            }
        }
    }
    for id in stored.keys() {
        if !sent.contains_key(id.as_str()) {
            r.phantom_events.add(id.clone());
        }
    }

    // --- Arrivals by delivery (and by delivery and attempt).
    let mut by_delivery: HashMap<&str, Vec<&Arrival>> = HashMap::new();
    for a in arrivals {
        by_delivery.entry(a.delivery.as_str()).or_default().push(a);
    }
    for list in by_delivery.values_mut() {
        list.sort_by_key(|a| a.at_ns);
    }
    let hook_by_key: HashMap<&str, &Hook> = hooks.iter().map(|h| (h.key.as_str(), h)).collect();

    // --- Delivery logs of the webhooks that still exist.
    // delivery id -> (attempt number -> logged status code, or None for an error).
    let mut logged: HashMap<String, HashMap<u32, Option<u16>>> = HashMap::new();
    let mut found_per_event: HashMap<String, u64> = HashMap::new();
    for hook in hooks {
        match hook.existence {
            Existence::Live => {}
            Existence::Deleted => {
                r.deleted_hooks += 1;
                continue;
            }
            _ => continue,
        }
        r.live_hooks += 1;
        if hook.disabled_ns.is_some() {
            r.disabled_hooks += 1;
        }
        let id = hook.id.as_deref().unwrap_or_default();
        let token = USERS[hook.user].1;
        let list = api.get_all(
            &format!("/api/hooks/webhooks/{id}/deliveries"),
            "deliveries",
            token,
        )?;
        let mut per_event: HashMap<String, usize> = HashMap::new();
        for d in &list {
            check_delivery(&mut r, hook, d, &by_delivery, &mut logged);
            let event = d["eventId"].as_str().unwrap_or_default().to_string();
            *per_event.entry(event.clone()).or_default() += 1;
            *found_per_event.entry(event).or_default() += 1;
        }
        // Coverage: which stored events must, and must not, have a delivery here.
        for (event_id, s) in &stored {
            let subscribed = s.user == hook.user && hook.subscribes(&s.event_type);
            let count = per_event.get(event_id).copied().unwrap_or(0);
            if count > 1 {
                r.illegal
                    .add(format!("{event_id} has {count} deliveries in {}", hook.key));
            }
            let e = sent.get(event_id.as_str());
            let (must, must_not) = match (subscribed, e) {
                (false, _) => (false, true),
                (true, None) => (false, false), // a phantom event, reported above
                (true, Some(_)) if hook.stable => (true, false),
                (true, Some(e)) => {
                    let must = hook.created_ns.is_some_and(|c| e.first_send_ns > c)
                        && hook.disable_sent_ns.is_none_or(|d| e.done_ns < d);
                    let must_not = e.done_ns < hook.create_sent_ns
                        || hook.disabled_ns.is_some_and(|d| e.first_send_ns > d);
                    (must, must_not)
                }
            };
            if must && count == 0 {
                r.missing_deliveries
                    .add(format!("{event_id} ({}) in {}", s.event_type, hook.key));
            }
            if must_not && count > 0 {
                r.unexpected_deliveries
                    .add(format!("{event_id} ({}) in {}", s.event_type, hook.key));
            }
        }
        for event_id in per_event.keys() {
            if !stored.contains_key(event_id) {
                r.illegal.add(format!(
                    "a delivery in {} for {event_id}, which is not stored",
                    hook.key
                ));
            }
        }
    }
    for (event_id, found) in &found_per_event {
        if let Some(s) = stored.get(event_id)
            && *found > s.deliveries
        {
            r.illegal.add(format!(
                "{event_id}: {found} deliveries found, event says {}",
                s.deliveries
            ));
        }
    }

    // --- Arrivals: known webhook, stored event, the log agrees, the fences held.
    for a in arrivals {
        let Some(hook) = hook_by_key.get(a.hook.as_str()) else {
            r.receiver_vs_log.add(format!(
                "{} arrived for unknown path /h/{}",
                a.delivery, a.hook
            ));
            continue;
        };
        // An empty event id: hookd died before the body was read.
        if !a.event.is_empty() && !stored.contains_key(&a.event) {
            r.lost_events.add(format!(
                "{} was delivered ({}) but is not stored",
                a.event, a.delivery
            ));
        }
        if hook.existence == Existence::NeverCreated {
            r.receiver_vs_log.add(format!(
                "{} arrived for {}, which was never created",
                a.delivery, a.hook
            ));
        }
        for (what, fence) in [
            ("DELETE answered", hook.deleted_ns),
            ("disable answered", hook.disabled_ns),
        ] {
            if let Some(t) = fence
                && a.at_ns > t
            {
                r.fence.add(format!(
                    "{} attempt {} to {} arrived {:.1} ms after {what}",
                    a.delivery,
                    a.attempt,
                    a.hook,
                    (a.at_ns - t) as f64 / 1e6
                ));
            }
        }
        if hook.existence == Existence::Live && !logged.contains_key(&a.delivery) {
            r.receiver_vs_log.add(format!(
                "{} attempt {} arrived at {} but is not in its delivery log",
                a.delivery, a.attempt, a.hook
            ));
        }
    }

    // --- Duplicates.
    for (delivery, list) in &by_delivery {
        let log = logged.get(*delivery);
        let mut max_attempt = 0u32;
        let mut ok_attempt: Option<u32> = None;
        let mut last_of_attempt: HashMap<u32, &Arrival> = HashMap::new();
        for a in list {
            if let Some(prev) = last_of_attempt.get(&a.attempt) {
                r.duplicates += 1;
                let before = hookd.incarnation_at(prev.at_ns.saturating_sub(SEND_SLACK_NS));
                let after = hookd.incarnation_at(a.at_ns);
                if before < after {
                    r.duplicates_explained += 1;
                } else {
                    r.unexplained_duplicates.add(format!(
                        "{delivery} attempt {} arrived twice ({:.1} ms apart) with no kill in between",
                        a.attempt,
                        (a.at_ns - prev.at_ns) as f64 / 1e6
                    ));
                }
            } else if a.attempt < max_attempt {
                r.unexplained_duplicates.add(format!(
                    "{delivery} attempt {} arrived after attempt {max_attempt}",
                    a.attempt
                ));
            } else if let Some(ok) = ok_attempt
                && a.attempt > ok
            {
                // Sent again after the receiver answered 2xx: fine only if hookd logged
                // that attempt as failed (e.g. the answer came after the timeout).
                let logged_failed = log
                    .and_then(|l| l.get(&ok))
                    .is_some_and(|s| !s.is_some_and(|c| (200..300).contains(&c)));
                if logged_failed {
                    r.resent_after_2xx_explained += 1;
                } else {
                    r.unexplained_duplicates.add(format!(
                        "{delivery} attempt {} sent after attempt {ok} was answered 2xx",
                        a.attempt
                    ));
                }
            }
            if (200..300).contains(&a.status) && ok_attempt.is_none() {
                ok_attempt = Some(a.attempt);
            }
            max_attempt = max_attempt.max(a.attempt);
            last_of_attempt.insert(a.attempt, a);
        }
    }
    Ok(r)
}

/// The state of one logged delivery of a live webhook, and its agreement with what the
/// receiver saw.
fn check_delivery(
    r: &mut Report,
    hook: &Hook,
    d: &Value,
    arrivals: &HashMap<&str, Vec<&Arrival>>,
    logged: &mut HashMap<String, HashMap<u32, Option<u16>>>,
) {
    let id = d["id"].as_str().unwrap_or_default().to_string();
    let status = d["status"].as_str().unwrap_or_default().to_string();
    *r.by_status.entry(status.clone()).or_default() += 1;
    let attempts = d["attempts"].as_array().cloned().unwrap_or_default();
    let mut codes: HashMap<u32, Option<u16>> = HashMap::new();
    let mut successes = Vec::new();
    for (i, a) in attempts.iter().enumerate() {
        r.attempts_logged += 1;
        let number = a["attempt"].as_u64().unwrap_or(0) as u32;
        if number as usize != i + 1 {
            r.illegal
                .add(format!("{id}: attempt #{} is numbered {number}", i + 1));
        }
        let code = a["statusCode"].as_u64().map(|c| c as u16);
        if code.is_none() {
            r.attempts_with_error += 1;
        }
        if code.is_some_and(|c| (200..300).contains(&c)) {
            successes.push(number);
        }
        codes.insert(number, code);
    }
    let next = d.get("nextAttemptAt").is_some_and(|v| !v.is_null());
    let last = attempts.len() as u32;
    let legal = match status.as_str() {
        "succeeded" => successes == [last] && !next,
        "failed" => successes.is_empty() && attempts.len() >= RETRY_SCHEDULE.len() && !next,
        "pending" => successes.is_empty() && next && hook.disabled_ns.is_none(),
        // The attempt in flight when the webhook was disabled is still logged, and may
        // have succeeded (src/store/ops/attempts.rs: "keep the record of it").
        "cancelled" => {
            (successes.is_empty() || successes == [last]) && !next && hook.disable_sent_ns.is_some()
        }
        _ => false,
    };
    if legal && status == "cancelled" && !successes.is_empty() {
        r.cancelled_after_2xx += 1;
    }
    if !legal {
        r.illegal.add(format!(
            "{id} in {} ({}): {status}, 2xx at attempts {successes:?} of {last}, nextAttemptAt {next}",
            hook.key,
            if hook.disable_sent_ns.is_some() { "disabled" } else { "enabled" },
        ));
    }
    if d["webhookId"].as_str() != hook.id.as_deref() {
        r.illegal.add(format!(
            "{id} listed under {} but belongs to {}",
            hook.key, d["webhookId"]
        ));
    }
    // The receiver's view and the log must agree attempt by attempt.
    let seen = arrivals
        .get(id.as_str())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for (number, code) in &codes {
        let Some(code) = code else { continue };
        match seen.iter().find(|a| a.attempt == *number) {
            None => r.receiver_vs_log.add(format!(
                "{id} attempt {number} logged {code}, never arrived"
            )),
            Some(a) if a.status != *code => r.receiver_vs_log.add(format!(
                "{id} attempt {number} logged {code}, receiver answered {}",
                a.status
            )),
            Some(_) => {}
        }
    }
    let event = d["eventId"].as_str().unwrap_or_default();
    for a in seen {
        if a.hook != hook.key || (!a.event.is_empty() && a.event != event) {
            r.receiver_vs_log.add(format!(
                "{id} arrived at /h/{} for {}, logged for {} and {event}",
                a.hook, a.event, hook.key
            ));
        }
        // An attempt that reached the receiver is logged once hookd is done with the
        // delivery (after a kill it is made again and logged then); a cancelled delivery
        // may lose the attempt that was in flight when it was cancelled.
        let done = status == "succeeded" || status == "failed";
        let in_log = codes.contains_key(&a.attempt);
        if (done && !in_log) || (status == "cancelled" && a.attempt > last + 1) {
            r.receiver_vs_log.add(format!(
                "{id} attempt {} arrived but is not logged ({status})",
                a.attempt
            ));
        }
    }
    logged.insert(id, codes);
}
