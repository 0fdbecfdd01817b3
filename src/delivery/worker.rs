//! The worker pool: `delivery.workers` OS threads that make the blocking HTTP attempts
//! (never on tokio's threads) and hand each outcome to the store's group commit.
//!
//! A job reports twice: [`Message::Sent`] when its worker and webhook slot are free again
//! (right after a successful exchange; after the commit for any other outcome, which may
//! disable or pause the webhook), and [`Message::Done`] once the outcome is durably
//! recorded (the claim on the delivery ends). Workers do not wait for the
//! commit, so one fsync serves the outcomes of every attempt that finished meanwhile,
//! and the scheduler never sees a delivery whose queue entry is stale: the delivery stays
//! claimed until its new state is in the store.
//!
//! An outcome whose commit fails (the disk is full, the store is being reopened) comes
//! back to the scheduler in [`Failed::outcome`]; the scheduler keeps it, the delivery
//! stays claimed, and it is recorded once the store commits again
//! ([`submit_outcome`]). So a delivery that reached its receiver is never sent again
//! while hookd runs, however long the store is down.

use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::mpsc::UnboundedSender;

use super::destination::{Policy, UrlProblem, check_url};
use super::fence::Fences;
use super::http::HttpSender;
use super::payload::delivery_body;
use super::retry::RetryPolicy;
use super::signing::{hook_signature, standard_signature};
use super::{Freed, Message};
use crate::model::{DeliveryId, Millis, WebhookId};
use crate::store::Store;
use crate::store::ops::attempts::{self, AttemptInputs, Recorded};
use crate::store::records::Attempt;

/// One attempt to make, as dispatched by the scheduler.
#[derive(Debug)]
pub struct Job {
    pub delivery: DeliveryId,
    pub webhook: WebhookId,
    /// The webhook's cancellation epoch at dispatch; a change means "do not send".
    pub epoch: u64,
    /// What the attempt needs, when the scheduler's look read it (`Peek::loaded`); the
    /// worker reads it itself otherwise. Either read comes after `epoch` was taken, so
    /// the fence stops a send that a delete or disable committed since.
    pub loaded: Option<Box<AttemptInputs>>,
}

/// The end of a job, sent once its outcome is committed (by the writer thread) or when
/// there was nothing to record (by the worker).
#[derive(Debug)]
pub struct Done {
    pub webhook: WebhookId,
    pub delivery: DeliveryId,
    /// `Ok(None)`: nothing was sent (cancelled or no longer pending).
    pub result: Result<Option<Recorded>, Failed>,
}

/// A job that could not finish because the store failed.
#[derive(Debug)]
pub struct Failed {
    pub error: crate::store::StoreError,
    /// The attempt made, if one was: it must be recorded later, never made again.
    pub outcome: Option<Outcome>,
}

/// An attempt made, its outcome not yet recorded.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub verdict: attempts::Verdict,
    pub attempt: Attempt,
    pub duration: std::time::Duration,
}

pub struct WorkerContext {
    pub store: Store,
    pub http: HttpSender,
    pub policy: Arc<RetryPolicy>,
    pub fences: Arc<Fences>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Hears of operator notifications that outcomes queued (`crate::notify`).
    pub notifier: Arc<crate::notify::Notifier>,
    /// Where requests may go, as configured now.
    pub destination: Policy,
}

