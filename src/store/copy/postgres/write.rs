//! Filling an empty PostgreSQL store for `hookd store copy`. The schema is the
//! backend's: its migrations runner creates (or brings up to date) the target's schema
//! first, committed on its own as `hookd migrate` would; the rows then go in one
//! transaction, committed only once the counts match, so a failed copy leaves an empty
//! store behind. Rows are inserted from arrays (`UNNEST`) per batch, with the columns
//! the backend derives from each record derived by the backend's own helpers where it
//! has one; counters go in shard 0 of the sharded statistics tables, and notifications
//! unclaimed (`claimed_by`, `claimed_until` NULL).

use std::collections::HashSet;

use anyhow::Context;
use tokio_postgres::Client;
use uuid::Uuid;

use super::super::{
    Batch, Counts, DeliveryRow, EventRow, NotificationRow, Refused, Seqs, WebhookRow,
};
use super::{connect, counts, int, pg, refuse_live_nodes, uuid};
use crate::store::StoreError;
use crate::store::ops::notifications::due_key;
use crate::store::postgres::{event_deliveries_columns, migrate_on};
use crate::store::tables::{status_code, status_rank, type_code};

/// The shard the copy writes statistics into: any one holds a key's counters, and the
/// readers merge whatever shards there are.
const SHARD: i16 = 0;

/// An empty database being filled, in one transaction that [`Sink::commit`] commits.
pub(in crate::store::copy) struct Sink {
    client: Client,
    /// Webhooks whose oldest open notification has its `due`.
    due_given: HashSet<u128>,
}

const TABLES: &str = "webhooks, events, deliveries, attempts, attempt_stats, attempt_totals, \
                      webhook_cleanup, notifications, notification_marks";

impl Sink {
    /// Refuses a database that holds anything, that live nodes use or whose schema is
    /// newer than this hookd's; creates (or upgrades) the schema of any other.
    pub async fn create(url: &str, desc: &str) -> anyhow::Result<Sink> {
        let mut client = connect(url, desc).await?;
        match migrate_on(&mut client).await {
            Ok(_) => {}
            Err(e @ StoreError::SchemaTooNew { .. }) => {
                return Err(Refused(format!("{desc}: {e}")).into());
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cannot create the schema in {desc}"));
            }
        }
        refuse_live_nodes(&client, desc).await?;
        client.batch_execute("BEGIN").await.map_err(pg)?;
        // Nobody writes meanwhile (a node started during the copy waits for it).
        client
            .batch_execute(&format!("LOCK TABLE {TABLES} IN EXCLUSIVE MODE"))
            .await
            .map_err(pg)?;
        let held = counts(&client).await?;
        if held != Counts::default() {
            return Err(Refused(format!(
                "{desc} is not empty ({} webhooks, {} events, {} deliveries, {} \
                 notifications): the target of a copy must be an empty store",
                held.webhooks, held.events, held.deliveries, held.notifications
            ))
            .into());
        }
        Ok(Sink {
            client,
            due_given: HashSet::new(),
        })
    }

