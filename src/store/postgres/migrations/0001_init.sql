-- hookd's PostgreSQL schema, version 1 (the invariants are in src/store/postgres/mod.rs).
-- Each record column holds hookd's own versioned encoding (src/store/codec.rs), the same
-- bytes the redb backend stores, so one module owns the record formats and their
-- upgrades for both backends and `hookd store copy` moves records unchanged. The other
-- columns are what SQL needs to find and order rows.
-- Times are unix milliseconds (bigint), as in the records; lease and claim times are the
-- database's clock (timestamptz), so nodes never compare their own clocks.
-- The version table `hookd_schema` is made by the migration runner (connect.rs).

CREATE SEQUENCE event_seq;
-- Steps of 1024: one nextval reserves the block of seqs an event's deliveries take
-- (consecutive, as EventRecord::first_delivery promises), and any later nextval (a
-- retry's queue position) is still larger than every seq handed out before it.
CREATE SEQUENCE delivery_seq INCREMENT BY 1024;
CREATE SEQUENCE notification_seq;

CREATE TABLE webhooks (
    id          uuid PRIMARY KEY,
    owner       text NOT NULL,
    created_at  bigint NOT NULL,
    status      smallint NOT NULL,          -- store::tables::status_rank
    enabled     boolean NOT NULL,
    record      bytea NOT NULL              -- WebhookRecord
);
CREATE INDEX webhooks_by_owner ON webhooks (owner, created_at, id);
CREATE INDEX webhooks_by_status ON webhooks (status, id);

CREATE TABLE events (
    seq         bigint PRIMARY KEY,         -- from event_seq: ingestion order
    id          text NOT NULL UNIQUE,       -- the publisher's id: idempotency
    owner       text NOT NULL,
    type        smallint NOT NULL,          -- store::tables::type_code
    received_at bigint NOT NULL,
    first_delivery bigint,                  -- its deliveries' seqs are
    deliveries  integer NOT NULL,           -- first_delivery..+deliveries (retention)
    record      bytea NOT NULL              -- EventRecord
);
-- The event log: one range per type (a listing merges the types it shows).
CREATE INDEX events_by_owner_type ON events (owner, type, seq);

CREATE TABLE deliveries (
    seq         bigint PRIMARY KEY,         -- from delivery_seq: ingestion order
    id          uuid NOT NULL UNIQUE,
    webhook_id  uuid NOT NULL,
    event_seq   bigint NOT NULL,
    status      smallint NOT NULL,          -- store::tables::status_code
    type        smallint NOT NULL,          -- store::tables::type_code
    created_at  bigint NOT NULL,            -- the event's received_at (retention)
    due         bigint,                     -- next_attempt_at; set exactly while pending
    position    bigint,                     -- queue order while pending: seq, or a fresh
                                            -- delivery_seq value when queued again
    record      bytea NOT NULL              -- DeliveryRecord
);
CREATE INDEX deliveries_queue ON deliveries (webhook_id, due, id) WHERE due IS NOT NULL;
CREATE INDEX deliveries_line ON deliveries (webhook_id, position) WHERE due IS NOT NULL;
-- The delivery log: one range per status and type (a listing merges those it shows).
CREATE INDEX deliveries_log ON deliveries (webhook_id, status, type, seq);

CREATE TABLE attempts (
    delivery_seq bigint NOT NULL REFERENCES deliveries (seq) ON DELETE CASCADE,
    number       integer NOT NULL,          -- 1..=the delivery's attempt count
    record       bytea NOT NULL,            -- Attempt
    PRIMARY KEY (delivery_seq, number)
);

-- Counters are split in shards (the backend's pid modulo 8) so that concurrent
-- transactions of different connections never wait for each other's commit on one hot
-- row; readers sum the shards.
CREATE TABLE attempt_stats (
    webhook_id  uuid NOT NULL,
    minute      bigint NOT NULL,            -- unix minute the attempts started in
    shard       smallint NOT NULL,
    record      bytea NOT NULL,             -- MinuteStats
    PRIMARY KEY (webhook_id, minute, shard)
);

CREATE TABLE attempt_totals (
    minute      bigint NOT NULL,
    shard       smallint NOT NULL,
    succeeded   bigint NOT NULL,
    failed      bigint NOT NULL,
    errored     bigint NOT NULL,
    PRIMARY KEY (minute, shard)
);

CREATE TABLE webhook_cleanup (
    webhook_id  uuid PRIMARY KEY,
    kind        smallint NOT NULL           -- store::tables::CLEANUP_REMOVE / CLEANUP_CANCEL
);

CREATE TABLE notifications (
    seq           bigint PRIMARY KEY,       -- from notification_seq
    webhook_id    uuid NOT NULL,
    open          boolean NOT NULL,         -- held or pending
    due           bigint,                   -- set on each webhook's oldest open one only
    claimed_by    text,                     -- the node whose notifier is sending it
    claimed_until timestamptz,              -- … until then (database clock)
    record        bytea NOT NULL            -- NotificationRecord
);
CREATE INDEX notifications_open ON notifications (webhook_id, seq) WHERE open;
CREATE INDEX notifications_due ON notifications (due, seq) WHERE due IS NOT NULL;

CREATE TABLE notification_marks (
    webhook_id  uuid PRIMARY KEY,
    record      bytea NOT NULL              -- NotifyMarks
);

-- The cluster: live nodes, and who drives what. A lease's name is `webhook:<id>`: the
-- node holding it drives the webhook's deliveries.
CREATE TABLE nodes (
    id          text PRIMARY KEY,
    expires_at  timestamptz NOT NULL
);

CREATE TABLE leases (
    name        text PRIMARY KEY,
    node        text NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX leases_by_node ON leases (node);
