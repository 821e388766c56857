#!/usr/bin/env bash
# Debian's RabbitMQ server for the queue's rabbitmq backend, on 127.0.0.1 only, as its own node
# with its data under .tmp/ (never the system's /var/lib/rabbitmq).
#
#   scripts/services/rabbitmq.sh install   apt-get install rabbitmq-server (once)
#   scripts/services/rabbitmq.sh start     install, start the node, wait until it has booted
#   scripts/services/rabbitmq.sh stop      stop the node this script started
#   scripts/services/rabbitmq.sh url       print the URL to put in AFTERSMTP_AMQP_URL
#
# No plugin is enabled: the backend needs only quorum queues, TTL and dead-lettering (3.10+).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${AFTERSMTP_SERVICES_DIR:-$ROOT/.tmp/services}/rabbitmq"
PORT="${AFTERSMTP_AMQP_PORT:-5672}"
DIST_PORT="${AFTERSMTP_AMQP_DIST_PORT:-25672}"
NODE="aftersmtp@localhost"
SBIN=/usr/lib/rabbitmq/bin

install() {
  if dpkg -s rabbitmq-server >/dev/null 2>&1; then return 0; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server
  # The package may start the system's own node; this project runs its own, so stop that one.
  (service rabbitmq-server stop || true) >/dev/null 2>&1
}

node_env() {
  export HOME="$STATE" # the Erlang cookie lives here, shared by the server and rabbitmqctl
  export RABBITMQ_NODENAME="$NODE"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$PORT"
  export RABBITMQ_DIST_PORT="$DIST_PORT"
  export ERL_EPMD_ADDRESS=127.0.0.1
  # Inter-node (CLI) traffic on loopback too, not on every interface.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_MNESIA_BASE="$STATE/mnesia"
  export RABBITMQ_LOG_BASE="$STATE/log"
  export RABBITMQ_PID_FILE="$STATE/pid"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$STATE/enabled_plugins"
  export RABBITMQ_CONFIG_FILE="$STATE/rabbitmq.conf"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$STATE/advanced.config"
  export RABBITMQ_CONF_ENV_FILE="$STATE/rabbitmq-env.conf"
}

ctl() {
  "$SBIN/rabbitmqctl" -n "$NODE" "$@"
}

start() {
  install
  mkdir -p "$STATE/mnesia" "$STATE/log"
  node_env
  if ctl status >/dev/null 2>&1; then
    echo "rabbitmq.sh: already running ($NODE)" >&2
    return 0
  fi
  printf '[].\n' >"$STATE/enabled_plugins"
  printf '[].\n' >"$STATE/advanced.config"
  : >"$STATE/rabbitmq-env.conf"
  cat >"$STATE/rabbitmq.conf" <<CONF
listeners.tcp.default = 127.0.0.1:$PORT
loopback_users.guest = true
log.console = false
log.file.level = warning
CONF
  nohup "$SBIN/rabbitmq-server" >>"$STATE/server.log" 2>&1 &
  echo $! >"$STATE/launcher.pid"
  # await_startup fails at once while the node is not yet reachable, so ask again until it answers.
  for _ in $(seq 1 60); do
    if ctl -q await_startup --timeout 30 >/dev/null 2>&1; then
      echo "rabbitmq.sh: ready on amqp://127.0.0.1:$PORT ($NODE)" >&2
      return 0
    fi
    kill -0 "$(cat "$STATE/launcher.pid")" 2>/dev/null || break
    sleep 1
  done
  echo "rabbitmq.sh: the node did not start; its log:" >&2
  tail -n 30 "$STATE/server.log" >&2 || true
  exit 1
}

stop() {
  node_env
  ctl -q stop >/dev/null 2>&1 || true
  if [ -f "$STATE/launcher.pid" ]; then
    kill "$(cat "$STATE/launcher.pid")" 2>/dev/null || true
    rm -f "$STATE/launcher.pid"
  fi
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  url) echo "amqp://127.0.0.1:$PORT" ;;
  *) echo "usage: $0 install|start|stop|url" >&2; exit 2 ;;
esac
