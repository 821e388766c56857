#!/usr/bin/env bash
# Debian's Rspamd (3.4) for the spam policy's tests (docs/OPERATIONS.md, "Spam policy"): a private
# instance of its own, with the package's shipped rules (/etc/rspamd) but its local configuration,
# database, run and log directories under .tmp/services/rspamd (never the system's), one normal
# worker listening on 127.0.0.1 only (the /checkv2 HTTP protocol), no controller, proxy or fuzzy
# worker, and nothing that reaches the internet: every module that loads a remote map
# (maps.rspamd.com) or asks a public service is disabled, and DNS goes to a closed loopback port,
# so lookups fail at once instead of timing out.
#
#   scripts/services/rspamd.sh install   apt-get install rspamd (once)
#   scripts/services/rspamd.sh start     install, write the private configuration, start, wait
#   scripts/services/rspamd.sh stop      stop the instance this script started
#   scripts/services/rspamd.sh url       print the URL to put in AFTERSMTP_RSPAMD_URL
#
# The port is AFTERSMTP_RSPAMD_PORT, else a free one picked on first start and kept in the state
# directory. Under root, rspamd drops to Debian's `_rspamd` user, which owns the state directory.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${AFTERSMTP_SERVICES_DIR:-$ROOT/.tmp/services}/rspamd"
# shellcheck source=scripts/services/lib.sh
source "$(dirname "$0")/lib.sh"

port() {
  service_port "${AFTERSMTP_RSPAMD_PORT:-}"
}

install() {
  if command -v rspamd >/dev/null 2>&1; then return 0; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rspamd
  # The package may start the system's own instance; this project runs its own.
  (service rspamd stop || true) >/dev/null 2>&1
}

ready() {
  # /ping on the normal worker answers "pong".
  service_answers "$(port)" 'GET /ping HTTP/1.0\r\n\r\n' pong
}

write_config() {
  local L="$STATE/local"
  mkdir -p "$L/local.d" "$L/override.d" "$STATE/db" "$STATE/run" "$STATE/log"
  cat >"$L/override.d/worker-normal.inc" <<CONF
bind_socket = "127.0.0.1:$(port)";
count = 1;
task_timeout = 8s;
CONF
  for w in controller proxy fuzzy; do
    echo 'enabled = false;' >"$L/override.d/worker-$w.inc"
  done
  cat >"$L/local.d/options.inc" <<'CONF'
# No network at run time: DNS to a closed loopback port fails at once (no RBL, SPF, DKIM key or
# URL lookups leave this machine); nothing is fetched.
dns {
  nameserver = ["127.0.0.1:9"];
  timeout = 0.2s;
  retransmits = 0;
}
check_all_filters = false;
CONF
  cat >"$L/local.d/logging.inc" <<CONF
type = "file";
filename = "$STATE/log/rspamd.log";
level = "notice";
CONF
  # Modules that load remote maps (maps.rspamd.com) or ask public services: off.
  for m in rbl surbl whitelist phishing multimap mime_types mid fuzzy_check asn rspamd_update \
    emails url_redirector greylist neural reputation history_redis ratelimit dcc \
    external_services antivirus spamtrap p0f bimi clickhouse elastic metadata_exporter; do
    echo 'enabled = false;' >"$L/local.d/$m.conf"
  done
  if [ "$(id -u)" -eq 0 ]; then chown -R _rspamd: "$STATE"; fi
}

start() {
  install
  if service_running; then
    echo "rspamd.sh: already running on 127.0.0.1:$(port) (pid $(cat "$STATE/pid"))" >&2
    return 0
  fi
  mkdir -p "$STATE"
  port >/dev/null
  write_config
  local user=()
  if [ "$(id -u)" -eq 0 ]; then user=(-u _rspamd -g _rspamd); fi
  nohup rspamd -f -c /etc/rspamd/rspamd.conf "${user[@]}" \
    --var="LOCAL_CONFDIR=$STATE/local" --var="DBDIR=$STATE/db" --var="RUNDIR=$STATE/run" \
    --var="LOGDIR=$STATE/log" >>"$STATE/stdout.log" 2>&1 &
  echo $! >"$STATE/pid"
  service_wait rspamd.sh ready 150 "$(url)" "$STATE/stdout.log" "$STATE/log/rspamd.log"
}

stop() {
  service_stop
}

url() {
  echo "http://127.0.0.1:$(port)"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 install|start|stop|url" >&2; exit 2 ;;
esac
