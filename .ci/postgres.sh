#!/usr/bin/env bash
# Start Debian's PostgreSQL on loopback and print the SQLAlchemy URL of a throwaway test database.
# The owners' tables are claimed to work on PostgreSQL (bpo_assistant/owners/db.py), so CI runs that test on a
# real server rather than skipping it.
set -euo pipefail
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
read -r version cluster port status _ < <(pg_lsclusters --no-header | head -1)
if [ "$status" != "online" ]; then
  pg_ctlcluster "$version" "$cluster" start >&2
fi
psql_su() { su postgres -c "psql -p $port -v ON_ERROR_STOP=1 -qAt $*"; }
psql_su "-c \"SELECT 1 FROM pg_roles WHERE rolname='bpo_ci'\"" | grep -q 1 ||
  psql_su "-c \"CREATE ROLE bpo_ci LOGIN PASSWORD 'bpo_ci'\"" >&2
psql_su "-c \"DROP DATABASE IF EXISTS bpo_ci_test\"" >&2
psql_su "-c \"CREATE DATABASE bpo_ci_test OWNER bpo_ci\"" >&2
echo "postgresql+psycopg://bpo_ci:bpo_ci@127.0.0.1:$port/bpo_ci_test"
