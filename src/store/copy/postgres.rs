//! The PostgreSQL side of `hookd store copy`: reading the tables of
//! `store/postgres/migrations` in one `REPEATABLE READ` snapshot, page by page on their
//! keys, and writing them into an empty database in one transaction — records as the
//! codec's bytes, the other columns derived from them as the schema's comments say —
//! with multi-row `INSERT … SELECT FROM UNNEST` per batch.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Context;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

use super::{
    AttemptRow, BATCH, BATCH_BYTES, Batch, Counts, DeliveryRow, EventRow, NotificationRow, Refused,
    Seqs, WebhookRow,
};
use crate::store::StoreError;
use crate::store::codec::decode;
use crate::store::ops::notifications::due_key;
use crate::store::tables::{status_code, status_rank, type_code};

/// The schema a new database gets: the backend's own migration, embedded.
const SCHEMA: &str = include_str!("../postgres/migrations/0001_init.sql");
/// The schema version [`SCHEMA`] is, recorded in `hookd_schema(version)`.
const SCHEMA_VERSION: i32 = 1;

fn pg(e: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(Arc::new(e))
}

/// Connects to `url`.
///
/// Plain TCP (`NoTls`) for now: the backend's pool owns how hookd speaks TLS, and this
/// is the one place to point at its connector once it has one.
async fn connect(url: &str, desc: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(pg)
        .with_context(|| format!("cannot connect to {desc}"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "the database connection of the copy failed");
        }
    });
    Ok(client)
}

fn int(v: u64, what: &str) -> anyhow::Result<i64> {
    i64::try_from(v).with_context(|| format!("{what} {v} does not fit PostgreSQL's bigint"))
}

fn uint(v: i64, what: &str) -> anyhow::Result<u64> {
    u64::try_from(v)
        .map_err(|_| StoreError::Inconsistent(format!("{what} is {v}, a negative number")).into())
}

fn uuid(id: u128) -> Uuid {
    Uuid::from_u128(id)
}

/// The schema version the database is at (0: no hookd schema), refusing one this hookd
/// does not know.
async fn schema_version(client: &Client, desc: &str) -> anyhow::Result<i32> {
    let row = client
        .query_one(
            "SELECT to_regclass('hookd_schema') IS NOT NULL, to_regclass('webhooks') IS NOT NULL",
            &[],
        )
        .await
        .map_err(pg)?;
    let (versioned, tables): (bool, bool) = (row.get(0), row.get(1));
    let version = if versioned {
        let row = client
            .query_one("SELECT max(version) FROM hookd_schema", &[])
            .await
            .map_err(pg)?;
        row.get::<_, Option<i32>>(0).unwrap_or(0)
    } else {
        0
    };
    if version > SCHEMA_VERSION {
        return Err(Refused(format!(
            "{desc} has schema version {version}, but this hookd knows versions up to \
             {SCHEMA_VERSION}: use the hookd that wrote it"
        ))
        .into());
    }
    Ok(if tables { version.max(1) } else { 0 })
}

/// Refuses a database that live hookd nodes are using (their `nodes` rows not expired).
async fn refuse_live_nodes(client: &Client, desc: &str) -> anyhow::Result<()> {
    let row = client
        .query_one("SELECT count(*) FROM nodes WHERE expires_at > now()", &[])
        .await
        .map_err(pg)?;
    let live: i64 = row.get(0);
    if live > 0 {
        return Err(Refused(format!(
            "{desc} is in use: {live} hookd node(s) are running on it (their `nodes` rows \
             have not expired); stop them first"
        ))
        .into());
    }
    Ok(())
}

const COUNTS: &str = "SELECT \
    (SELECT count(*) FROM webhooks), (SELECT count(*) FROM events), \
    (SELECT count(*) FROM deliveries), (SELECT count(*) FROM attempts), \
    (SELECT count(*) FROM deliveries WHERE due IS NOT NULL), \
    (SELECT count(*) FROM attempt_stats), (SELECT count(*) FROM attempt_totals), \
    (SELECT count(*) FROM webhook_cleanup), (SELECT count(*) FROM notifications), \
    (SELECT count(*) FROM notification_marks)";

async fn counts(client: &Client) -> anyhow::Result<Counts> {
    let row = client.query_one(COUNTS, &[]).await.map_err(pg)?;
    let n = |i: usize| uint(row.get::<_, i64>(i), "a count");
    Ok(Counts {
        webhooks: n(0)?,
        events: n(1)?,
        deliveries: n(2)?,
        attempts: n(3)?,
        pending: n(4)?,
        attempt_stats: n(5)?,
        attempt_totals: n(6)?,
        cleanups: n(7)?,
        notifications: n(8)?,
        notification_marks: n(9)?,
    })
}

