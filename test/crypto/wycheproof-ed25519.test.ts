/**
 * Ed25519 (RFC 8032) verification known-answer tests through the native core.
 * Vectors: Project Wycheproof testvectors_v1/ed25519_test.json (C2SP/wycheproof at
 * dac1dd4729fd1f8dd9e1e9f3dce51d783da6c166), read in place from ../shared/vectors.
 *
 * 'valid' signatures must verify; every 'invalid' one (malleable S >= L, non-canonical
 * encodings, truncated or padded signatures, forgeries with edge-case values) must return
 * false, never throw. The file has no 'acceptable' cases.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as native from '../../src/native/index.js';
import {
  CaseLog,
  caseId,
  hex,
  loadVectors,
  type WycheproofCase,
  type WycheproofFile,
} from './helpers.js';

interface EddsaCase extends WycheproofCase {
  msg: string;
  sig: string;
}
interface EddsaGroup {
  type: string;
  publicKey: { curve: string; keySize: number; pk: string };
  tests: EddsaCase[];
}

const FILE = 'ed25519_test.json';

test(`Wycheproof ${FILE}: every case`, (t) => {
  const file = loadVectors<WycheproofFile<EddsaGroup>>(`wycheproof/${FILE}`);
  const log = new CaseLog();
  for (const group of file.testGroups) {
    assert.equal(group.publicKey.curve, 'edwards25519');
    const pk = hex(group.publicKey.pk);
    for (const c of group.tests) {
      const id = caseId(FILE, c);
      const got = log.run(id, 'ed25519Verify', () =>
        native.ed25519Verify(pk, hex(c.msg), hex(c.sig)),
      );
      if (got !== undefined) log.equal(id, 'ed25519Verify', got, c.result === 'valid');
      log.count(c.result);
    }
  }
  t.diagnostic(`${FILE}: ${log.total} cases (${log.summary()})`);
  assert.equal(log.total, file.numberOfTests, 'every case in the file was checked');
  assert.ok((log.counts.get('valid') ?? 0) > 0);
  assert.ok((log.counts.get('invalid') ?? 0) > 0);
  assert.equal(log.counts.get('acceptable'), undefined, 'no acceptable cases to decide on');
  assert.deepEqual(log.failures, []);
});

test('Ed25519: malformed public keys and signatures verify false, never throw', () => {
  const key = native.Ed25519Key.fromSeed(Buffer.alloc(32, 7));
  const msg = Buffer.from('message');
  const sig = key.sign(msg);
  const pk = key.publicKey();
  assert.equal(native.ed25519Verify(pk, msg, sig), true);
  for (const [p, s] of [
    [pk.subarray(0, 31), sig],
    [Buffer.concat([pk, Buffer.alloc(1)]), sig],
    [pk, sig.subarray(0, 63)],
    [pk, Buffer.concat([sig, Buffer.alloc(1)])],
    [Buffer.alloc(0), Buffer.alloc(0)],
  ] as const) {
    assert.equal(native.ed25519Verify(p, msg, s), false);
  }
  assert.throws(() => native.Ed25519Key.fromSeed(Buffer.alloc(31)), { code: 'ERR_CRYPTO_LENGTH' });
});
