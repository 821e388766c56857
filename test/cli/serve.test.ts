// `aftersmtp serve` on embedded defaults: creates the data directory and the gateway identity,
// serves /healthz, /readyz and /metrics on the admin listener, reloads the same identity on restart, and
// stops cleanly on SIGTERM; started without bin/aftersmtp's Node.js flags, it says so. Bad
// configuration is refused with exit code 1 and the variable named.
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { localServeEnv, runCli, startServe, tempDir } from '../helpers/cli.js';
import { E2eGateway } from '../e2e/helpers.js';

function stop(child: ChildProcess): Promise<number | string | null> {
  return new Promise((resolve) => {
    child.removeAllListeners('exit');
    child.on('exit', (code, signal) => resolve(code ?? signal));
    child.kill('SIGTERM');
  });
}

test('serve creates the gateway identity, serves health and metrics, and restarts on it', async (t) => {
  const dataDir = join(tempDir('serve'), 'data');
  const env = localServeEnv(dataDir);
  const first = await startServe(env);
  t.after(() => first.child.kill('SIGKILL')); // a failed assertion must not leave it running
  const flagWarning = (log: Record<string, unknown>[]) =>
    log.find((l) => String(l.msg).startsWith('started without the Node.js flags'));
  assert.equal(flagWarning(first.log), undefined);
  assert.equal(first.ready.gateway, 'did:aftersmtp:example.org:gateway');
  assert.equal(first.ready.suite, 'classic-v1');
  assert.equal(statSync(join(dataDir, 'gateway.pass')).mode & 0o777, 0o600);
  assert.ok(existsSync(join(dataDir, 'gateway.key')));
  const record = JSON.parse(readFileSync(join(dataDir, 'gateway.record.json'), 'utf8'));
  assert.equal(record.did, 'did:aftersmtp:example.org:gateway');

  const admin = String(first.ready.admin);
  const health = await fetch(`${admin}/healthz`);
  assert.equal(health.status, 200);
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  assert.match(metrics, /aftersmtp_gateway_info\{did="did:aftersmtp:example.org:gateway"/);
  assert.match(metrics, /aftersmtp_process_resident_memory_bytes/);
  assert.match(metrics, /\naftersmtp_quic_connections_open 0\n/);
  const ready = await fetch(`${admin}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal(await ready.text(), 'ready\nstore: ok\nqueue: ok\nledger: ok\n');
  assert.equal((await fetch(`${admin}/nothing`)).status, 404);
  assert.equal((await fetch(`${admin}/metrics`, { method: 'POST' })).status, 405);
  assert.equal(await stop(first.child), 0);

  const second = await startServe(env, { bare: true });
  t.after(() => second.child.kill('SIGKILL'));
  assert.equal(second.ready.keyId, first.ready.keyId, 'the same identity is loaded on restart');
  assert.deepEqual(flagWarning(second.log)?.missing, ['--min-semi-space-size=16']);
  assert.equal(await stop(second.child), 0);
});

test('serve refuses a bad configuration, naming the variable', async () => {
  const result = await runCli(['serve'], {
    env: { AFTERSMTP_DATA_DIR: tempDir('bad'), AFTERSMTP_SUITE: 'rsa-1024' },
  });
  assert.equal(result.code, 1);
  assert.match(result.stderr, /AFTERSMTP_SUITE: expected one of classic-v1, hybrid-v1/);
});

test('serve refuses a relay credentials file that others may read, before opening anything', async () => {
  const dir = tempDir('creds');
  const file = join(dir, 'relay-credentials');
  writeFileSync(file, '[smtp.relay.test]:587 user:password\n', { mode: 0o644 });
  chmodSync(file, 0o644);
  const result = await runCli(['serve'], {
    env: { AFTERSMTP_DATA_DIR: join(dir, 'data'), AFTERSMTP_OFFRAMP_CREDENTIALS_FILE: file },
  });
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /relay-credentials \(AFTERSMTP_OFFRAMP_CREDENTIALS_FILE\) may be read by group or others \(mode 644\); chmod 600 it/,
  );
});

test('serve takes a changed relay credentials file without a restart, and refuses a bad one', async () => {
  const work = tempDir('creds-live');
  const file = join(work, 'relay-credentials');
  writeFileSync(file, '[smtp.relay.test]:587 user:password\n', { mode: 0o600 });
  const gw = await E2eGateway.prepare(work, 'creds.test', {
    AFTERSMTP_OFFRAMP_CREDENTIALS_FILE: file,
  });
  await gw.start();
  try {
    writeFileSync(file, '[smtp.relay.test]:587 user:new-password\n');
    await gw.waitLog((l) => l.msg === 'off-ramp credentials reloaded', 10_000);
    writeFileSync(file, '[smtp.relay.test]:587\n');
    const refused = await gw.waitLog(
      (l) => String(l.msg).startsWith('off-ramp credentials file changed and refused'),
      10_000,
    );
    assert.match(String(refused.err), /line 1: expected/);
    assert.ok(gw.running, 'a bad change does not stop the gateway');
  } finally {
    assert.equal(await gw.stop(), 0);
  }
});
