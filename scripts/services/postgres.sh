#!/usr/bin/env bash
# Debian's PostgreSQL 15 for the mailbox store's postgres backend: a private cluster of its own
# (initdb into .tmp/services/postgres/data, never the system's /var/lib/postgresql), listening on
# 127.0.0.1 only, on a free port picked on first start and kept in the state directory
# (AFTERSMTP_POSTGRES_PORT chooses one), with fsync and synchronous_commit on: a commit is durable
# when it returns.
#
#   scripts/services/postgres.sh install   apt-get install postgresql (once)
#   scripts/services/postgres.sh start     install, initdb on first use, start, wait until ready
#   scripts/services/postgres.sh stop      stop the cluster this script started
#   scripts/services/postgres.sh url       print the URL to put in AFTERSMTP_POSTGRES_URL
#
# initdb and postgres refuse to run as root; under root (CI on a fresh machine) both run as the
# `postgres` user that Debian's package creates, in a state directory that user owns. The
# `aftersmtp` database and role are created here (the role has CREATEDB: the contract tests create
# a database per test); `CREATE EXTENSION pgcrypto` is done by the
# store's own migration (src/store/postgres.ts), so the role owns the database it migrates.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${AFTERSMTP_SERVICES_DIR:-$ROOT/.tmp/services}/postgres"
# shellcheck source=scripts/services/lib.sh
source "$(dirname "$0")/lib.sh"
DB=aftersmtp
ROLE=aftersmtp
PASSWORD=aftersmtp-test # a local test cluster on loopback only; never a production secret

# The port: AFTERSMTP_POSTGRES_PORT, else the one picked (free, on 127.0.0.1) on first use and kept
# in the state directory so that `url` and later starts agree.
port() {
  service_port "${AFTERSMTP_POSTGRES_PORT:-}"
}

bindir() {
  if [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then
    echo /usr/lib/postgresql/15/bin
  else
    dirname "$(ls -d /usr/lib/postgresql/*/bin/pg_ctl | sort -V | tail -n 1)"
  fi
}

install() {
  if ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then return 0; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql
  # The package may start the system's own cluster; this project runs its own, so stop that one.
  (service postgresql stop || true) >/dev/null 2>&1
}

# Runs a command as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

ctl() {
  as_owner "$(bindir)/pg_ctl" -D "$STATE/data" "$@"
}

psql_admin() {
  as_owner "$(bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port)" -d postgres "$@"
}

start() {
  install
  mkdir -p "$STATE"
  if [ "$(id -u)" -eq 0 ]; then
    # The state directory must be the owner's; so must every parent be traversable by it.
    chown postgres: "$STATE"
    local d="$STATE"
    while [ "$d" != / ]; do
      d="$(dirname "$d")"
      runuser -u postgres -- test -x "$d" || chmod o+x "$d"
    done
  fi
  local PORT
  PORT="$(port)"
  if ctl status >/dev/null 2>&1; then
    echo "postgres.sh: already running on 127.0.0.1:$PORT" >&2
    return 0
  fi
  if [ ! -f "$STATE/data/PG_VERSION" ]; then
    as_owner "$(bindir)/initdb" -D "$STATE/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
      >"$STATE/initdb.log" 2>&1 || { cat "$STATE/initdb.log" >&2; exit 1; }
    cat >>"$STATE/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$STATE'
fsync = on
synchronous_commit = on
full_page_writes = on
max_connections = 200
log_min_messages = warning
CONF
    # Local socket: trust for the admin; TCP on loopback: passwords (scram) for everyone.
    cat >"$STATE/data/pg_hba.conf" <<HBA
local all postgres trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
HBA
  fi
  ctl -l "$STATE/server.log" -w -t 60 start >/dev/null || {
    echo "postgres.sh: the cluster did not start; its log:" >&2
    tail -n 30 "$STATE/server.log" >&2 || true
    exit 1
  }
  if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != 1 ]; then
    psql_admin -c "CREATE ROLE $ROLE LOGIN CREATEDB PASSWORD '$PASSWORD'"
  else
    psql_admin -c "ALTER ROLE $ROLE CREATEDB"
  fi
  if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != 1 ]; then
    psql_admin -c "CREATE DATABASE $DB OWNER $ROLE"
  fi
  # pgcrypto is a trusted extension (PostgreSQL 13+): the database owner may create it.
  echo "postgres.sh: ready on $(url)" >&2
}

stop() {
  if [ -f "$STATE/data/PG_VERSION" ]; then ctl -m fast stop >/dev/null 2>&1 || true; fi
}

url() {
  echo "postgres://$ROLE:$PASSWORD@127.0.0.1:$(port)/$DB"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 install|start|stop|url" >&2; exit 2 ;;
esac