/// The last key read of the table being read, in the order a sink needs.
enum Cursor {
    Webhooks(Option<Uuid>),
    Events(i64),
    Deliveries(i64),
    Attempts(i64, i32),
    Stats(Option<(Uuid, i64)>),
    Totals(i64),
    Cleanups(Option<Uuid>),
    Notifications(i64),
    Marks(Option<Uuid>),
    Done,
}

/// A database read in one snapshot.
pub(super) struct Source {
    client: Client,
    cursor: Cursor,
    inline_attempts: u64,
}

impl Source {
    pub async fn open(url: &str, desc: &str) -> anyhow::Result<Source> {
        let client = connect(url, desc).await?;
        if schema_version(&client, desc).await? == 0 {
            return Err(Refused(format!("{desc} holds no hookd schema: nothing to copy")).into());
        }
        refuse_live_nodes(&client, desc).await?;
        client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await
            .map_err(pg)?;
        Ok(Source {
            client,
            cursor: Cursor::Webhooks(None),
            inline_attempts: 0,
        })
    }

    pub async fn next(&mut self) -> anyhow::Result<Option<Batch>> {
        let limit = BATCH as i64;
        loop {
            let c = &self.client;
            let batch = match self.cursor {
                Cursor::Webhooks(after) => {
                    let rows = c
                        .query(
                            "SELECT id, record FROM webhooks WHERE $1::uuid IS NULL OR id > $1 \
                             ORDER BY id LIMIT $2",
                            &[&after, &limit],
                        )
                        .await
                        .map_err(pg)?;
                    let Some(last) = rows.last() else {
                        self.cursor = Cursor::Events(i64::MIN);
                        continue;
                    };
                    self.cursor = Cursor::Webhooks(Some(last.get(0)));
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        let bytes: Vec<u8> = row.get(1);
                        out.push(WebhookRow {
                            record: decode(&bytes)?,
                            bytes,
                        });
                    }
                    Batch::Webhooks(out)
                }
                Cursor::Events(after) => {
                    // Payloads make events big: the batch ends at BATCH rows or once
                    // their records reach BATCH_BYTES, whichever comes first.
                    let sizes = c
                        .query(
                            "SELECT seq, sum(length(record)) OVER (ORDER BY seq)::bigint \
                             FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                            &[&after, &limit],
                        )
                        .await
                        .map_err(pg)?;
                    let budget = BATCH_BYTES as i64;
                    let Some(upto) = sizes
                        .iter()
                        .enumerate()
                        .take_while(|(i, row)| *i == 0 || row.get::<_, i64>(1) <= budget)
                        .map(|(_, row)| row.get::<_, i64>(0))
                        .last()
                    else {
                        self.cursor = Cursor::Deliveries(i64::MIN);
                        continue;
                    };
                    let rows = c
                        .query(
                            "SELECT seq, record FROM events WHERE seq > $1 AND seq <= $2 \
                             ORDER BY seq",
                            &[&after, &upto],
                        )
                        .await
                        .map_err(pg)?;
                    self.cursor = Cursor::Events(upto);
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        let bytes: Vec<u8> = row.get(1);
                        out.push(EventRow {
                            record: decode(&bytes)?,
                            bytes,
                        });
                    }
                    Batch::Events(out)
                }
                Cursor::Deliveries(after) => {
                    let rows = c
                        .query(
                            "SELECT seq, record, event_seq, position FROM deliveries \
                             WHERE seq > $1 ORDER BY seq LIMIT $2",
                            &[&after, &limit],
                        )
                        .await
                        .map_err(pg)?;
                    let Some(last) = rows.last() else {
                        self.cursor = Cursor::Attempts(i64::MIN, i32::MIN);
                        continue;
                    };
                    self.cursor = Cursor::Deliveries(last.get(0));
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        let bytes: Vec<u8> = row.get(1);
                        let event_seq = uint(row.get(2), "a delivery's event_seq")?;
                        let position: Option<i64> = row.get(3);
                        let d = DeliveryRow::of(&bytes, |d| {
                            let position = match position {
                                Some(p) => uint(p, "a delivery's position")?,
                                None => d.seq,
                            };
                            Ok((event_seq, position))
                        })?;
                        self.inline_attempts += d.attempts.len() as u64;
                        out.push(d);
                    }
                    Batch::Deliveries(out)
                }
                Cursor::Attempts(seq, number) => {
                    let rows = c
                        .query(
                            "SELECT delivery_seq, number, record FROM attempts \
                             WHERE (delivery_seq, number) > ($1, $2) \
                             ORDER BY delivery_seq, number LIMIT $3",
                            &[&seq, &number, &limit],
                        )
                        .await
                        .map_err(pg)?;
                    let Some(last) = rows.last() else {
                        self.cursor = Cursor::Stats(None);
                        continue;
                    };
                    self.cursor = Cursor::Attempts(last.get(0), last.get(1));
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        out.push(AttemptRow {
                            delivery_seq: uint(row.get(0), "an attempt's delivery_seq")?,
                            number: u32::try_from(row.get::<_, i32>(1)).map_err(|_| {
                                StoreError::Inconsistent("an attempt number is negative".into())
                            })?,
                            bytes: row.get(2),
                        });
                    }
                    Batch::Attempts(out)
                }
                Cursor::Stats(after) => {
                    let (webhook, minute) = after.unzip();
                    let rows = c
                        .query(
                            "SELECT webhook_id, minute, record FROM attempt_stats \
                             WHERE $1::uuid IS NULL OR (webhook_id, minute) > ($1, $2) \
                             ORDER BY webhook_id, minute LIMIT $3",
                            &[&webhook, &minute.unwrap_or(i64::MIN), &limit],
                        )
                        .await
                        .map_err(pg)?;
                    let Some(last) = rows.last() else {
                        self.cursor = Cursor::Totals(i64::MIN);
                        continue;
                    };
                    self.cursor = Cursor::Stats(Some((last.get(0), last.get(1))));
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        let webhook: Uuid = row.get(0);
                        out.push((
                            webhook.as_u128(),
                            uint(row.get(1), "a statistics minute")?,
                            row.get(2),
                        ));
                    }
                    Batch::Stats(out)
                }
                Cursor::Totals(after) => {
                    let rows = c
                        .query(
                            "SELECT minute, succeeded, failed, errored FROM attempt_totals \
                             WHERE minute > $1 ORDER BY minute LIMIT $2",
                            &[&after, &limit],
                        )
                        .await
                        .map_err(pg)?;
                    let Some(last) = rows.last() else {
                        self.cursor = Cursor::Cleanups(None);
                        continue;
                    };
                    self.cursor = Cursor::Totals(last.get(0));
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        out.push((
                            uint(row.get(0), "a totals minute")?,
                            uint(row.get(1), "a count")?,
                            uint(row.get(2), "a count")?,
                            uint(row.get(3), "a count")?,
                        ));
                    }
                    Batch::Totals(out)
                }
                Cursor::Cleanups(after) => {
                    let rows = c
                        .query(
                            "SELECT webhook_id, kind FROM webhook_cleanup \
                             WHERE $1::uuid IS NULL OR webhook_id > $1 \
                             ORDER BY webhook_id LIMIT $2",
                            &[&after, &limit],
                        )
                        .await
                        .map_err(pg)?;
                    let Some(last) = rows.last() else {
                        self.cursor = Cursor::Notifications(i64::MIN);
                        continue;
                    };
                    self.cursor = Cursor::Cleanups(Some(last.get(0)));
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        let webhook: Uuid = row.get(0);
                        let kind = u8::try_from(row.get::<_, i16>(1)).map_err(|_| {
                            StoreError::Inconsistent("a cleanup kind is out of range".into())
                        })?;
                        out.push((webhook.as_u128(), kind));
                    }
                    Batch::Cleanups(out)
                }
                Cursor::Notifications(after) => {
                    // In seq order, as `Batch::Notifications` promises.
                    let rows = c
                        .query(
                            "SELECT seq, record FROM notifications WHERE seq > $1 \
                             ORDER BY seq LIMIT $2",
                            &[&after, &limit],
                        )
                        .await
                        .map_err(pg)?;
                    let Some(last) = rows.last() else {
                        self.cursor = Cursor::Marks(None);
                        continue;
                    };
                    self.cursor = Cursor::Notifications(last.get(0));
                    let mut out = Vec::with_capacity(rows.len());
                    for row in rows {
                        let bytes: Vec<u8> = row.get(1);
                        out.push(NotificationRow {
                            record: decode(&bytes)?,
                            bytes,
                        });
                    }
                    Batch::Notifications(out)
                }
                Cursor::Marks(after) => {
                    let rows = c
                        .query(
                            "SELECT webhook_id, record FROM notification_marks \
                             WHERE $1::uuid IS NULL OR webhook_id > $1 \
                             ORDER BY webhook_id LIMIT $2",
                            &[&after, &limit],
                        )
                        .await
                        .map_err(pg)?;
                    let Some(last) = rows.last() else {
                        self.cursor = Cursor::Done;
                        continue;
                    };
                    self.cursor = Cursor::Marks(Some(last.get(0)));
                    let out = rows
                        .into_iter()
                        .map(|row| (row.get::<_, Uuid>(0).as_u128(), row.get(1)))
                        .collect();
                    Batch::Marks(out)
                }
                Cursor::Done => return Ok(None),
            };
            return Ok(Some(batch));
        }
    }

    pub async fn seqs(&mut self) -> anyhow::Result<Seqs> {
        let mut last = [0u64; 3];
        for (i, name) in ["event_seq", "delivery_seq", "notification_seq"]
            .iter()
            .enumerate()
        {
            let row = self
                .client
                .query_one(&format!("SELECT last_value, is_called FROM {name}"), &[])
                .await
                .map_err(pg)?;
            if row.get::<_, bool>(1) {
                last[i] = uint(row.get(0), name)?;
            }
        }
        Ok(Seqs {
            event: last[0],
            delivery: last[1],
            notification: last[2],
        })
    }

    pub async fn counts(&mut self) -> anyhow::Result<Counts> {
        let mut c = counts(&self.client).await?;
        c.attempts += self.inline_attempts;
        Ok(c)
    }
}

