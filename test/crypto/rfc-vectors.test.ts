/**
 * RFC known-answer tests through the native core, from fixtures transcribed from the RFC texts
 * (test/fixtures/crypto/, each naming its section):
 * - RFC 7748 §5.2 (X25519 scalar multiplication, incl. the 1 and 1000 iteration values) and
 *   §6.1 (Diffie-Hellman between Alice and Bob): rfc7748-x25519.json;
 * - RFC 8032 §7.1 (Ed25519 TEST 1, 2, 3 and SHA(abc)): rfc8032-ed25519.json;
 * - RFC 9180 Appendix A.2.1 (DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20Poly1305, Base
 *   mode, sequence number 0): rfc9180-a.2.1.json.
 * The transcriptions were cross-checked against @noble/curves and @hpke/core.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as native from '../../src/native/index.js';
import { hex, loadFixture } from './helpers.js';

const HPKE_X25519 = 'dhkem-x25519-hkdf-sha256';

interface Rfc7748 {
  scalarMult: { vectors: { scalar: string; u: string; output: string }[] };
  iterated: { start: string; after: Record<string, string> };
  diffieHellman: {
    alicePrivate: string;
    alicePublic: string;
    bobPrivate: string;
    bobPublic: string;
    shared: string;
  };
}

test('RFC 7748 §5.2: X25519 scalar multiplication vectors', () => {
  const f = loadFixture<Rfc7748>('rfc7748-x25519.json');
  assert.ok(f.scalarMult.vectors.length > 0);
  for (const v of f.scalarMult.vectors) {
    const out = native.X25519Key.fromSecret(hex(v.scalar)).diffieHellman(hex(v.u));
    assert.equal(out.toString('hex'), v.output);
  }
});

test('RFC 7748 §5.2: iterated X25519 (1 and 1000 iterations)', () => {
  const f = loadFixture<Rfc7748>('rfc7748-x25519.json');
  const want = f.iterated.after;
  assert.ok(Object.keys(want).length > 0);
  let k = hex(f.iterated.start);
  let u = hex(f.iterated.start);
  for (let i = 1; i <= 1000; i++) {
    const next = native.X25519Key.fromSecret(k).diffieHellman(u);
    u = k;
    k = next;
    const w = want[String(i)];
    if (w !== undefined) assert.equal(k.toString('hex'), w, `after ${i} iteration(s)`);
  }
});

test('RFC 7748 §6.1: X25519 Diffie-Hellman', () => {
  const { diffieHellman: v } = loadFixture<Rfc7748>('rfc7748-x25519.json');
  const alice = native.X25519Key.fromSecret(hex(v.alicePrivate));
  const bob = native.X25519Key.fromSecret(hex(v.bobPrivate));
  assert.equal(alice.publicKey().toString('hex'), v.alicePublic);
  assert.equal(bob.publicKey().toString('hex'), v.bobPublic);
  assert.equal(alice.diffieHellman(hex(v.bobPublic)).toString('hex'), v.shared);
  assert.equal(bob.diffieHellman(hex(v.alicePublic)).toString('hex'), v.shared);
  assert.equal(alice.exportSecret().toString('hex'), v.alicePrivate);
});

interface Rfc8032 {
  vectors: {
    name: string;
    secretKey: string;
    publicKey: string;
    message: string;
    signature: string;
  }[];
}

test('RFC 8032 §7.1: Ed25519 test vectors, signed at once and on the thread pool', async () => {
  const f = loadFixture<Rfc8032>('rfc8032-ed25519.json');
  assert.ok(f.vectors.length >= 4);
  for (const v of f.vectors) {
    const key = native.Ed25519Key.fromSeed(hex(v.secretKey));
    assert.equal(key.publicKey().toString('hex'), v.publicKey, `${v.name} public key`);
    assert.equal(key.sign(hex(v.message)).toString('hex'), v.signature, `${v.name} signature`);
    const onPool = await key.signAsync(hex(v.message));
    assert.equal(onPool.toString('hex'), v.signature, `${v.name} signature on the thread pool`);
    assert.equal(key.exportSeed().toString('hex'), v.secretKey, `${v.name} seed`);
    assert.equal(native.ed25519Verify(hex(v.publicKey), hex(v.message), hex(v.signature)), true);
    const tampered = hex(v.message + '00');
    assert.equal(native.ed25519Verify(hex(v.publicKey), tampered, hex(v.signature)), false);
  }
});

interface Rfc9180 {
  mode: number;
  kem_id: number;
  kdf_id: number;
  aead_id: number;
  info: string;
  ikmE: string;
  pkEm: string;
  skEm: string;
  pkRm: string;
  skRm: string;
  enc: string;
  encryptions: { sequence_number: number; pt: string; aad: string; ct: string }[];
}

test('RFC 9180 A.2.1: HPKE Base mode DHKEM(X25519)/HKDF-SHA256/ChaCha20Poly1305 seal and open', async () => {
  const f = loadFixture<Rfc9180>('rfc9180-a.2.1.json');
  assert.deepEqual([f.mode, f.kem_id, f.kdf_id, f.aead_id], [0, 0x20, 1, 3]);
  const seq0 = f.encryptions.find((e) => e.sequence_number === 0);
  assert.ok(seq0, 'the fixture has the sequence-0 encryption');
  const info = hex(f.info);
  const [pt, aad, ct] = [hex(seq0.pt), hex(seq0.aad), hex(seq0.ct)];

  assert.equal(native.X25519Key.fromSecret(hex(f.skEm)).publicKey().toString('hex'), f.pkEm);
  const recipient = native.X25519Key.fromSecret(hex(f.skRm));
  assert.equal(recipient.publicKey().toString('hex'), f.pkRm);

  const sealed = native.hpkeSeal(HPKE_X25519, hex(f.pkRm), info, aad, pt, hex(f.ikmE));
  assert.equal(sealed.enc.toString('hex'), f.enc);
  assert.equal(sealed.ciphertext.toString('hex'), seq0.ct);
  const onPool = await native.hpkeSealAsync(HPKE_X25519, hex(f.pkRm), info, aad, pt, hex(f.ikmE));
  assert.equal(onPool.enc.toString('hex'), f.enc, 'the same seal on the thread pool');
  assert.equal(onPool.ciphertext.toString('hex'), seq0.ct);

  assert.deepEqual(recipient.hpkeOpen(hex(f.enc), info, aad, ct), pt);

  // Any change to enc, info, aad or ciphertext must fail authentication.
  const flip = (b: Buffer, i: number): Buffer => {
    const c = Buffer.from(b);
    c[i] = (c[i] ?? 0) ^ 1;
    return c;
  };
  const enc = hex(f.enc);
  assert.throws(() => recipient.hpkeOpen(enc, info, aad, flip(ct, 0)), { code: 'ERR_CRYPTO_AUTH' });
  assert.throws(() => recipient.hpkeOpen(enc, info, flip(aad, 0), ct), { code: 'ERR_CRYPTO_AUTH' });
  assert.throws(() => recipient.hpkeOpen(enc, flip(info, 0), aad, ct), { code: 'ERR_CRYPTO_AUTH' });
  assert.throws(() => recipient.hpkeOpen(flip(enc, 0), info, aad, ct), { code: 'ERR_CRYPTO_AUTH' });
  assert.throws(() => recipient.hpkeOpen(enc, info, aad, ct.subarray(0, ct.length - 1)), {
    code: 'ERR_CRYPTO_AUTH',
  });
});

test('the HPKE seal on the thread pool refuses what the one at once refuses', async () => {
  const pk = native.X25519Key.generate().publicKey();
  const [info, aad, pt] = [Buffer.from('info'), Buffer.alloc(0), Buffer.alloc(32, 1)];
  // A KEM name it does not know: thrown before any task is queued, with the same code.
  const kem = 'dhkem-p256' as typeof HPKE_X25519;
  assert.throws(() => native.hpkeSeal(kem, pk, info, aad, pt), { code: 'ERR_CRYPTO_PARAM' });
  assert.throws(() => native.hpkeSealAsync(kem, pk, info, aad, pt), { code: 'ERR_CRYPTO_PARAM' });
  // A key of the wrong length, a low-order key: rejected, the message led by the same code.
  const cases: [string, Buffer][] = [
    ['a 31-byte key', pk.subarray(0, 31)],
    ['the all-zero point', Buffer.alloc(32)],
  ];
  for (const [what, key] of cases) {
    let code = '';
    try {
      native.hpkeSeal(HPKE_X25519, key, info, aad, pt);
    } catch (err) {
      code = (err as { code: string }).code;
    }
    assert.match(code, /^ERR_CRYPTO_/, what);
    await assert.rejects(native.hpkeSealAsync(HPKE_X25519, key, info, aad, pt), (err: Error) => {
      assert.ok(err.message.startsWith(`${code}: `), `${what}: ${err.message}`);
      return true;
    });
  }
});
