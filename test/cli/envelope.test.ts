// The envelope from the command line, as an operator uses it: keygen for two users, seal from
// one to the other, open, and the refusals (wrong recipient, truncated or bit-flipped envelope,
// wrong passphrase, a gateway record that did not sign) with exit code 1 and a typed code.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, test } from 'node:test';
import { SecretKeySet, writeKeyFile } from '../../src/identity/index.js';
import { runCli, tempDir } from '../helpers/cli.js';

const PASSPHRASE = { AFTERSMTP_PASSPHRASE: 'correct horse battery staple' };
const dir = tempDir('envelope');
const path = (name: string) => join(dir, name);

async function keygen(did: string, suite: string, name: string): Promise<void> {
  const r = await runCli(
    [
      'keygen',
      '--did',
      did,
      '--suite',
      suite,
      '--out',
      path(`${name}.key`),
      '--record-out',
      path(`${name}.json`),
      '--json',
    ],
    { env: PASSPHRASE },
  );
  assert.equal(r.code, 0, r.stderr);
  assert.equal(JSON.parse(r.stdout).did, did);
}

before(async () => {
  await keygen('did:aftersmtp:example.org:alice', 'hybrid-v1', 'alice');
  await keygen('did:aftersmtp:example.net:bob', 'hybrid-v1', 'bob');
  await keygen('did:aftersmtp:example.net:carol', 'hybrid-v1', 'carol');
  await keygen('did:aftersmtp:example.org:gateway', 'hybrid-v1', 'gateway');
  writeFileSync(path('note.txt'), 'Hello Bob\n');
});

test('keygen refuses to overwrite a key file', async () => {
  const r = await runCli(
    [
      'keygen',
      '--did',
      'did:aftersmtp:example.org:alice',
      '--suite',
      'hybrid-v1',
      '--out',
      path('alice.key'),
    ],
    { env: PASSPHRASE },
  );
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ERR_KEYFILE_IO_EXISTS/);
});

test('keygen without a passphrase and without a terminal is a usage error', async () => {
  const r = await runCli([
    'keygen',
    '--did',
    'did:aftersmtp:example.org:dave',
    '--suite',
    'classic-v1',
    '--out',
    path('dave.key'),
  ]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /AFTERSMTP_PASSPHRASE/);
});

test('seal, then open as the recipient: verified sender, recipients and body', async () => {
  const sealed = await runCli(
    [
      'envelope',
      'seal',
      '--from',
      path('alice.key'),
      '--to',
      path('bob.json'),
      '--subject',
      'hi',
      '--in',
      path('note.txt'),
      '--out',
      path('note.amp'),
      '--gateway-key',
      path('gateway.key'),
      '--json',
    ],
    { env: PASSPHRASE },
  );
  assert.equal(sealed.code, 0, sealed.stderr);
  const opened = await runCli(
    [
      'envelope',
      'open',
      '--key',
      path('bob.key'),
      '--in',
      path('note.amp'),
      '--gateway-record',
      path('gateway.json'),
      '--json',
    ],
    { env: PASSPHRASE },
  );
  assert.equal(opened.code, 0, opened.stderr);
  const m = JSON.parse(opened.stdout);
  assert.equal(m.sender.did, 'did:aftersmtp:example.org:alice');
  assert.equal(m.sender.verified, true);
  assert.deepEqual(
    m.recipients.map((r: { did: string }) => r.did),
    ['did:aftersmtp:example.net:bob'],
  );
  assert.equal(m.subject, 'hi');
  assert.equal(m.body, 'Hello Bob\n');
  assert.equal(m.suite, 'hybrid-v1');
  assert.equal(m.gatewaySignature.did, 'did:aftersmtp:example.org:gateway');
  assert.equal(m.gatewaySignature.verified, true);
});

