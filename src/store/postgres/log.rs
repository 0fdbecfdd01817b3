//! Delivery logs on PostgreSQL: a webhook's deliveries newest first (filtered by status
//! and event type), and single deliveries, each with its attempts and event id, read in
//! one statement (one snapshot), as `store::ops::deliveries` answers them.

use deadpool_postgres::{GenericClient, Transaction};
use tokio_postgres::Row;

use super::rows::{self, hook_uuid, sql_seq};
use crate::model::{DeliveryId, EventId, EventType, WebhookId};
use crate::store::StoreError;
use crate::store::codec::encode;
use crate::store::ops::deliveries::{DeliveryDetail, DeliveryFilter};
use crate::store::records::{Attempt, DeliveryRecord, EventRef};

/// The columns every detail query ends with: the record, its event's id (`NULL` when
/// gone), and its attempts' numbers and records in order.
const DETAIL: &str = "d.record, e.id,
    ARRAY(SELECT a.number FROM attempts a WHERE a.delivery_seq = d.seq ORDER BY a.number),
    ARRAY(SELECT a.record FROM attempts a WHERE a.delivery_seq = d.seq ORDER BY a.number),
    d.id";

/// A page of `webhook`'s log, newest first, below the cursor `before`, and the cursor
/// of the next page. Each (status, type) pair the filter allows is one range of
/// `deliveries_log`; the ranges are merged in the statement, so a page reads what it
/// shows plus one seek per range.
pub(super) async fn page(
    c: &impl GenericClient,
    webhook: WebhookId,
    filter: DeliveryFilter,
    limit: usize,
    before: Option<u64>,
) -> Result<(Vec<DeliveryDetail>, Option<u64>), StoreError> {
    let statuses = rows::status_codes(filter.status);
    let types = match filter.event_type {
        Some(t) => rows::type_codes([t]),
        None => rows::type_codes(EventType::ALL.iter().copied()),
    };
    let end = before.map_or(i64::MAX, sql_seq);
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let sql = format!(
        "WITH page AS (
             SELECT x.seq FROM unnest($2::smallint[]) AS s(status)
             CROSS JOIN unnest($3::smallint[]) AS t(type)
             CROSS JOIN LATERAL (
                 SELECT seq FROM deliveries
                 WHERE webhook_id = $1 AND status = s.status AND type = t.type AND seq < $4
                 ORDER BY seq DESC LIMIT $5) AS x
             ORDER BY x.seq DESC LIMIT $5)
         SELECT d.seq, {DETAIL}
         FROM page JOIN deliveries d ON d.seq = page.seq
         LEFT JOIN events e ON e.seq = d.event_seq
         ORDER BY d.seq DESC"
    );
    let st = c.prepare_cached(&sql).await?;
    let found = c
        .query(&st, &[&hook_uuid(webhook), &statuses, &types, &end, &fetch])
        .await?;
    let mut items = Vec::with_capacity(limit.min(found.len()));
    let mut next = None;
    for row in &found {
        if items.len() == limit {
            next = items.last().map(|d: &DeliveryDetail| d.record.seq);
            break;
        }
        items.push(detail(row, 1)?);
    }
    Ok((items, next))
}

/// Delivery `id`, if it is `webhook`'s.
pub(super) async fn one(
    c: &impl GenericClient,
    webhook: WebhookId,
    id: DeliveryId,
) -> Result<Option<DeliveryDetail>, StoreError> {
    let sql = format!(
        "SELECT {DETAIL} FROM deliveries d LEFT JOIN events e ON e.seq = d.event_seq
         WHERE d.id = $1 AND d.webhook_id = $2"
    );
    let st = c.prepare_cached(&sql).await?;
    match c
        .query_opt(&st, &[&rows::uuid(id.0), &hook_uuid(webhook)])
        .await?
    {
        Some(row) => Ok(Some(detail(&row, 0)?)),
        None => Ok(None),
    }
}

/// A [`DETAIL`] row (starting at column `at`) as the API shows it.
fn detail(row: &Row, at: usize) -> Result<DeliveryDetail, StoreError> {
    let record = rows::delivery(row, at + 4, at)?;
    let event_id = match &record.event {
        EventRef::Id(id) => id.clone(),
        // Retention keeps an event while any of its deliveries exists.
        EventRef::Seq(seq) => match row.try_get::<_, Option<&str>>(at + 1)? {
            Some(id) => EventId::parse(id).map_err(|e| {
                StoreError::Inconsistent(format!("event seq {seq} has an id that is not one: {e}"))
            })?,
            None => {
                return Err(StoreError::Inconsistent(format!(
                    "delivery {} names event seq {seq}, which is gone",
                    record.id
                )));
            }
        },
    };
    // A record read at version 1 carries its attempts inline (`ops::deliveries`).
    let attempts = if record.inline_attempts.is_empty() {
        let numbers: Vec<i32> = row.try_get(at + 2)?;
        let records: Vec<&[u8]> = row.try_get(at + 3)?;
        numbers
            .into_iter()
            .zip(records)
            .map(|(n, bytes)| {
                Ok((
                    u32::try_from(n).unwrap_or(0),
                    rows::decode::<Attempt>(bytes)?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?
    } else {
        record.inline_attempts.clone()
    };
    Ok(DeliveryDetail {
        record,
        event_id,
        attempts,
    })
}

/// A record read at version 1 carried its attempts inline: they move into `attempts`
/// before the record is written again (as `ops::deliveries::save` does on redb).
pub(super) async fn move_inline_attempts(
    tx: &Transaction<'_>,
    d: &mut DeliveryRecord,
) -> Result<(), StoreError> {
    let inline = std::mem::take(&mut d.inline_attempts);
    if inline.is_empty() {
        return Ok(());
    }
    let st = tx
        .prepare_cached(
            "INSERT INTO attempts (delivery_seq, number, record) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .await?;
    for (number, attempt) in inline {
        let number = i32::try_from(number).unwrap_or(i32::MAX);
        tx.execute(&st, &[&sql_seq(d.seq), &number, &encode(&attempt)])
            .await?;
    }
    Ok(())
}
