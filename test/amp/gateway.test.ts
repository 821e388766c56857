// Gateway signatures outside the ciphertext: add, verify, and every rejection.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { AfterSmtpError } from '../../src/errors.js';
import {
  addGatewaySignature,
  decodeEnvelope,
  encodeEnvelope,
  openEnvelope,
  sealMessage,
  verifyGatewaySignature,
  type Envelope,
} from '../../src/envelope/index.js';
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
  });
}
