/**
 * ML-KEM-768 (FIPS 203) known-answer tests through the native core.
 * Vectors: Project Wycheproof testvectors_v1 (C2SP/wycheproof at
 * dac1dd4729fd1f8dd9e1e9f3dce51d783da6c166), read in place from ../shared/vectors:
 * mlkem_768_keygen_seed_test.json, mlkem_768_encaps_test.json,
 * mlkem_768_semi_expanded_decaps_test.json and mlkem_768_test.json.
 *
 * Refusals we assert: inputs of the wrong size (seed, encapsulation key, expanded decapsulation
 * key, ciphertext) throw ERR_CRYPTO_LENGTH; an encapsulation key that fails the modulus check
 * (FIPS 203 §7.2) or an expanded decapsulation key that fails the hash check (FIPS 203 §7.3)
 * throws ERR_CRYPTO_KEY. Well-sized but wrong ciphertexts are not errors: implicit rejection
 * returns the pseudo-random key the vectors give.
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

const EK_LEN = 1184;
const DK_LEN = 2400;
const CT_LEN = 1088;
const SEED_LEN = 64;

interface Group<C> {
  type: string;
  parameterSet: string;
  tests: C[];
}

function finish(
  t: { diagnostic(msg: string): void },
  name: string,
  log: CaseLog,
  numberOfTests: number,
  mustHave: string[],
): void {
  t.diagnostic(`${name}: ${log.total} cases (${log.summary()})`);
  assert.equal(log.total, numberOfTests, `every case in ${name} was checked`);
  for (const outcome of mustHave) assert.ok((log.counts.get(outcome) ?? 0) > 0, outcome);
  assert.deepEqual(log.failures, []);
}

test('Wycheproof mlkem_768_keygen_seed_test.json: every case', (t) => {
  const FILE = 'mlkem_768_keygen_seed_test.json';
  interface C extends WycheproofCase {
    seed: string;
    ek: string;
    dk: string;
  }
  const file = loadVectors<WycheproofFile<Group<C>>>(`wycheproof/${FILE}`);
  const log = new CaseLog();
  for (const group of file.testGroups) {
    assert.equal(group.parameterSet, 'ML-KEM-768');
    for (const c of group.tests) {
      const id = caseId(FILE, c);
      assert.equal(c.result, 'valid');
      const key = log.run(id, 'MlKem768Key.fromSeed', () =>
        native.MlKem768Key.fromSeed(hex(c.seed)),
      );
      if (key) {
        log.bytes(id, 'encapsulationKey', key.encapsulationKey(), hex(c.ek));
        log.bytes(id, 'expandedDecapsulationKey', key.expandedDecapsulationKey(), hex(c.dk));
        log.bytes(id, 'exportSeed', key.exportSeed(), hex(c.seed));
      }
      const expanded = log.run(id, 'MlKem768Key.fromExpanded', () =>
        native.MlKem768Key.fromExpanded(hex(c.dk)),
      );
      if (expanded)
        log.bytes(id, 'fromExpanded(dk).encapsulationKey', expanded.encapsulationKey(), hex(c.ek));
      log.count(c.result);
    }
  }
  finish(t, FILE, log, file.numberOfTests, ['valid']);
});

test('Wycheproof mlkem_768_encaps_test.json: every case', (t) => {
  const FILE = 'mlkem_768_encaps_test.json';
  interface C extends WycheproofCase {
    m: string;
    ek: string;
    c: string;
    K: string;
  }
  const file = loadVectors<WycheproofFile<Group<C>>>(`wycheproof/${FILE}`);
  const log = new CaseLog();
  for (const group of file.testGroups) {
    assert.equal(group.parameterSet, 'ML-KEM-768');
    for (const c of group.tests) {
      const id = caseId(FILE, c);
      const ek = hex(c.ek);
      const m = hex(c.m);
      if (c.result === 'valid') {
        const out = log.run(id, 'mlKem768Encapsulate', () => native.mlKem768Encapsulate(ek, m));
        if (out) {
          log.bytes(id, 'ciphertext', out.ciphertext, hex(c.c));
          log.bytes(id, 'sharedSecret', out.sharedSecret, hex(c.K));
        }
        log.count('valid');
      } else if (ek.length !== EK_LEN) {
        log.throws(id, 'mlKem768Encapsulate', 'ERR_CRYPTO_LENGTH', () =>
          native.mlKem768Encapsulate(ek, m),
        );
        log.count('invalid-length');
      } else {
        // Coefficients >= q: the modulus check of FIPS 203 §7.2 fails.
        log.throws(id, 'mlKem768Encapsulate', 'ERR_CRYPTO_KEY', () =>
          native.mlKem768Encapsulate(ek, m),
        );
        log.count('invalid-modulus');
      }
    }
  }
  finish(t, FILE, log, file.numberOfTests, ['valid', 'invalid-length', 'invalid-modulus']);
});

test('Wycheproof mlkem_768_semi_expanded_decaps_test.json: every case', (t) => {
  const FILE = 'mlkem_768_semi_expanded_decaps_test.json';
  interface C extends WycheproofCase {
    dk: string;
    c: string;
    ek: string;
    K?: string;
  }
  const file = loadVectors<WycheproofFile<Group<C>>>(`wycheproof/${FILE}`);
  const log = new CaseLog();
  for (const group of file.testGroups) {
    assert.equal(group.parameterSet, 'ML-KEM-768');
    for (const c of group.tests) {
      const id = caseId(FILE, c);
      const dk = hex(c.dk);
      const ct = hex(c.c);
      if (c.result === 'valid') {
        const key = log.run(id, 'MlKem768Key.fromExpanded', () =>
          native.MlKem768Key.fromExpanded(dk),
        );
        if (key) {
          log.bytes(id, 'encapsulationKey', key.encapsulationKey(), hex(c.ek));
          const k = log.run(id, 'decapsulate', () => key.decapsulate(ct));
          if (k) log.bytes(id, 'shared secret', k, hex(c.K ?? ''));
        }
        log.count('valid');
      } else if (dk.length !== DK_LEN) {
        log.throws(id, 'MlKem768Key.fromExpanded', 'ERR_CRYPTO_LENGTH', () =>
          native.MlKem768Key.fromExpanded(dk),
        );
        log.count('invalid-dk-length');
      } else if (ct.length !== CT_LEN) {
        const key = log.run(id, 'MlKem768Key.fromExpanded', () =>
          native.MlKem768Key.fromExpanded(dk),
        );
        if (key) log.throws(id, 'decapsulate', 'ERR_CRYPTO_LENGTH', () => key.decapsulate(ct));
        log.count('invalid-ct-length');
      } else {
        // Corrupted H(ek) or embedded ek: the hash check of FIPS 203 §7.3 fails.
        log.throws(id, 'MlKem768Key.fromExpanded', 'ERR_CRYPTO_KEY', () =>
          native.MlKem768Key.fromExpanded(dk),
        );
        log.count('invalid-dk');
      }
    }
  }
  finish(t, FILE, log, file.numberOfTests, [
    'valid',
    'invalid-dk-length',
    'invalid-ct-length',
    'invalid-dk',
  ]);
});

test('Wycheproof mlkem_768_test.json: every case', (t) => {
  const FILE = 'mlkem_768_test.json';
  interface C extends WycheproofCase {
    seed: string;
    ek?: string;
    c: string;
    K: string;
  }
  const file = loadVectors<WycheproofFile<Group<C>>>(`wycheproof/${FILE}`);
  const log = new CaseLog();
  for (const group of file.testGroups) {
    assert.equal(group.parameterSet, 'ML-KEM-768');
    for (const c of group.tests) {
      const id = caseId(FILE, c);
      const seed = hex(c.seed);
      const ct = hex(c.c);
      if (seed.length !== SEED_LEN) {
        assert.equal(c.result, 'invalid');
        log.throws(id, 'MlKem768Key.fromSeed', 'ERR_CRYPTO_LENGTH', () =>
          native.MlKem768Key.fromSeed(seed),
        );
        log.count('invalid-seed-length');
        continue;
      }
      const key = log.run(id, 'MlKem768Key.fromSeed', () => native.MlKem768Key.fromSeed(seed));
      if (!key) continue;
      if (c.ek !== undefined) log.bytes(id, 'encapsulationKey', key.encapsulationKey(), hex(c.ek));
      if (c.result === 'valid') {
        const k = log.run(id, 'decapsulate', () => key.decapsulate(ct));
        if (k) log.bytes(id, 'shared secret', k, hex(c.K));
        log.count('valid');
      } else {
        assert.notEqual(ct.length, CT_LEN, `${id}: an invalid case is a length case`);
        log.throws(id, 'decapsulate', 'ERR_CRYPTO_LENGTH', () => key.decapsulate(ct));
        log.count('invalid-ct-length');
      }
    }
  }
  finish(t, FILE, log, file.numberOfTests, ['valid', 'invalid-seed-length', 'invalid-ct-length']);
});

test('ML-KEM-768: encapsulation keys and seeds of the wrong size are refused', () => {
  assert.throws(() => native.mlKem768Encapsulate(Buffer.alloc(EK_LEN - 1)), {
    code: 'ERR_CRYPTO_LENGTH',
  });
  const key = native.MlKem768Key.generate();
  assert.throws(() => native.mlKem768Encapsulate(key.encapsulationKey(), Buffer.alloc(31)), {
    code: 'ERR_CRYPTO_LENGTH',
  });
  assert.throws(() => native.MlKem768Key.fromExpanded(Buffer.alloc(0)), {
    code: 'ERR_CRYPTO_LENGTH',
  });
});
