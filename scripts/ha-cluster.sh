#!/usr/bin/env bash
# A PostgreSQL cluster that fails over, on loopback: one etcd member (the DCS), three PostgreSQL 15
# instances managed by Patroni with synchronous replication, and HAProxy sending the write port to
# whichever member Patroni's REST API calls the primary.
#
#   scripts/ha-cluster.sh start       start everything, wait for a leader and a synchronous standby
#   scripts/ha-cluster.sh stop        stop everything and delete the data
#   scripts/ha-cluster.sh status      patronictl list
#   scripts/ha-cluster.sh leader      print the leader's member name (pg1..pg3)
#   scripts/ha-cluster.sh switchover  planned hand-over to the synchronous standby
#   scripts/ha-cluster.sh kill-leader kill -9 the leader's postmaster (an unplanned failover)
#   scripts/ha-cluster.sh sync on|off synchronous replication on or off, waiting until it is so
#   scripts/ha-cluster.sh url         print the service's database URL (through HAProxy)
#   scripts/ha-cluster.sh bench       print commits/s of one-row INSERTs, 16 pgbench sessions, 3 s
#
# Ports: HAProxy 5440 (writes), PostgreSQL 5441-5443, Patroni REST 8011-8013, etcd 2379/2380;
# HA_PORT_BASE moves the PostgreSQL, HAProxy and REST ports together, HA_ETCD_PORT etcd's.
# Data lives in HA_DIR (default /tmp/participants-ha), never in a system cluster's directory;
# `stop` copies the Patroni logs to HA_SAVE_LOGS first when that names a directory.
# Needs root (to run Patroni as the `postgres` user) and Debian's patroni, etcd-server, haproxy.
set -euo pipefail

HA_DIR=${HA_DIR:-/tmp/participants-ha}
BASE=${HA_PORT_BASE:-5440}
ETCD_PORT=${HA_ETCD_PORT:-2379}
REST_BASE=$((BASE + 2570)) # 8010
PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)}
SCOPE=participants-ha
PASSWORD=postgres
MEMBERS="1 2 3"

as_postgres() { runuser -u postgres -- "$@"; }
log() { echo "ha-cluster: $*" >&2; }
ctl() { as_postgres patronictl -c "$HA_DIR/pg1.yml" "$@"; }

write_member_config() {
  local n=$1
  cat >"$HA_DIR/pg$n.yml" <<EOF
scope: $SCOPE
name: pg$n
log:
  dir: $HA_DIR/pg$n
  # INFO says why a crashed primary was restarted in place rather than failed over.
  level: INFO
  file_size: 4194304
  file_num: 2
restapi:
  listen: 127.0.0.1:$((REST_BASE + n))
  connect_address: 127.0.0.1:$((REST_BASE + n))
etcd3:
  hosts: 127.0.0.1:$ETCD_PORT
bootstrap:
  dcs:
    # Short timers so that a lost leader is replaced within seconds (Patroni's defaults are
    # 30 s / 10 s / 10 s); loop_wait + 2 * retry_timeout must stay under ttl.
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    # A crashed primary is not restarted in place: its synchronous standby takes over at once.
    primary_start_timeout: 0
    maximum_lag_on_failover: 1048576
    # A commit is acknowledged only once the synchronous standby has it, and only that standby
    # may be promoted: no acknowledged write is lost in a failover.
    synchronous_mode: true
    postgresql:
      use_pg_rewind: true
      parameters:
        wal_level: replica
        hot_standby: "on"
        wal_log_hints: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        max_connections: 200
        wal_keep_size: 256MB
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:$((BASE + n))
  connect_address: 127.0.0.1:$((BASE + n))
  data_dir: $HA_DIR/pg$n/data
  bin_dir: $PG_BIN
  pgpass: $HA_DIR/pg$n/pgpass
  authentication:
    superuser:
      username: postgres
      password: $PASSWORD
    replication:
      username: replicator
      password: $PASSWORD
    rewind:
      username: postgres
      password: $PASSWORD
  parameters:
    unix_socket_directories: $HA_DIR/pg$n
EOF
  mkdir -p "$HA_DIR/pg$n"
}

