#!/usr/bin/env bash
# PostgreSQL for the server suite's postgres backend and the replica tests. Debian's package, its default cluster,
# and a role "liftoff" (password "liftoff", CREATEDB) so each test suite can create and drop its own databases.
# The tests read LIFTOFF_TEST_PG_URL, default postgres://liftoff:liftoff@127.0.0.1:5432/liftoff.
set -euo pipefail
if ! command -v pg_lsclusters >/dev/null 2>&1 || [ -z "$(pg_lsclusters -h 2>/dev/null)" ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
fi
read -r version cluster _ < <(pg_lsclusters -h | head -n1)
if ! pg_lsclusters -h | head -n1 | grep -q online; then
  pg_ctlcluster "$version" "$cluster" start
fi
psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -qAt -c \"$1\""; }
if [ "$(psql_admin "SELECT 1 FROM pg_roles WHERE rolname = 'liftoff'")" != "1" ]; then
  psql_admin "CREATE ROLE liftoff LOGIN CREATEDB PASSWORD 'liftoff'"
fi
if [ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = 'liftoff'")" != "1" ]; then
  psql_admin "CREATE DATABASE liftoff OWNER liftoff"
fi
echo "postgres: $version/$cluster on port $(pg_lsclusters -h | head -n1 | awk '{print $3}'), role and database liftoff"
