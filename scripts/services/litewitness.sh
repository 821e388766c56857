#!/usr/bin/env bash
# litewitness (filippo.io/torchwood): an independent C2SP tlog-witness, for the witness tests.
#
#   scripts/services/litewitness.sh install                 build litewitness and witnessctl (once; cached)
#   scripts/services/litewitness.sh start                   a new witness key, an ssh-agent holding it, the witness
#   scripts/services/litewitness.sh add-log <origin> <key>  make the witness know a log (witnessctl add-log, add-key)
#   scripts/services/litewitness.sh vkey                    print the witness's verifier key (name+id+key)
#   scripts/services/litewitness.sh url                     print the witness's URL
#   scripts/services/litewitness.sh stop                    stop the witness and its ssh-agent
#
# Both binaries are built from the Go module proxy into $AFTERSMTP_TOOLS_DIR (default
# /var/tmp/aftersmtp-tools). litewitness signs with a key held by an ssh-agent: start runs a
# dedicated agent with a fresh Ed25519 key in the state directory. The witness listens on
# 127.0.0.1 on a port picked on first start (AFTERSMTP_LITEWITNESS_PORT chooses one).
set -euo pipefail

TORCHWOOD_VERSION=v0.6.1
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${AFTERSMTP_SERVICES_DIR:-$ROOT/.tmp/services}/litewitness"
# shellcheck source=scripts/services/lib.sh
source "$(dirname "$0")/lib.sh"
TOOLS="${AFTERSMTP_TOOLS_DIR:-/var/tmp/aftersmtp-tools}/litewitness-$TORCHWOOD_VERSION"
NAME="${AFTERSMTP_LITEWITNESS_NAME:-witness.test/litewitness}"

install() {
  if [ -x "$TOOLS/litewitness" ] && [ -x "$TOOLS/witnessctl" ]; then
    return 0
  fi
  command -v go >/dev/null || { echo "litewitness.sh: go is required" >&2; exit 1; }
  echo "litewitness.sh: building litewitness and witnessctl $TORCHWOOD_VERSION" >&2
  mkdir -p "$TOOLS"
  GOBIN="$TOOLS" GOFLAGS=-buildvcs=false go install \
    "filippo.io/torchwood/cmd/litewitness@$TORCHWOOD_VERSION" \
    "filippo.io/torchwood/cmd/witnessctl@$TORCHWOOD_VERSION"
}

port() {
  service_port "${AFTERSMTP_LITEWITNESS_PORT:-}"
}

start() {
  install
  if service_running; then
    echo "litewitness.sh: already running (pid $(cat "$STATE/pid"))" >&2
    return 0
  fi
  local p fp
  p="$(port)"
  mkdir -p "$STATE"
  if [ ! -f "$STATE/witness.key" ]; then
    ssh-keygen -q -t ed25519 -N '' -C litewitness -f "$STATE/witness.key"
  fi
  rm -f "$STATE/agent.sock"
  ssh-agent -a "$STATE/agent.sock" -s >"$STATE/agent.env"
  # shellcheck disable=SC1091
  SSH_AGENT_PID="$(sed -n 's/^SSH_AGENT_PID=\([0-9]*\);.*/\1/p' "$STATE/agent.env")"
  echo "$SSH_AGENT_PID" >"$STATE/agent.pid"
  SSH_AUTH_SOCK="$STATE/agent.sock" ssh-add -q "$STATE/witness.key"
  fp="$(ssh-keygen -l -E sha256 -f "$STATE/witness.key.pub" | cut -d' ' -f2)"
  : >"$STATE/witness.log"
  nohup "$TOOLS/litewitness" -name "$NAME" -db "$STATE/witness.db" -ssh-agent "$STATE/agent.sock" \
    -key "$fp" -listen "127.0.0.1:$p" >>"$STATE/witness.log" 2>&1 &
  echo $! >"$STATE/pid"
  service_wait litewitness.sh ready 50 "http://127.0.0.1:$p" "$STATE/witness.log"
}

add_log() {
  "$TOOLS/witnessctl" add-log -db "$STATE/witness.db" -origin "$1"
  "$TOOLS/witnessctl" add-key -db "$STATE/witness.db" -origin "$1" -key "$2"
}

# The witness is ready once it listens; its verifier key is in its log.
ready() {
  grep -q 'msg=listening' "$STATE/witness.log" || return 1
  sed -n 's/.*msg="verifier key" vkey=\([^ ]*\).*/\1/p' "$STATE/witness.log" | head -n 1 >"$STATE/vkey"
}

stop() {
  service_stop pid
  service_stop agent.pid
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  add-log) add_log "${2:?origin}" "${3:?verifier key}" ;;
  vkey) cat "$STATE/vkey" ;;
  url) echo "http://127.0.0.1:$(port)" ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|add-log <origin> <key>|vkey|url|stop" >&2; exit 2 ;;
esac
