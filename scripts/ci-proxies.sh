#!/usr/bin/env bash
# CI: the service behind real L7 proxies (nginx and HAProxy, configs in deploy/proxies/).
# Installs nginx and HAProxy from Debian's packages (their packaged services are not used),
# PostgreSQL (scripts/postgres.sh) and a Python venv with grpcio for the load clients; then runs
#   1. tests/proxies.rs: every answer through each proxy equals the direct answer; a rolling
#      restart under load through each proxy (0 failed calls, each write once, drain times);
#      a joining replica gets its share of the calls;
#   2. the SDK conformance suite and the grpcurl / grpc-health-probe / buf curl probes through
#      each proxy (sdks/run-conformance.sh with CONFORMANCE_PROXY).
# Runs as root on a fresh Debian machine. Env: SKIP_CONFORMANCE=1 runs part 1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export DEBIAN_FRONTEND=noninteractive CARGO_TERM_COLOR=never

apt_install() { # another apt-get may hold the dpkg lock: retry
  for i in $(seq 1 20); do
    if apt-get install -y -qq --no-install-recommends "$@"; then return 0; fi
    echo "apt-get install $* failed (attempt $i); retrying" >&2
    apt-get update -qq || true
    sleep 15
  done
  return 1
}

PATH=$PATH:/usr/sbin
if ! command -v nginx >/dev/null || ! command -v haproxy >/dev/null; then
  apt-get update -qq || true
  apt_install nginx-light haproxy
fi
# The packaged instances (port 80, /etc configs) play no part: the tests start their own.
for svc in nginx haproxy; do
  if command -v systemctl >/dev/null && systemctl is-active --quiet "$svc" 2>/dev/null; then
    systemctl disable --now "$svc" || true
  elif [[ -f /run/$svc.pid ]] && kill -0 "$(cat "/run/$svc.pid")" 2>/dev/null; then
    service "$svc" stop || true
  fi
done
nginx -v
haproxy -v | sed -n 1p   # sed reads to the end: no SIGPIPE under pipefail

PARTICIPANTS_TEST_POSTGRES_URL=$(bash scripts/postgres.sh)
export PARTICIPANTS_TEST_POSTGRES_URL

# grpcio, protobuf and google.rpc (the generated code imports google.rpc.Status) at the versions
# the generated Python code was made for.
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=$TARGET/proxies-venv
if ! "$VENV/bin/python" -c 'import grpc, google.protobuf, google.rpc.status_pb2' 2>/dev/null; then
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV" || { apt_install python3-venv && python3 -m venv "$VENV"; }
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    $(grep -E '^(grpcio|protobuf|googleapis-common-protos)==' sdks/tools/requirements.txt)
fi
export PARTICIPANTS_TEST_PYTHON=$VENV/bin/python PARTICIPANTS_TEST_PROXIES=1

cargo build --bin participants
cargo test --test proxies -- --ignored --test-threads=1 --nocapture

if [[ -z "${SKIP_CONFORMANCE:-}" ]]; then
  for proxy in nginx haproxy; do
    echo "=== SDK conformance and probes through $proxy"
    CONFORMANCE_PROXY=$proxy sdks/run-conformance.sh "$TARGET/debug/participants"
  done
fi
