// Expected failures of the environment are one line on standard error that names the thing (the
// address and its setting, the path, the variable) and a stable code, with exit code 1; "internal
// error" is for bugs only. Each case starts the real `aftersmtp serve` (or another command) in a
// broken environment: a port taken (TCP admin and gRPC, UDP QUIC), a passphrase file missing, a
// wrong passphrase, a data directory that is a file, a queue server down, an output file that
// exists, and, where this machine lets the test mount a small tmpfs, a full disk.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli, tempDir, type CliResult } from '../helpers/cli.js';

const BASE = {
  AFTERSMTP_ADMIN_LISTEN: '127.0.0.1:0',
  AFTERSMTP_GRPC_LISTEN: '127.0.0.1:0',
  AFTERSMTP_QUIC_LISTEN: '127.0.0.1:0',
  AFTERSMTP_DOMAIN: 'example.org',
  AFTERSMTP_SUITE: 'classic-v1',
};

/** A one-line failure with `code`, matching `pattern`, never "internal error". */
function assertOneLine(r: CliResult, code: string, pattern: RegExp): void {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line expected:\n${r.stderr}`);
  assert.doesNotMatch(r.stderr, /internal error/);
  assert.match(lines[0] as string, new RegExp(`\\(${code}\\)$`));
  assert.match(lines[0] as string, pattern);
}

function serve(env: Record<string, string>): Promise<CliResult> {
  return runCli(['serve'], {
    env: { ...BASE, AFTERSMTP_DATA_DIR: join(tempDir('env'), 'data'), ...env },
  });
}

describe('a port already taken', () => {
  let tcp: Server;
  let udp: Socket;
  let tcpPort = 0;
  let udpPort = 0;
  before(async () => {
    tcp = createServer();
    await new Promise<void>((resolve) => tcp.listen(0, '127.0.0.1', resolve));
    tcpPort = (tcp.address() as { port: number }).port;
    udp = createSocket('udp4');
    await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
    udpPort = udp.address().port;
  });
  after(() => {
    tcp.close();
    udp.close();
  });

  test('admin: ERR_ADMIN_BIND names the address and AFTERSMTP_ADMIN_LISTEN', async () => {
    const r = await serve({ AFTERSMTP_ADMIN_LISTEN: `127.0.0.1:${tcpPort}` });
    assertOneLine(
      r,
      'ERR_ADMIN_BIND',
      new RegExp(
        `^aftersmtp serve: cannot listen on TCP 127\\.0\\.0\\.1:${tcpPort} \\(AFTERSMTP_ADMIN_LISTEN\\): address already in use \\[EADDRINUSE\\]`,
      ),
    );
  });

  test('gRPC: ERR_GRPC_BIND names the address and AFTERSMTP_GRPC_LISTEN (no grpc-js noise)', async () => {
    const r = await serve({ AFTERSMTP_GRPC_LISTEN: `127.0.0.1:${tcpPort}` });
    assertOneLine(
      r,
      'ERR_GRPC_BIND',
      new RegExp(
        `TCP 127\\.0\\.0\\.1:${tcpPort} \\(AFTERSMTP_GRPC_LISTEN\\): address already in use`,
      ),
    );
  });

  test('SMTP: ERR_SMTP_BIND from the listener thread names the address and AFTERSMTP_SMTP_LISTEN, and serve exits', async () => {
    const r = await serve({ AFTERSMTP_SMTP_LISTEN: `127.0.0.1:${tcpPort}` });
    assertOneLine(
      r,
      'ERR_SMTP_BIND',
      new RegExp(
        `TCP 127\\.0\\.0\\.1:${tcpPort} \\(AFTERSMTP_SMTP_LISTEN\\): address already in use \\[EADDRINUSE\\]`,
      ),
    );
  });

  test('QUIC: ERR_QUIC_BIND names the UDP address and AFTERSMTP_QUIC_LISTEN', async () => {
    const r = await serve({ AFTERSMTP_QUIC_LISTEN: `127.0.0.1:${udpPort}` });
    assertOneLine(
      r,
      'ERR_QUIC_BIND',
      new RegExp(
        `UDP 127\\.0\\.0\\.1:${udpPort} \\(AFTERSMTP_QUIC_LISTEN\\): address already in use`,
      ),
    );
  });
});

test('a missing passphrase file: ERR_PASSPHRASE_FILE names the path and the variable', async () => {
  const missing = join(tempDir('env'), 'no-such.pass');
  const r = await serve({ AFTERSMTP_PASSPHRASE_FILE: missing });
  assertOneLine(
    r,
    'ERR_PASSPHRASE_FILE',
    new RegExp(
      `${missing} \\(AFTERSMTP_PASSPHRASE_FILE\\): no such file or directory \\[ENOENT\\]`,
    ),
  );
});

test('a wrong passphrase names the key file, where the passphrase came from, and the cure', async () => {
  const dir = join(tempDir('env'), 'data');
  // A data directory made under one passphrase, started under another.
  mkdirSync(dir, { recursive: true });
  const made = await runCli(['ledger', 'key'], {
    env: { ...BASE, AFTERSMTP_DATA_DIR: dir, AFTERSMTP_PASSPHRASE: 'one' },
  });
  assert.equal(made.code, 0, made.stderr);
  const r = await runCli(['ledger', 'checkpoint'], {
    env: { ...BASE, AFTERSMTP_DATA_DIR: dir, AFTERSMTP_PASSPHRASE: 'two' },
  });
  assertOneLine(
    r,
    'ERR_LOG_KEY_DECRYPT',
    /ledger\.key does not open with the passphrase from AFTERSMTP_PASSPHRASE: the data directory .* was made with another passphrase/,
  );
});

test('a data directory that is a file: one line naming AFTERSMTP_DATA_DIR', async () => {
  const file = join(tempDir('env'), 'data');
  writeFileSync(file, 'not a directory');
  const r = await runCli(['serve'], { env: { ...BASE, AFTERSMTP_DATA_DIR: file } });
  assertOneLine(r, 'ERR_DATA_DIR', new RegExp(`${file} \\(AFTERSMTP_DATA_DIR\\)`));
});

test('a queue server that is down: ERR_QUEUE_UNAVAILABLE names the URL and its variable', async () => {
  const r = await serve({ AFTERSMTP_QUEUE: 'rabbitmq', AFTERSMTP_AMQP_URL: 'amqp://127.0.0.1:1' });
  assertOneLine(r, 'ERR_QUEUE_UNAVAILABLE', /amqp:\/\/127\.0\.0\.1:1 \(AFTERSMTP_AMQP_URL\)/);
});

test('an empty AFTERSMTP_* value means unset (the default), not an error', async () => {
  const r = await runCli(['queue', 'stats', '--json'], {
    env: {
      AFTERSMTP_DATA_DIR: join(tempDir('env'), 'data'),
      AFTERSMTP_QUEUE: '',
      AFTERSMTP_LOG_LEVEL: ' ',
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).depth, 0);
});

test('envelope seal onto an existing file: ERR_OUTPUT_EXISTS names the file and the flag', async () => {
  const dir = tempDir('env');
  const env = { AFTERSMTP_PASSPHRASE: 'pw' };
  for (const [name, did] of [
    ['a', 'did:aftersmtp:example.org:a'],
    ['b', 'did:aftersmtp:example.net:b'],
  ] as const) {
    const k = await runCli(
      [
        'keygen',
        '--did',
        did,
        '--suite',
        'classic-v1',
        '--out',
        join(dir, `${name}.key`),
        '--record-out',
        join(dir, `${name}.json`),
      ],
      { env },
    );
    assert.equal(k.code, 0, k.stderr);
  }
  writeFileSync(join(dir, 'note.amp'), 'already here');
  const r = await runCli(
    [
      'envelope',
      'seal',
      '--from',
      join(dir, 'a.key'),
      '--to',
      join(dir, 'b.json'),
      '--in',
      '-',
      '--out',
      join(dir, 'note.amp'),
    ],
    { env, input: 'hello' },
  );
  assertOneLine(r, 'ERR_OUTPUT_EXISTS', /note\.amp \(--out\) already exists; not overwriting it/);
});

/** A 1 MiB tmpfs, filled up, or undefined where mounting is not allowed here. */
function fullDisk(): { dir: string; release(): void } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const dir = tempDir('full');
  if (spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir]).status !== 0)
    return undefined;
  spawnSync('dd', ['if=/dev/zero', `of=${join(dir, 'fill')}`, 'bs=64k'], { stdio: 'ignore' });
  return {
    dir,
    release() {
      spawnSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

test('a full disk: one line naming the data directory that cannot be written', async (t) => {
  const disk = fullDisk();
  if (disk === undefined) {
    t.skip('mounting a tmpfs is not allowed here');
    return;
  }
  try {
    const r = await runCli(['serve'], {
      env: { ...BASE, AFTERSMTP_DATA_DIR: join(disk.dir, 'data') },
    });
    // The data directory is probed (a file written and synced) before anything is made in it.
    assertOneLine(r, 'ERR_DATA_DIR', /no space left on the file system/);
    assert.match(r.stderr, new RegExp(`${disk.dir}/data \\(AFTERSMTP_DATA_DIR\\)`));
  } finally {
    disk.release();
  }
});

test('a gateway that is down: ERR_GATEWAY_UNREACHABLE names the address, in words', async () => {
  const r = await runCli(
    [
      'resolve',
      'did:aftersmtp:example.org:alice',
      '--gateway',
      '127.0.0.1:1',
      '--gateway-spki',
      'sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=',
      '--log-key',
      'example.org/aftersmtp-ledger/v1+67538a6a+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs',
      '--state',
      join(tempDir('env'), 'state.json'),
    ],
    { env: {} },
  );
  assertOneLine(
    r,
    'ERR_GATEWAY_UNREACHABLE',
    /cannot reach 127\.0\.0\.1:1: connection refused \[ECONNREFUSED\]/,
  );
});
