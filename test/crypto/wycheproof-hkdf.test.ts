/**
 * HKDF-SHA256 (RFC 5869) known-answer tests through the native core.
 * Vectors: Project Wycheproof testvectors_v1/hkdf_sha256_test.json (C2SP/wycheproof at
 * dac1dd4729fd1f8dd9e1e9f3dce51d783da6c166), read in place from ../shared/vectors.
 *
 * 'valid' cases must give exactly okm (including empty salts and the maximal 255*32-byte
 * output). 'invalid' cases ask for more than 255*HashLen bytes (RFC 5869 §2.3): an out-of-range
 * number rather than a wrongly sized input, so the core refuses it with ERR_CRYPTO_PARAM.
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

interface HkdfCase extends WycheproofCase {
  ikm: string;
  salt: string;
  info: string;
  size: number;
  okm: string;
}
interface HkdfGroup {
  type: string;
  keySize: number;
  tests: HkdfCase[];
}

const FILE = 'hkdf_sha256_test.json';

test(`Wycheproof ${FILE}: every case`, (t) => {
  const file = loadVectors<WycheproofFile<HkdfGroup>>(`wycheproof/${FILE}`);
  const log = new CaseLog();
  for (const group of file.testGroups) {
    for (const c of group.tests) {
      const id = caseId(FILE, c);
      const args = [hex(c.ikm), hex(c.salt), hex(c.info), c.size] as const;
      if (c.result === 'valid') {
        const okm = log.run(id, 'hkdfSha256', () => native.hkdfSha256(...args));
        if (okm) log.bytes(id, 'okm', okm, hex(c.okm));
      } else {
        log.throws(id, 'hkdfSha256', 'ERR_CRYPTO_PARAM', () => native.hkdfSha256(...args));
      }
      log.count(c.result);
    }
  }
  t.diagnostic(`${FILE}: ${log.total} cases (${log.summary()})`);
  assert.equal(log.total, file.numberOfTests, 'every case in the file was checked');
  assert.ok((log.counts.get('valid') ?? 0) > 0);
  assert.ok((log.counts.get('invalid') ?? 0) > 0);
  assert.deepEqual(log.failures, []);
});

test('SHA-256: FIPS 180-4 example digests', () => {
  // FIPS 180-4 / NIST CSRC examples: "abc" and the empty string.
  assert.equal(
    native.sha256(Buffer.from('abc')).toString('hex'),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
  );
  assert.equal(
    native.sha256(Buffer.alloc(0)).toString('hex'),
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855',
  );
});
