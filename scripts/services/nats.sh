#!/usr/bin/env bash
# A NATS server with JetStream for the queue's nats backend, on 127.0.0.1 only.
#
#   scripts/services/nats.sh install   build nats-server from the Go module proxy (once; cached)
#   scripts/services/nats.sh start     install, start it with file storage under .tmp/, wait until ready
#   scripts/services/nats.sh stop      stop the server this script started
#   scripts/services/nats.sh url       print the URL to put in AFTERSMTP_NATS_URL
#   scripts/services/nats.sh bin       print the path of the binary `install` builds (test/helpers/
#                                      nats-cluster.ts starts a 3-server cluster with it)
#
# Debian's nats-server (2.9.10) has no `sync_interval`, so JetStream there fsyncs lazily and can
# lose acknowledged writes; this script builds a current server whose config says
# `sync_interval: always` (every write synced before it is acknowledged). The binary is cached in
# $AFTERSMTP_TOOLS_DIR (default /var/tmp/aftersmtp-tools) so later runs skip the build.
set -euo pipefail

NATS_VERSION=v2.15.2
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${AFTERSMTP_SERVICES_DIR:-$ROOT/.tmp/services}/nats"
# shellcheck source=scripts/services/lib.sh
source "$(dirname "$0")/lib.sh"
TOOLS="${AFTERSMTP_TOOLS_DIR:-/var/tmp/aftersmtp-tools}"
BIN="$TOOLS/nats-server-$NATS_VERSION/nats-server"
PORT="${AFTERSMTP_NATS_PORT:-4222}"

install() {
  if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "${NATS_VERSION#v}"; then
    return 0
  fi
  command -v go >/dev/null || { echo "nats.sh: go is required to build nats-server" >&2; exit 1; }
  echo "nats.sh: building nats-server $NATS_VERSION (a few minutes on 2 cores)" >&2
  mkdir -p "$(dirname "$BIN")"
  GOBIN="$(dirname "$BIN")" GOFLAGS=-buildvcs=false go install "github.com/nats-io/nats-server/v2@$NATS_VERSION"
}

ready() {
  # The server greets every client with an INFO line that says whether JetStream is on.
  local line
  { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null || return 1
  read -r -t 2 line <&3 || true
  exec 3<&- 3>&-
  [[ "$line" == INFO* && "$line" == *'"jetstream":true'* ]]
}

start() {
  install
  if service_running; then
    echo "nats.sh: already running (pid $(cat "$STATE/pid"))" >&2
    return 0
  fi
  mkdir -p "$STATE/data"
  cat >"$STATE/nats.conf" <<CONF
listen: 127.0.0.1:$PORT
jetstream {
  store_dir: "$STATE/data"
  sync_interval: always
}
CONF
  nohup "$BIN" -c "$STATE/nats.conf" >>"$STATE/nats.log" 2>&1 &
  echo $! >"$STATE/pid"
  service_wait nats.sh ready 100 "nats://127.0.0.1:$PORT" "$STATE/nats.log"
}

stop() {
  service_stop
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  url) echo "nats://127.0.0.1:$PORT" ;;
  bin) echo "$BIN" ;;
  *) echo "usage: $0 install|start|stop|url|bin" >&2; exit 2 ;;
esac
