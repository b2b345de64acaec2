#!/usr/bin/env bash
# Runs the code examples of README.md and sdks/README.md as a reader would paste them: starts
# `participants serve --demo` on a free port, takes PARTICIPANTS_ADDR / PARTICIPANTS_TOKEN from the
# `export` lines the demo prints, then extracts every ```python, ```ts, ```go, ```java and ```rust
# block of the two files (and every ```sh block followed by `snippet-expect` lines) and runs each as a whole program in a fresh project that gets the SDK the
# way sdks/README.md says (the installed Python wheel, the `npm pack` tarball, a `replace`d Go
# module, the Java classes and their dependencies, a path dependency on the Rust crate).
#
# A block passes when it exits 0 and its output matches every expected pattern: by default the
# decoded validation error every example prints; an `<!-- snippet-expect: REGEX -->` line right
# after a block's closing fence replaces the default (one line per pattern).
#
# Usage: scripts/run-snippets.sh [SERVER_BINARY]     (default: target/debug/participants)
# Needs the SDK tools and the SDKs as sdks/run-conformance.sh leaves them (it installs the tools,
# the Python wheel, the TypeScript dist/ and the Java classes): run that driver first, as .ci/run
# does. Ends with `snippets: N passed, M failed`.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
SDKS=$ROOT/sdks
TOOLS=$SDKS/.tools
PY=$TOOLS/venv/bin/python
BIN=${1:-target/debug/participants}
[[ "$BIN" = /* ]] || BIN=$ROOT/$BIN
[[ -x "$BIN" ]] || { echo "run-snippets: server binary $BIN not found (cargo build --bin participants)" >&2; exit 2; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/participants-snippets.XXXXXX")
DEMO_PID=""
PASSED=0
FAILED=0
cleanup() {
  local rc=$?
  if [[ -n "$DEMO_PID" ]]; then kill -TERM "$DEMO_PID" 2>/dev/null || true; wait "$DEMO_PID" 2>/dev/null || true; fi
  if [[ $FAILED -eq 0 && $rc -eq 0 && -z "${KEEP_WORK:-}" ]]; then rm -rf "$WORK"; else echo "run-snippets: files kept in $WORK"; fi
  if [[ $rc -ne 0 && $FAILED -eq 0 ]]; then echo "snippets: $PASSED passed, 1 failed"; fi
}
trap cleanup EXIT
say() { printf '\n==> %s\n' "$*"; }

# --- 1. extract the blocks -----------------------------------------------------------------------
say "extract the examples of README.md and sdks/README.md"
python3 - "$WORK" README.md sdks/README.md <<'EOF'
import json, os, re, sys
work, files = sys.argv[1], sys.argv[2:]
langs = {"python": "python", "ts": "ts", "typescript": "ts", "go": "go", "java": "java", "rust": "rust",
         "sh": "sh"}
default = [r"(INVALID_ARGUMENT|InvalidArgument) (ERROR_REASON_)?INVALID_EMAIL_ADDRESS errorCode\.invalidEmailAddress",
           r"contact\.email_address (ERROR_REASON_)?INVALID_EMAIL_ADDRESS - \S"]
snippets = []
for path in files:
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^```(\w+)\s*$", lines[i])
        if not m:
            i += 1
            continue
        start, info = i + 1, m.group(1)
        i += 1
        while i < len(lines) and lines[i] != "```":
            i += 1
        body = "\n".join(lines[start:i]) + "\n"
        i += 1
        expects = []
        while i < len(lines) and (e := re.match(r"^<!-- snippet-expect: (.*) -->$", lines[i])):
            expects.append(e.group(1))
            i += 1
        # A shell block runs too when expectations follow it: those are the commands meant to be
        # pasted against the demo (others start servers or install things).
        if info not in langs or (info == "sh" and not expects):
            continue
        name = f"{os.path.basename(path).split('.')[0].lower()}-{start}-{langs[info]}"
        snippets.append({"name": f"{path}:{start} ({info})", "id": name, "lang": langs[info],
                         "expect": expects or default})
        os.makedirs(f"{work}/{name}")
        open(f"{work}/{name}/snippet", "w", encoding="utf-8").write(body)
json.dump(snippets, open(f"{work}/snippets.json", "w"), indent=1)
print("  " + ", ".join(s["name"] for s in snippets))
EOF

# --- 2. the demo, and the export lines it prints -------------------------------------------------
say "start $BIN serve --demo on a free port"
"$BIN" serve --demo --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 >"$WORK/demo.out" 2>"$WORK/demo.log" &
DEMO_PID=$!
for _ in $(seq 1 300); do
  grep -q '^export PARTICIPANTS_TOKEN=' "$WORK/demo.out" 2>/dev/null && break
  kill -0 "$DEMO_PID" 2>/dev/null || { cat "$WORK/demo.log" >&2; echo "run-snippets: the demo exited" >&2; exit 1; }
  sleep 0.1
done
addr=$(sed -n 's/^export PARTICIPANTS_ADDR=//p' "$WORK/demo.out")
token=$(sed -n 's/^export PARTICIPANTS_TOKEN=//p' "$WORK/demo.out")
http=$(sed -n 's/^export PARTICIPANTS_HTTP=//p' "$WORK/demo.out")
[[ -n "$addr" && -n "$token" && -n "$http" ]] || { echo "run-snippets: the demo printed no export lines" >&2; exit 1; }
export PARTICIPANTS_ADDR=$addr PARTICIPANTS_TOKEN=$token PARTICIPANTS_HTTP=$http
echo "  PARTICIPANTS_ADDR=$addr (and the token of crc.ohio)"

# --- 2b. the README's one command to run the service, as pasted --------------------------------
# The line of the first ```sh block under "## Run it", run as it is; only the ports move to free
# ones, through the PARTICIPANTS_* variables that stand for the flags. It passes once it prints
# the demo's export lines. (It runs the release profile, as the load generator's block does: built
# here unless `.ci/run`'s background job built it already.)
run_it=$(python3 -c '
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"^## Run it\n.*?^```sh\n(.*?)^```", text, re.S | re.M)
print(m.group(1).strip() if m else "")' README.md)
[[ -n "$run_it" && "$run_it" != *$'\n'* ]] || { echo "run-snippets: no one-line command under '## Run it' in README.md" >&2; exit 1; }
say "the README's command to run the service, as pasted: $run_it"
PARTICIPANTS_LISTEN=127.0.0.1:0 PARTICIPANTS_HTTP_LISTEN=127.0.0.1:0 PARTICIPANTS_ADMIN_LISTEN=127.0.0.1:0 \
  setsid bash -c "$run_it" >"$WORK/run-it.out" 2>"$WORK/run-it.log" &
run_it_pid=$!
started=0
for _ in $(seq 1 3000); do
  if grep -q '^export PARTICIPANTS_TOKEN=' "$WORK/run-it.out" 2>/dev/null; then started=1; break; fi
  kill -0 "$run_it_pid" 2>/dev/null || break
  sleep 0.2
done
kill -TERM -- "-$run_it_pid" 2>/dev/null || true
wait "$run_it_pid" 2>/dev/null || true
if [[ $started -eq 1 ]]; then
  PASSED=$((PASSED + 1)); echo "  ok   README.md: $run_it"
else
  FAILED=$((FAILED + 1)); echo "  FAIL README.md: $run_it did not start the demo:"; tail -n 20 "$WORK/run-it.log" | sed 's/^/    | /'
fi

# --- 3. one runner per language: prepare (once) and run (per block) ------------------------------
prepared=" "
prepare() { # LANG: what every block of the language needs, once
  [[ "$prepared" == *" $1 "* ]] && return 0
  case "$1" in
    python) [[ -x "$PY" ]] && "$PY" -c 'import openclinica_participants' ;;
    ts) # The SDK as a user gets it: `npm pack`, then installed from the tarball into a fresh project.
      (cd "$SDKS/typescript" && npm pack --silent --pack-destination "$WORK" >"$WORK/npm-pack.out") &&
      mkdir -p "$WORK/ts-project" && (cd "$WORK/ts-project" &&
        printf '{ "name": "snippet", "private": true, "type": "module" }\n' >package.json &&
        npm install --no-audit --no-fund --loglevel=error "$WORK/$(tail -n 1 "$WORK/npm-pack.out")" >/dev/null) ;;
    go) true ;;
    java) [[ -d "$SDKS/java/target/classes" && -s "$TOOLS/java-classpath.txt" ]] ||
      (cd "$SDKS/java" && mvn -q -B -Dstyle.color=never -DskipTests compile) ;;
    rust | sh) true ;;
  esac || return 1
  prepared+="$1 "
}

run_block() { # LANG DIR: runs $DIR/snippet; its output goes to stdout
  local dir=$2
  case "$1" in
    sh) (cd "$ROOT" && bash -euo pipefail "$dir/snippet") ;;
    python) "$PY" "$dir/snippet" ;;
    ts) cp "$dir/snippet" "$WORK/ts-project/$(basename "$dir").ts" &&
      (cd "$WORK/ts-project" && "$SDKS/typescript/node_modules/.bin/tsc" --strict --target es2022 \
        --module nodenext --moduleResolution nodenext --skipLibCheck --types node \
        --typeRoots "$SDKS/typescript/node_modules/@types" --outDir out "$(basename "$dir").ts" &&
        node "out/$(basename "$dir").js") ;;
    go) mkdir -p "$dir/go" && cp "$dir/snippet" "$dir/go/main.go" &&
      (cd "$dir/go" && [[ -z "$(gofmt -l main.go)" ]] || { echo "not gofmt-formatted:"; gofmt -d main.go; exit 1; }) &&
      (cd "$dir/go" && go mod init example.com/snippet >/dev/null 2>&1 &&
        go mod edit -replace "github.com/openclinica/participants/sdks/go=$SDKS/go" &&
        GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 && go run .) ;;
    java) mkdir -p "$dir/java" && cp "$dir/snippet" "$dir/java/Example.java" &&
      java -cp "$SDKS/java/target/classes:$(cat "$TOOLS/java-classpath.txt")" "$dir/java/Example.java" ;;
    rust) # A crate of its own with a path dependency on the SDK, built into the shared target folder.
      mkdir -p "$dir/rust/src" && cp "$dir/snippet" "$dir/rust/src/main.rs" && cp "$ROOT/Cargo.lock" "$dir/rust/" &&
      cat >"$dir/rust/Cargo.toml" <<EOF2 &&
[package]
name = "snippet"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
participants-client = { path = "$SDKS/rust" }
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }

[workspace]
EOF2
      CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target} cargo run -q --manifest-path "$dir/rust/Cargo.toml" ;;
  esac
}

# --- 4. run every block --------------------------------------------------------------------------
say "run the examples"
count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$WORK/snippets.json")
for n in $(seq 0 $((count - 1))); do
  IFS=$'\t' read -r name id lang < <(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))[int(sys.argv[2])]; print(s["name"], s["id"], s["lang"], sep="\t")' "$WORK/snippets.json" "$n")
  dir=$WORK/$id
  ok=1
  if ! prepare "$lang" >"$dir/prepare.log" 2>&1; then
    ok=0; echo "  FAIL $name: could not prepare $lang:"; sed 's/^/    | /' "$dir/prepare.log"
  elif ! run_block "$lang" "$dir" >"$dir/out" 2>&1; then
    ok=0; echo "  FAIL $name: exited non-zero:"; sed 's/^/    | /' "$dir/out"
  else
    while IFS= read -r pattern; do
      if ! grep -Eq -- "$pattern" "$dir/out"; then
        ok=0; echo "  FAIL $name: /$pattern/ not in its output:"; sed 's/^/    | /' "$dir/out"
      fi
    done < <(python3 -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))[int(sys.argv[2])]["expect"]))' "$WORK/snippets.json" "$n")
  fi
  if [[ $ok -eq 1 ]]; then
    PASSED=$((PASSED + 1)); echo "  ok   $name: $(head -n 1 "$dir/out")"
  else
    FAILED=$((FAILED + 1))
  fi
done
echo "snippets: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 && $PASSED -gt 0 ]]
