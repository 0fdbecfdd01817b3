#!/usr/bin/env bash
# What PostgreSQL alone spends per webhook event here, by batch size (issue 16).
#
#   scripts/pg-floor.sh URL [BATCH ...]      e.g. scripts/pg-floor.sh "$HOOKD_TEST_POSTGRES_URL" 1 8 32
#
# The least a durable webhook store asks of PostgreSQL per event: the event and its one
# delivery inserted in one transaction, then the delivery's outcome (its row updated, one
# attempt row inserted) in another, on tables shaped like hookd's and named f_* so they
# stay apart from them. BATCH events share each transaction, as concurrent ingests and
# outcomes can. pgbench drives it (32 clients for BATCH 1, 8 above, 20 s, 3 rounds) on
# the same machine. The server must run here, as the user `postgres`, like
# scripts/test-postgres.sh's: its CPU is read from /proc (utime + stime of its
# processes, plus what the postmaster's exited backends used).
set -euo pipefail

url=${1:?usage: scripts/pg-floor.sh URL [BATCH ...]}
shift
batches=("$@")
((${#batches[@]})) || batches=(1 8 32)
pgbench=$(ls /usr/lib/postgresql/*/bin/pgbench 2>/dev/null | tail -1)
[[ -x $pgbench ]] || { echo "pg-floor: pgbench not found (Debian's postgresql package has it)" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

psql -q -v ON_ERROR_STOP=1 "$url" <<'SQL'
SET client_min_messages = warning;
DROP TABLE IF EXISTS f_attempts, f_deliveries, f_events;
CREATE TABLE f_events (id text PRIMARY KEY, user_id text NOT NULL, type text NOT NULL,
                       payload bytea NOT NULL, created_at bigint NOT NULL);
CREATE TABLE f_deliveries (id uuid PRIMARY KEY, event_id text NOT NULL, webhook_id uuid NOT NULL,
                           status smallint NOT NULL, attempts int NOT NULL, next_attempt_at bigint);
CREATE INDEX f_deliveries_due ON f_deliveries (webhook_id, next_attempt_at) WHERE status = 0;
CREATE TABLE f_attempts (delivery_id uuid NOT NULL, n int NOT NULL, status_code int,
                         at bigint NOT NULL, PRIMARY KEY (delivery_id, n));
SQL

# CPU clock ticks of every process of the user postgres, exited children included.
pg_ticks() {
    local total=0 pid stat
    for pid in $(pgrep -u postgres); do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        # shellcheck disable=SC2086 # the fields after the command name, split on purpose
        set -- ${stat##*) }
        total=$((total + ${12} + ${13} + ${14} + ${15}))
    done
    echo "$total"
}

ticks_per_sec=$(getconf CLK_TCK)
for batch in "${batches[@]}"; do
    key="'ev' || :client_id || '-' || :e || '-' || g"
    delivery="md5(:client_id || '-' || :e || '-' || g)::uuid"
    # One row without a function call for batch 1: the plain per-event statements.
    if ((batch == 1)); then rows="(VALUES (1)) AS v(g)"; else rows="generate_series(1, $batch) g"; fi
    cat >"$work/event.sql" <<SQL
\set e random(1, 2000000000)
BEGIN;
INSERT INTO f_events SELECT $key, 'user-1', 'message:received', decode(repeat('78', 256), 'hex'), 1 FROM $rows;
INSERT INTO f_deliveries SELECT $delivery, $key, '00000000-0000-0000-0000-000000000001', 0, 0, 1 FROM $rows;
COMMIT;
BEGIN;
UPDATE f_deliveries SET status = 1, attempts = 1, next_attempt_at = NULL WHERE id IN (SELECT $delivery FROM $rows);
INSERT INTO f_attempts SELECT $delivery, 1, 200, 2 FROM $rows;
COMMIT;
SQL
    clients=$((batch == 1 ? 32 : 8))
    for round in 1 2 3; do
        before=$(pg_ticks)
        out=$("$pgbench" -n -c "$clients" -j 2 -T 20 -f "$work/event.sql" "$url" 2>&1)
        after=$(pg_ticks)
        scripts=$(awk '/transactions actually processed/ {print $NF}' <<<"$out" | cut -d/ -f1)
        [[ $scripts =~ ^[0-9]+$ && $scripts -gt 0 ]] || { echo "$out" >&2; exit 1; }
        events=$((scripts * batch))
        echo "batch $batch, round $round: $((events / 20)) events/s," \
            "PostgreSQL $(((after - before) * 1000000 / ticks_per_sec / events)) µs of CPU per event"
    done
done
psql -q "$url" -c 'DROP TABLE f_attempts, f_deliveries, f_events'
