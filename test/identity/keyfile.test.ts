// Key files: round trips for both suites and every rejection (wrong passphrase, truncation,
// bit flips, oversize, version, hostile KDF parameters), plus a fast-check property.
import { strict as assert } from 'node:assert';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { AfterSmtpError } from '../../src/errors.js';
import {
  decodeKeyFile,
  encodeKeyFile,
  generateIdentity,
  readKeyFile,
  writeKeyFile,
  type SecretKeySet,
} from '../../src/identity/index.js';
import { verifySignature } from '../../src/identity/signature.js';

const FAST = { kdf: { log2N: 14, r: 8, p: 1 } };
const PASS = 'correct horse battery staple';
const classic = generateIdentity(
  'did:aftersmtp:example.com:alice',
  'classic-v1',
  1_700_000_000_000,
);
const hybrid = generateIdentity('did:aftersmtp:example.com:bob', 'hybrid-v1', 1_700_000_000_000);
const dir = await mkdtemp(join(tmpdir(), 'aftersmtp-keyfile-'));
after(() => rm(dir, { recursive: true, force: true }));
const classicFile = await encodeKeyFile(classic, PASS, FAST);

const isTyped = (code?: string) => (err: unknown) =>
  err instanceof AfterSmtpError && (code === undefined || err.code === code);

/** Offset of the log2N byte in a file for `keys` (see keyfile.ts header layout). */
function kdfOffset(keys: SecretKeySet): number {
  return 8 + 2 + 4 + Buffer.byteLength(keys.did) + 4 + keys.suite.length + 8 + 4 + 'scrypt'.length;
}

function sameKeys(a: SecretKeySet, b: SecretKeySet): void {
  assert.deepEqual(a.record, b.record);
  const t = Buffer.from('check');
  verifySignature(a.suite, a.record.signingPublicKeys, t, 'test', b.sign(t, 'test'), 'E');
}

