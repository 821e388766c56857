// Key records: key id derivation, signatures per suite, the JSON record file and its strict loader.
import { strict as assert } from 'node:assert';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { AfterSmtpError } from '../../src/errors.js';
import { beginWork, workAlone } from '../../src/workload.js';
import {
  computeKeyId,
  formatPublicRecord,
  generateIdentity,
  parsePublicRecord,
  publicRecordToJson,
  readPublicRecordFile,
  verifySignature,
  writePublicRecordFile,
  type SuiteId,
} from '../../src/identity/index.js';
import { lp } from '../../src/identity/lp.js';
import { sha256 } from '../../src/native/index.js';

const classic = generateIdentity(
  'did:aftersmtp:example.com:alice',
  'classic-v1',
  1_700_000_000_000,
);
const hybrid = generateIdentity('did:aftersmtp:example.com:bob', 'hybrid-v1', 1_700_000_000_000);
const dir = await mkdtemp(join(tmpdir(), 'aftersmtp-keys-'));
after(() => rm(dir, { recursive: true, force: true }));

const isTyped = (code: string) => (err: unknown) =>
  err instanceof AfterSmtpError && err.code === code;

describe('key id', () => {
  it('is the first 16 bytes of SHA-256 over lp(label, suite, kem, ed25519)', () => {
    const r = classic.record;
    const want = sha256(
      lp('aftersmtp/identity/v1/key-id', 'classic-v1', r.kemPublicKey, r.signingPublicKeys.ed25519),
    ).subarray(0, 16);
    assert.deepEqual(r.keyId, want);
  });
  it('covers the ML-DSA-65 key for hybrid-v1', () => {
    const r = hybrid.record;
    const mldsa = r.signingPublicKeys.mldsa65 as Buffer;
    assert.equal(mldsa.length, 1952);
    assert.equal(r.kemPublicKey.length, 1216);
    const want = sha256(
      lp(
        'aftersmtp/identity/v1/key-id',
        'hybrid-v1',
        r.kemPublicKey,
        r.signingPublicKeys.ed25519,
        mldsa,
      ),
    ).subarray(0, 16);
    assert.deepEqual(r.keyId, want);
    assert.notDeepEqual(
      computeKeyId('hybrid-v1', r.kemPublicKey, {
        ...r.signingPublicKeys,
        mldsa65: Buffer.alloc(1952),
      }),
      r.keyId,
    );
  });
});

