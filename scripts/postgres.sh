#!/usr/bin/env bash
# Installs PostgreSQL from Debian's packages if needed, starts a cluster on 127.0.0.1:5432 with
# pg_ctlcluster, and sets the postgres user's password to "postgres" for the tests.
# Prints the admin URL the tests use.
set -euo pipefail

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  echo "installing postgresql" >&2
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
if ! pg_lsclusters -h | awk '{print $1" "$2}' | grep -qx "$version main"; then
  pg_createcluster "$version" main >&2
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -q online; then
  pg_ctlcluster "$version" main start >&2
fi
for _ in $(seq 1 30); do
  pg_isready -q -h 127.0.0.1 -p 5432 && break
  sleep 1
done
pg_isready -h 127.0.0.1 -p 5432 >&2
su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'postgres'\"" >&2
echo "postgres://postgres:postgres@127.0.0.1:5432/postgres"
