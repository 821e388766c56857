/**
 * X-Wing KEM (draft-connolly-cfrg-xwing-kem: ML-KEM-768 + X25519) known-answer tests through
 * the native core. Vectors: the draft's reference specification, spec/test-vectors.json of
 * dconnolly/draft-connolly-cfrg-xwing-kem at commit 9b6ce9e614811dba8d46841052f3883cbc4c1a65,
 * read in place from ../shared/vectors/xwing/test-vectors.json.
 *
 * Each vector gives the 32-byte seed (= sk), the 1216-byte public key, the 64-byte
 * encapsulation seed eseed, the 1120-byte ciphertext and the 32-byte shared secret.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as native from '../../src/native/index.js';
import { CaseLog, hex, loadVectors } from './helpers.js';

interface XWingVector {
  seed: string;
  sk: string;
  pk: string;
  eseed: string;
  ct: string;
  ss: string;
}

test('X-Wing draft vectors: keygen, encapsulate, decapsulate', (t) => {
  const vectors = loadVectors<XWingVector[]>('xwing/test-vectors.json');
  const log = new CaseLog();
  vectors.forEach((v, i) => {
    const id = `xwing/test-vectors.json #${i}`;
    const key = log.run(id, 'XWingKey.fromSeed', () => native.XWingKey.fromSeed(hex(v.seed)));
    if (key) {
      log.bytes(id, 'publicKey', key.publicKey(), hex(v.pk));
      log.bytes(id, 'exportSeed', key.exportSeed(), hex(v.sk));
      const ss = log.run(id, 'decapsulate', () => key.decapsulate(hex(v.ct)));
      if (ss) log.bytes(id, 'decapsulated shared secret', ss, hex(v.ss));
    }
    const enc = log.run(id, 'xwingEncapsulate', () =>
      native.xwingEncapsulate(hex(v.pk), hex(v.eseed)),
    );
    if (enc) {
      log.bytes(id, 'ciphertext', enc.ciphertext, hex(v.ct));
      log.bytes(id, 'encapsulated shared secret', enc.sharedSecret, hex(v.ss));
    }
    log.count('valid');
  });
  t.diagnostic(`xwing/test-vectors.json: ${log.total} vectors`);
  assert.ok(log.total > 0);
  assert.equal(log.total, vectors.length);
  assert.deepEqual(log.failures, []);
});

test('X-Wing: inputs of the wrong size are refused with ERR_CRYPTO_LENGTH', () => {
  const key = native.XWingKey.generate();
  const pk = key.publicKey();
  assert.equal(pk.length, 1216);
  assert.throws(() => native.XWingKey.fromSeed(Buffer.alloc(31)), { code: 'ERR_CRYPTO_LENGTH' });
  assert.throws(() => native.xwingEncapsulate(pk.subarray(1)), { code: 'ERR_CRYPTO_LENGTH' });
  assert.throws(() => native.xwingEncapsulate(pk, Buffer.alloc(32)), { code: 'ERR_CRYPTO_LENGTH' });
  assert.throws(() => key.decapsulate(Buffer.alloc(1119)), { code: 'ERR_CRYPTO_LENGTH' });
});
