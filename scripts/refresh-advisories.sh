#!/usr/bin/env bash
# Rebuilds supply-chain/advisory-db/, the snapshot of the RustSec advisory database that CI
# checks Cargo.lock and fuzz/Cargo.lock against (CI reaches package registries only, and no
# registry serves the database). Run it where GitHub is reachable, or give it a checkout:
#   scripts/refresh-advisories.sh [PATH_TO_ADVISORY_DB_CHECKOUT_OR_BARE_REPO]
# Keeps every advisory of every crate named in either lock file (all versions: the tools decide
# which versions are affected), and records the source commit, its date, and the crate names
# the snapshot was cut for, so CI can name the crates added since.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/supply-chain/advisory-db"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

src=${1:-}
if [ -z "$src" ]; then
  git clone --quiet --depth 1 https://github.com/rustsec/advisory-db "$work/clone"
  src="$work/clone"
fi
# A bare repository (no work tree) or a checkout: read it through git either way.
if git -C "$src" rev-parse --is-bare-repository 2>/dev/null | grep -q true; then
  gitdir="$src"
else
  gitdir="$(git -C "$src" rev-parse --absolute-git-dir)"
fi
commit=$(git --git-dir="$gitdir" rev-parse HEAD)
date=$(git --git-dir="$gitdir" log -1 --format=%cI HEAD)

# The crate names of both lock files.
names="$work/names"
for lock in Cargo.lock fuzz/Cargo.lock; do
  sed -n 's/^name = "\(.*\)"$/\1/p' "$lock"
done | sort -u >"$names"

rm -rf "$out"
mkdir -p "$out/crates"
git --git-dir="$gitdir" archive HEAD crates LICENSE.txt | tar -x -C "$work" --one-top-level=db
cp "$work/db/LICENSE.txt" "$out/"
kept=0
while read -r name; do
  if [ -d "$work/db/crates/$name" ]; then
    cp -r "$work/db/crates/$name" "$out/crates/"
    kept=$((kept + 1))
  fi
done <"$names"
cp "$names" "$out/LOCKED-CRATES.txt"
cat >"$out/SNAPSHOT" <<INFO
source = "https://github.com/rustsec/advisory-db"
commit = "$commit"
date = "$date"
crates_in_lock_files = $(wc -l <"$names")
crates_with_advisories = $kept
advisories = $(find "$out/crates" -name 'RUSTSEC-*.md' | wc -l)
INFO
cat "$out/SNAPSHOT"