describe('key file', () => {
  for (const keys of [classic, hybrid]) {
    it(`${keys.suite}: round trips through a file (mode 0600, no overwrite)`, async () => {
      const path = join(dir, `${keys.suite}.key`);
      await writeKeyFile(path, keys, PASS, FAST);
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      sameKeys(keys, await readKeyFile(path, PASS));
      await assert.rejects(writeKeyFile(path, keys, PASS, FAST), isTyped('ERR_KEYFILE_IO_EXISTS'));
      await writeKeyFile(path, keys, PASS, { ...FAST, overwrite: true });
    });
  }
  it('uses N=2^17 r=8 p=1 by default', async () => {
    const bytes = await encodeKeyFile(classic, PASS);
    const o = kdfOffset(classic);
    assert.deepEqual([bytes[o], bytes.readUInt32BE(o + 1), bytes.readUInt32BE(o + 5)], [17, 8, 1]);
    sameKeys(classic, await decodeKeyFile(bytes, PASS));
  });
  it('normalises a string passphrase to NFC', async () => {
    const bytes = await encodeKeyFile(classic, 'caf\u00e9', FAST);
    sameKeys(classic, await decodeKeyFile(bytes, 'cafe\u0301'));
  });
  it('refuses an empty passphrase when writing', async () => {
    await assert.rejects(encodeKeyFile(classic, '', FAST), isTyped('ERR_KEYFILE_PASSPHRASE'));
  });
  it('rejects a wrong passphrase', async () => {
    await assert.rejects(decodeKeyFile(classicFile, 'wrong'), isTyped('ERR_KEYFILE_PASSPHRASE'));
  });
  it('rejects every truncation', async () => {
    for (let n = 0; n < classicFile.length; n += 7) {
      await assert.rejects(
        decodeKeyFile(classicFile.subarray(0, n), PASS),
        isTyped('ERR_KEYFILE_FORMAT'),
      );
    }
  });
  it('rejects trailing bytes', async () => {
    await assert.rejects(
      decodeKeyFile(Buffer.concat([classicFile, Buffer.of(0)]), PASS),
      isTyped('ERR_KEYFILE_FORMAT'),
    );
  });
  it('rejects a bit flip in the header (authenticated as aad) or the ciphertext', async () => {
    for (const i of [
      kdfOffset(classic) + 12,
      20,
      classicFile.length - 1,
      classicFile.length - 40,
    ]) {
      const b = Buffer.from(classicFile);
      b[i] = (b[i] as number) ^ 0x01;
      await assert.rejects(decodeKeyFile(b, PASS), isTyped());
    }
  });
  it('rejects a bad magic and an unknown version', async () => {
    const m = Buffer.from(classicFile);
    m[0] = 0x58;
    await assert.rejects(decodeKeyFile(m, PASS), isTyped('ERR_KEYFILE_FORMAT'));
    const v = Buffer.from(classicFile);
    v.writeUInt16BE(2, 8);
    await assert.rejects(decodeKeyFile(v, PASS), isTyped('ERR_KEYFILE_VERSION'));
  });
  it('rejects an oversized file before reading it all', async () => {
    await assert.rejects(decodeKeyFile(Buffer.alloc(4097), PASS), isTyped('ERR_KEYFILE_TOO_LARGE'));
    const path = join(dir, 'big.key');
    await writeFile(path, Buffer.concat([classicFile, Buffer.alloc(5000)]));
    await assert.rejects(readKeyFile(path, PASS), isTyped('ERR_KEYFILE_TOO_LARGE'));
    await assert.rejects(readKeyFile(join(dir, 'missing.key'), PASS), isTyped('ERR_KEYFILE_IO'));
  });
  it('bounds hostile KDF parameters before running scrypt', async () => {
    const o = kdfOffset(classic);
    const hostile: [number, number, number][] = [
      [30, 8, 1], // 2^30 * 8 * 128 bytes = 1 TiB
      [21, 8, 1],
      [20, 16, 1], // 2 GiB
      [17, 8, 16], // too much CPU
      [13, 8, 1], // too weak
      [17, 0, 1],
      [17, 8, 0],
      [17, 0xffffffff, 0xffffffff],
    ];
    for (const [log2N, r, p] of hostile) {
      const b = Buffer.from(classicFile);
      b[o] = log2N;
      b.writeUInt32BE(r, o + 1);
      b.writeUInt32BE(p, o + 5);
      const started = Date.now();
      await assert.rejects(
        decodeKeyFile(b, PASS),
        isTyped('ERR_KEYFILE_KDF'),
        `${log2N}/${r}/${p}`,
      );
      assert.ok(Date.now() - started < 200, 'rejected without running the KDF');
    }
    await assert.rejects(
      encodeKeyFile(classic, PASS, { kdf: { log2N: 25, r: 8, p: 1 } }),
      isTyped('ERR_KEYFILE_KDF'),
    );
  });
  it('property: mutated or random bytes always give a typed error', async () => {
    const mutated = fc.oneof(
      fc.uint8Array({ maxLength: 5000 }),
      fc.nat({ max: classicFile.length - 1 }).map((n) => classicFile.subarray(0, n)),
      fc
        .tuple(fc.nat({ max: classicFile.length - 1 }), fc.integer({ min: 0, max: 7 }))
        .map(([i, bit]) => {
          const b = Buffer.from(classicFile);
          b[i] = (b[i] as number) ^ (1 << bit);
          return b;
        }),
      fc
        .tuple(
          fc.nat({ max: classicFile.length - 4 }),
          fc.constantFrom(0xffffffff, 0x7fffffff, 5000, 0),
        )
        .map(([i, len]) => {
          const b = Buffer.from(classicFile);
          b.writeUInt32BE(len, i);
          return b;
        }),
    );
    await fc.assert(
      fc.asyncProperty(mutated, async (bytes) => {
        fc.pre(!Buffer.from(bytes).equals(classicFile));
        await assert.rejects(decodeKeyFile(bytes, PASS), isTyped());
      }),
      { numRuns: 60 },
    );
  });
});