describe('signatures', () => {
  const t = Buffer.from('transcript');
  for (const id of [classic, hybrid]) {
    it(`${id.suite}: sign/verify, and a different purpose or transcript fails`, () => {
      const sig = id.sign(t, 'test/purpose');
      verifySignature(id.suite, id.record.signingPublicKeys, t, 'test/purpose', sig, 'ERR_X');
      assert.throws(
        () => verifySignature(id.suite, id.record.signingPublicKeys, t, 'test/other', sig, 'ERR_X'),
        isTyped('ERR_X'),
      );
      assert.throws(
        () =>
          verifySignature(
            id.suite,
            id.record.signingPublicKeys,
            Buffer.from('x'),
            'test/purpose',
            sig,
            'ERR_X',
          ),
        isTyped('ERR_X'),
      );
    });
  }
  for (const id of [classic, hybrid]) {
    it(`${id.suite}: signAsync gives the signature sign gives, alone or not (ML-DSA on the thread pool)`, async () => {
      const rnd = Buffer.alloc(32, 7); // deterministic ML-DSA randomness: the two must be equal
      const sync = id.sign(t, 'test/purpose', rnd);
      assert.ok(workAlone());
      assert.deepEqual(await id.signAsync(t, 'test/purpose', rnd), sync);
      // Two messages in flight: the Ed25519 half goes to the thread pool too.
      const others = [beginWork(), beginWork()];
      try {
        assert.ok(!workAlone());
        assert.deepEqual(await id.signAsync(t, 'test/purpose', rnd), sync);
      } finally {
        for (const done of others) done();
      }
      const hedged = await id.signAsync(t, 'test/purpose');
      verifySignature(id.suite, id.record.signingPublicKeys, t, 'test/purpose', hedged, 'ERR_X');
      assert.equal(hedged.mldsa65 === undefined, id.suite === 'classic-v1');
      assert.throws(
        () =>
          verifySignature(id.suite, id.record.signingPublicKeys, t, 'test/other', hedged, 'ERR_X'),
        isTyped('ERR_X'),
      );
    });
  }
  it(
    'hybrid-v1: the pool thread that signs is in SCHED_BATCH, the event loop is not',
    { skip: process.platform !== 'linux' && 'Linux scheduling classes' },
    async () => {
      await Promise.all(Array.from({ length: 8 }, () => hybrid.signAsync(t, 'test/purpose')));
      // /proc/<pid>/task/<tid>/stat: field 41 is the scheduling policy (0 normal, 3 batch).
      const policyOf = (tid: string): number => {
        const stat = readFileSync(`/proc/${process.pid}/task/${tid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
      };
      const policies = readdirSync(`/proc/${process.pid}/task`).map(policyOf);
      assert.equal(policyOf(String(process.pid)), 0, 'the event loop stays SCHED_OTHER');
      assert.ok(policies.includes(3), `no SCHED_BATCH thread among ${policies.join(',')}`);
    },
  );
  it('hybrid-v1: each half of the composite signature is required', () => {
    const sig = hybrid.sign(t, 'p');
    const keys = hybrid.record.signingPublicKeys;
    const badEd = Buffer.from(sig.ed25519);
    badEd[5] = (badEd[5] as number) ^ 1;
    const badMl = Buffer.from(sig.mldsa65 as Buffer);
    badMl[100] = (badMl[100] as number) ^ 1;
    assert.throws(
      () => verifySignature('hybrid-v1', keys, t, 'p', { ...sig, ed25519: badEd }, 'E'),
      /Ed25519/,
    );
    assert.throws(
      () => verifySignature('hybrid-v1', keys, t, 'p', { ...sig, mldsa65: badMl }, 'E'),
      /ML-DSA-65/,
    );
    assert.throws(
      () => verifySignature('hybrid-v1', keys, t, 'p', { ed25519: sig.ed25519 }, 'E'),
      /ML-DSA-65/,
    );
    // a classic verifier must not accept the Ed25519 half alone as a hybrid record's signature
    assert.throws(
      () => verifySignature('hybrid-v1', { ed25519: keys.ed25519 }, t, 'p', sig, 'E'),
      /ML-DSA-65/,
    );
  });
});

describe('public record file', () => {
  for (const id of [classic, hybrid]) {
    it(`${id.suite}: round trips through JSON and a file`, async () => {
      assert.deepEqual(parsePublicRecord(formatPublicRecord(id.record)), id.record);
      const path = join(dir, `${id.suite}.json`);
      await writePublicRecordFile(path, id.record);
      assert.deepEqual(await readPublicRecordFile(path), id.record);
      await assert.rejects(
        writePublicRecordFile(path, id.record),
        isTyped('ERR_KEY_RECORD_EXISTS'),
      );
    });
  }

  const base = (suite: SuiteId) =>
    publicRecordToJson((suite === 'classic-v1' ? classic : hybrid).record);
  const mutations: [string, SuiteId, (j: Record<string, unknown>) => unknown][] = [
    ['an extra member', 'classic-v1', (j) => ({ ...j, extra: 1 })],
    ['a missing member', 'classic-v1', ({ keyId: _k, ...j }) => j],
    ['a wrong format', 'classic-v1', (j) => ({ ...j, format: 'v2' })],
    ['an unknown suite', 'classic-v1', (j) => ({ ...j, suite: 'classic-v2' })],
    ['a bad DID', 'classic-v1', (j) => ({ ...j, did: 'did:aftersmtp:Example.com:a' })],
    [
      'a short KEM key',
      'classic-v1',
      (j) => ({ ...j, kemPublicKey: Buffer.alloc(31).toString('base64') }),
    ],
    ['a wrong key id', 'classic-v1', (j) => ({ ...j, keyId: Buffer.alloc(16).toString('base64') })],
    ['a short key id', 'classic-v1', (j) => ({ ...j, keyId: Buffer.alloc(15).toString('base64') })],
    ['non-canonical base64', 'classic-v1', (j) => ({ ...j, keyId: `${j.keyId as string}\n` })],
    [
      'unpadded base64',
      'classic-v1',
      (j) => ({ ...j, keyId: (j.keyId as string).replace(/=+$/, '') }),
    ],
    ['a string createdAt', 'classic-v1', (j) => ({ ...j, createdAt: '1700000000000' })],
    ['a negative createdAt', 'classic-v1', (j) => ({ ...j, createdAt: -1 })],
    ['a fractional createdAt', 'classic-v1', (j) => ({ ...j, createdAt: 1.5 })],
    [
      'an ML-DSA key on a classic record',
      'classic-v1',
      (j) => ({ ...j, signingPublicKeys: { ...(j.signingPublicKeys as object), mldsa65: 'AAAA' } }),
    ],
    [
      'a hybrid record without ML-DSA',
      'hybrid-v1',
      (j) => ({
        ...j,
        signingPublicKeys: { ed25519: (j.signingPublicKeys as { ed25519: string }).ed25519 },
      }),
    ],
    ['a hybrid record relabelled classic', 'hybrid-v1', (j) => ({ ...j, suite: 'classic-v1' })],
    ['an array', 'classic-v1', () => []],
    ['null', 'classic-v1', () => null],
  ];
  for (const [what, suite, mutate] of mutations) {
    it(`rejects ${what}`, () => {
      assert.throws(
        () => parsePublicRecord(JSON.stringify(mutate(base(suite)))),
        isTyped('ERR_KEY_RECORD'),
      );
    });
  }
  it('rejects invalid UTF-8, non-JSON and oversized input', async () => {
    assert.throws(
      () => parsePublicRecord(Buffer.from([0x7b, 0xff, 0x7d])),
      isTyped('ERR_KEY_RECORD'),
    );
    assert.throws(() => parsePublicRecord('{'), isTyped('ERR_KEY_RECORD'));
    const big = join(dir, 'big.json');
    await writeFile(big, Buffer.alloc(17 * 1024, 0x20));
    await assert.rejects(readPublicRecordFile(big), isTyped('ERR_KEY_RECORD'));
    await assert.rejects(
      readPublicRecordFile(join(dir, 'missing.json')),
      isTyped('ERR_KEY_RECORD'),
    );
    await assert.rejects(readPublicRecordFile(dir), isTyped('ERR_KEY_RECORD'));
  });

  it('property: any bytes give a record or ERR_KEY_RECORD, never another exception', () => {
    const valid = Buffer.from(formatPublicRecord(hybrid.record));
    const mutated = fc.oneof(
      fc.uint8Array({ maxLength: 4096 }),
      fc.nat({ max: valid.length }).map((n) => valid.subarray(0, n)),
      fc
        .tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 7 }))
        .map(([i, bit]) => {
          const b = Buffer.from(valid);
          b[i] = (b[i] as number) ^ (1 << bit);
          return b;
        }),
      fc.json().map((s) => Buffer.from(s)),
    );
    fc.assert(
      fc.property(mutated, (bytes) => {
        try {
          parsePublicRecord(bytes);
        } catch (err) {
          assert.ok(err instanceof AfterSmtpError && err.code === 'ERR_KEY_RECORD', String(err));
        }
      }),
      { numRuns: 400 },
    );
  });
});
