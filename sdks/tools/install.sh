#!/usr/bin/env bash
# Installs everything the SDKs need to be generated, built and tested, from the package
# registries only (npm, PyPI, the Go module proxy, Maven Central), at pinned versions:
#
#   sdks/typescript/node_modules   buf, protoc-gen-es, TypeScript, Connect-ES   (package-lock.json)
#   sdks/.tools/venv               grpcio-tools (its protoc), grpcio, pytest…    (tools/requirements.txt)
#   sdks/.tools/bin                protoc-gen-go, protoc-gen-go-grpc, grpcurl,   (tools/go.mod `tool`s)
#                                  grpc-health-probe
#                                  protoc, protoc-gen-grpc-java                  (Maven Central, below)
#   Go module cache / ~/.m2        the Go and Java SDKs' dependencies           (go.sum, pom.xml)
#
# Idempotent: each part is skipped when the stamp of its pinned inputs is unchanged.
# Usage: sdks/tools/install.sh   (from anywhere; run as any user that may write sdks/)
set -euo pipefail

PROTOC_VERSION=4.36.2          # com.google.protobuf:protoc — the Java generator (gencode 4.36.2)
GRPC_JAVA_VERSION=1.83.1       # io.grpc:protoc-gen-grpc-java — keep equal to grpc.version in java/pom.xml
MAVEN_DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1

SDKS=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS=$SDKS/.tools
mkdir -p "$TOOLS/bin"

say() { printf '  install: %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || { echo "install: '$1' is required but not on PATH" >&2; exit 1; }; }
for cmd in node npm go python3 java mvn git; do need "$cmd"; done
# Maven 3.8 prints stray colour resets even with -q -B; strip them (pipefail keeps mvn's status).
mvnq() { mvn -q -B -Dstyle.color=never "$@" 2>&1 | sed 's/\x1b\[[0-9;]*m//g'; }

# stamp NAME FILE... : succeeds (and records nothing) when NAME's inputs are unchanged.
stamp_ok() {
  local name=$1; shift
  local sum; sum=$(cat "$@" | sha256sum | cut -d' ' -f1)
  [[ -f "$TOOLS/$name.stamp" && "$(cat "$TOOLS/$name.stamp")" == "$sum" ]]
}
stamp_write() {
  local name=$1; shift
  cat "$@" | sha256sum | cut -d' ' -f1 > "$TOOLS/$name.stamp"
}

# --- npm: buf, protoc-gen-es and the TypeScript SDK's dependencies -----------------------------
if stamp_ok npm "$SDKS/typescript/package-lock.json" && [[ -x "$SDKS/typescript/node_modules/.bin/buf" ]]; then
  say "npm packages up to date"
else
  say "npm ci (sdks/typescript)"
  (cd "$SDKS/typescript" && npm ci --no-audit --no-fund --loglevel=error --ignore-scripts)
  stamp_write npm "$SDKS/typescript/package-lock.json"
fi

# --- Python: grpcio-tools (generator) and the Python SDK's runtime and test dependencies --------
if [[ ! -x "$TOOLS/venv/bin/python" ]]; then
  say "python3 -m venv sdks/.tools/venv"
  python3 -m venv "$TOOLS/venv"
fi
if stamp_ok pip "$SDKS/tools/requirements.txt"; then
  say "Python packages up to date"
else
  say "pip install -r sdks/tools/requirements.txt"
  "$TOOLS/venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$SDKS/tools/requirements.txt"
  stamp_write pip "$SDKS/tools/requirements.txt"
fi

# --- Go: protoc plugins and probes, pinned by the `tool` directives of sdks/tools/go.mod --------
if stamp_ok go-tools "$SDKS/tools/go.mod" "$SDKS/tools/go.sum" && [[ -x "$TOOLS/bin/grpcurl" ]]; then
  say "Go tools up to date"
else
  say "go install tool (protoc-gen-go, protoc-gen-go-grpc, grpcurl, grpc-health-probe)"
  (cd "$SDKS/tools" && GOBIN="$TOOLS/bin" GOFLAGS=-mod=mod go install tool)
  stamp_write go-tools "$SDKS/tools/go.mod" "$SDKS/tools/go.sum"
fi
say "go mod download (sdks/go)"
(cd "$SDKS/go" && go mod download)

# --- Maven Central: protoc (Java generator) and protoc-gen-grpc-java ----------------------------
case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) classifier=linux-x86_64 ;;
  Linux-aarch64 | Linux-arm64) classifier=linux-aarch_64 ;;
  Darwin-x86_64) classifier=osx-x86_64 ;;
  Darwin-arm64) classifier=osx-aarch_64 ;;
  *) echo "install: no protoc build for $(uname -s)-$(uname -m)" >&2; exit 1 ;;
esac
fetch_exe() { # GROUP ARTIFACT VERSION LINK-NAME
  local file="$2-$3-$classifier.exe"
  if [[ ! -x "$TOOLS/bin/$file" ]]; then
    say "Maven Central: $1:$2:$3:exe:$classifier"
    mvnq "$MAVEN_DEPENDENCY_PLUGIN:copy" -Dartifact="$1:$2:$3:exe:$classifier" \
      -DoutputDirectory="$TOOLS/bin" -Dmdep.overWriteReleases=true
    chmod +x "$TOOLS/bin/$file"
  fi
  ln -sfn "$file" "$TOOLS/bin/$4"
}
fetch_exe com.google.protobuf protoc "$PROTOC_VERSION" protoc
fetch_exe io.grpc protoc-gen-grpc-java "$GRPC_JAVA_VERSION" protoc-gen-grpc-java

# --- Maven: the Java SDK's dependencies and build plugins ---------------------------------------
if stamp_ok mvn "$SDKS/java/pom.xml" && [[ -d "$SDKS/java/target/classes" && -s "$TOOLS/java-classpath.txt" ]]; then
  say "Maven dependencies up to date"
else
  say "mvn -q -B test-compile (sdks/java: resolves dependencies and plugins)"
  (cd "$SDKS/java" && mvnq -DskipTests test-compile \
    && mvnq "$MAVEN_DEPENDENCY_PLUGIN:build-classpath" -Dmdep.includeScope=runtime \
      -Dmdep.outputFile="$TOOLS/java-classpath.txt")
  stamp_write mvn "$SDKS/java/pom.xml"
fi

# --- The Python SDK itself, installed (not editable) into the venv, as a user would -------------
say "pip install sdks/python"
"$TOOLS/venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-build-isolation \
  --force-reinstall --no-deps "$SDKS/python"
"$TOOLS/venv/bin/python" -m pip check --disable-pip-version-check >/dev/null
