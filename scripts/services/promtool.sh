#!/usr/bin/env bash
# Prometheus' own `promtool`, to check the gateway's /metrics the way Prometheus reads them: the
# exposition-format parser Prometheus scrapes with, and its linter of naming conventions
# (counters end in _total, base units in names, snake_case, help text present).
#
#   scripts/services/promtool.sh install   extract promtool from Debian's prometheus package (cached)
#   scripts/services/promtool.sh path      install if needed, then print the promtool path
#
# Only the binary is taken out of the .deb (`apt-get download` + `dpkg-deb -x`): installing the
# package would also install and start a Prometheus server, which the tests do not need. Cached
# in $AFTERSMTP_TOOLS_DIR (default /var/tmp/aftersmtp-tools).
set -euo pipefail

TOOLS="${AFTERSMTP_TOOLS_DIR:-/var/tmp/aftersmtp-tools}"
DIR="$TOOLS/promtool"
BIN="$DIR/promtool"

install() {
  if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then return 0; fi
  if command -v promtool >/dev/null 2>&1; then
    mkdir -p "$DIR" && ln -sf "$(command -v promtool)" "$BIN" && return 0
  fi
  command -v apt-get >/dev/null || { echo "promtool.sh: apt-get is required" >&2; exit 1; }
  local tmp
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  if ! (cd "$tmp" && apt-get download -q prometheus >/dev/null 2>&1); then
    apt-get update -qq
    (cd "$tmp" && apt-get download -q prometheus >/dev/null)
  fi
  dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root"
  mkdir -p "$DIR"
  cp "$tmp/root/usr/bin/promtool" "$BIN.new" && mv "$BIN.new" "$BIN"
  "$BIN" --version >/dev/null
}

case "${1:-}" in
  install) install ;;
  path) install && echo "$BIN" ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
