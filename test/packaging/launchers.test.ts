// The Node.js flags of src/cli/node-flags.ts are written where an `aftersmtp` process is
// launched (bin/aftersmtp's first line, the systemd unit's ExecStart, package.json's `serve`),
// each exactly; bin/aftersmtp runs as a program through that first line; and the Node.js running
// the tests takes the flags with the effect the module says.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';
import { BIN, cliEnv } from '../helpers/cli.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const flags = NODE_FLAGS.join(' ');

test('each launcher carries exactly the flags', () => {
  const firstLine = readFileSync(BIN, 'utf8').split('\n')[0];
  assert.equal(firstLine, `#!/usr/bin/env -S node ${flags}`);
  const unit = readFileSync(join(ROOT, 'packaging', 'systemd', 'aftersmtp.service'), 'utf8');
  const execStart = [...unit.matchAll(/^ExecStart=(.*)$/gm)].map((m) => m[1]);
  assert.deepEqual(execStart, [`/usr/bin/node ${flags} /opt/aftersmtp/dist/src/cli/main.js serve`]);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  };
  assert.equal(pkg.scripts.serve, `node ${flags} dist/src/cli/main.js serve`);
});

test('bin/aftersmtp runs as a program (env -S splits its first line)', () => {
  // The `node` on PATH runs it, as for an operator; the tests' own Node.js comes first on PATH.
  const env = cliEnv();
  env.PATH = `${join(process.execPath, '..')}:${env.PATH ?? ''}`;
  const r = spawnSync(BIN, ['--version'], { encoding: 'utf8', env });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^aftersmtp \S+ \(node /);
});

test('with the flags, the young generation starts and stays at 16 MiB per semi-space', () => {
  const script =
    "const v8 = require('node:v8');" +
    "const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');" +
    'console.log(s.space_size);';
  const size = (args: readonly string[]): number =>
    Number(spawnSync(process.execPath, [...args, '-e', script], { encoding: 'utf8' }).stdout);
  assert.equal(size(NODE_FLAGS), 16 * 1024 * 1024);
  assert.ok(size([]) < 16 * 1024 * 1024, 'without them it starts smaller');
});