write_haproxy_config() {
  cat >"$HA_DIR/haproxy.cfg" <<EOF
global
    maxconn 1000
    # Asked by settled() below: HAProxy counts every server UP until its checks fail.
    stats socket $HA_DIR/haproxy.sock mode 600 level operator

defaults
    mode tcp
    timeout connect 2s
    timeout client 30m
    timeout server 30m
    timeout check 1s

# Writes go to the one member whose Patroni answers 200 on /primary. Sessions to a member that
# stops being primary are cut at once, so clients reconnect to the new one.
listen primary
    bind 127.0.0.1:$BASE
    option httpchk OPTIONS /primary
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions
EOF
  for n in $MEMBERS; do
    echo "    server pg$n 127.0.0.1:$((BASE + n)) maxconn 300 check port $((REST_BASE + n))" >>"$HA_DIR/haproxy.cfg"
  done
}

wait_for() { # seconds, description, command...
  local limit=$1 what=$2
  shift 2
  for _ in $(seq 1 $((limit * 4))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  log "timed out after ${limit}s waiting for $what"
  return 1
}

leader() {
  curl -sf "http://127.0.0.1:$((REST_BASE + 1))/cluster" \
    | python3 -c 'import json,sys; print(next(m["name"] for m in json.load(sys.stdin)["members"] if m["role"] == "leader"))'
}

no_sync_standby() {
  curl -sf "http://127.0.0.1:$((REST_BASE + 1))/cluster" \
    | python3 -c 'import json,sys; sys.exit(any(m["role"] == "sync_standby" for m in json.load(sys.stdin)["members"]))'
}

sync_standby() {
  curl -sf "http://127.0.0.1:$((REST_BASE + 1))/cluster" \
    | python3 -c 'import json,sys; print(next(m["name"] for m in json.load(sys.stdin)["members"] if m["role"] == "sync_standby"))'
}

all_streaming() {
  curl -sf "http://127.0.0.1:$((REST_BASE + 1))/cluster" | python3 -c '
import json, sys
ms = json.load(sys.stdin)["members"]
ok = len(ms) == 3 and sum(m["role"] == "leader" for m in ms) == 1 \
     and any(m["role"] == "sync_standby" for m in ms) \
     and all(m["role"] == "leader" or m.get("state") in ("streaming", "running") for m in ms)
sys.exit(0 if ok else 1)'
}

# HAProxy starts with every server UP and marks one DOWN only after \`fall\` failed checks: until
# then a new connection may reach a standby. Settled means only the leader is UP.
settled() {
  local up
  up=$(python3 - "$HA_DIR/haproxy.sock" <<'PY'
import csv, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while chunk := s.recv(65536):
    data += chunk
rows = csv.DictReader(data.decode().lstrip("# ").splitlines())
print(" ".join(r["svname"] for r in rows
               if r["pxname"] == "primary" and r["svname"] not in ("FRONTEND", "BACKEND")
               and r["status"].startswith("UP")))
PY
  ) || return 1
  [ "$up" = "$(leader)" ]
}

writable() {
  PGPASSWORD=$PASSWORD "$PG_BIN/psql" -h 127.0.0.1 -p "$BASE" -U postgres -d postgres -Atqc \
    "SELECT NOT pg_is_in_recovery()" 2>/dev/null | grep -qx t
}

start() {
  if [ -e "$HA_DIR/etcd.pid" ]; then
    log "already started in $HA_DIR (stop it first)"
    exit 1
  fi
  mkdir -p "$HA_DIR"
  chmod 0755 "$HA_DIR"
  etcd --name ha1 --data-dir "$HA_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "ha1=http://127.0.0.1:$((ETCD_PORT + 1))" \
    --heartbeat-interval 100 --election-timeout 1000 \
    --log-level warn </dev/null >"$HA_DIR/etcd.log" 2>&1 &
  echo $! >"$HA_DIR/etcd.pid"
  wait_for 20 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"

  for n in $MEMBERS; do write_member_config "$n"; done
  chown -R postgres:postgres "$HA_DIR"
  for n in $MEMBERS; do
    # The pid file names Patroni itself, not runuser; nothing keeps the caller's output open.
    as_postgres sh -c "cd '$HA_DIR' && echo \$\$ >'$HA_DIR/pg$n.pid' && exec patroni '$HA_DIR/pg$n.yml'" \
      </dev/null >"$HA_DIR/pg$n/patroni.out" 2>&1 &
    # The first member bootstraps; the others copy it once it leads.
    if [ "$n" = 1 ]; then wait_for 60 "a leader" leader; fi
  done
  wait_for 90 "three members streaming with a synchronous standby" all_streaming

  write_haproxy_config
  # Nothing started here keeps the caller's stdout or stderr open.
  haproxy -f "$HA_DIR/haproxy.cfg" -D -p "$HA_DIR/haproxy.pid" </dev/null >"$HA_DIR/haproxy.log" 2>&1
  wait_for 20 "HAProxy to route to the leader alone" settled
  wait_for 20 "HAProxy to reach the primary" writable
  log "leader $(leader), synchronous standby $(sync_standby); writes on 127.0.0.1:$BASE"
}

kill_pidfile() {
  local file=$1
  [ -s "$file" ] || return 0
  local pid
  pid=$(cat "$file")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$file"
}

stop() {
  [ -d "$HA_DIR" ] || return 0
  kill_pidfile "$HA_DIR/haproxy.pid"
  for n in $MEMBERS; do kill_pidfile "$HA_DIR/pg$n.pid" & done
  wait
  # A postmaster that outlived its Patroni (it was killed with -9) is stopped here.
  for n in $MEMBERS; do
    if [ -s "$HA_DIR/pg$n/data/postmaster.pid" ]; then
      kill -9 "$(head -n1 "$HA_DIR/pg$n/data/postmaster.pid")" 2>/dev/null || true
    fi
  done
  kill_pidfile "$HA_DIR/etcd.pid"
  if [ -n "${HA_SAVE_LOGS:-}" ]; then # keep what explains a failed run
    mkdir -p "$HA_SAVE_LOGS"
    for n in $MEMBERS; do
      cat "$HA_DIR/pg$n"/patroni.log* "$HA_DIR/pg$n/patroni.out" >"$HA_SAVE_LOGS/pg$n.log" 2>/dev/null || true
    done
  fi
  rm -rf "$HA_DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) ctl list ;;
  leader) leader ;;
  url) echo "postgres://postgres:$PASSWORD@127.0.0.1:$BASE/postgres" ;;
  switchover)
    from=$(leader)
    to=$(sync_standby)
    ctl switchover "$SCOPE" --leader "$from" --candidate "$to" --force >&2
    log "switchover $from -> $to requested"
    ;;
  sync)
    case "${2:-}" in
      on) ctl edit-config "$SCOPE" -s synchronous_mode=true --force >/dev/null
          wait_for 60 "a synchronous standby" all_streaming ;;
      off) ctl edit-config "$SCOPE" -s synchronous_mode=false --force >/dev/null
           wait_for 60 "no synchronous standby" no_sync_standby ;;
      *) echo "sync on|off" >&2; exit 2 ;;
    esac
    log "synchronous_mode $2"
    ;;
  bench)
    # The database's own cost of synchronous replication, without the service's in front of it.
    export PGPASSWORD=$PASSWORD
    "$PG_BIN/psql" -h 127.0.0.1 -p "$BASE" -U postgres -d postgres -qc \
      "CREATE TABLE IF NOT EXISTS bench (id bigserial PRIMARY KEY, v text)" >&2
    echo "INSERT INTO bench (v) VALUES ('x');" >"$HA_DIR/bench.sql"
    "$PG_BIN/pgbench" -h 127.0.0.1 -p "$BASE" -U postgres -n -f "$HA_DIR/bench.sql" \
      -c 16 -j 2 -T 3 postgres 2>/dev/null | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
    ;;
  kill-leader)
    from=$(leader)
    pid=$(head -n1 "$HA_DIR/$from/data/postmaster.pid")
    kill -9 "$pid"
    log "killed the postmaster of $from (pid $pid)"
    ;;
  *)
    sed -n '2,20p' "$0" >&2
    exit 2
    ;;
esac
