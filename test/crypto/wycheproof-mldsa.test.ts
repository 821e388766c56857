/**
 * ML-DSA-65 (FIPS 204) known-answer tests through the native core.
 * Vectors: Project Wycheproof testvectors_v1 (C2SP/wycheproof at
 * dac1dd4729fd1f8dd9e1e9f3dce51d783da6c166), read in place from ../shared/vectors:
 * mldsa_65_sign_seed_test.json, mldsa_65_sign_noseed_test.json, mldsa_65_verify_test.json.
 *
 * Signing is the pure (non-prehash) ML-DSA.Sign of FIPS 204 §5.2 with a context string; 'rnd'
 * absent means the deterministic variant (32 zero bytes). Refusals we assert: a seed or
 * expanded key of the wrong size and a context longer than 255 bytes throw ERR_CRYPTO_LENGTH;
 * an expanded private key with s1/s2 out of range throws ERR_CRYPTO_KEY (when loaded or when
 * used). Verification returns false, never throws, for every invalid case.
 *
 * Cases flagged 'Internal' carry only the pre-hashed message representative mu (external-mu
 * ML-DSA.Sign_internal). The core deliberately exposes no external-mu entry point, so for those
 * we check what the surface can check (the key pair derived from the group's seed or expanded
 * key) and count them separately as 'internal-mu-keygen-only'.
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

const SEED_LEN = 32;
const SK_LEN = 4032;
const MAX_CTX = 255;
const ZERO_RND = Buffer.alloc(32);

interface SignCase extends WycheproofCase {
  msg?: string;
  ctx?: string;
  rnd?: string;
  mu?: string;
  sig: string;
}

type Signer = { publicKey(): Buffer; sign(msg: Buffer, ctx: Buffer, rnd?: Buffer): Buffer };

function checkSignCase(
  log: CaseLog,
  id: string,
  key: Signer,
  pk: Buffer | null,
  c: SignCase,
): void {
  if (c.msg === undefined) {
    assert.ok((c.flags ?? []).includes('Internal'), `${id}: only Internal cases lack msg`);
    log.count('internal-mu-keygen-only');
    return;
  }
  const msg = hex(c.msg);
  const ctx = hex(c.ctx ?? '');
  const rnd = c.rnd !== undefined ? hex(c.rnd) : ZERO_RND;
  if (ctx.length > MAX_CTX) {
    assert.equal(c.result, 'invalid');
    log.throws(id, 'sign with a context > 255 bytes', 'ERR_CRYPTO_LENGTH', () =>
      key.sign(msg, ctx, rnd),
    );
    log.count('invalid-context');
    return;
  }
  if (c.result === 'valid') {
    const sig = log.run(id, 'sign', () => key.sign(msg, ctx, rnd));
    if (sig) log.bytes(id, 'signature', sig, hex(c.sig));
    if (pk) {
      const ok = log.run(id, 'mlDsa65Verify', () => native.mlDsa65Verify(pk, msg, hex(c.sig), ctx));
      log.equal(id, 'mlDsa65Verify of the expected signature', ok, true);
    }
    log.count('valid');
  } else {
    // Invalid private key (s1 or s2 out of range): signing must refuse.
    log.throws(id, 'sign with an invalid key', 'ERR_CRYPTO_KEY', () => key.sign(msg, ctx, rnd));
    log.count('invalid-key');
  }
}

test('Wycheproof mldsa_65_sign_seed_test.json: every case', (t) => {
  const FILE = 'mldsa_65_sign_seed_test.json';
  interface G {
    privateSeed: string;
    publicKey: string | null;
    tests: SignCase[];
  }
  const file = loadVectors<WycheproofFile<G>>(`wycheproof/${FILE}`);
  const log = new CaseLog();
  for (const group of file.testGroups) {
    const seed = hex(group.privateSeed);
    if (seed.length !== SEED_LEN) {
      for (const c of group.tests) {
        assert.equal(c.result, 'invalid');
        log.throws(caseId(FILE, c), 'MlDsa65Key.fromSeed', 'ERR_CRYPTO_LENGTH', () =>
          native.MlDsa65Key.fromSeed(seed),
        );
        log.count('invalid-seed-length');
      }
      continue;
    }
    const first = group.tests[0];
    const gid = first ? caseId(FILE, first) : FILE;
    const key = log.run(gid, 'MlDsa65Key.fromSeed', () => native.MlDsa65Key.fromSeed(seed));
    const pk = group.publicKey !== null ? hex(group.publicKey) : null;
    for (const c of group.tests) {
      const id = caseId(FILE, c);
      if (!key) {
        log.fail(id, 'no key (fromSeed failed)');
        log.count('no-key');
        continue;
      }
      if (pk) log.bytes(id, 'publicKey from seed', key.publicKey(), pk);
      log.bytes(id, 'exportSeed', key.exportSeed(), seed);
      checkSignCase(log, id, key, pk, c);
    }
  }
  t.diagnostic(`${FILE}: ${log.total} cases (${log.summary()})`);
  assert.equal(log.total, file.numberOfTests, 'every case in the file was checked');
  for (const o of ['valid', 'invalid-context', 'invalid-seed-length', 'internal-mu-keygen-only']) {
    assert.ok((log.counts.get(o) ?? 0) > 0, o);
  }
  assert.deepEqual(log.failures, []);
});

test('Wycheproof mldsa_65_sign_noseed_test.json: every case', (t) => {
  const FILE = 'mldsa_65_sign_noseed_test.json';
  interface G {
    privateKey: string;
    publicKey: string | null;
    tests: SignCase[];
  }
  const file = loadVectors<WycheproofFile<G>>(`wycheproof/${FILE}`);
  const log = new CaseLog();
  for (const group of file.testGroups) {
    const sk = hex(group.privateKey);
    if (sk.length !== SK_LEN) {
      for (const c of group.tests) {
        assert.equal(c.result, 'invalid');
        log.throws(caseId(FILE, c), 'MlDsa65Key.fromExpanded', 'ERR_CRYPTO_LENGTH', () =>
          native.MlDsa65Key.fromExpanded(sk),
        );
        log.count('invalid-key-length');
      }
      continue;
    }
    const pk = group.publicKey !== null ? hex(group.publicKey) : null;
    let key: ReturnType<typeof native.MlDsa65Key.fromExpanded> | undefined;
    let loadError: unknown;
    try {
      key = native.MlDsa65Key.fromExpanded(sk);
    } catch (err) {
      loadError = err;
    }
    for (const c of group.tests) {
      const id = caseId(FILE, c);
      const invalidKey = c.result === 'invalid' && (c.flags ?? []).includes('InvalidPrivateKey');
      if (!key) {
        // Refusing an invalid expanded key at load time is as good as refusing to sign with it.
        const code = (loadError as { code?: string } | undefined)?.code;
        if (!invalidKey || code !== 'ERR_CRYPTO_KEY') {
          log.fail(id, `MlDsa65Key.fromExpanded threw ${code ?? String(loadError)}`);
        }
        log.count(invalidKey ? 'invalid-key' : 'no-key');
        continue;
      }
      if (pk && !invalidKey) log.bytes(id, 'publicKey from expanded key', key.publicKey(), pk);
      checkSignCase(log, id, key, pk, c);
    }
  }
  t.diagnostic(`${FILE}: ${log.total} cases (${log.summary()})`);
  assert.equal(log.total, file.numberOfTests, 'every case in the file was checked');
  for (const o of ['valid', 'invalid-context', 'invalid-key-length', 'invalid-key']) {
    assert.ok((log.counts.get(o) ?? 0) > 0, o);
  }
  assert.deepEqual(log.failures, []);
});

test('Wycheproof mldsa_65_verify_test.json: every case', (t) => {
  const FILE = 'mldsa_65_verify_test.json';
  interface C extends WycheproofCase {
    msg: string;
    ctx?: string;
    sig: string;
  }
  interface G {
    publicKey: string;
    tests: C[];
  }
  const file = loadVectors<WycheproofFile<G>>(`wycheproof/${FILE}`);
  const log = new CaseLog();
  for (const group of file.testGroups) {
    const pk = hex(group.publicKey);
    for (const c of group.tests) {
      const id = caseId(FILE, c);
      const ok = log.run(id, 'mlDsa65Verify', () =>
        native.mlDsa65Verify(pk, hex(c.msg), hex(c.sig), hex(c.ctx ?? '')),
      );
      if (ok !== undefined) log.equal(id, 'mlDsa65Verify', ok, c.result === 'valid');
      log.count(c.result);
    }
  }
  t.diagnostic(`${FILE}: ${log.total} cases (${log.summary()})`);
  assert.equal(log.total, file.numberOfTests, 'every case in the file was checked');
  assert.ok((log.counts.get('valid') ?? 0) > 0);
  assert.ok((log.counts.get('invalid') ?? 0) > 0);
  assert.deepEqual(log.failures, []);
});
