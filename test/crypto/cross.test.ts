/**
 * Cross-implementation tests: the native core against independent JavaScript implementations
 * over randomized inputs (fast-check). No vector files: the oracle is @noble/hashes,
 * @noble/ciphers, @noble/curves and @noble/post-quantum (pure JS), and @hpke/core with
 * @hpke/dhkem-x25519, @hpke/chacha20poly1305 and @hpke/hybridkem-x-wing for HPKE (RFC 9180).
 *
 * Every property checks both directions: the same keys from the same seeds, identical output
 * where the algorithm is deterministic (given the same randomness), and what one side signs,
 * seals or encapsulates the other verifies, opens or decapsulates. Run counts are modest
 * because the pure-JS post-quantum code is slow.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { sha256 } from '@noble/hashes/sha2.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { chacha20poly1305 } from '@noble/ciphers/chacha.js';
import { gcm } from '@noble/ciphers/aes.js';
import { ed25519, x25519 } from '@noble/curves/ed25519.js';
import { ml_kem768 } from '@noble/post-quantum/ml-kem.js';
import { ml_dsa65 } from '@noble/post-quantum/ml-dsa.js';
import { ml_kem768_x25519 } from '@noble/post-quantum/hybrid.js';
import { CipherSuite } from '@hpke/core';
import { DhkemX25519HkdfSha256, HkdfSha256 } from '@hpke/dhkem-x25519';
import { Chacha20Poly1305 } from '@hpke/chacha20poly1305';
import { XWing } from '@hpke/hybridkem-x-wing';
import * as native from '../../src/native/index.js';

const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const bytes = (n: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: n, maxLength: n }).map(buf);
const data = (maxLength: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: 0, maxLength }).map(buf);

function flipped(b: Buffer, index: number): Buffer {
  const c = Buffer.from(b);
  const i = index % c.length;
  c[i] = (c[i] ?? 0) ^ 0x01;
  return c;
}

test('SHA-256 and HKDF-SHA256 agree with @noble/hashes', () => {
  fc.assert(
    fc.property(data(4096), (d) => {
      assert.deepEqual(native.sha256(d), buf(sha256(d)));
    }),
    { numRuns: 100 },
  );
  fc.assert(
    fc.property(
      data(96),
      data(96),
      data(96),
      fc.integer({ min: 1, max: 255 * 32 }),
      (ikm, salt, info, len) => {
        assert.deepEqual(
          native.hkdfSha256(ikm, salt, info, len),
          buf(hkdf(sha256, ikm, salt, info, len)),
        );
      },
    ),
    { numRuns: 100 },
  );
});

for (const alg of ['chacha20-poly1305', 'aes-256-gcm'] as const) {
  const noble = alg === 'aes-256-gcm' ? gcm : chacha20poly1305;
  test(`${alg} agrees with @noble/ciphers both ways`, () => {
    fc.assert(
      fc.property(
        bytes(32),
        bytes(12),
        data(64),
        data(2048),
        fc.nat(),
        (key, nonce, aad, pt, pos) => {
          const sealed = native.aeadSeal(alg, key, nonce, aad, pt);
          const nobleSealed = buf(noble(key, nonce, aad).encrypt(pt));
          assert.deepEqual(sealed, nobleSealed);
          assert.deepEqual(buf(noble(key, nonce, aad).decrypt(sealed)), pt);
          assert.deepEqual(native.aeadOpen(alg, key, nonce, aad, nobleSealed), pt);
          assert.throws(() => native.aeadOpen(alg, key, nonce, aad, flipped(nobleSealed, pos)), {
            code: 'ERR_CRYPTO_AUTH',
          });
        },
      ),
      { numRuns: 100 },
    );
  });
}

test('X25519 agrees with @noble/curves both ways', () => {
  fc.assert(
    fc.property(bytes(32), bytes(32), (a, b) => {
      const alice = native.X25519Key.fromSecret(a);
      const bobPublic = buf(x25519.getPublicKey(b));
      assert.deepEqual(alice.publicKey(), buf(x25519.getPublicKey(a)));
      const shared = alice.diffieHellman(bobPublic);
      assert.deepEqual(shared, buf(x25519.getSharedSecret(b, alice.publicKey())));
      assert.deepEqual(alice.exportSecret(), a);
    }),
    { numRuns: 100 },
  );
  // A generated native key interoperates too.
  const k = native.X25519Key.generate();
  const b = x25519.utils.randomSecretKey();
  assert.deepEqual(
    k.diffieHellman(buf(x25519.getPublicKey(b))),
    buf(x25519.getSharedSecret(b, k.publicKey())),
  );
});

test('Ed25519 agrees with @noble/curves both ways', () => {
  fc.assert(
    fc.property(bytes(32), data(512), fc.nat(), (seed, msg, pos) => {
      const key = native.Ed25519Key.fromSeed(seed);
      const pk = key.publicKey();
      assert.deepEqual(pk, buf(ed25519.getPublicKey(seed)));
      const sig = key.sign(msg);
      const nobleSig = buf(ed25519.sign(msg, seed));
      assert.deepEqual(sig, nobleSig, 'Ed25519 is deterministic: identical signatures');
      assert.equal(ed25519.verify(sig, msg, pk), true);
      assert.equal(native.ed25519Verify(pk, msg, nobleSig), true);
      const badSig = flipped(sig, pos);
      assert.equal(native.ed25519Verify(pk, msg, badSig), false);
      assert.equal(ed25519.verify(badSig, msg, pk), false);
    }),
    { numRuns: 100 },
  );
});

test('ML-KEM-768 agrees with @noble/post-quantum both ways', () => {
  fc.assert(
    fc.property(bytes(64), bytes(32), (seed, m) => {
      const key = native.MlKem768Key.fromSeed(seed);
      const nobleKeys = ml_kem768.keygen(seed);
      const ek = key.encapsulationKey();
      assert.deepEqual(ek, buf(nobleKeys.publicKey));
      assert.deepEqual(key.expandedDecapsulationKey(), buf(nobleKeys.secretKey));
      // Same randomness, same ciphertext and key.
      const ours = native.mlKem768Encapsulate(ek, m);
      const theirs = ml_kem768.encapsulate(ek, m);
      assert.deepEqual(ours.ciphertext, buf(theirs.cipherText));
      assert.deepEqual(ours.sharedSecret, buf(theirs.sharedSecret));
      // Fresh randomness on each side, decapsulated by the other.
      const n = native.mlKem768Encapsulate(ek);
      assert.deepEqual(
        buf(ml_kem768.decapsulate(n.ciphertext, nobleKeys.secretKey)),
        n.sharedSecret,
      );
      const j = ml_kem768.encapsulate(ek);
      assert.deepEqual(key.decapsulate(buf(j.cipherText)), buf(j.sharedSecret));
      assert.deepEqual(
        native.MlKem768Key.fromExpanded(buf(nobleKeys.secretKey)).decapsulate(buf(j.cipherText)),
        buf(j.sharedSecret),
      );
    }),
    { numRuns: 30 },
  );
});

test('ML-DSA-65 agrees with @noble/post-quantum both ways', () => {
  fc.assert(
    fc.property(bytes(32), data(256), data(64), bytes(32), (seed, msg, ctx, rnd) => {
      const key = native.MlDsa65Key.fromSeed(seed);
      const nobleKeys = ml_dsa65.keygen(seed);
      const pk = key.publicKey();
      assert.deepEqual(pk, buf(nobleKeys.publicKey));
      // Deterministic variant and hedged variant with the same rnd: identical signatures.
      const det = key.sign(msg, ctx, Buffer.alloc(32));
      const nobleDet = ml_dsa65.sign(msg, nobleKeys.secretKey, {
        context: ctx,
        extraEntropy: false,
      });
      assert.deepEqual(det, buf(nobleDet));
      const hedged = key.sign(msg, ctx, rnd);
      assert.deepEqual(
        hedged,
        buf(ml_dsa65.sign(msg, nobleKeys.secretKey, { context: ctx, extraEntropy: rnd })),
      );
      // Fresh randomness on each side, verified by the other.
      const ours = key.sign(msg, ctx);
      assert.equal(ml_dsa65.verify(ours, msg, pk, { context: ctx }), true);
      const theirs = buf(ml_dsa65.sign(msg, nobleKeys.secretKey, { context: ctx }));
      assert.equal(native.mlDsa65Verify(pk, msg, theirs, ctx), true);
      // A different context or message does not verify on either side.
      const otherCtx = Buffer.concat([ctx, Buffer.from([1])]);
      assert.equal(native.mlDsa65Verify(pk, msg, theirs, otherCtx), false);
      assert.equal(
        ml_dsa65.verify(ours, Buffer.concat([msg, Buffer.from([0])]), pk, { context: ctx }),
        false,
      );
      // The expanded key loads and signs the same.
      const expanded = native.MlDsa65Key.fromExpanded(buf(nobleKeys.secretKey));
      assert.deepEqual(expanded.sign(msg, ctx, Buffer.alloc(32)), det);
    }),
    { numRuns: 20 },
  );
});

test('X-Wing agrees with @noble/post-quantum (ml_kem768_x25519) both ways', () => {
  fc.assert(
    fc.property(bytes(32), bytes(64), (seed, eseed) => {
      const key = native.XWingKey.fromSeed(seed);
      const nobleKeys = ml_kem768_x25519.keygen(seed);
      const pk = key.publicKey();
      assert.deepEqual(pk, buf(nobleKeys.publicKey));
      const ours = native.xwingEncapsulate(pk, eseed);
      const theirs = ml_kem768_x25519.encapsulate(pk, eseed);
      assert.deepEqual(ours.ciphertext, buf(theirs.cipherText));
      assert.deepEqual(ours.sharedSecret, buf(theirs.sharedSecret));
      const n = native.xwingEncapsulate(pk);
      assert.deepEqual(
        buf(ml_kem768_x25519.decapsulate(n.ciphertext, nobleKeys.secretKey)),
        n.sharedSecret,
      );
      const j = ml_kem768_x25519.encapsulate(pk);
      assert.deepEqual(key.decapsulate(buf(j.cipherText)), buf(j.sharedSecret));
    }),
    { numRuns: 20 },
  );
});

const x25519Suite = new CipherSuite({
  kem: new DhkemX25519HkdfSha256(),
  kdf: new HkdfSha256(),
  aead: new Chacha20Poly1305(),
});
const xwingSuite = new CipherSuite({
  kem: new XWing(),
  kdf: new HkdfSha256(),
  aead: new Chacha20Poly1305(),
});

test('HPKE DHKEM(X25519)/HKDF-SHA256/ChaCha20-Poly1305 agrees with @hpke/core both ways', async () => {
  await fc.assert(
    fc.asyncProperty(
      bytes(32),
      bytes(32),
      data(64),
      data(64),
      data(1024),
      async (skR, ikmE, info, aad, pt) => {
        const recipient = native.X25519Key.fromSecret(skR);
        const pkR = recipient.publicKey();
        const jsPkR = await x25519Suite.kem.deserializePublicKey(pkR);
        const jsSkR = await x25519Suite.kem.deserializePrivateKey(skR);
        // Same ephemeral input keying material: identical enc and ciphertext.
        const ours = native.hpkeSeal('dhkem-x25519-hkdf-sha256', pkR, info, aad, pt, ikmE);
        const theirs = await x25519Suite.seal(
          { recipientPublicKey: jsPkR, info, ekm: ikmE },
          pt,
          aad,
        );
        assert.deepEqual(ours.enc, buf(new Uint8Array(theirs.enc)));
        assert.deepEqual(ours.ciphertext, buf(new Uint8Array(theirs.ct)));
        // Fresh ephemeral keys, opened by the other side.
        const n = native.hpkeSeal('dhkem-x25519-hkdf-sha256', pkR, info, aad, pt);
        const opened = await x25519Suite.open(
          { recipientKey: jsSkR, enc: n.enc, info },
          n.ciphertext,
          aad,
        );
        assert.deepEqual(buf(new Uint8Array(opened)), pt);
        const j = await x25519Suite.seal({ recipientPublicKey: jsPkR, info }, pt, aad);
        const jEnc = buf(new Uint8Array(j.enc));
        const jCt = buf(new Uint8Array(j.ct));
        assert.deepEqual(recipient.hpkeOpen(jEnc, info, aad, jCt), pt);
        assert.throws(
          () => recipient.hpkeOpen(jEnc, info, Buffer.concat([aad, Buffer.from([0])]), jCt),
          {
            code: 'ERR_CRYPTO_AUTH',
          },
        );
      },
    ),
    { numRuns: 25 },
  );
});

test('HPKE X-Wing/HKDF-SHA256/ChaCha20-Poly1305 agrees with @hpke/hybridkem-x-wing both ways', async () => {
  await fc.assert(
    fc.asyncProperty(
      bytes(32),
      bytes(64),
      data(64),
      data(64),
      data(1024),
      async (seed, eseed, info, aad, pt) => {
        const recipient = native.XWingKey.fromSeed(seed);
        const pkR = recipient.publicKey();
        const jsPkR = await xwingSuite.kem.deserializePublicKey(pkR);
        const jsSkR = await xwingSuite.kem.deserializePrivateKey(seed);
        const ours = native.hpkeSeal('x-wing', pkR, info, aad, pt, eseed);
        const theirs = await xwingSuite.seal(
          { recipientPublicKey: jsPkR, info, ekm: eseed },
          pt,
          aad,
        );
        assert.deepEqual(ours.enc, buf(new Uint8Array(theirs.enc)));
        assert.deepEqual(ours.ciphertext, buf(new Uint8Array(theirs.ct)));
        const n = native.hpkeSeal('x-wing', pkR, info, aad, pt);
        const opened = await xwingSuite.open(
          { recipientKey: jsSkR, enc: n.enc, info },
          n.ciphertext,
          aad,
        );
        assert.deepEqual(buf(new Uint8Array(opened)), pt);
        const j = await xwingSuite.seal({ recipientPublicKey: jsPkR, info }, pt, aad);
        const jEnc = buf(new Uint8Array(j.enc));
        const jCt = buf(new Uint8Array(j.ct));
        assert.deepEqual(recipient.hpkeOpen(jEnc, info, aad, jCt), pt);
        assert.throws(
          () => recipient.hpkeOpen(jEnc, Buffer.concat([info, Buffer.from([0])]), aad, jCt),
          {
            code: 'ERR_CRYPTO_AUTH',
          },
        );
      },
    ),
    { numRuns: 15 },
  );
});
