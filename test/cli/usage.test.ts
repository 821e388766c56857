// The CLI's contract with scripts: --help everywhere, exit code 2 for usage errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { runCli } from '../helpers/cli.js';

test('no command prints the overview and exits 2', async () => {
  const r = await runCli([]);
  assert.equal(r.code, 2);
  assert.match(r.stdout, /usage: aftersmtp <command>/);
});

test('--help lists the commands and exits 0', async () => {
  const r = await runCli(['--help']);
  assert.equal(r.code, 0);
  for (const name of ['serve', 'keygen', 'envelope seal', 'envelope open', 'bench']) {
    assert.match(r.stdout, new RegExp(`\\n  ${name} `));
  }
});

test('an unknown command or flag exits 2', async () => {
  assert.equal((await runCli(['frobnicate'])).code, 2);
  const r = await runCli(['serve', '--no-such-flag']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /no-such-flag/);
});

test('every command answers --help with exit 0', async () => {
  for (const path of [
    ['serve'],
    ['keygen'],
    ['envelope', 'seal'],
    ['envelope', 'open'],
    ['bench'],
  ]) {
    const r = await runCli([...path, '--help']);
    assert.equal(r.code, 0, path.join(' '));
    assert.match(r.stdout, new RegExp(`usage: aftersmtp ${path.join(' ')}`));
  }
});

test('--version prints the package version and exits 0', async () => {
  const r = await runCli(['--version']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^aftersmtp \d+\.\d+\.\d+ \(node \d+/);
});

test('a command group alone lists its subcommands; with --help it exits 0', async () => {
  for (const [group, members] of [
    ['ledger', ['ledger key', 'ledger checkpoint', 'ledger policy', 'ledger approve']],
    ['queue', ['queue list', 'queue show', 'queue hold', 'queue stats']],
    ['envelope', ['envelope seal', 'envelope open']],
  ] as const) {
    const alone = await runCli([group]);
    assert.equal(alone.code, 2, group);
    assert.match(alone.stdout, new RegExp(`^usage: aftersmtp ${group} <command>`));
    for (const m of members) assert.match(alone.stdout, new RegExp(`\\n  ${m} `), m);
    const help = await runCli([group, '--help']);
    assert.equal(help.code, 0, group);
    assert.equal(help.stdout, alone.stdout);
  }
  const wrong = await runCli(['ledger', 'frobnicate']);
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /unknown command "ledger frobnicate"[\s\S]*ledger key/);
});
