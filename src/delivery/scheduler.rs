//! The scheduler: decides which queued deliveries go to the workers, and when.
//!
//! It keeps, per webhook, the time it next needs a look (`wake_at`), and sleeps until the
//! earliest one or until a message arrives (new deliveries, a finished attempt). A look
//! at a webhook reads only the head of that webhook's queue. There is no polling and no
//! full scan.
//!
//! Invariants:
//! - A delivery handed to a worker is *claimed* until its outcome is recorded
//!   ([`Message::Done`]); it stays in the queue meanwhile (so a crash means a new attempt
//!   after restart, never a loss) and is skipped by every look, so no delivery is ever
//!   attempted twice at once.
//! - At most `workers` HTTP exchanges run in total and at most
//!   `max_in_flight_per_webhook` per webhook ([`Message::Sent`] frees the slot), so one
//!   slow receiver cannot take the pool from the others. Outcomes waiting for their
//!   commit are bounded too ([`MAX_UNRECORDED`]).
//! - At most `events_per_minute_per_webhook` attempts start per webhook in any rolling
//!   minute; deliveries held back by it are moved in the queue to the time they will
//!   go, so their `nextAttemptAt` is true.
//! - A receiver's `Retry-After` (stored on the webhook) holds back all its attempts.
//! - While the store cannot commit, nothing is dispatched; an outcome that could not be
//!   recorded is kept here with its claim and recorded once the store is back, so a
//!   delivery that reached its receiver is not sent again.
//! - Where a look is a round trip (PostgreSQL), it reads up to `max_in_flight_per_webhook`
//!   deliveries more than it has slots for, kept claimed ([`ReadAhead`]): a success's
//!   freed slot, or the webhook's turn for a worker, takes the next of them without a
//!   look; a look comes when they run out, or for anything else.
//! - When workers are short, webhooks with due work take [`Turns`]: round-robin across
//!   users, then across each user's webhooks, one attempt per turn while others wait. A
//!   look that finds the pool full, or others already waiting, joins the line rather
//!   than taking a freed worker ahead of them.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::sync::oneshot;

use super::ahead::ReadAhead;
use super::ratelimit::RateLimiter;
use super::turns::Turns;
use super::worker::{Done, Failed, Job, Outcome, WorkerContext, submit_outcome};
use super::{Freed, Message};
use crate::model::{DeliveryId, Millis, WebhookId};
use crate::store::ops::queue::{Claimed, LookFor};

/// How many rate-limited deliveries one look moves to their future slots.
const RESCHEDULE_BATCH: usize = 512;
/// How many attempts may be over but not yet recorded before dispatch pauses: a bound on
/// the claims every look skips and on the work a slow disk lets pile up.
const MAX_UNRECORDED: usize = 1024;
/// How many waiting messages one pass takes before it looks (and lets the watchdog tick).
const MAX_MESSAGES_PER_PASS: usize = 4096;
/// How often the loop shows it is alive when it has nothing else to do.
pub const BEAT: Duration = Duration::from_secs(1);
/// After a store failure, a webhook is looked at again this much later.
const STORE_RETRY: Duration = Duration::from_secs(1);

pub struct Limits {
    pub workers: usize,
    pub per_webhook: usize,
    pub per_minute: u32,
}

#[derive(Debug)]
struct WebhookState {
    in_flight: usize,
    claimed: Claimed,
    /// Jobs the last look read beyond the free slots (claimed, not in flight).
    ahead: ReadAhead,
    /// Deliveries whose outcome could not be recorded: still claimed (so not sent again
    /// at once, the receiver is spared a tight loop while the disk fails) until this time.
    cooling: Vec<(Millis, DeliveryId)>,
    limiter: RateLimiter,
    /// Its owner, once a look has read the record (turns are taken per user).
    user: Option<Arc<str>>,
}

impl WebhookState {
    /// A webhook this node has not driven yet: nothing claimed, an empty rate window.
    fn new(per_minute: u32) -> WebhookState {
        WebhookState {
            in_flight: 0,
            claimed: Claimed::default(),
            ahead: ReadAhead::default(),
            cooling: Vec::new(),
            limiter: RateLimiter::new(per_minute),
            user: None,
        }
    }

