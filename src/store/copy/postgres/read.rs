//! Reading a PostgreSQL store for `hookd store copy`: every table in one `REPEATABLE
//! READ` snapshot, page by page on its keys, in the order `Batch` promises. The
//! statistics tables hold a key's counters in several shards (`store/postgres/stats.rs`):
//! they are read a page of keys at a time and merged into one row per key, as the
//! backend's own readers merge them.

use tokio_postgres::Client;
use uuid::Uuid;

use super::super::{
    AttemptRow, BATCH, BATCH_BYTES, Batch, Counts, DeliveryRow, EventRow, NotificationRow, Refused,
    Seqs, WebhookRow,
};
use super::{connect, counts, pg, refuse_live_nodes, schema_version, uint};
use crate::model::DeliveryId;
use crate::store::StoreError;
use crate::store::codec::{decode, encode};
use crate::store::ops::stats::MinuteStats;
use crate::store::postgres::known_version;

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
pub(in crate::store::copy) struct Source {
    client: Client,
    cursor: Cursor,
    inline_attempts: u64,
}

impl Source {
    pub async fn open(url: &str, desc: &str) -> anyhow::Result<Source> {
        let client = connect(url, desc).await?;
        let version = schema_version(&client, desc).await?;
        if version == 0 {
            return Err(Refused(format!("{desc} holds no hookd schema: nothing to copy")).into());
        }
        // The copy reads the columns of the schema this hookd knows.
        if version < known_version() {
            return Err(Refused(format!(
                "{desc} has schema version {version}, older than this hookd's {}: run \
                 `hookd migrate` on it first",
                known_version()
            ))
            .into());
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
                            "SELECT seq, record, event_seq, position, id FROM deliveries \
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
                        let id: Uuid = row.get(4);
                        let d = DeliveryRow::of(DeliveryId(id.as_u128()), &bytes, |d| {
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
                    // The next page of keys, then all their shards, merged per key.
                    let (webhook, minute) = after.unzip();
                    let rows = c
                        .query(
                            "WITH page AS (SELECT DISTINCT webhook_id, minute FROM attempt_stats \
                             WHERE $1::uuid IS NULL OR (webhook_id, minute) > ($1, $2) \
                             ORDER BY webhook_id, minute LIMIT $3) \
                             SELECT s.webhook_id, s.minute, s.record FROM attempt_stats s \
                             JOIN page USING (webhook_id, minute) \
                             ORDER BY s.webhook_id, s.minute, s.shard",
                            &[&webhook, &minute.unwrap_or(i64::MIN), &limit],
                        )
                        .await
                        .map_err(pg)?;
                    let Some(last) = rows.last() else {
                        self.cursor = Cursor::Totals(i64::MIN);
                        continue;
                    };
                    self.cursor = Cursor::Stats(Some((last.get(0), last.get(1))));
                    let mut merged: Vec<(u128, u64, MinuteStats)> = Vec::new();
                    for row in rows {
                        let (webhook, minute) = (
                            row.get::<_, Uuid>(0).as_u128(),
                            uint(row.get(1), "a statistics minute")?,
                        );
                        let stats: MinuteStats = decode(row.get::<_, &[u8]>(2))?;
                        match merged.last_mut() {
                            Some((w, m, into)) if (*w, *m) == (webhook, minute) => {
                                into.merge(&stats)
                            }
                            _ => merged.push((webhook, minute, stats)),
                        }
                    }
                    Batch::Stats(
                        merged
                            .into_iter()
                            .map(|(webhook, minute, stats)| (webhook, minute, encode(&stats)))
                            .collect(),
                    )
                }
                Cursor::Totals(after) => {
                    // A minute's shards summed, as `store/postgres/stats.rs` reads them.
                    let rows = c
                        .query(
                            "SELECT minute, sum(succeeded)::bigint, sum(failed)::bigint, \
                             sum(errored)::bigint FROM attempt_totals \
                             WHERE minute > $1 GROUP BY minute ORDER BY minute LIMIT $2",
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

    /// The sequences' last values. `delivery_seq` steps by 1024 (a `nextval` reserves a
    /// block for one event's deliveries): its last value is the start of the last block,
    /// and the seqs used inside it are covered by the rows copied (`Seqs::cover`).
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
