// Batched gateway signatures (docs/PROTOCOL.md §6.4): one signature over a Merkle tree of
// envelopes, each carrying its path; the signer that forms the batches; the verifier's cache.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { AfterSmtpError } from '../../src/errors.js';
import {
  GatewaySigner,
  addGatewaySignature,
  verifyGatewaySignature,
} from '../../src/envelope/gateway.js';
import { VerifiedBatches } from '../../src/identity/batch-signature.js';
import {
  decodeEnvelope,
  encodeEnvelope,
  openEnvelope,
  sealMessage,
  type Envelope,
} from '../../src/envelope/index.js';
import { generateIdentity } from '../../src/identity/index.js';
import type { SecretKeySet } from '../../src/identity/keys.js';
import { BODY, HOUR, NOW, cast, flip } from './helpers.js';

const code = (c: string) => (err: unknown) => err instanceof AfterSmtpError && err.code === c;

type GatewaySignature = NonNullable<Envelope['gatewaySignature']>;

for (const suite of ['classic-v1', 'hybrid-v1'] as const) {
  describe(`batched gateway signature ${suite}`, () => {
    const { alice, bob, gateway } = cast(suite);
    const envelopes = (n: number): Envelope[] =>
      Array.from({ length: n }, (_, i) => {
        const [sealed] = sealMessage({
          author: alice,
          to: [bob.record],
          body: { ...BODY, subject: `message ${i}` },
          createdAt: NOW,
          expiresAt: NOW + HOUR,
        });
        return (sealed as { envelope: Envelope }).envelope;
      });
    const roundTrip = (e: Envelope): Envelope => decodeEnvelope(encodeEnvelope(e));
    const sigOf = (e: Envelope): GatewaySignature => e.gatewaySignature as GatewaySignature;

    it('envelopes that ask together share one signature, and each verifies alone', async () => {
      const signer = new GatewaySigner(gateway);
      const signed = (await Promise.all(envelopes(5).map((e) => signer.sign(e)))).map(roundTrip);
      const first = sigOf(signed[0] as Envelope);
      signed.forEach((e, i) => {
        assert.deepEqual(
          { index: sigOf(e).batch?.index, size: sigOf(e).batch?.size },
          { index: i, size: 5 },
        );
        assert.ok(sigOf(e).signature.ed25519.equals(first.signature.ed25519));
        verifyGatewaySignature(e, gateway.record);
        assert.equal(openEnvelope(e, bob, { now: NOW }).subject, `message ${i}`);
      });
    });

    it('an envelope alone gets the plain signature', async () => {
      const [env] = envelopes(1) as [Envelope];
      const signed = roundTrip(await new GatewaySigner(gateway).sign(env));
      assert.equal(sigOf(signed).batch, undefined);
      verifyGatewaySignature(signed, gateway.record);
      if (suite === 'classic-v1') {
        // Ed25519 is deterministic: the same bytes as the unbatched signature.
        assert.ok(encodeEnvelope(signed).equals(encodeEnvelope(addGatewaySignature(env, gateway))));
      }
    });

    it('a batch never holds more than its maximum', async () => {
      const signer = new GatewaySigner(gateway, 4);
      const signed = await Promise.all(envelopes(10).map((e) => signer.sign(e)));
      assert.deepEqual(
        signed.map((e) => sigOf(e).batch?.size),
        [4, 4, 4, 4, 4, 4, 4, 4, 2, 2],
      );
      for (const e of signed) verifyGatewaySignature(roundTrip(e), gateway.record);
    });

    it('refuses a changed envelope, path, index or size, and a signature of another batch', async () => {
      const signer = new GatewaySigner(gateway);
      const [a, b, c] = (await Promise.all(envelopes(3).map((e) => signer.sign(e)))) as [
        Envelope,
        Envelope,
        Envelope,
      ];
      const [other] = await Promise.all(envelopes(2).map((e) => signer.sign(e)));
      const g = sigOf(a);
      const batch = g.batch as NonNullable<GatewaySignature['batch']>;
      const refused = (e: Envelope): void =>
        assert.throws(
          () => verifyGatewaySignature(e, gateway.record),
          code('ERR_GATEWAY_SIGNATURE'),
        );
      refused({ ...a, ciphertext: flip(a.ciphertext, 5) });
      refused({ ...a, gatewaySignature: sigOf(b) });
      refused({
        ...a,
        gatewaySignature: {
          ...g,
          batch: { ...batch, path: [flip(batch.path[0] as Buffer, 1), ...batch.path.slice(1)] },
        },
      });
      refused({ ...a, gatewaySignature: { ...g, batch: { ...batch, index: 1 } } });
      refused({ ...c, gatewaySignature: { ...sigOf(c), batch: { ...batch, size: 4 } } });
      refused({ ...a, gatewaySignature: { ...g, signature: sigOf(other as Envelope).signature } });
      refused({ ...a, gatewaySignature: { ...g, batch: undefined } });
    });

    it('the cache checks a batch once and serves only the signature that verified', async () => {
      const signer = new GatewaySigner(gateway);
      const [a, b] = (await Promise.all(envelopes(2).map((e) => signer.sign(e)))) as [
        Envelope,
        Envelope,
      ];
      const batches = new VerifiedBatches();
      // The record's signing keys are read for every signature verified: count the reads.
      let keyReads = 0;
      const record = Object.defineProperty({ ...gateway.record }, 'signingPublicKeys', {
        get: () => {
          keyReads += 1;
          return gateway.record.signingPublicKeys;
        },
      });
      verifyGatewaySignature(a, record, { batches });
      const first = keyReads;
      assert.ok(first > 0);
      verifyGatewaySignature(b, record, { batches });
      assert.equal(
        keyReads,
        first * 2 - 1,
        'the second envelope of the batch was not verified again',
      );
      verifyGatewaySignature(b, record);
      assert.equal(keyReads, first * 3 - 1, 'without the cache, every envelope is verified');
      const forged = {
        ...sigOf(b),
        signature: { ...sigOf(b).signature, ed25519: flip(sigOf(b).signature.ed25519, 7) },
      };
      assert.throws(
        () =>
          verifyGatewaySignature({ ...b, gatewaySignature: forged }, gateway.record, { batches }),
        code('ERR_GATEWAY_SIGNATURE'),
      );
      const changed = { ...b, ciphertext: flip(b.ciphertext, 3) };
      assert.throws(
        () => verifyGatewaySignature(changed, gateway.record, { batches }),
        code('ERR_GATEWAY_SIGNATURE'),
      );
      const rotated = generateIdentity(gateway.did, suite, NOW);
      assert.throws(
        () => verifyGatewaySignature(b, rotated.record, { batches }),
        code('ERR_GATEWAY_SIGNATURE'),
      );
    });

    it('a failed signature fails every envelope of its batch, and the next batch is signed', async () => {
      let fail = true;
      const flaky = {
        record: gateway.record,
        signAsync: (t: Buffer, purpose: string) =>
          fail ? Promise.reject(new Error('the key is gone')) : gateway.signAsync(t, purpose),
      } as unknown as SecretKeySet;
      const signer = new GatewaySigner(flaky);
      const results = await Promise.allSettled(envelopes(3).map((e) => signer.sign(e)));
      assert.deepEqual(
        results.map((r) => r.status),
        ['rejected', 'rejected', 'rejected'],
      );
      fail = false;
      const [again] = envelopes(1) as [Envelope];
      verifyGatewaySignature(await signer.sign(again), gateway.record);
    });
  });
}

