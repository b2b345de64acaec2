#!/usr/bin/env bash
# Measures `participants import`: ROWS rows of contact data from one CSV file, through the CLI,
# into an empty study, on SQLite (durable: synchronous=FULL) and, when
# PARTICIPANTS_TEST_POSTGRES_URL names an admin URL, on PostgreSQL. Prints rows/s end to end and
# the server's peak resident memory (VmHWM); then runs the file again and checks that the
# re-run wrote nothing (the audit trail's length is unchanged).
#
# Usage: scripts/import-bench.sh            200,000 rows, release build
#        scripts/import-bench.sh --quick    2,000 rows, debug build: a correctness check only
#                                           (what .ci/run runs; figures from it mean nothing)
#        IMPORT_BENCH_ROWS=N overrides the row count.
# The flow-control benchmark (a client that does not read its answers) is
# `cargo bench --bench import_flood`.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=200000
profile=release
if [ "${1:-}" = "--quick" ]; then
  rows=2000
  profile=debug
fi
rows=${IMPORT_BENCH_ROWS:-$rows}
target=${CARGO_TARGET_DIR:-target}
if [ "$profile" = release ]; then
  cargo build --release --bin participants >&2
else
  cargo build --bin participants >&2
fi
bin="$target/$profile/participants"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

export PARTICIPANTS_JWT_HS256_SECRET="import-bench-secret-import-bench-0123456789"
PARTICIPANTS_DATA_KEY=$("$bin" data-key)
export PARTICIPANTS_DATA_KEY

csv="$work/participants.csv"
awk -v n="$rows" 'BEGIN {
  print "ParticipantID,FirstName,LastName,EmailAddress,MobileNumber,City"
  for (i = 1; i <= n; i++)
    printf "B-%07d,First%d,\"Last, %d\",p%d@example.org,+1 555%07d,City %d\n", i, i, i, i, i, i
}' >"$csv"
echo "file: $rows rows, $(du -h "$csv" | cut -f1)"

# Starts the server on $1 (a database URL); sets server_pid and addr.
start_server() {
  local log="$work/server.log"
  : >"$log"
  "$bin" serve --listen 127.0.0.1:0 --http-listen "" --admin-listen "" --log-format json \
    --database-url "$1" --catalog catalog/bench.toml 2>"$log" >/dev/null &
  server_pid=$!
  addr=""
  for _ in $(seq 1 600); do
    addr=$(grep -o 'listening on [0-9.:]*' "$log" | head -n1 | cut -d' ' -f3 || true)
    [ -n "$addr" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "the server did not start" >&2; cat "$log" >&2; exit 1; }
}

stop_server() {
  kill "$server_pid"
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

peak_rss_mib() {
  awk '/^VmHWM:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"
}

# The length of the study's audit trail, read by `audit verify` (it only reads).
audit_events() {
  "$bin" audit verify --study S_BENCH --database-url "$1" | grep -o 'intact, [0-9]* events' | grep -o '[0-9]*'
}

# Imports the file into the database at $1 (named $2 in the output).
bench() {
  local url=$1 name=$2
  start_server "$url"
  local token
  token=$("$bin" token --user dm.bench --ttl 2h)
  echo
  echo "== $name: $rows rows through participants import (server on $addr)"
  local out status=0
  out=$("$bin" import --target "$addr" --token "$token" --file "$csv" --study S_BENCH \
    --site S_BENCH_1 --results "$work/results.csv") || status=$?
  echo "$out"
  echo "server peak RSS (VmHWM): $(peak_rss_mib "$server_pid") MiB"
  [ "$status" -eq 0 ] || { echo "import failed (exit $status)" >&2; head -n 5 "$work/results.csv" >&2; exit 1; }
  grep -q "$rows created, 0 updated, 0 validated, 0 failed, 0 not answered" <<<"$out" \
    || { echo "not every row was created" >&2; exit 1; }
  [ "$(wc -l <"$work/results.csv")" -eq $((rows + 1)) ] || { echo "results: one line per row expected" >&2; exit 1; }

  local before after
  before=$(audit_events "$url")
  out=$("$bin" import --target "$addr" --token "$token" --file "$csv" --study S_BENCH \
    --site S_BENCH_1 --results "$work/rerun.csv") || { echo "re-run failed" >&2; exit 1; }
  after=$(audit_events "$url")
  echo "re-run (answers replayed): ${out%%:*}; audit events before $before, after $after"
  [ "$before" = "$after" ] || { echo "the re-run wrote something" >&2; exit 1; }
  stop_server
}

bench "sqlite://$work/bench.db?mode=rwc" "SQLite (durable)"

if [ -n "${PARTICIPANTS_TEST_POSTGRES_URL:-}" ]; then
  if ! command -v psql >/dev/null; then
    apt-get install -y -qq postgresql-client >&2
  fi
  db="import_bench_$(date +%s)_$$"
  psql -q "$PARTICIPANTS_TEST_POSTGRES_URL" -c "CREATE DATABASE $db"
  bench "${PARTICIPANTS_TEST_POSTGRES_URL%/*}/$db" "PostgreSQL"
  psql -q "$PARTICIPANTS_TEST_POSTGRES_URL" -c "DROP DATABASE $db WITH (FORCE)" || true
fi
