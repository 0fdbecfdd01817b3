#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests that take a database URL: the PostgreSQL
# store's own unit tests read HOOKD_TEST_POSTGRES_URL. (The end-to-end suite needs none:
# under HOOKD_TEST_STORE=postgres it starts its own, tests/it/common/postgres.rs.)
#
#   scripts/test-postgres.sh start DIR   # a new cluster in DIR (created; must not exist
#                                        # or be empty), started; prints its URL
#   scripts/test-postgres.sh stop DIR    # stops it and removes DIR
#
#   export HOOKD_TEST_POSTGRES_URL=$(scripts/test-postgres.sh start /tmp/hookd-pg)
#   cargo test --release --lib store::postgres
#   scripts/test-postgres.sh stop /tmp/hookd-pg
#
# The server: PostgreSQL's binaries ($HOOKD_TEST_PG_BINDIR, else the highest version
# under /usr/lib/postgresql, else `pg_config --bindir`), run as the `postgres` user when
# this is root (initdb refuses root), on 127.0.0.1 only, on $HOOKD_TEST_PG_PORT or the
# first free port from 55432 up, the superuser `postgres` trusted without a password.
# The URL names a database `hookd_test`; that user may create more.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$2

bindir() {
  if [ -n "${HOOKD_TEST_PG_BINDIR:-}" ]; then echo "$HOOKD_TEST_PG_BINDIR"; return; fi
  local newest
  newest=$(ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -n 1)
  if [ -n "$newest" ]; then dirname "$newest"; return; fi
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then
    pg_config --bindir; return
  fi
  echo "no PostgreSQL server binaries (Debian: apt-get install postgresql)" >&2
  exit 1
}

# Runs a command as the cluster's owner: `postgres` when this is root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

bin=$(bindir)
psql="$bin/psql"; [ -x "$psql" ] || psql=psql
case "$action" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [ -z "$(ls -A "$dir")" ] || { echo "$dir is not empty" >&2; exit 1; }
    if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
    # `cd`: the owner may not be allowed into the caller's working directory.
    (cd "$dir" && as_owner env LC_ALL=C "$bin/initdb" -D "$dir/data" -U postgres -A trust \
      -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1) ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    if [ -n "${HOOKD_TEST_PG_PORT:-}" ]; then ports=$HOOKD_TEST_PG_PORT; else ports=$(seq 55432 55531); fi
    for port in $ports; do
      options="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300"
      if (cd "$dir" && as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "$options" start >/dev/null); then
        "$psql" -X -q -v ON_ERROR_STOP=1 \
          -d "host=127.0.0.1 port=$port user=postgres dbname=postgres sslmode=disable" \
          -c "CREATE DATABASE hookd_test" >&2
        echo "postgres://postgres@127.0.0.1:$port/hookd_test?sslmode=disable"
        exit 0
      fi
      # Only a port in use is worth another try.
      tail -n 5 "$dir/server.log" | grep -q "could not bind" || break
    done
    cat "$dir/server.log" >&2
    exit 1
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    if [ -f "$dir/data/postmaster.pid" ]; then
      # A server that is already gone leaves its pid file: nothing to stop then.
      (cd "$dir" && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null) ||
        echo "$0: no server to stop in $dir" >&2
    fi
    rm -rf "$dir"
    ;;
  *) usage ;;
esac
