//! Send fences: the promise that once `DELETE` or `PATCH enabled:false` has answered, no
//! request bytes for that webhook reach any receiver.
//!
//! Each webhook has an *epoch* and a count of attempts *sending* right now. The scheduler
//! stamps every job with the epoch at dispatch. A worker enters the fence just before it
//! resolves, connects and writes: entering checks the job's epoch against the current one
//! and counts the send, in one step under the lock, and the count drops when the HTTP
//! exchange is over. Closing a fence bumps the epoch (so nothing dispatched earlier can
//! enter any more) and then waits until the count is zero (so nothing that entered earlier
//! is still writing). The answer is sent after that wait, so the order is:
//!
//! ```text
//! API:       close (epoch+1) ── commit ── close (epoch+1) ── wait until sending == 0 ── answer
//! scheduler: epoch ── read the queue and webhook ── dispatch stamped with that epoch
//! worker:    enter (epoch ok?, sending+1) ── resolve/connect/write/read ── sending-1
//! ```
//!
//! The close after the commit is what makes the fence hold: a job stamped while the
//! commit was under way was planned from a read that may not see it, and cannot enter
//! after the second close; a job stamped after it was planned from a read that sees the
//! webhook deleted or disabled, so it is never dispatched.
//!
//! A worker that enters after the bump sees the new epoch and sends nothing; one that
//! entered before is waited for. The wait is bounded by the attempt timeout (plus a
//! margin), which bounds every exchange anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use crate::model::WebhookId;

#[derive(Default)]
struct Fence {
    epoch: u64,
    sending: usize,
}

#[derive(Default)]
pub struct Fences {
    fences: Mutex<HashMap<WebhookId, Fence>>,
    /// Woken whenever a send ends, for closers waiting for a count to reach zero.
    quiet: Notify,
}

/// One attempt's permission to write to its receiver; dropping it ends the send.
pub struct Sending {
    fences: Arc<Fences>,
    webhook: WebhookId,
}

impl Drop for Sending {
    fn drop(&mut self) {
        let mut map = self.fences.lock();
        if let Some(fence) = map.get_mut(&self.webhook) {
            fence.sending = fence.sending.saturating_sub(1);
        }
        drop(map);
        self.fences.quiet.notify_waiters();
    }
}

impl Fences {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<WebhookId, Fence>> {
        // The map holds plain counters; a panic elsewhere cannot leave it inconsistent.
        self.fences.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The epoch a job dispatched now is stamped with.
    pub fn epoch(&self, webhook: WebhookId) -> u64 {
        self.lock().get(&webhook).map_or(0, |f| f.epoch)
    }

    /// Lets a job dispatched at `epoch` send, unless the webhook was fenced since.
    pub fn enter(self: &Arc<Self>, webhook: WebhookId, epoch: u64) -> Option<Sending> {
        let mut map = self.lock();
        let fence = map.entry(webhook).or_default();
        if fence.epoch != epoch {
            return None;
        }
        fence.sending += 1;
        Some(Sending {
            fences: Arc::clone(self),
            webhook,
        })
    }

    /// Stops every job dispatched so far from starting to send. Call it before the
    /// commit that deletes or disables the webhook, then [`Fences::wait_quiet`].
    pub fn close(&self, webhook: WebhookId) {
        self.lock().entry(webhook).or_default().epoch += 1;
    }

    fn sending(&self, webhook: WebhookId) -> usize {
        self.lock().get(&webhook).map_or(0, |f| f.sending)
    }

    /// Waits until no attempt of `webhook` is sending, at most `limit`. `false` if the
    /// limit passed first (an exchange outlived its own timeout: only a stuck DNS lookup
    /// or a stalled thread can do that).
    pub async fn wait_quiet(&self, webhook: WebhookId, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            // Registered before the check, so a send ending in between still wakes us.
            let ended = self.quiet.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.sending(webhook) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, ended).await.is_err() {
                return self.sending(webhook) == 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_fence_refuses_old_jobs_and_waits_for_senders() {
        let fences = Arc::new(Fences::default());
        let hook = WebhookId::generate();
        let epoch = fences.epoch(hook);
        let sending = fences.enter(hook, epoch).expect("open fence");
        fences.close(hook);
        assert!(
            fences.enter(hook, epoch).is_none(),
            "dispatched before the close"
        );
        assert!(
            !fences.wait_quiet(hook, Duration::from_millis(20)).await,
            "a send under way keeps the fence busy"
        );
        let waiter = {
            let fences = Arc::clone(&fences);
            tokio::spawn(async move { fences.wait_quiet(hook, Duration::from_secs(5)).await })
        };
        drop(sending);
        assert!(waiter.await.expect("waiter"), "quiet once the send ended");
        assert!(fences.enter(hook, fences.epoch(hook)).is_some());
    }
}
