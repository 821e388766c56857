// Gateway signatures outside the ciphertext: add, verify, and every rejection.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { AfterSmtpError } from '../../src/errors.js';
import {
  addGatewaySignature,
  decodeEnvelope,
  encodeEnvelope,
  encodeWithGatewaySignature,
  openEnvelope,
  sealMessage,
  verifyGatewaySignature,
  type Envelope,
  type GatewaySignature,
} from '../../src/envelope/index.js';
import { GatewaySigner } from '../../src/envelope/gateway.js';
import { generateIdentity } from '../../src/identity/index.js';
import { BODY, HOUR, NOW, cast, flip, withHeader } from './helpers.js';

const code = (c: string) => (err: unknown) => err instanceof AfterSmtpError && err.code === c;

for (const suite of ['classic-v1', 'hybrid-v1'] as const) {
  describe(`gateway signature ${suite}`, () => {
    const { alice, bob, carol, gateway } = cast(suite);
    const [sealed] = sealMessage({
      author: alice,
      to: [bob.record, carol.record],
      body: BODY,
      createdAt: NOW,
      expiresAt: NOW + HOUR,
    });
    const env = (sealed as { envelope: Envelope }).envelope;
    const signed = decodeEnvelope(encodeEnvelope(addGatewaySignature(env, gateway)));

    it('verifies after an encode/decode round trip, and open reports it', () => {
      verifyGatewaySignature(signed, gateway.record);
      assert.deepEqual(openEnvelope(signed, bob, { now: NOW }).gatewaySignature, {
        did: gateway.did,
        keyId: gateway.keyId,
      });
    });
    it('a client-sealed envelope has none', () => {
      assert.throws(
        () => verifyGatewaySignature(env, gateway.record),
        code('ERR_GATEWAY_SIGNATURE_MISSING'),
      );
    });
    const tampered: [string, Partial<Envelope>][] = [
      ['ciphertext', { ciphertext: flip(signed.ciphertext, 9) }],
      ['a dropped wrap', { wraps: signed.wraps.slice(1) }],
      ['reordered wraps', { wraps: [...signed.wraps].reverse() }],
      [
        'a wrap enc',
        { wraps: signed.wraps.map((w, i) => (i === 0 ? { ...w, enc: flip(w.enc, 2) } : w)) },
      ],
      ['message id', { messageId: flip(signed.messageId, 0) }],
      ['sender', { sender: 'did:aftersmtp:example.com:mallory' }],
      ['created-at', { createdAt: signed.createdAt + 1 }],
      ['expires-at', { expiresAt: signed.expiresAt + 1 }],
      ['suite', { suite: suite === 'classic-v1' ? 'hybrid-v1' : 'classic-v1' }],
    ];
    for (const [what, patch] of tampered) {
      it(`rejects a changed ${what}`, () => {
        assert.throws(
          () => verifyGatewaySignature(withHeader(signed, patch), gateway.record),
          code('ERR_GATEWAY_SIGNATURE'),
        );
      });
    }
    it('rejects another gateway key and a gateway of another domain', () => {
      const other = generateIdentity(gateway.did, suite, NOW);
      assert.throws(
        () => verifyGatewaySignature(signed, other.record),
        code('ERR_GATEWAY_SIGNATURE'),
      );
      const foreign = generateIdentity('did:aftersmtp:example.net:gateway', suite, NOW);
      const byForeign = addGatewaySignature(env, foreign);
      assert.throws(
        () => verifyGatewaySignature(byForeign, foreign.record),
        code('ERR_GATEWAY_DOMAIN'),
      );
      verifyGatewaySignature(byForeign, foreign.record, { requireSenderDomain: false });
    });
    it(
      'rejects a forged Ed25519 half' +
        (suite === 'hybrid-v1' ? ' and a forged ML-DSA-65 half' : ''),
      () => {
        const g = signed.gatewaySignature as NonNullable<Envelope['gatewaySignature']>;
        const badEd = {
          ...g,
          signature: { ...g.signature, ed25519: flip(g.signature.ed25519, 3) },
        };
        assert.throws(
          () => verifyGatewaySignature({ ...signed, gatewaySignature: badEd }, gateway.record),
          code('ERR_GATEWAY_SIGNATURE'),
        );
        if (suite === 'hybrid-v1') {
          const badMl = {
            ...g,
            signature: { ...g.signature, mldsa65: flip(g.signature.mldsa65 as Buffer, 99) },
          };
          assert.throws(
            () => verifyGatewaySignature({ ...signed, gatewaySignature: badMl }, gateway.record),
            /ML-DSA-65/,
          );
        }
      },
    );

    const bytes = encodeEnvelope(env);
    const signatureOf = (e: Envelope) =>
      addGatewaySignature(e, gateway).gatewaySignature as GatewaySignature;

    it('appended to the bytes a client sent, gives the bytes encodeEnvelope gives, alone and in a batch', async () => {
      const alone = signatureOf(env);
      const out = encodeWithGatewaySignature(decodeEnvelope(bytes), bytes, alone);
      assert.deepEqual(out, encodeEnvelope({ ...env, gatewaySignature: alone }));
      verifyGatewaySignature(decodeEnvelope(out), gateway.record);
      // Signed together, the three carry batch places (index, size, path), appended the same way.
      const signer = new GatewaySigner(gateway);
      const copies = [env, { ...env, createdAt: NOW + 1 }, { ...env, createdAt: NOW + 2 }];
      const signatures = await Promise.all(copies.map((c) => signer.signature(c)));
      assert.ok(signatures.some((g) => g.batch !== undefined));
      copies.forEach((c, i) => {
        const g = signatures[i] as GatewaySignature;
        const encoded = encodeEnvelope(c);
        const appended = encodeWithGatewaySignature(decodeEnvelope(encoded), encoded, g);
        assert.deepEqual(appended, encodeEnvelope({ ...c, gatewaySignature: g }));
        verifyGatewaySignature(decodeEnvelope(appended), gateway.record);
      });
    });

    it('replaces a gateway signature the bytes already carry, and keeps origin and ephemeral parts', () => {
      const other = generateIdentity(gateway.did, suite, NOW);
      const cases: Envelope[] = [
        addGatewaySignature(env, other),
        { ...env, ephemeral: { holder: gateway.did } },
      ];
      for (const e of cases) {
        const encoded = encodeEnvelope(e);
        const g = signatureOf(e);
        const out = encodeWithGatewaySignature(decodeEnvelope(encoded), encoded, g);
        assert.deepEqual(out, encodeEnvelope({ ...e, gatewaySignature: g }));
        assert.deepEqual(decodeEnvelope(out).gatewaySignature, g);
      }
    });

    it('keeps to the size cap, and carries a field it does not know along unread', () => {
      const g = signatureOf(env);
      const full = encodeWithGatewaySignature(env, bytes, g);
      assert.throws(
        () => encodeWithGatewaySignature(env, bytes, g, { maxBytes: full.length - 1 }),
        code('ERR_ENVELOPE_TOO_LARGE'),
      );
      assert.equal(
        encodeWithGatewaySignature(env, bytes, g, { maxBytes: full.length }).length,
        full.length,
      );
      // Field 15, varint 1: unknown to this version's schema.
      const unknown = Buffer.concat([bytes, Buffer.from([15 << 3, 1])]);
      const out = encodeWithGatewaySignature(decodeEnvelope(unknown), unknown, g);
      assert.deepEqual(out.subarray(0, unknown.length), unknown);
      assert.deepEqual(decodeEnvelope(out), decodeEnvelope(full));
    });
  });
}