    /// Ends the claims whose cooling-off time has come.
    fn release_cooled(&mut self, now: Millis) {
        let claimed = &mut self.claimed;
        self.cooling.retain(|&(until, delivery)| {
            let done = until <= now;
            if done {
                claimed.remove(&delivery);
            }
            !done
        });
    }
}

pub struct Scheduler {
    /// Beats while the loop is responsive (read by the watchdog).
    alive: Arc<crate::clock::Beat>,
    /// The store and the fences (shared with the workers), and what records again the
    /// outcomes whose commit failed.
    ctx: Arc<WorkerContext>,
    reply: UnboundedSender<Message>,
    /// Attempts made whose outcome is not in the store yet (their claims stay).
    unrecorded: Vec<(WebhookId, DeliveryId, Outcome)>,
    /// When to try recording them again.
    record_again_at: Option<Millis>,
    limits: Limits,
    jobs: SyncSender<Job>,
    inbox: UnboundedReceiver<Message>,
    webhooks: HashMap<WebhookId, WebhookState>,
    wake_at: BTreeSet<(Millis, WebhookId)>,
    next_look: HashMap<WebhookId, Millis>,
    /// Webhooks with due work that only wait for a free worker, in turn order.
    turns: Turns,
    /// HTTP exchanges under way.
    in_flight: usize,
    /// Claimed deliveries: under way, or over and waiting for their outcome's commit.
    claims: usize,
    /// Jobs read ahead, all webhooks together (at most `workers`: what they hold in
    /// memory is bounded like the jobs under way).
    read_ahead: usize,
}

impl Scheduler {
    /// `ctx` is the workers' context (the store and the fences come from it); `reply`
    /// sends to `inbox`, for outcomes recorded again.
    pub fn new(
        alive: Arc<crate::clock::Beat>,
        ctx: Arc<WorkerContext>,
        reply: UnboundedSender<Message>,
        limits: Limits,
        jobs: SyncSender<Job>,
        inbox: UnboundedReceiver<Message>,
    ) -> Scheduler {
        Scheduler {
            alive,
            ctx,
            reply,
            unrecorded: Vec::new(),
            record_again_at: None,
            limits,
            jobs,
            inbox,
            webhooks: HashMap::new(),
            wake_at: BTreeSet::new(),
            next_look: HashMap::new(),
            turns: Turns::default(),
            in_flight: 0,
            claims: 0,
            read_ahead: 0,
        }
    }

