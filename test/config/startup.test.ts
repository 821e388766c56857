// Start-up refuses what cannot work, clearly and at once: settings that contradict each other,
// data directories that cannot hold data (regression: AFTERSMTP_DATA_DIR under /proc made
// start-up spin forever and ignore SIGTERM), connection caps beyond the open-file limit; and a
// SIGTERM always stops `serve`, also during start-up.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { prepareDataDir } from '../../src/storage/datadir.js';
import { loadConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { checkDescriptorBudget, openFileLimit } from '../../src/net/limits.js';
import { runCli, startCli, tempDir } from '../helpers/cli.js';

function refused(env: Record<string, string>, ...names: RegExp[]): void {
  assert.throws(
    () => loadConfig(env),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      for (const n of names) assert.match(err.message, n);
      return true;
    },
  );
}

test('contradictory settings are refused, each naming its variables', () => {
  refused(
    { AFTERSMTP_GRPC_MAX_MESSAGE_BYTES: String(64 * 1024) },
    /AFTERSMTP_GRPC_MAX_MESSAGE_BYTES \(65536\) must be at least AFTERSMTP_MAX_ENVELOPE_BYTES/,
  );
  refused(
    { AFTERSMTP_QUEUE_RETRY_BASE_MS: '60000', AFTERSMTP_QUEUE_RETRY_CAP_MS: '1000' },
    /AFTERSMTP_QUEUE_RETRY_CAP_MS \(1000\) must be at least AFTERSMTP_QUEUE_RETRY_BASE_MS/,
  );
  refused(
    {
      AFTERSMTP_QUIC_UNVERIFIED_BUFFERED_BYTES: String(512 * 1024 * 1024),
      AFTERSMTP_QUIC_PEER_BUFFERED_BYTES: String(1024 * 1024),
    },
    /AFTERSMTP_QUIC_UNVERIFIED_BUFFERED_BYTES .* must be below AFTERSMTP_QUIC_MAX_BUFFERED_BYTES/,
    /AFTERSMTP_QUIC_PEER_BUFFERED_BYTES \(1048576\) must be at least AFTERSMTP_QUIC_MAX_FRAME_BYTES/,
  );
  refused(
    { AFTERSMTP_GRPC_MAX_CONNECTIONS: '10', AFTERSMTP_GRPC_MAX_CONNECTIONS_PER_ADDRESS: '11' },
    /AFTERSMTP_GRPC_MAX_CONNECTIONS_PER_ADDRESS \(11\)/,
  );
  // Consistent small values pass.
  const c = loadConfig({
    AFTERSMTP_MAX_ENVELOPE_BYTES: '32768',
    AFTERSMTP_GRPC_MAX_MESSAGE_BYTES: String(64 * 1024),
    AFTERSMTP_GRPC_MAX_INFLIGHT_BYTES: String(1024 * 1024),
  });
  assert.equal(c.grpcMaxMessageBytes, 64 * 1024);
});

test('the connection caps must fit the open-file limit', () => {
  assert.ok((openFileLimit() ?? 1024) >= 64);
  assert.doesNotThrow(() => checkDescriptorBudget({ grpcMaxConnections: 1024 }, 20_000));
  assert.throws(
    () => checkDescriptorBudget({ grpcMaxConnections: 1024 }, 1024),
    /AFTERSMTP_GRPC_MAX_CONNECTIONS \(1024\) .* plus 512 .* open-file limit of 1024/,
  );
  // The SMTP listeners' cap counts too.
  assert.throws(
    () => checkDescriptorBudget({ grpcMaxConnections: 100, smtpMaxConnections: 1000 }, 1500),
    /AFTERSMTP_SMTP_MAX_CONNECTIONS \(1000\)/,
  );
});

test('unusable data directories are refused with the reason, and never hang', () => {
  const t0 = Date.now();
  assert.throws(() => prepareDataDir('/proc/aftersmtp-test/data'), /AFTERSMTP_DATA_DIR\): .*proc/);
  assert.throws(() => prepareDataDir('/sys/aftersmtp-test'), /AFTERSMTP_DATA_DIR\): .*sysfs/);
  const work = tempDir('datadir');
  const file = join(work, 'file');
  writeFileSync(file, 'x');
  assert.throws(() => prepareDataDir(join(file, 'data')), /is not a directory/);
  assert.ok(Date.now() - t0 < 5000);
  // Created one level at a time, mode 0700, and usable.
  const made = prepareDataDir(join(work, 'a', 'b', 'c'));
  assert.equal(made, join(work, 'a', 'b', 'c'));
  if (process.getuid?.() !== 0) {
    // (root writes anywhere: the permission case only means something for other users)
    const ro = join(work, 'ro');
    mkdirSync(ro, { mode: 0o500 });
    chmodSync(ro, 0o500);
    assert.throws(() => prepareDataDir(join(ro, 'data')), /permission denied/);
  }
});

test('serve refuses a data directory under /proc at once, with exit code 1', async () => {
  const t0 = Date.now();
  const r = await runCli(['serve'], { env: { AFTERSMTP_DATA_DIR: '/proc/aftersmtp/data' } });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /\/proc\/aftersmtp\/data \(AFTERSMTP_DATA_DIR\): is on the proc pseudo/);
  assert.ok(Date.now() - t0 < 15_000);
});

test('SIGTERM during start-up stops serve', async () => {
  const dataDir = join(tempDir('sigterm'), 'data');
  const child = startCli(['serve'], {
    AFTERSMTP_DATA_DIR: dataDir,
    AFTERSMTP_ADMIN_LISTEN: '127.0.0.1:0',
    AFTERSMTP_GRPC_LISTEN: '127.0.0.1:0',
    AFTERSMTP_QUIC_LISTEN: '127.0.0.1:0',
    AFTERSMTP_SUITE: 'classic-v1',
  });
  const exited = new Promise<number | string | null>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal)),
  );
  // The first log line means start-up is under way (identity, stores and listeners follow).
  await new Promise<void>((resolve) => child.stdout?.once('data', () => resolve()));
  const t0 = Date.now();
  child.kill('SIGTERM');
  const code = await exited;
  assert.ok(code === 0 || code === 1, `exit ${String(code)}`);
  assert.ok(Date.now() - t0 < 25_000);
});
