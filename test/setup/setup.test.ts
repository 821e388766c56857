// scripts/setup.sh, the set-up README's first command runs before the native build: with stand-ins
// for dpkg-query, apt-get, id and cargo on PATH (the real ones would change this machine), it
// installs what is missing when it runs as root with apt-get, and otherwise names each missing
// package with what it is for and the exact command to run, and stops (exit 1) before any build.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { tempDir } from '../helpers/cli.js';

const SCRIPT = fileURLToPath(new URL('../../../scripts/setup.sh', import.meta.url));

function stubs(opts: { uid: number; missing: string[]; cargo: boolean }): {
  dir: string;
  log: string;
} {
  const dir = tempDir('setup-stubs');
  const state = join(dir, 'installed-now');
  const log = join(dir, 'apt.log');
  const write = (name: string, body: string) => {
    writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(join(dir, name), 0o755);
  };
  write('id', `echo ${opts.uid}`);
  write(
    'dpkg-query',
    // dpkg-query -W -f=${Status} <package>: the package is $3
    `for p in ${opts.missing.join(' ')}; do if [ "$p" = "$3" ] && ! grep -qx "$3" "${state}" 2>/dev/null; then exit 1; fi; done; printf 'install ok installed'`,
  );
  write(
    'apt-get',
    `echo "$@" >> "${log}"; if [ "$1" = install ]; then for a in "$@"; do echo "$a" >> "${state}"; done; fi`,
  );
  if (opts.cargo) write('cargo', 'echo "cargo 1.95.0 (stand-in)"');
  return { dir, log };
}

function run(dir: string, args: string[] = []) {
  // Only the stand-ins, node, and the basic tools: no real apt-get, dpkg-query or cargo.
  const path = [dir, dirname(process.execPath), '/usr/bin', '/bin'].join(':');
  return spawnSync('bash', [SCRIPT, ...args], { env: { PATH: path }, encoding: 'utf8' });
}

test('not root: names each missing package, prints the apt-get command, stops (exit 1)', () => {
  const s = stubs({ uid: 1000, missing: ['libclang-dev', 'cmake'], cargo: true });
  const r = run(s.dir);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /missing libclang-dev \(bindgen, for BoringSSL under quiche/);
  assert.match(r.stderr, /missing cmake \(builds BoringSSL\)/);
  assert.match(
    r.stderr,
    /install them with: sudo apt-get install -y --no-install-recommends libclang-dev cmake\n/,
  );
  assert.match(r.stderr, /stopped before the build/);
  assert.equal(existsSync(s.log), false, 'apt-get is not run');
});

test('root with apt-get: installs what is missing, then says ok', () => {
  const s = stubs({ uid: 0, missing: ['libclang-dev'], cargo: true });
  const r = run(s.dir);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /installing libclang-dev \(apt-get\)/);
  assert.match(
    readFileSync(s.log, 'utf8'),
    /^install -y -qq --no-install-recommends libclang-dev$/m,
  );
  assert.match(r.stderr, /setup: ok/);
});

test('--check never installs, even as root', () => {
  const s = stubs({ uid: 0, missing: ['libclang-dev'], cargo: true });
  const r = run(s.dir, ['--check']);
  assert.equal(r.status, 1);
  assert.equal(existsSync(s.log), false);
});

test('no Rust toolchain: says how to get one and stops', (t) => {
  if (existsSync('/usr/bin/cargo') || existsSync('/bin/cargo')) {
    t.skip('this machine has cargo in /usr/bin');
    return;
  }
  const s = stubs({ uid: 0, missing: [], cargo: false });
  const r = run(s.dir);
  assert.equal(r.status, 1);
  assert.match(
    r.stderr,
    /a Rust toolchain is required \(cargo not found\): install it with rustup/,
  );
});

test('--with-test-services also checks the servers the tests run against', () => {
  const s = stubs({ uid: 1000, missing: ['unbound'], cargo: true });
  assert.equal(run(s.dir).status, 0, 'not needed for the build');
  const r = run(s.dir, ['--with-test-services']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /missing unbound \(a real DNS server/);
});
