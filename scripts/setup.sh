#!/usr/bin/env bash
# The machine set-up that README's first command needs, checked (and completed where it may)
# before the native build: `npm run build` runs it first (package.json, prebuild:native).
#
#   scripts/setup.sh                      check; install missing Debian packages when root with apt
#   scripts/setup.sh --with-test-services also the servers the test suite runs against (.ci/run)
#   scripts/setup.sh --check              check only: say what is missing and stop (exit 1)
#
# What the build needs beyond Node.js, npm and Rust: libclang (bindgen, for BoringSSL under
# quiche: without it cargo stops after minutes with "Unable to find libclang"), cmake (BoringSSL),
# a C++ compiler, make and python3 (node-gyp builds better-sqlite3). On Debian and Ubuntu these
# are packages; as root with apt-get they are installed here, otherwise the exact command to run
# is printed and the script stops before any long build starts. Node.js and Rust themselves are
# only checked: they do not come from apt here (Debian's are too old).
set -euo pipefail

mode=install
with_tests=0
for arg in "$@"; do
  case "$arg" in
    --check) mode=check ;;
    --with-test-services) with_tests=1 ;;
    *) echo "usage: $0 [--check] [--with-test-services]" >&2; exit 2 ;;
  esac
done

say() { echo "setup: $*" >&2; }
fail=0

# Node.js (it runs this through npm, but the version matters) and Rust.
if ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; then
  say "Node.js >= 20.19 is required (found: $(node --version 2>/dev/null || echo none))"
  fail=1
fi
if ! command -v cargo >/dev/null 2>&1; then
  say "a Rust toolchain is required (cargo not found): install it with rustup (https://rustup.rs)"
  fail=1
fi

# Debian packages: name and why, one per line.
PACKAGES=(
  "libclang-dev:bindgen, for BoringSSL under quiche (the QUIC transport)"
  "cmake:builds BoringSSL"
  "g++:BoringSSL and node-gyp (better-sqlite3)"
  "make:node-gyp"
  "python3:node-gyp"
  "curl:README's examples wait for /readyz with it"
)
if [ "$with_tests" = 1 ]; then
  PACKAGES+=(
    "unbound:a real DNS server for the discovery tests (and a validating one for the off-ramp's DANE tests)"
    "ldnsutils:ldns-signzone and ldns-keygen sign the DNSSEC test zone of the off-ramp's DANE tests"
    "rabbitmq-server:the rabbitmq queue backend's tests"
    "postgresql:the postgres mailbox store's tests (pgcrypto)"
    "postfix:a real MTA as the SMTP peer of the on-ramp tests (private instances)"
    "swaks:SMTP dialogues in the on-ramp tests"
    "nmap:its smtp-open-relay script checks that port 25 is no open relay"
    "python3-dkim:dkimpy, an independent DKIM and ARC verifier of what the off-ramp signs"
    "python3-authres:what dkimpy's ARC signer reads Authentication-Results with"
    "libmail-dkim-perl:Mail::DKIM, a second independent DKIM verifier"
    "postsrsd:an independent SRS implementation the off-ramp's SRS addresses are checked against"
    "rspamd:the spam policy's Rspamd scanner (a private instance: scripts/services/rspamd.sh)"
    "spamassassin:SpamAssassin's shipped rules for the spam policy's tests"
    "spamd:SpamAssassin's daemon (a private instance: scripts/services/spamassassin.sh)"
    "systemd:systemd-analyze checks the packaged unit (packaging/systemd); nothing is started"
  )
fi

installed() {
  # "install ok installed" only: a removed package whose configuration remains still answers.
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

if command -v dpkg-query >/dev/null 2>&1; then
  missing=()
  for entry in "${PACKAGES[@]}"; do
    p="${entry%%:*}"
    installed "$p" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$mode" = install ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing ${missing[*]} (apt-get)"
      export DEBIAN_FRONTEND=noninteractive
      # Postfix "No configuration": the package writes no main.cf and starts nothing on port 25
      # (the tests run private instances of their own).
      echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
      # A fresh machine may have no package lists yet: update when the install cannot find one.
      if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1; then
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
      fi
      for p in "${missing[@]}"; do
        installed "$p" || { say "apt-get did not install $p"; fail=1; }
      done
    else
      for entry in "${PACKAGES[@]}"; do
        p="${entry%%:*}"
        for m in "${missing[@]}"; do
          [ "$m" = "$p" ] && say "missing $p (${entry#*:})"
        done
      done
      say "install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}"
      fail=1
    fi
  fi
else
  # Not Debian: check the tools themselves and name what provides them.
  command -v cmake >/dev/null 2>&1 || { say "cmake is required (to build BoringSSL)"; fail=1; }
  command -v c++ >/dev/null 2>&1 || { say "a C++ compiler (c++) is required"; fail=1; }
  command -v make >/dev/null 2>&1 || { say "make is required"; fail=1; }
  command -v python3 >/dev/null 2>&1 || { say "python3 is required (node-gyp)"; fail=1; }
  if [ -z "${LIBCLANG_PATH:-}" ] && ! ldconfig -p 2>/dev/null | grep -q 'libclang[-.0-9]*\.so'; then
    say "libclang is required (bindgen, for BoringSSL): install your system's libclang development package or set LIBCLANG_PATH"
    fail=1
  fi
fi

if [ "$fail" != 0 ]; then
  say "stopped before the build: fix the above, then run the command again"
  exit 1
fi
say "ok (Node.js $(node --version), $(cargo --version 2>/dev/null | cut -d' ' -f1-2), the build's system packages present)"