    pub async fn put(&mut self, batch: Batch) -> anyhow::Result<()> {
        let c = &self.client;
        match batch {
            Batch::Webhooks(rows) => {
                let mut cols = (vec![], vec![], vec![], vec![], vec![], vec![]);
                for WebhookRow { bytes, record: w } in rows {
                    cols.0.push(uuid(w.id.0));
                    cols.1.push(w.user);
                    cols.2.push(w.created_at.0);
                    cols.3.push(i16::from(status_rank(w.status)));
                    cols.4.push(w.enabled);
                    cols.5.push(bytes);
                }
                c.execute(
                    "INSERT INTO webhooks (id, owner, created_at, status, enabled, record) \
                     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::bigint[], \
                     $4::smallint[], $5::boolean[], $6::bytea[])",
                    &[&cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &cols.5],
                )
                .await
                .map_err(pg)?;
            }
            Batch::Events(rows) => {
                let mut cols = (
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                    vec![],
                );
                for EventRow { bytes, record: e } in rows {
                    let (first, count) = event_deliveries_columns(&e);
                    cols.0.push(int(e.seq, "an event seq")?);
                    cols.1.push(e.id.as_str().to_owned());
                    cols.2.push(e.user);
                    cols.3.push(i16::from(type_code(e.event_type)));
                    cols.4.push(e.received_at.0);
                    cols.5.push(first);
                    cols.6.push(count);
                    cols.7.push(bytes);
                }
                c.execute(
                    "INSERT INTO events \
                     (seq, id, owner, type, received_at, first_delivery, deliveries, record) \
                     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], \
                     $4::smallint[], $5::bigint[], $6::bigint[], $7::integer[], $8::bytea[])",
                    &[
                        &cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &cols.5, &cols.6, &cols.7,
                    ],
                )
                .await
                .map_err(pg)?;
            }
            Batch::Deliveries(rows) => self.put_deliveries(rows).await?,
            Batch::Attempts(rows) => {
                let mut cols = (vec![], vec![], vec![]);
                for a in rows {
                    cols.0.push(int(a.delivery_seq, "a delivery seq")?);
                    cols.1
                        .push(i32::try_from(a.number).context("an attempt number")?);
                    cols.2.push(a.bytes);
                }
                insert_attempts(c, cols).await?;
            }
            Batch::Stats(rows) => {
                let mut cols = (vec![], vec![], vec![]);
                for (webhook, minute, bytes) in rows {
                    cols.0.push(uuid(webhook));
                    cols.1.push(int(minute, "a statistics minute")?);
                    cols.2.push(bytes);
                }
                c.execute(
                    "INSERT INTO attempt_stats (webhook_id, minute, shard, record) \
                     SELECT w, m, $4, r FROM UNNEST($1::uuid[], $2::bigint[], $3::bytea[]) \
                     AS u(w, m, r)",
                    &[&cols.0, &cols.1, &cols.2, &SHARD],
                )
                .await
                .map_err(pg)?;
            }
            Batch::Totals(rows) => {
                let mut cols = (vec![], vec![], vec![], vec![]);
                for (minute, s, f, e) in rows {
                    cols.0.push(int(minute, "a totals minute")?);
                    cols.1.push(int(s, "a count")?);
                    cols.2.push(int(f, "a count")?);
                    cols.3.push(int(e, "a count")?);
                }
                c.execute(
                    "INSERT INTO attempt_totals (minute, shard, succeeded, failed, errored) \
                     SELECT m, $5, s, f, e FROM UNNEST($1::bigint[], $2::bigint[], \
                     $3::bigint[], $4::bigint[]) AS u(m, s, f, e)",
                    &[&cols.0, &cols.1, &cols.2, &cols.3, &SHARD],
                )
                .await
                .map_err(pg)?;
            }
            Batch::Cleanups(rows) => {
                let (ids, kinds): (Vec<Uuid>, Vec<i16>) = rows
                    .into_iter()
                    .map(|(webhook, kind)| (uuid(webhook), i16::from(kind)))
                    .unzip();
                c.execute(
                    "INSERT INTO webhook_cleanup (webhook_id, kind) \
                     SELECT * FROM UNNEST($1::uuid[], $2::smallint[])",
                    &[&ids, &kinds],
                )
                .await
                .map_err(pg)?;
            }
            Batch::Notifications(rows) => {
                let mut cols = (vec![], vec![], vec![], vec![], vec![]);
                for NotificationRow { bytes, record: n } in rows {
                    let open = n.state.is_open();
                    // Rows come in seq order: the first open one is the webhook's oldest.
                    let due = if open && self.due_given.insert(n.webhook.id.0) {
                        Some(int(due_key(&n), "a notification's due time")?)
                    } else {
                        None
                    };
                    cols.0.push(int(n.seq, "a notification seq")?);
                    cols.1.push(uuid(n.webhook.id.0));
                    cols.2.push(open);
                    cols.3.push(due);
                    cols.4.push(bytes);
                }
                c.execute(
                    // claimed_by and claimed_until stay NULL: nobody is sending it.
                    "INSERT INTO notifications (seq, webhook_id, open, due, record) \
                     SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::boolean[], \
                     $4::bigint[], $5::bytea[])",
                    &[&cols.0, &cols.1, &cols.2, &cols.3, &cols.4],
                )
                .await
                .map_err(pg)?;
            }
            Batch::Marks(rows) => {
                let (ids, records): (Vec<Uuid>, Vec<Vec<u8>>) = rows
                    .into_iter()
                    .map(|(webhook, bytes)| (uuid(webhook), bytes))
                    .unzip();
                c.execute(
                    "INSERT INTO notification_marks (webhook_id, record) \
                     SELECT * FROM UNNEST($1::uuid[], $2::bytea[])",
                    &[&ids, &records],
                )
                .await
                .map_err(pg)?;
            }
        }
        Ok(())
    }

