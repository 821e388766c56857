/**
 * AEAD known-answer tests (ChaCha20-Poly1305, RFC 8439; AES-256-GCM, NIST SP 800-38D) through
 * the native core. Vectors: Project Wycheproof testvectors_v1/chacha20_poly1305_test.json and
 * aes_gcm_test.json (C2SP/wycheproof at dac1dd4729fd1f8dd9e1e9f3dce51d783da6c166), read in
 * place from ../shared/vectors.
 *
 * The core supports exactly 256-bit keys, 96-bit nonces and 128-bit tags. Cases with those
 * parameters: 'valid' must seal to exactly ct||tag and open back to msg; 'invalid' (modified
 * tags) must fail to open with ERR_CRYPTO_AUTH. Every other case (AES-GCM with 128/192-bit keys
 * or non-96-bit IVs, including the zero-length IV ones; ChaCha20-Poly1305 nonces that are not
 * 12 bytes) must be refused by both seal and open with ERR_CRYPTO_LENGTH.
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

interface AeadCase extends WycheproofCase {
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
}
interface AeadGroup {
  type: string;
  keySize: number;
  ivSize: number;
  tagSize: number;
  tests: AeadCase[];
}

type Alg = 'chacha20-poly1305' | 'aes-256-gcm';

function checkFile(fileName: string, alg: Alg): CaseLog {
  const file = loadVectors<WycheproofFile<AeadGroup>>(`wycheproof/${fileName}`);
  const log = new CaseLog();
  for (const group of file.testGroups) {
    assert.equal(group.tagSize, 128, 'every group uses 128-bit tags');
    const supported = group.keySize === 256 && group.ivSize === 96;
    for (const c of group.tests) {
      const id = `${caseId(fileName, c)} key${group.keySize}/iv${group.ivSize}`;
      const [key, iv, aad, msg] = [hex(c.key), hex(c.iv), hex(c.aad), hex(c.msg)];
      const ctAndTag = Buffer.concat([hex(c.ct), hex(c.tag)]);
      assert.equal(key.length * 8, group.keySize);
      assert.equal(iv.length * 8, group.ivSize);
      if (!supported) {
        log.throws(id, 'aeadSeal (unsupported size)', 'ERR_CRYPTO_LENGTH', () =>
          native.aeadSeal(alg, key, iv, aad, msg),
        );
        log.throws(id, 'aeadOpen (unsupported size)', 'ERR_CRYPTO_LENGTH', () =>
          native.aeadOpen(alg, key, iv, aad, ctAndTag),
        );
        log.count('unsupported-refused');
      } else if (c.result === 'valid') {
        const sealed = log.run(id, 'aeadSeal', () => native.aeadSeal(alg, key, iv, aad, msg));
        if (sealed) log.bytes(id, 'aeadSeal', sealed, ctAndTag);
        const opened = log.run(id, 'aeadOpen', () => native.aeadOpen(alg, key, iv, aad, ctAndTag));
        if (opened) log.bytes(id, 'aeadOpen', opened, msg);
        log.count('valid');
      } else {
        log.throws(id, 'aeadOpen', 'ERR_CRYPTO_AUTH', () =>
          native.aeadOpen(alg, key, iv, aad, ctAndTag),
        );
        log.count(c.result);
      }
    }
  }
  assert.equal(log.total, file.numberOfTests, `every case in ${fileName} was checked`);
  return log;
}

test('Wycheproof chacha20_poly1305_test.json: every case', (t) => {
  const log = checkFile('chacha20_poly1305_test.json', 'chacha20-poly1305');
  t.diagnostic(`chacha20_poly1305_test.json: ${log.total} cases (${log.summary()})`);
  assert.ok((log.counts.get('valid') ?? 0) > 0);
  assert.ok((log.counts.get('invalid') ?? 0) > 0);
  assert.ok((log.counts.get('unsupported-refused') ?? 0) > 0);
  assert.deepEqual(log.failures, []);
});

test('Wycheproof aes_gcm_test.json: every case', (t) => {
  const log = checkFile('aes_gcm_test.json', 'aes-256-gcm');
  t.diagnostic(`aes_gcm_test.json: ${log.total} cases (${log.summary()})`);
  assert.ok((log.counts.get('valid') ?? 0) > 0);
  assert.ok((log.counts.get('invalid') ?? 0) > 0);
  assert.ok((log.counts.get('unsupported-refused') ?? 0) > 0);
  assert.deepEqual(log.failures, []);
});

test('AEAD: an unknown algorithm name is refused with ERR_CRYPTO_PARAM', () => {
  const k = Buffer.alloc(32);
  const n = Buffer.alloc(12);
  const alg = 'aes-128-gcm' as unknown as Alg;
  assert.throws(() => native.aeadSeal(alg, k, n, Buffer.alloc(0), Buffer.alloc(1)), {
    code: 'ERR_CRYPTO_PARAM',
  });
  assert.throws(() => native.aeadOpen(alg, k, n, Buffer.alloc(0), Buffer.alloc(17)), {
    code: 'ERR_CRYPTO_PARAM',
  });
});

test('AEAD: a ciphertext shorter than the tag is refused with ERR_CRYPTO_LENGTH', () => {
  for (const alg of ['chacha20-poly1305', 'aes-256-gcm'] as const) {
    for (const n of [0, 1, 15]) {
      assert.throws(
        () =>
          native.aeadOpen(
            alg,
            Buffer.alloc(32),
            Buffer.alloc(12),
            Buffer.alloc(0),
            Buffer.alloc(n),
          ),
        { code: 'ERR_CRYPTO_LENGTH' },
      );
    }
  }
});
