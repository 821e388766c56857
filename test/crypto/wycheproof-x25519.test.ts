/**
 * X25519 (RFC 7748) known-answer tests through the native core.
 * Vectors: Project Wycheproof testvectors_v1/x25519_test.json (C2SP/wycheproof at
 * dac1dd4729fd1f8dd9e1e9f3dce51d783da6c166), read in place from ../shared/vectors.
 *
 * Every case is checked. 'valid' cases must give the expected shared secret. For the
 * 'acceptable' cases we choose, and assert, this behaviour:
 * - an all-zero shared secret (low-order public key) is refused with ERR_CRYPTO_KEY, the check
 *   of RFC 7748 §6.1, so a peer cannot force a known key;
 * - every other acceptable case (points on the twist, non-canonical u-coordinates >= p, other
 *   special public keys) is computed exactly as RFC 7748 §5 defines it, as §7 recommends.
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

interface XdhCase extends WycheproofCase {
  public: string;
  private: string;
  shared: string;
}
interface XdhGroup {
  type: string;
  curve: string;
  tests: XdhCase[];
}

const FILE = 'x25519_test.json';

test(`Wycheproof ${FILE}: every case`, (t) => {
  const file = loadVectors<WycheproofFile<XdhGroup>>(`wycheproof/${FILE}`);
  const log = new CaseLog();
  for (const group of file.testGroups) {
    assert.equal(group.curve, 'curve25519');
    for (const c of group.tests) {
      const id = caseId(FILE, c);
      const shared = hex(c.shared);
      const key = log.run(id, 'X25519Key.fromSecret', () =>
        native.X25519Key.fromSecret(hex(c.private)),
      );
      if (!key) continue;
      const allZero = shared.every((b) => b === 0);
      if (allZero) {
        // Only 'acceptable' cases have an all-zero output; we refuse them (RFC 7748 §6.1).
        log.equal(id, 'result of an all-zero case', c.result, 'acceptable');
        log.throws(id, 'diffieHellman', 'ERR_CRYPTO_KEY', () => key.diffieHellman(hex(c.public)));
        log.count('refused-zero-shared');
      } else {
        const got = log.run(id, 'diffieHellman', () => key.diffieHellman(hex(c.public)));
        if (got) log.bytes(id, 'shared secret', got, shared);
        log.count(c.result);
      }
    }
  }
  t.diagnostic(`${FILE}: ${log.total} cases (${log.summary()})`);
  assert.equal(log.total, file.numberOfTests, 'every case in the file was checked');
  assert.ok((log.counts.get('valid') ?? 0) > 0);
  assert.ok((log.counts.get('acceptable') ?? 0) > 0);
  assert.ok((log.counts.get('refused-zero-shared') ?? 0) > 0);
  assert.deepEqual(log.failures, []);
});

test('X25519: keys and peer values of the wrong size are refused with ERR_CRYPTO_LENGTH', () => {
  const log = new CaseLog();
  for (const n of [0, 31, 33, 64]) {
    log.throws(`secret of ${n} bytes`, 'fromSecret', 'ERR_CRYPTO_LENGTH', () =>
      native.X25519Key.fromSecret(Buffer.alloc(n, 1)),
    );
    const key = native.X25519Key.generate();
    log.throws(`peer of ${n} bytes`, 'diffieHellman', 'ERR_CRYPTO_LENGTH', () =>
      key.diffieHellman(Buffer.alloc(n, 9)),
    );
  }
  assert.deepEqual(log.failures, []);
});