    async fn put_deliveries(&mut self, rows: Vec<DeliveryRow>) -> anyhow::Result<()> {
        let mut cols = (
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        let mut attempts = (vec![], vec![], vec![]);
        for row in rows {
            let due = row.due().map(|at| at.0);
            let d = &row.record;
            let seq = int(d.seq, "a delivery seq")?;
            cols.0.push(seq);
            cols.1.push(uuid(d.id.0));
            cols.2.push(uuid(d.webhook_id.0));
            cols.3.push(int(row.event_seq, "an event seq")?);
            cols.4.push(i16::from(status_code(d.status)));
            cols.5.push(i16::from(type_code(d.event_type)));
            // As ingest writes it (`store/postgres/events.rs`): the record's created_at,
            // which is its event's received_at; retention ages deliveries by it.
            cols.6.push(d.created_at.0);
            cols.7.push(due);
            cols.8.push(match due {
                Some(_) => Some(int(row.position, "a queue position")?),
                None => None,
            });
            for (number, bytes) in row.attempts {
                attempts.0.push(seq);
                attempts
                    .1
                    .push(i32::try_from(number).context("an attempt number")?);
                attempts.2.push(bytes);
            }
            cols.9.push(row.bytes);
        }
        self.client
            .execute(
                "INSERT INTO deliveries (seq, id, webhook_id, event_seq, status, type, \
                 created_at, due, position, record) \
                 SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $4::bigint[], \
                 $5::smallint[], $6::smallint[], $7::bigint[], $8::bigint[], $9::bigint[], \
                 $10::bytea[])",
                &[
                    &cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &cols.5, &cols.6, &cols.7,
                    &cols.8, &cols.9,
                ],
            )
            .await
            .map_err(pg)?;
        if !attempts.0.is_empty() {
            insert_attempts(&self.client, attempts).await?;
        }
        Ok(())
    }

    /// Sets the sequences past what the source gave out, so new seqs never collide:
    /// after `setval(n)` the next `nextval` is `n` plus the step, so with `delivery_seq`'s
    /// step of 1024 the next block still starts above every copied seq and queue
    /// position (`Seqs::delivery` covers both).
    pub async fn set_seqs(&mut self, seqs: Seqs) -> anyhow::Result<()> {
        for (name, last) in [
            ("event_seq", seqs.event),
            ("delivery_seq", seqs.delivery),
            ("notification_seq", seqs.notification),
        ] {
            // A sequence starts at 1; one that gave out nothing is left as it is.
            if last > 0 {
                self.client
                    .query_one(
                        "SELECT setval($1::text::regclass, $2)",
                        &[&name, &int(last, name)?],
                    )
                    .await
                    .map_err(pg)?;
            }
        }
        Ok(())
    }

    pub async fn counts(&mut self) -> anyhow::Result<Counts> {
        counts(&self.client).await
    }

    pub async fn commit(self) -> anyhow::Result<()> {
        self.client.batch_execute("COMMIT").await.map_err(pg)?;
        Ok(())
    }
}

async fn insert_attempts(
    c: &Client,
    cols: (Vec<i64>, Vec<i32>, Vec<Vec<u8>>),
) -> anyhow::Result<()> {
    c.execute(
        "INSERT INTO attempts (delivery_seq, number, record) \
         SELECT * FROM UNNEST($1::bigint[], $2::integer[], $3::bytea[])",
        &[&cols.0, &cols.1, &cols.2],
    )
    .await
    .map_err(pg)?;
    Ok(())
}