test('open refuses what it must refuse, with exit code 1 and a typed code', async () => {
  const envelope = readFileSync(path('note.amp'));
  writeFileSync(path('truncated.amp'), envelope.subarray(0, envelope.length - 7));
  // An envelope without a gateway signature: every byte of it is checked by open alone.
  const plain = await runCli(
    [
      'envelope',
      'seal',
      '--from',
      path('alice.key'),
      '--to',
      path('bob.json'),
      '--in',
      path('note.txt'),
      '--out',
      path('plain.amp'),
    ],
    { env: PASSPHRASE },
  );
  assert.equal(plain.code, 0, plain.stderr);
  const plainBytes = readFileSync(path('plain.amp'));
  const flips = [0.1, 0.35, 0.6, 0.85, 1].map((f) =>
    Math.min(plainBytes.length - 1, Math.floor(plainBytes.length * f)),
  );
  for (const [i, at] of flips.entries()) {
    const flipped = Buffer.from(plainBytes);
    flipped[at] = (flipped[at] as number) ^ 0x01;
    writeFileSync(path(`flipped${i}.amp`), flipped);
  }
  const cases: [string[], RegExp][] = [
    [['--key', path('carol.key'), '--in', path('note.amp')], /ERR_ENVELOPE_NO_WRAP/],
    [['--key', path('bob.key'), '--in', path('truncated.amp')], /ERR_ENVELOPE_/],
    ...flips.map((_, i): [string[], RegExp] => [
      ['--key', path('bob.key'), '--in', path(`flipped${i}.amp`)],
      /ERR_ENVELOPE_/,
    ]),
    [
      ['--key', path('bob.key'), '--in', path('note.amp'), '--gateway-record', path('carol.json')],
      /ERR_GATEWAY_/,
    ],
    [['--key', path('bob.key'), '--in', path('note.txt')], /ERR_ENVELOPE_FORMAT/],
  ];
  for (const [args, code] of cases) {
    const r = await runCli(['envelope', 'open', ...args], { env: PASSPHRASE });
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, code);
    assert.doesNotMatch(r.stderr, /internal error|at .*\.js/);
  }
  const wrong = await runCli(
    ['envelope', 'open', '--key', path('bob.key'), '--in', path('note.amp')],
    {
      env: { AFTERSMTP_PASSPHRASE: 'not it' },
    },
  );
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /ERR_KEYFILE_PASSPHRASE/);
});

test('bad key files exit 1 with a typed code, never a crash', async () => {
  const key = readFileSync(path('bob.key'));
  writeFileSync(path('truncated.key'), key.subarray(0, key.length - 9));
  writeFileSync(path('garbage.key'), Buffer.alloc(300, 0x41));
  writeFileSync(path('huge.key'), Buffer.alloc(64 * 1024, 0x41));
  const cases: [string, RegExp][] = [
    ['truncated.key', /ERR_KEYFILE_FORMAT/],
    ['garbage.key', /ERR_KEYFILE_FORMAT/],
    ['huge.key', /ERR_KEYFILE_TOO_LARGE/],
    ['missing.key', /ERR_KEYFILE_IO/],
  ];
  for (const [file, code] of cases) {
    const r = await runCli(['envelope', 'open', '--key', path(file), '--in', path('note.amp')], {
      env: PASSPHRASE,
    });
    assert.equal(r.code, 1, `${file}: ${r.stderr}`);
    assert.match(r.stderr, code);
    assert.doesNotMatch(r.stderr, /internal error/);
  }
});

test('an oversized envelope is refused before it is decoded', async () => {
  writeFileSync(path('huge.amp'), Buffer.alloc(8192, 1));
  const r = await runCli(['envelope', 'open', '--key', path('bob.key'), '--in', path('huge.amp')], {
    env: { ...PASSPHRASE, AFTERSMTP_MAX_ENVELOPE_BYTES: '4096' },
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ERR_ENVELOPE_TOO_LARGE/);
});

test("envelope open --now opens docs/PROTOCOL.md's worked examples, which the clock says expired", async () => {
  for (const suite of ['classic-v1', 'hybrid-v1'] as const) {
    const example = JSON.parse(
      readFileSync(
        fileURLToPath(
          new URL(`../../../test/fixtures/envelope/${suite}-example.json`, import.meta.url),
        ),
        'utf8',
      ),
    ) as Record<string, string | number>;
    const seed = (name: string) => Buffer.from(String(example[name]), 'hex');
    const hybrid = suite === 'hybrid-v1';
    const bob = SecretKeySet.fromSeeds(String(example.bobDid), suite, Number(example.createdAt), {
      kem: seed(hybrid ? 'bobXWingSeed' : 'bobX25519Secret'),
      ed25519: seed('bobEd25519Seed'),
      ...(hybrid ? { mldsa65: seed('bobMlDsa65Seed') } : {}),
    });
    await writeKeyFile(path(`example-${suite}.key`), bob, PASSPHRASE.AFTERSMTP_PASSPHRASE);
    writeFileSync(path(`example-${suite}.amp`), seed('envelope'));
    const args = ['envelope', 'open', '--key', path(`example-${suite}.key`)];
    const expired = await runCli([...args, '--in', path(`example-${suite}.amp`)], {
      env: PASSPHRASE,
    });
    assert.equal(expired.code, 1);
    assert.match(expired.stderr, /ERR_ENVELOPE_EXPIRED/);
    const opened = await runCli(
      [...args, '--in', path(`example-${suite}.amp`), '--now', '2025-01-01T00:00:00Z', '--json'],
      { env: PASSPHRASE },
    );
    assert.equal(opened.code, 0, opened.stderr);
    const j = JSON.parse(opened.stdout) as { subject: string; sender: { did: string } };
    assert.equal(j.subject, 'Hello Bob');
    assert.equal(j.sender.did, example.aliceDid);
    const bad = await runCli(
      [...args, '--in', path(`example-${suite}.amp`), '--now', 'yesterday'],
      { env: PASSPHRASE },
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--now must be an ISO 8601 time/);
  }
});