    /// Runs until `stop` fires; then dispatches nothing more and waits up to `drain` for
    /// the attempts under way. Whatever is still running then is abandoned: its queue
    /// entry is untouched, so it is attempted again after the restart.
    pub async fn run(mut self, mut stop: oneshot::Receiver<()>, drain: Duration) {
        let now = Millis::now();
        match self.ctx.store.enabled_webhooks().await {
            Ok(ids) => ids.into_iter().for_each(|id| self.look_at(id, now)),
            Err(e) => tracing::error!(error = %e, "scheduler cannot list webhooks"),
        }
        // The loop beats at least this often while it is responsive; a look stuck on the
        // store (or anything else that blocks it) stops the beats, and the watchdog
        // (daemon.rs) stops pinging systemd.
        let mut beat = tokio::time::interval(BEAT);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.record_again();
            self.run_due_looks().await;
            let next = self
                .wake_at
                .first()
                .map(|(at, _)| *at)
                .into_iter()
                .chain(self.record_again_at)
                .min();
            let sleep = next.map(|at| {
                Duration::from_millis(u64::try_from(at.0 - Millis::now().0).unwrap_or(0))
            });
            tokio::select! {
                message = self.inbox.recv() => match message {
                    Some(m) => {
                        self.handle(m);
                        // Take everything else already waiting before looking: under load,
                        // many messages about one webhook then make one look, not many.
                        for _ in 0..MAX_MESSAGES_PER_PASS {
                            let Ok(m) = self.inbox.try_recv() else { break };
                            self.handle(m);
                        }
                    }
                    None => return,
                },
                () = tokio::time::sleep(sleep.unwrap_or(Duration::ZERO)), if sleep.is_some() => {}
                _ = beat.tick() => self.alive.beat(),
                _ = &mut stop => break,
            }
        }
        // Nothing more goes out: what was read ahead stays in the queue, unsent.
        let hooks: Vec<WebhookId> = self.webhooks.keys().copied().collect();
        hooks.into_iter().for_each(|w| self.give_back_ahead(w));
        let deadline = tokio::time::Instant::now() + drain;
        while self.claims > 0 {
            // Outcomes kept through a store outage are handed over again each second
            // while the drain lasts, in case the store comes back.
            if !self.unrecorded.is_empty() {
                self.record_again_at = Some(Millis::now());
                self.record_again();
            }
            let wake = deadline.min(tokio::time::Instant::now() + STORE_RETRY);
            match tokio::time::timeout_at(wake, self.inbox.recv()).await {
                Ok(Some(Message::Done(done))) => self.recorded(done),
                Ok(Some(Message::Sent(webhook, _))) => self.sent(webhook, Freed::Otherwise),
                Ok(Some(Message::Queued(..) | Message::Taken(..))) => {}
                Ok(None) => break,
                Err(_) if tokio::time::Instant::now() < deadline => {}
                Err(_) => {
                    tracing::warn!(
                        abandoned = self.claims,
                        "attempts still under way at shutdown; they will be retried after restart"
                    );
                    break;
                }
            }
        }
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Queued(webhook, due) => self.queued(webhook, due),
            Message::Sent(webhook, freed) => self.sent(webhook, freed),
            Message::Done(done) => self.recorded(done),
            Message::Taken(webhook, starts) => self.taken(webhook, &starts),
        }
    }

    /// This node took over `webhook` (a cluster lease): its rate limit counts the
    /// attempts made in the last minute as the database has them; then it gets a look.
    ///
    /// The lease shows as held a query before this message comes, so a look in between
    /// may already have begun the webhook's state here, and sent: the database's starts
    /// are added to what that state knows, never dropped. Attempts this node made itself
    /// may then count twice, which holds back more than needed, never less.
    fn taken(&mut self, webhook: WebhookId, starts: &[Millis]) {
        let now = Millis::now();
        let per_minute = self.limits.per_minute;
        self.webhooks
            .entry(webhook)
            .or_insert_with(|| WebhookState::new(per_minute))
            .limiter
            .absorb(starts, now);
        self.look_at(webhook, now);
    }

    /// Deliveries of `webhook` are due at `due`. While jobs read ahead wait, the look
    /// that follows them reads these too: the webhook's slots are all taken until then.
    fn queued(&mut self, webhook: WebhookId, due: Millis) {
        if !self.reads_ahead(webhook) {
            self.look_at(webhook, due);
        }
    }

    /// A worker and a slot of `webhook` are free again: after a success, the next job
    /// read ahead takes the slot if it may (while nobody waits for a worker: then the
    /// worker goes to the line, and the jobs wait for the webhook's turn); otherwise the
    /// webhook gets a look.
    fn sent(&mut self, webhook: WebhookId, freed: Freed) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(state) = self.webhooks.get_mut(&webhook) {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        let now = Millis::now();
        if freed == Freed::Otherwise {
            self.give_back_ahead(webhook);
        } else if self.turns.is_empty()
            && self.send_ahead(webhook, now)
            && self.reads_ahead(webhook)
        {
            return;
        }
        self.look_at(webhook, now);
    }

    /// Whether jobs read ahead wait for `webhook`'s slots.
    fn reads_ahead(&self, webhook: WebhookId) -> bool {
        self.webhooks
            .get(&webhook)
            .is_some_and(|state| !state.ahead.is_empty())
    }

    /// Sends `webhook`'s next job read ahead if it is fresh and may go now (a slot and a
    /// worker free, the store committing, the rate limit allowing); whether one went.
    /// The caller has seen to the turns. A job that is not fresh stays until a look
    /// gives it back.
    fn send_ahead(&mut self, webhook: WebhookId, now: Millis) -> bool {
        let may_go = self.pool_room() > 0 && self.ctx.store.health().commit_fault().is_none();
        let per_webhook = self.limits.per_webhook;
        let Some(state) = self.webhooks.get_mut(&webhook) else {
            return false;
        };
        if !may_go || state.in_flight >= per_webhook {
            return false;
        }
        let Some(job) = state.ahead.next_fresh(now) else {
            return false;
        };
        self.read_ahead = self.read_ahead.saturating_sub(1);
        if !state.limiter.try_acquire(now) {
            state.claimed.remove(&job.delivery);
            return false;
        }
        if let Err(e) = self.jobs.try_send(job) {
            let job = match e {
                std::sync::mpsc::TrySendError::Full(job)
                | std::sync::mpsc::TrySendError::Disconnected(job) => job,
            };
            state.claimed.remove(&job.delivery);
            return false;
        }
        state.in_flight += 1;
        self.in_flight += 1;
        self.claims += 1;
        true
    }

    /// Ends the claims of `webhook`'s jobs read ahead, unsent: the next look reads them
    /// again.
    fn give_back_ahead(&mut self, webhook: WebhookId) {
        if let Some(state) = self.webhooks.get_mut(&webhook) {
            let WebhookState { ahead, claimed, .. } = state;
            ahead.give_back().for_each(|delivery| {
                claimed.remove(&delivery);
                self.read_ahead = self.read_ahead.saturating_sub(1);
            });
        }
    }

    /// An attempt's outcome is in the store (its retry, if any, is queued): the claim ends.
    /// If it could not be recorded, the outcome waits here, still claimed.
    fn recorded(&mut self, done: Done) {
        let now = Millis::now();
        match done.result {
            Ok(_) => {
                self.claims = self.claims.saturating_sub(1);
                if let Some(state) = self.webhooks.get_mut(&done.webhook) {
                    state.claimed.remove(&done.delivery);
                }
                // While jobs read ahead wait, the look that follows them will do.
                if !self.reads_ahead(done.webhook) {
                    self.look_at(done.webhook, now);
                }
            }
            // Kept only for a storage fault, which passes: any other error (a record
            // that cannot be decoded, say) would fail the same way every time, and each
            // retry would take down the group commit of everything recorded with it.
            Err(Failed {
                error,
                outcome: Some(outcome),
            }) if error.fault().is_some() || matches!(error, crate::store::StoreError::Closed) => {
                tracing::warn!(delivery = %done.delivery, error = %error, "attempt made but not recorded; it is kept and recorded once the store commits");
                self.unrecorded.push((done.webhook, done.delivery, outcome));
                self.record_again_at
                    .get_or_insert(now.saturating_add(STORE_RETRY));
            }
            Err(Failed { error, .. }) => {
                // Nothing was sent, or what was cannot be recorded: the delivery may go
                // again after a pause (at-least-once).
                self.claims = self.claims.saturating_sub(1);
                tracing::error!(delivery = %done.delivery, error = %error, "could not prepare an attempt; will retry");
                let until = now.saturating_add(STORE_RETRY);
                if let Some(state) = self.webhooks.get_mut(&done.webhook) {
                    state.cooling.push((until, done.delivery));
                }
                self.look_at(done.webhook, until);
            }
        }
    }

    /// Hands the kept outcomes to the store again once it commits.
    fn record_again(&mut self) {
        let now = Millis::now();
        if self.record_again_at.is_none_or(|at| at > now) {
            return;
        }
        if self.ctx.store.health().commit_fault().is_some() {
            self.record_again_at = Some(now.saturating_add(STORE_RETRY));
            return;
        }
        self.record_again_at = None;
        for (webhook, delivery, outcome) in std::mem::take(&mut self.unrecorded) {
            let again = crate::store::ops::attempts::Recording::Again;
            submit_outcome(
                &self.ctx,
                webhook,
                delivery,
                outcome,
                false,
                again,
                &self.reply,
            );
        }
    }

    /// Asks for a look at `webhook` at `at` (or earlier, if one is already planned).
    fn look_at(&mut self, webhook: WebhookId, at: Millis) {
        if let Some(&planned) = self.next_look.get(&webhook) {
            if planned <= at {
                return;
            }
            self.wake_at.remove(&(planned, webhook));
        }
        self.next_look.insert(webhook, at);
        self.wake_at.insert((at, webhook));
    }

    /// Free workers go first to the webhooks waiting for them, in turn; then come the
    /// looks whose time has come (which join the line if workers are short).
    async fn run_due_looks(&mut self) {
        let now = Millis::now();
        while self.pool_room() > 0 {
            let Some(webhook) = self.turns.take_turn() else {
                break;
            };
            // Its turn is one attempt: one read ahead if there is one, and then to the
            // back of the line while more are read; otherwise a look.
            let served = if !self.send_ahead(webhook, now) {
                self.look(webhook, now, Turn::Served).await
            } else if self.reads_ahead(webhook) {
                self.wait_for_worker(webhook).await
            } else {
                self.look_at(webhook, now);
                Ok(())
            };
            if let Err(e) = served {
                tracing::error!(webhook = %webhook, error = %e, "scheduler cannot read the queue");
                self.look_at(webhook, now.saturating_add(STORE_RETRY));
            }
        }
        while let Some(&(at, webhook)) = self.wake_at.first() {
            if at > now {
                break;
            }
            self.wake_at.pop_first();
            self.next_look.remove(&webhook);
            if let Err(e) = self.look(webhook, now, Turn::Own).await {
                tracing::error!(webhook = %webhook, error = %e, "scheduler cannot read the queue");
                self.look_at(webhook, now.saturating_add(STORE_RETRY));
            }
        }
    }

    /// Workers the pool can take on now: free ones, while unrecorded outcomes allow.
    fn pool_room(&self) -> usize {
        let unrecorded = self.claims.saturating_sub(self.in_flight);
        self.limits
            .workers
            .saturating_sub(self.in_flight)
            .min(MAX_UNRECORDED.saturating_sub(unrecorded))
    }

    /// Puts `webhook` in line for a worker (reading its owner if no look has yet).
    async fn wait_for_worker(
        &mut self,
        webhook: WebhookId,
    ) -> Result<(), crate::store::StoreError> {
        let known = self.webhooks.get(&webhook).and_then(|s| s.user.clone());
        let user = match known {
            Some(user) => user,
            None => match self.ctx.store.webhook(webhook).await? {
                Some(record) => {
                    let user: Arc<str> = Arc::from(record.user.as_str());
                    if let Some(state) = self.webhooks.get_mut(&webhook) {
                        state.user = Some(Arc::clone(&user));
                    }
                    user
                }
                None => return Ok(()), // deleted: nothing to wait for
            },
        };
        self.turns.wait(&user, webhook);
        Ok(())
    }

    /// Dispatches what `webhook` may send now and plans its next look. On its own time
    /// (`Turn::Own`) a webhook joins the line if others already wait for workers; when its
    /// turn comes (`Turn::Served`) it takes one worker while others wait, all it may
    /// otherwise, and goes to the back of the line if it has more due.
    async fn look(
        &mut self,
        webhook: WebhookId,
        now: Millis,
        turn: Turn,
    ) -> Result<(), crate::store::StoreError> {
        let per_minute = self.limits.per_minute;
        let state = self
            .webhooks
            .entry(webhook)
            .or_insert_with(|| WebhookState::new(per_minute));
        state.release_cooled(now);
        if self.ctx.store.health().commit_fault().is_some() {
            // Nothing goes out while outcomes could not be recorded; look again later.
            self.look_at(webhook, now.saturating_add(STORE_RETRY));
            return Ok(());
        }
        let webhook_room = self.limits.per_webhook.saturating_sub(state.in_flight);
        if webhook_room == 0 {
            return Ok(()); // its next finished attempt asks for a look
        }
        let pool_room = self.pool_room();
        if pool_room == 0 || (turn == Turn::Own && !self.turns.is_empty()) {
            return self.wait_for_worker(webhook).await;
        }
        let others_waiting = !self.turns.is_empty();
        let room = if others_waiting {
            1
        } else {
            webhook_room.min(pool_room)
        };
        self.give_back_ahead(webhook);
        // Read ahead where a look is a round trip, as many as the webhook may have under
        // way, while all webhooks' together stay within the pool's size.
        let ahead = if self.ctx.store.looks_are_round_trips() {
            let total_room = self.limits.workers.saturating_sub(self.read_ahead);
            self.limits.per_webhook.min(total_room)
        } else {
            0
        };
        let Some(state) = self.webhooks.get_mut(&webhook) else {
            return Ok(());
        };
        // The epoch before the read: a delete or disable committed after this read closes
        // the fence after its commit, so a job planned from a stale read cannot send.
        let epoch = self.ctx.fences.epoch(webhook);
        let claimed = &state.claimed;
        let mut peek = (self.ctx.store)
            .peek(webhook, now, claimed, room + ahead, LookFor::Sending)
            .await?;
        let Some(record) = peek.webhook.take().filter(|w| w.enabled) else {
            if state.claimed.is_empty() {
                self.webhooks.remove(&webhook);
            }
            return Ok(());
        };
        if state.user.is_none() {
            state.user = Some(Arc::from(record.user.as_str()));
        }
        if let Some(paused) = record.paused_until.filter(|p| *p > now) {
            self.look_at(webhook, paused);
            return Ok(());
        }
        let mut rate_limited = false;
        let (mut sent, mut read_ahead) = (0, VecDeque::new());
        for (delivery, seq) in peek.take_due() {
            if sent == room {
                let loaded = peek.take_loaded(delivery);
                read_ahead.push_back(Job {
                    delivery,
                    webhook,
                    epoch,
                    loaded,
                });
                state.claimed.insert(delivery, seq);
                continue;
            }
            if !state.limiter.try_acquire(now) {
                rate_limited = true;
                break;
            }
            if self
                .jobs
                .try_send(Job {
                    delivery,
                    webhook,
                    epoch,
                    loaded: peek.take_loaded(delivery),
                })
                .is_err()
            {
                break;
            }
            state.claimed.insert(delivery, seq);
            state.in_flight += 1;
            self.in_flight += 1;
            self.claims += 1;
            sent += 1;
        }
        self.read_ahead += read_ahead.len();
        let kept_ahead = !read_ahead.is_empty();
        state.ahead.keep(read_ahead, now);
        if rate_limited {
            return self.hold_back(webhook, now).await;
        }
        // A claim cooling off after a failure asks for its own look: the looks planned
        // meanwhile may all come before it ends, and the queue skips claimed entries.
        if let Some(until) = state.cooling.iter().map(|(until, _)| *until).min() {
            self.look_at(webhook, until);
        }
        // More is due than there was room for (read ahead, or beyond). If the pool (or
        // the others' turns) was the tighter limit, wait in line for a worker; otherwise
        // this webhook's own finished attempts ask for a look.
        let more_due = kept_ahead || peek.next.is_some_and(|next| next <= now);
        match peek.next {
            _ if more_due && (others_waiting || pool_room <= webhook_room) => {
                self.wait_for_worker(webhook).await?;
            }
            Some(next) if next > now => self.look_at(webhook, next),
            _ => {}
        }
        Ok(())
    }

    /// Moves the webhook's due deliveries to the slots the rate limit will give them.
    async fn hold_back(
        &mut self,
        webhook: WebhookId,
        now: Millis,
    ) -> Result<(), crate::store::StoreError> {
        let Some(state) = self.webhooks.get_mut(&webhook) else {
            return Ok(());
        };
        let claimed = &state.claimed;
        let peek = self
            .ctx
            .store
            .peek(webhook, now, claimed, RESCHEDULE_BATCH, LookFor::Planning)
            .await?;
        let slots = state.limiter.reserve_slots(now, peek.due.len());
        let moves: Vec<(DeliveryId, Millis)> =
            peek.due.into_iter().zip(slots.iter().copied()).collect();
        if !moves.is_empty()
            && let Err(e) = self.ctx.store.reschedule(webhook, moves).await
        {
            if let Some(state) = self.webhooks.get_mut(&webhook) {
                state.limiter.release(&slots);
            }
            return Err(e);
        }
        // The next look is at the webhook's earliest queue entry now: a slot promised
        // by an earlier hold-back may come before this batch's first one.
        let claimed = self
            .webhooks
            .get(&webhook)
            .map(|s| s.claimed.clone())
            .unwrap_or_default();
        let head = (self.ctx.store)
            .peek(webhook, now, &claimed, 0, LookFor::Planning)
            .await?;
        if let Some(at) = head.next {
            self.look_at(webhook, at);
        }
        Ok(())
    }
}

/// Why a look happens: on the webhook's own time (a due delivery, a finished attempt), or
/// because its turn for a worker came.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Turn {
    Own,
    Served,
}
