#!/usr/bin/env bash
# Debian's SpamAssassin (4.0) spamd for the spam policy's tests (docs/OPERATIONS.md, "Spam
# policy"): a private daemon of its own, listening on 127.0.0.1 only, scoring with the rules the
# package ships (/usr/share/spamassassin, never an sa-update download: the configuration path is
# given explicitly, so /var/lib/spamassassin is not read), its site configuration, helper home and
# log under .tmp/services/spamassassin, and nothing that reaches the internet: DNS-based tests,
# Razor, Pyzor, DCC and the Bayes database are off, no per-user configuration is read.
#
#   scripts/services/spamassassin.sh install   apt-get install spamassassin spamd (once)
#   scripts/services/spamassassin.sh start     install, write the site configuration, start, wait
#   scripts/services/spamassassin.sh stop      stop the daemon this script started
#   scripts/services/spamassassin.sh url       print the URL to put in AFTERSMTP_SPAMD_URL
#
# The port is AFTERSMTP_SPAMD_PORT, else a free one picked on first start and kept in the state
# directory. Under root, spamd's children run as Debian's `debian-spamd` user.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
STATE="${AFTERSMTP_SERVICES_DIR:-$ROOT/.tmp/services}/spamassassin"
# shellcheck source=scripts/services/lib.sh
source "$(dirname "$0")/lib.sh"
RULES=/usr/share/spamassassin

port() {
  service_port "${AFTERSMTP_SPAMD_PORT:-}"
}

install() {
  if command -v spamd >/dev/null 2>&1 && [ -f "$RULES/10_default_prefs.cf" ]; then return 0; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends spamassassin spamd
  # The package may start the system's own daemon; this project runs its own.
  (service spamd stop || service spamassassin stop || true) >/dev/null 2>&1
}

ready() {
  # The spamd protocol's PING answers "SPAMD/1.5 0 PONG".
  service_answers "$(port)" 'PING SPAMC/1.5\r\n\r\n' PONG
}

write_config() {
  mkdir -p "$STATE/site" "$STATE/home"
  # The plugin loaders (*.pre) come from the package; the rules stay where it put them.
  cp /etc/spamassassin/*.pre "$STATE/site/"
  cat >"$STATE/site/local.cf" <<'CONF'
# A test instance with no network: no DNS blocklists, no network checksums (Razor, Pyzor; DCC is not loaded), no Bayes.
dns_available no
skip_rbl_checks 1
use_razor2 0
use_pyzor 0
use_bayes 0
bayes_auto_learn 0
report_safe 0
required_score 5.0
CONF
  if [ "$(id -u)" -eq 0 ]; then chown -R debian-spamd: "$STATE"; fi
}

start() {
  install
  if service_running; then
    echo "spamassassin.sh: already running on 127.0.0.1:$(port) (pid $(cat "$STATE/pid"))" >&2
    return 0
  fi
  mkdir -p "$STATE"
  port >/dev/null
  write_config
  local user=()
  if [ "$(id -u)" -eq 0 ]; then user=(--username=debian-spamd --groupname=debian-spamd); fi
  nohup spamd --listen="127.0.0.1:$(port)" --allowed-ips=127.0.0.1 "${user[@]}" \
    --configpath="$RULES" --siteconfigpath="$STATE/site" --helper-home-dir="$STATE/home" \
    --nouser-config --max-children=2 --min-children=1 --syslog="$STATE/spamd.log" \
    --pidfile="$STATE/spamd.pid" >>"$STATE/stdout.log" 2>&1 &
  echo $! >"$STATE/pid"
  service_wait spamassassin.sh ready 300 "$(url)" "$STATE/stdout.log" "$STATE/spamd.log"
}

stop() {
  service_stop
}

url() {
  echo "spamd://127.0.0.1:$(port)"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 install|start|stop|url" >&2; exit 2 ;;
esac
