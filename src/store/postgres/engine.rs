//! The delivery engine's side of the PostgreSQL store: queue heads, attempt outcomes,
//! rescheduling, retry and recover, and the leases that give each webhook's queue to one
//! node at a time.
//!
//! SKELETON — being filled in; operations not yet written answer `Unsupported`.

use std::collections::HashSet;
use std::sync::Arc;

use super::{PgStore, TODO};
use crate::delivery::retry::RetryPolicy;
use crate::model::{DeliveryId, Millis, WebhookId};
use crate::store::StoreError;
use crate::store::ops::attempts::{
    AttemptInputs, Recorded, Recording, Recovered, Requeue, Verdict,
};
use crate::store::ops::queue::Peek;
use crate::store::records::Attempt;

impl PgStore {
    pub async fn retry(
        &self,
        _user: &str,
        _webhook: WebhookId,
        _id: DeliveryId,
        _due: Millis,
    ) -> Result<Requeue, StoreError> {
        Err(TODO)
    }
    pub async fn recover(
        &self,
        _user: &str,
        _webhook: WebhookId,
        _window: (Millis, Millis),
        _due: Millis,
        _before: u64,
    ) -> Result<Result<Recovered, Requeue>, StoreError> {
        Err(TODO)
    }
    pub async fn enabled_webhooks(&self) -> Result<Vec<WebhookId>, StoreError> {
        Err(TODO)
    }
    pub async fn peek(
        &self,
        _webhook: WebhookId,
        _now: Millis,
        _skip: &HashSet<DeliveryId>,
        _max: usize,
    ) -> Result<Peek, StoreError> {
        Err(TODO)
    }
    pub async fn reschedule(
        &self,
        _webhook: WebhookId,
        _moves: &[(DeliveryId, Millis)],
    ) -> Result<usize, StoreError> {
        Err(TODO)
    }
    pub async fn load_for_attempt(
        &self,
        _id: DeliveryId,
    ) -> Result<Option<AttemptInputs>, StoreError> {
        Err(TODO)
    }
    pub async fn cancel_if_unsendable(&self, _id: DeliveryId) -> Result<bool, StoreError> {
        Err(TODO)
    }
    pub fn record_attempt<C>(
        &self,
        _id: DeliveryId,
        _verdict: Verdict,
        _attempt: Attempt,
        _recording: Recording,
        _policy: Arc<RetryPolicy>,
        on_commit: C,
    ) where
        C: FnOnce(Result<Option<Recorded>, StoreError>) + Send + 'static,
    {
        on_commit(Err(TODO));
    }
    pub async fn due_count(&self, _now: Millis) -> Result<u64, StoreError> {
        Err(TODO)
    }
}
