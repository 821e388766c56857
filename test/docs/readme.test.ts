// README's sections work as written, in order, in one directory: the shell blocks of "Try the
// ledger and send a message" and "Try the envelope" run verbatim with bash (set -e), in a fresh
// directory laid out like a checkout (bin/, dist/, native/ and node_modules/ of this one), with a
// clean environment, so a section that depends on another's files, settings or ports fails here.
// The Quick start's commands (npm ci, the build, serve in the foreground) are .ci/run's.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { cliEnv, tempDir } from '../helpers/cli.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const README = readFileSync(join(ROOT, 'README.md'), 'utf8');

/** The ```sh blocks under the heading `title`. */
function section(title: string): string {
  const start = README.indexOf(`## ${title}\n`);
  assert.ok(start >= 0, `README has no section "${title}"`);
  const next = README.indexOf('\n## ', start + 4);
  const body = README.slice(start, next < 0 ? undefined : next);
  const blocks = [...body.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] as string);
  assert.ok(blocks.length > 0, `no sh block in "${title}"`);
  return blocks.join('\n');
}

function bash(script: string, cwd: string, home: string) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn('bash', ['-e', '-o', 'pipefail', '-c', script], {
      cwd,
      env: cliEnv({ HOME: home }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 240_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test("README's sections run in order in one directory", { timeout: 300_000 }, async () => {
  const dir = tempDir('readme');
  for (const name of ['bin', 'dist', 'native', 'node_modules', 'package.json']) {
    symlinkSync(join(ROOT, name), join(dir, name));
  }
  const home = tempDir('readme-home');
  // Each section in its own shell, as a reader pasting them one after the other would (the
  // exports of one do not reach the next: each must say what it needs).
  const ledger = await bash(section('Try the ledger and send a message'), dir, home);
  assert.equal(ledger.code, 0, ledger.out);
  assert.match(ledger.out, /pinned the log key of example\.org/);
  assert.match(ledger.out, /registered did:aftersmtp:example\.org:bob/);
  assert.match(ledger.out, /verified {3}yes/);
  assert.match(ledger.out, /subject {2}hi\n[\s\S]*Hello Bob/);
  assert.match(ledger.out, /did:aftersmtp:example\.org:bob {2}delivered; at .* \(verified\)/);
  const envelope = await bash(section('Try the envelope'), dir, home);
  assert.equal(envelope.code, 0, envelope.out);
  assert.match(envelope.out, /"body": "Hello Bob\\n"/);
});