pub fn spawn(
    count: usize,
    jobs: Receiver<Job>,
    ctx: Arc<WorkerContext>,
    inbox: UnboundedSender<Message>,
) -> Vec<JoinHandle<()>> {
    let jobs = Arc::new(Mutex::new(jobs));
    (0..count)
        .filter_map(|n| {
            let jobs = Arc::clone(&jobs);
            let ctx = Arc::clone(&ctx);
            let inbox = inbox.clone();
            std::thread::Builder::new()
                .name(format!("hookd-worker-{n}"))
                .spawn(move || {
                    loop {
                        let job = match jobs.lock() {
                            Ok(rx) => rx.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else { return };
                        if !run_job(&ctx, job, &inbox) {
                            return; // the scheduler is gone
                        }
                    }
                })
                .map_err(|e| tracing::error!(error = %e, "cannot start a delivery worker"))
                .ok()
        })
        .collect()
}

/// Makes one attempt and reports it (see the module docs). `false` when the scheduler
/// has gone away.
fn run_job(ctx: &WorkerContext, mut job: Job, inbox: &UnboundedSender<Message>) -> bool {
    let loaded = job.loaded.take();
    let done = |result| {
        Message::Done(Done {
            webhook: job.webhook,
            delivery: job.delivery,
            result,
        })
    };
    let sent = |freed| inbox.send(Message::Sent(job.webhook, freed)).is_ok();
    let outcome = match attempt(ctx, &job, loaded) {
        Ok(Some(outcome)) => outcome,
        Ok(None) => return sent(Freed::Otherwise) && inbox.send(done(Ok(None))).is_ok(),
        Err(error) => {
            let failed = Failed {
                error,
                outcome: None,
            };
            return sent(Freed::Otherwise) && inbox.send(done(Err(failed))).is_ok();
        }
    };
    // A success frees the slot at once. Any other answer may change the webhook (410
    // disables it, Retry-After pauses it, a long failure disables it): its slot stays
    // taken until that is recorded, so no attempt starts against the old state.
    let frees_early = outcome.verdict == attempts::Verdict::Success;
    // Even with the scheduler gone (shutdown), the outcome is still recorded.
    let scheduler_alive = !frees_early || sent(Freed::BySuccess);
    let first = attempts::Recording::First;
    submit_outcome(
        ctx,
        job.webhook,
        job.delivery,
        outcome,
        !frees_early,
        first,
        inbox,
    );
    scheduler_alive
}

/// Hands `outcome` to the next group commit. Once it is durable (or has failed) the
/// scheduler hears [`Message::Done`], preceded by [`Message::Sent`] if `frees_slot`.
/// `recording` says whether this outcome was handed over before (see `attempts::record`).
pub fn submit_outcome(
    ctx: &WorkerContext,
    webhook: WebhookId,
    id: DeliveryId,
    outcome: Outcome,
    frees_slot: bool,
    recording: attempts::Recording,
    inbox: &UnboundedSender<Message>,
) {
    let policy = Arc::clone(&ctx.policy);
    let (metrics, fences, reply) = (
        Arc::clone(&ctx.metrics),
        Arc::clone(&ctx.fences),
        inbox.clone(),
    );
    let notifier = Arc::clone(&ctx.notifier);
    let (verdict, attempt) = (outcome.verdict, outcome.attempt.clone());
    let on_commit = move |result: Result<Option<Recorded>, crate::store::StoreError>| {
        // Counted once committed: a failed batch is attempted again and must not count
        // twice. (The API can show the outcome a moment before /metrics counts it.)
        if let Ok(recorded) = &result {
            metrics.attempt(
                verdict == attempts::Verdict::Success,
                outcome.duration,
                recorded.and_then(|r| r.status),
            );
            if let Some(enqueued) = recorded.and_then(|r| r.notification) {
                notifier.committed(enqueued);
            }
            if recorded.is_some_and(|r| r.webhook_disabled) {
                fences.close(webhook);
                tracing::warn!(webhook = %webhook, "webhook disabled; its pending deliveries are cancelled");
            }
        }
        if frees_slot {
            let _ = reply.send(Message::Sent(webhook, Freed::Otherwise));
        }
        let result = result.map_err(|error| Failed {
            error,
            outcome: Some(outcome),
        });
        let _ = reply.send(Message::Done(Done {
            webhook,
            delivery: id,
            result,
        }));
    };
    // If the store is closed, the job still answers through `on_commit` (with an error),
    // so the scheduler hears of this attempt exactly once either way.
    let _ = ctx
        .store
        .record_attempt(id, verdict, attempt, recording, policy, on_commit);
}

/// Makes the attempt, with what the look read for it if anything (`loaded`); `None` when
/// nothing was to be sent (cancelled, no longer pending).
fn attempt(
    ctx: &WorkerContext,
    job: &Job,
    loaded: Option<Box<AttemptInputs>>,
) -> Result<Option<Outcome>, crate::store::StoreError> {
    let inputs = match loaded {
        Some(inputs) => Some(*inputs),
        None => ctx.store.load_for_attempt(job.delivery)?,
    };
    let Some(inputs) = inputs else {
        let id = job.delivery;
        let cancelled = ctx.store.cancel_if_unsendable(id)?;
        if cancelled {
            tracing::warn!(delivery = %job.delivery, "delivery cancelled: its event or webhook is gone");
        }
        return Ok(None);
    };
    let (delivery, webhook, event) = (&inputs.delivery, &inputs.webhook, &inputs.event);

    let number = delivery.attempts.saturating_add(1);
    let body = delivery_body(event, webhook);
    let started = Millis::now();
    // Receivers check the signed timestamp against their own clock, so it is the system
    // clock's, even while hookd's own is riding out a backwards step (`crate::clock`).
    let timestamp = crate::clock::system_unix_secs();
    let mut headers: Vec<(&str, String)> = vec![
        ("Content-Type", "application/json".to_owned()),
        ("X-Hook-Event", event.event_type.as_str().to_owned()),
        ("X-Hook-Delivery", delivery.id.to_string()),
        ("X-Hook-Attempt", number.to_string()),
        ("X-Hook-Timestamp", timestamp.to_string()),
    ];
    if let Some(secret) = &webhook.secret {
        headers.push(("X-Hook-Signature", hook_signature(secret, body.as_bytes())));
        let mut standard =
            standard_signature(secret, event.id.as_str(), timestamp, body.as_bytes());
        // During a rotation's grace period the old secret signs too.
        if let Some((old, until)) = &webhook.previous_secret
            && *until > started
        {
            standard.push(' ');
            standard.push_str(&standard_signature(
                old,
                event.id.as_str(),
                timestamp,
                body.as_bytes(),
            ));
        }
        headers.push(("webhook-id", event.id.to_string()));
        headers.push(("webhook-timestamp", timestamp.to_string()));
        headers.push(("webhook-signature", standard));
    }
    // The publisher's trace goes on: same trace-id, a new span per attempt.
    if let Some(trace) = &event.trace {
        headers.push(("traceparent", trace.child_traceparent()));
        if let Some(state) = &trace.state {
            headers.push(("tracestate", state.clone()));
        }
    }
    // The webhook's own headers (the API refuses the names above); never logged.
    for (name, value) in &webhook.headers {
        headers.push((name.as_str(), value.clone()));
    }

    // The URL was accepted under the policy of its time; the config may have changed
    // since (the resolver re-checks every address it connects to as well).
    let outcome = if let Err(problem) = check_url(&webhook.url, &ctx.destination) {
        let why = match problem {
            UrlProblem::Invalid(why) | UrlProblem::NotAllowed(why) => why,
        };
        super::http::AttemptOutcome {
            verdict: attempts::Verdict::Failure { retry_after: None },
            status_code: None,
            error: Some(format!("destination_not_allowed: {why}")),
            response_body: None,
            duration: std::time::Duration::ZERO,
        }
    } else {
        // Deleted or disabled since dispatch? Entering the fence is the last check, and
        // holding it through the exchange lets a delete wait for this send (see `fence`).
        let Some(_sending) = ctx.fences.enter(job.webhook, job.epoch) else {
            return Ok(None);
        };
        ctx.http.send(&webhook.url, &headers, body.as_bytes())
    };

    let duration_ms = u64::try_from(outcome.duration.as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        webhook = %job.webhook,
        delivery = %job.delivery,
        event = %event.id,
        trace_id = event.trace.as_ref().map(|t| tracing::field::display(t.trace_id)),
        attempt = number,
        status = outcome.status_code,
        error = outcome.error.as_deref(),
        duration_ms,
        "delivery attempt"
    );
    let record = Attempt {
        at: started,
        status_code: outcome.status_code,
        duration_ms,
        error: outcome.error,
        response_body: outcome.response_body,
    };
    Ok(Some(Outcome {
        verdict: outcome.verdict,
        attempt: record,
        duration: outcome.duration,
    }))
}
