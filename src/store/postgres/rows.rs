//! Shared helpers between rows and hookd's types: record columns (codec bytes), ids as
//! `uuid`, sequence numbers as `bigint`, and the errors of the driver and the pool.

use std::sync::Arc;

use tokio_postgres::Row;

use crate::model::{DeliveryId, DeliveryStatus, EventType, WebhookId, WebhookStatus};
use crate::store::StoreError;
use crate::store::codec::{self, Record};
use crate::store::records::DeliveryRecord;
use crate::store::tables;

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Postgres(Arc::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Pool(Arc::new(e))
    }
}

/// Sends `NOTIFY channel, webhook` with the transaction (delivered if it commits).
pub(super) async fn notify(
    tx: &deadpool_postgres::Transaction<'_>,
    channel: &str,
    webhook: WebhookId,
) -> Result<(), StoreError> {
    let st = tx.prepare_cached("SELECT pg_notify($1, $2)").await?;
    tx.execute(&st, &[&channel, &hook_uuid(webhook).to_string()])
        .await?;
    Ok(())
}

/// Decodes a record column.
pub(super) fn decode<R: Record>(bytes: &[u8]) -> Result<R, StoreError> {
    Ok(codec::decode(bytes)?)
}

/// Decodes the record in column `col` of `row`.
pub(super) fn record<R: Record>(row: &Row, col: usize) -> Result<R, StoreError> {
    let bytes: &[u8] = row.try_get(col)?;
    decode(bytes)
}

/// Decodes the delivery record in column `col` of `row`, stored under the id in column
/// `id_col` (the record does not hold its id: `DeliveryRecord::decode`).
pub(super) fn delivery(row: &Row, id_col: usize, col: usize) -> Result<DeliveryRecord, StoreError> {
    let id: uuid::Uuid = row.try_get(id_col)?;
    let bytes: &[u8] = row.try_get(col)?;
    Ok(DeliveryRecord::decode(DeliveryId(id.as_u128()), bytes)?)
}

pub(super) fn uuid(id: u128) -> uuid::Uuid {
    uuid::Uuid::from_u128(id)
}

pub(super) fn hook_uuid(id: WebhookId) -> uuid::Uuid {
    uuid::Uuid::from_u128(id.0)
}

/// A sequence number as SQL holds it (sequences stay far below `i64::MAX`).
pub(super) fn sql_seq(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A sequence number read back (never negative: sequences start at 1).
pub(super) fn seq_of(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

pub(super) fn status_rank(status: WebhookStatus) -> i16 {
    i16::from(tables::status_rank(status))
}

pub(super) fn status_code(status: DeliveryStatus) -> i16 {
    i16::from(tables::status_code(status))
}

pub(super) fn type_code(event_type: EventType) -> i16 {
    i16::from(tables::type_code(event_type))
}

/// The statuses a listing shows (`None`: all), as index codes.
pub(super) fn status_codes(filter: Option<DeliveryStatus>) -> Vec<i16> {
    match filter {
        Some(s) => vec![status_code(s)],
        None => DeliveryStatus::ALL
            .iter()
            .map(|s| status_code(*s))
            .collect(),
    }
}

/// The event types a listing shows (`None`: all), as index codes.
pub(super) fn type_codes(types: impl IntoIterator<Item = EventType>) -> Vec<i16> {
    types.into_iter().map(type_code).collect()
}

/// Two 32-bit advisory lock keys for `id` in lock class `class`: holders of different
/// ids rarely share a key, and sharing one only makes them wait.
pub(super) fn lock_key(class: i32, id: u128) -> (i32, i32) {
    // Truncation is the point: any 32 bits of a random id spread the keys.
    (class, (id as u32) as i32)
}