describe('batched gateway signature: the decoder', () => {
  const { alice, bob, gateway } = cast('classic-v1');
  const [sealed] = sealMessage({
    author: alice,
    to: [bob.record],
    body: BODY,
    createdAt: NOW,
    expiresAt: NOW + HOUR,
  });
  const env = (sealed as { envelope: Envelope }).envelope;
  const g = addGatewaySignature(env, gateway).gatewaySignature as GatewaySignature;
  const hash = Buffer.alloc(32, 7);
  const cases: [string, NonNullable<GatewaySignature['batch']>][] = [
    ['a batch of one', { index: 0, size: 1, path: [] }],
    ['a batch over 256', { index: 0, size: 257, path: Array(9).fill(hash) }],
    ['an index outside the batch', { index: 4, size: 4, path: [hash, hash] }],
    ['a path too short for its place', { index: 0, size: 4, path: [hash] }],
    ['a path too long for its place', { index: 0, size: 2, path: [hash, hash] }],
    ['a path hash of 31 bytes', { index: 0, size: 2, path: [Buffer.alloc(31)] }],
  ];
  for (const [what, batch] of cases) {
    it(`refuses ${what}`, () => {
      assert.throws(
        () => encodeEnvelope({ ...env, gatewaySignature: { ...g, batch } }),
        code('ERR_ENVELOPE_FORMAT'),
      );
    });
  }
});
