#!/usr/bin/env bash
# CI step: the service rides through a PostgreSQL switchover and failover (Patroni, etcd, HAProxy).
# Installs what it needs from Debian's packages (as root), keeps the packages' own services from
# running, then runs the failover test three times, each on a fresh cluster, and prints the figures.
# The throughput rounds (synchronous replication on and off, about 40 s) run in the first run only:
# the three runs are there for the failover, which can go wrong one time in several.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never RUST_BACKTRACE=0

missing=()
command -v patroni >/dev/null || missing+=(patroni)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v haproxy >/dev/null || missing+=(haproxy)
command -v curl >/dev/null || missing+=(curl)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  # The test starts its own etcd and HAProxy on loopback: the packages' services must not run.
  own_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
    own_policy=1
  fi
  apt-get update -qq
  for attempt in $(seq 1 30); do # another apt may hold the dpkg lock
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" && break
    [ "$attempt" = 30 ] && exit 1
    sleep 10
  done
  [ -n "$own_policy" ] && rm -f /usr/sbin/policy-rc.d
fi
for service in etcd patroni haproxy; do
  if [ -d /run/systemd/system ]; then
    systemctl disable --now "$service" >/dev/null 2>&1 || true
  elif [ -x "/etc/init.d/$service" ]; then
    "/etc/init.d/$service" stop >/dev/null 2>&1 || true
  fi
done

cargo test --test ha --no-run
export PARTICIPANTS_TEST_HA=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
figures=$work/figures
for run in 1 2 3; do
  echo "--- failover run $run"
  log=$work/run$run.log
  rounds=1
  [ "$run" = 1 ] || rounds=0
  if ! HA_SAVE_LOGS=$work/patroni$run PARTICIPANTS_TEST_HA_FIGURES=$rounds cargo test --test ha -- --ignored --exact \
    writes_survive_a_patroni_switchover_and_failover --nocapture >"$log" 2>&1; then
    cat "$log"
    echo "--- Patroni's decisions in run $run"
    for f in "$work/patroni$run"/*.log; do
      grep -HE "WARNING|ERROR|crash|[Ff]ail|promot|lag|timeline|demot|Lock owner" "$f" \
        | grep -v "no action" | tail -n 60 || true
    done
    exit 1
  fi
  grep "HA figures" "$log" | sed "s/^/run $run: /" | tee -a "$figures"
done
echo "--- failover figures, three runs"
cat "$figures"
