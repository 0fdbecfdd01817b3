//! Operator notifications on PostgreSQL (see `store::ops::notifications` for the rules).
//!
//! SKELETON — being filled in.

use super::TODO;
use crate::model::{Millis, NotificationKind};
use crate::store::StoreError;
use crate::store::ops::notifications::Enqueued;
use crate::store::records::WebhookRecord;

/// Records that `webhook` (as it is now) changed as `kind` says, for `reason`: queues,
/// holds or drops a notification by the rate limit (`notify::throttle`). Call it in the
/// transaction that writes the change.
pub(super) async fn enqueue(
    _tx: &tokio_postgres::Transaction<'_>,
    _webhook: &WebhookRecord,
    _kind: NotificationKind,
    _reason: String,
    _now: Millis,
) -> Result<Enqueued, StoreError> {
    Err(TODO)
}
