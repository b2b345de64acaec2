#!/usr/bin/env bash
# nginx and HAProxy on loopback, each in front of the same two `participants serve` replicas
# (h2c upstreams, kept-alive connections), with the configs of deploy/proxies/.
#
# Usage: scripts/proxies.sh start DIR           replicas a and b (one after the other: the first
#                                              migrates the database), then nginx and HAProxy
#        scripts/proxies.sh replica DIR a|b     start one replica (again); waits until it listens
#        scripts/proxies.sh proxies DIR         start nginx and HAProxy only
#        scripts/proxies.sh stop-replica DIR a|b  SIGTERM one replica; prints its drain time
#        scripts/proxies.sh front DIR nginx|haproxy  start one proxy only, in front of whatever
#                                              listens on REPLICA_A_PORT and REPLICA_B_PORT (the
#                                              same port twice for a single server)
#        scripts/proxies.sh stop DIR            stop everything this script started in DIR
# Env:   PARTICIPANTS_BIN            server binary (default target/debug/participants)
#        PARTICIPANTS_DATABASE_URL   the database both replicas share (required: PostgreSQL, or
#                                    a SQLite file both processes can open)
#        PARTICIPANTS_*              everything else the replicas need (secret, data key, catalog)
#        NGINX_PORT HAPROXY_PORT REPLICA_A_PORT REPLICA_B_PORT   (50080 50081 50061 50062)
#        REPLICA_ARGS                extra `serve` arguments for both replicas
# DIR holds the logs, pid files, the rendered configs and ports.env.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${PARTICIPANTS_BIN:-$ROOT/target/debug/participants}
NGINX_PORT=${NGINX_PORT:-50080}
HAPROXY_PORT=${HAPROXY_PORT:-50081}
REPLICA_A_PORT=${REPLICA_A_PORT:-50061}
REPLICA_B_PORT=${REPLICA_B_PORT:-50062}

die() { echo "proxies.sh: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || die "usage: $0 start|replica|proxies|stop-replica|stop DIR [a|b]"
CMD=$1
DIR=$(mkdir -p "$2" && cd "$2" && pwd)

port_of() { case "$1" in a) echo "$REPLICA_A_PORT" ;; b) echo "$REPLICA_B_PORT" ;; *) die "replica is a or b, not $1" ;; esac; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# A process that has exited: gone, or a zombie nobody reaped (its parent, this script, is gone).
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

wait_listening() { # NAME PORT PID
  for _ in $(seq 1 300); do
    alive "$3" || { sed 's/^/    | /' "$DIR/$1.log" >&2; die "$1 exited during start-up"; }
    listening "$2" && return 0
    sleep 0.1
  done
  die "$1 not listening on 127.0.0.1:$2 after 30 s"
}

render() { # SOURCE DEST: the deploy config with the loopback addresses of this run
  sed -e "s/127\.0\.0\.1:50080/127.0.0.1:$NGINX_PORT/" -e "s/127\.0\.0\.1:50081/127.0.0.1:$HAPROXY_PORT/" \
    -e "s/127\.0\.0\.1:50061/127.0.0.1:$REPLICA_A_PORT/" -e "s/127\.0\.0\.1:50062/127.0.0.1:$REPLICA_B_PORT/" \
    "$1" >"$2"
}

start_replica() { # a|b
  local name=replica-$1 port
  port=$(port_of "$1")
  [[ -n "${PARTICIPANTS_DATABASE_URL:-}" ]] || die "PARTICIPANTS_DATABASE_URL must name the shared database"
  [[ -x "$BIN" ]] || die "server binary $BIN not found (cargo build --bin participants)"
  # Two replicas on one host: their REST and admin listeners take any free port.
  # shellcheck disable=SC2086 # REPLICA_ARGS is a list of arguments
  PARTICIPANTS_HTTP_LISTEN=${PARTICIPANTS_HTTP_LISTEN:-127.0.0.1:0} PARTICIPANTS_ADMIN_LISTEN=${PARTICIPANTS_ADMIN_LISTEN:-127.0.0.1:0} \
    "$BIN" serve --listen "127.0.0.1:$port" ${REPLICA_ARGS:-} >>"$DIR/$name.log" 2>&1 &
  echo $! >"$DIR/$name.pid"
  wait_listening "$name" "$port" "$!"
  echo "$name on 127.0.0.1:$port (pid $(cat "$DIR/$name.pid"))"
}

command -v nginx >/dev/null || PATH=$PATH:/usr/sbin

start_nginx() {
  mkdir -p "$DIR/nginx/tmp"
  render "$ROOT/deploy/proxies/nginx.conf" "$DIR/nginx/nginx.conf"
  nginx -p "$DIR/nginx" -c "$DIR/nginx/nginx.conf" -e "$DIR/nginx/error.log" -g 'daemon off;' >"$DIR/nginx.log" 2>&1 &
  echo $! >"$DIR/nginx.pid"
  wait_listening nginx "$NGINX_PORT" "$!"
}

start_haproxy() {
  mkdir -p "$DIR/haproxy"
  render "$ROOT/deploy/proxies/haproxy.cfg" "$DIR/haproxy/haproxy.cfg"
  cp "$ROOT/deploy/proxies/grpc-unavailable.http" "$DIR/haproxy/"
  (cd "$DIR/haproxy" && exec haproxy -db -f haproxy.cfg) >"$DIR/haproxy.log" 2>&1 &
  echo $! >"$DIR/haproxy.pid"
  wait_listening haproxy "$HAPROXY_PORT" "$!"
}

start_proxies() {
  start_nginx
  start_haproxy
  cat >"$DIR/ports.env" <<EOF
NGINX=127.0.0.1:$NGINX_PORT
HAPROXY=127.0.0.1:$HAPROXY_PORT
REPLICA_A=127.0.0.1:$REPLICA_A_PORT
REPLICA_B=127.0.0.1:$REPLICA_B_PORT
EOF
  echo "nginx on 127.0.0.1:$NGINX_PORT, HAProxy on 127.0.0.1:$HAPROXY_PORT"
}

stop_one() { # NAME: SIGTERM the pid in DIR/NAME.pid; waits up to 60 s; prints the time taken
  local file=$DIR/$1.pid pid t0
  [[ -f "$file" ]] || return 0
  pid=$(cat "$file")
  rm -f "$file"
  alive "$pid" || return 0
  t0=$(date +%s%N)
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 600); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    echo "$1 killed after 60 s"
  else
    echo "$1 stopped in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
  fi
}

case "$CMD" in
  start) start_replica a; start_replica b; start_proxies ;;
  replica) start_replica "${3:?replica a or b}" ;;
  proxies) start_proxies ;;
  front) case "${3:?nginx or haproxy}" in nginx) start_nginx ;; haproxy) start_haproxy ;; *) die "front: nginx or haproxy, not $3" ;; esac ;;
  stop-replica) port_of "${3:?replica a or b}" >/dev/null; stop_one "replica-$3" ;;
  stop) for p in nginx haproxy replica-a replica-b; do stop_one "$p"; done ;;
  *) die "unknown command $CMD" ;;
esac