/// An empty database being filled, in one transaction that [`Sink::commit`] commits.
pub(super) struct Sink {
    client: Client,
    /// Webhooks whose oldest open notification has its `due`.
    due_given: HashSet<u128>,
}

const TABLES: &str = "webhooks, events, deliveries, attempts, attempt_stats, attempt_totals, \
                      webhook_cleanup, notifications, notification_marks";

impl Sink {
    /// Refuses a database that holds anything or that live nodes use; creates the schema
    /// in an empty one.
    pub async fn create(url: &str, desc: &str) -> anyhow::Result<Sink> {
        let client = connect(url, desc).await?;
        let version = schema_version(&client, desc).await?;
        if version > 0 {
            refuse_live_nodes(&client, desc).await?;
        }
        client.batch_execute("BEGIN").await.map_err(pg)?;
        if version == 0 {
            client
                .batch_execute(SCHEMA)
                .await
                .map_err(pg)
                .with_context(|| {
                    format!("cannot create the schema (version {SCHEMA_VERSION}) in {desc}")
                })?;
            client
                .batch_execute("CREATE TABLE IF NOT EXISTS hookd_schema (version int NOT NULL)")
                .await
                .map_err(pg)?;
            client
                .execute(
                    "INSERT INTO hookd_schema (version) VALUES ($1)",
                    &[&SCHEMA_VERSION],
                )
                .await
                .map_err(pg)?;
        }
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
                let mut cols = (vec![], vec![], vec![], vec![], vec![], vec![]);
                for EventRow { bytes, record: e } in rows {
                    cols.0.push(int(e.seq, "an event seq")?);
                    cols.1.push(e.id.as_str().to_owned());
                    cols.2.push(e.user);
                    cols.3.push(i16::from(type_code(e.event_type)));
                    cols.4.push(e.received_at.0);
                    cols.5.push(bytes);
                }
                c.execute(
                    "INSERT INTO events (seq, id, owner, type, received_at, record) \
                     SELECT * FROM UNNEST($1::bigint[], $2::text[], $3::text[], \
                     $4::smallint[], $5::bigint[], $6::bytea[])",
                    &[&cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &cols.5],
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
                    "INSERT INTO attempt_stats (webhook_id, minute, record) \
                     SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::bytea[])",
                    &[&cols.0, &cols.1, &cols.2],
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
                    "INSERT INTO attempt_totals (minute, succeeded, failed, errored) \
                     SELECT * FROM UNNEST($1::bigint[], $2::bigint[], $3::bigint[], \
                     $4::bigint[])",
                    &[&cols.0, &cols.1, &cols.2, &cols.3],
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
            cols.6.push(due);
            cols.7.push(match due {
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
            cols.8.push(row.bytes);
        }
        self.client
            .execute(
                "INSERT INTO deliveries \
                 (seq, id, webhook_id, event_seq, status, type, due, position, record) \
                 SELECT * FROM UNNEST($1::bigint[], $2::uuid[], $3::uuid[], $4::bigint[], \
                 $5::smallint[], $6::smallint[], $7::bigint[], $8::bigint[], $9::bytea[])",
                &[
                    &cols.0, &cols.1, &cols.2, &cols.3, &cols.4, &cols.5, &cols.6, &cols.7, &cols.8,
                ],
            )
            .await
            .map_err(pg)?;
        if !attempts.0.is_empty() {
            insert_attempts(&self.client, attempts).await?;
        }
        Ok(())
    }

    /// Sets the sequences past what the source gave out, so new seqs never collide.
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
