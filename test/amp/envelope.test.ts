// Envelope seal/open for both suites, Bcc handling, and every rejection an opener must make.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { AfterSmtpError } from '../../src/errors.js';
import {
  decodeEnvelope,
  encodeEnvelope,
  openEnvelope,
  sealEnvelope,
  sealMessage,
  type Envelope,
} from '../../src/envelope/index.js';
import { sealEnvelopeAsync } from '../../src/envelope/envelope.js';
import { WRAP_AAD, wrapInfo } from '../../src/envelope/transcript.js';
import { generateIdentity, type SecretKeySet, type SuiteId } from '../../src/identity/index.js';
import type { Signature } from '../../src/identity/signature.js';
import { SUITES } from '../../src/identity/suites.js';
import { hpkeSeal } from '../../src/native/index.js';
import { beginWork, workAlone } from '../../src/workload.js';
import { BODY, HOUR, NOW, cast, flip, withHeader } from './helpers.js';

const OPEN = { now: NOW };
const code = (c: string) => (err: unknown) => err instanceof AfterSmtpError && err.code === c;

function seal1(suite: SuiteId, extra: Partial<Parameters<typeof sealEnvelope>[0]> = {}): Envelope {
  const { alice, bob } = cast(suite);
  return sealEnvelope({
    author: alice,
    signedRecipients: [bob.record],
    body: BODY,
    createdAt: NOW - 1000,
    expiresAt: NOW + HOUR,
    ...extra,
  });
}

/** An author whose signatures are altered by `mutate` (for forgery tests). */
function forgingAuthor(real: SecretKeySet, mutate: (s: Signature) => Signature): SecretKeySet {
  return {
    record: real.record,
    sign: (t: Uint8Array, purpose: string) => mutate(real.sign(t, purpose)),
  } as unknown as SecretKeySet;
}

for (const suite of ['classic-v1', 'hybrid-v1'] as const) {
  describe(`envelope ${suite}`, () => {
    const { alice, bob, carol, dave } = cast(suite);

    it('sealEnvelopeAsync gives the bytes sealEnvelope gives, alone or not', async () => {
      const randomness = {
        contentKey: Buffer.alloc(32, 1),
        messageId: Buffer.alloc(16, 2),
        ikmE: [Buffer.alloc(suite === 'hybrid-v1' ? 64 : 32, 3)],
        mlDsa: Buffer.alloc(32, 4),
      };
      const input = {
        author: alice,
        signedRecipients: [bob.record],
        body: BODY,
        createdAt: NOW - 1000,
        expiresAt: NOW + HOUR,
        randomness,
      };
      const want = encodeEnvelope(sealEnvelope(input));
      assert.ok(workAlone()); // wraps and the Ed25519 half here, ML-DSA on the thread pool
      assert.deepEqual(encodeEnvelope(await sealEnvelopeAsync(input)), want);
      const others = [beginWork(), beginWork()]; // all of it on the thread pool
      try {
        assert.deepEqual(encodeEnvelope(await sealEnvelopeAsync(input)), want);
      } finally {
        for (const done of others) done();
      }
      assert.deepEqual(openEnvelope(want, bob, OPEN).content, BODY.content);
    });

    it('seals for one recipient and opens it', () => {
      const bytes = encodeEnvelope(seal1(suite));
      const m = openEnvelope(bytes, bob, OPEN);
      assert.equal(m.suite, suite);
      assert.equal(m.sender.did, alice.did);
      assert.deepEqual(m.sender.keyId, alice.keyId);
      assert.deepEqual(m.recipients, [{ did: bob.did, keyId: bob.keyId }]);
      assert.equal(m.subject, BODY.subject);
      assert.equal(m.contentType, BODY.contentType);
      assert.deepEqual(m.content, BODY.content);
      assert.equal(m.createdAt, NOW - 1000);
      assert.equal(m.expiresAt, NOW + HOUR);
      assert.equal(m.messageId.length, 16);
      assert.deepEqual(m.checkpoint, Buffer.alloc(0));
      assert.equal(m.gatewaySignature, null);
    });

    it('seals for several recipients; each opens its own wrap and sees the signed list', () => {
      const checkpoint = Buffer.from('example.org/log 42 root');
      const [copy, ...rest] = sealMessage({
        author: alice,
        to: [bob.record, carol.record],
        cc: [dave.record],
        body: BODY,
        createdAt: NOW,
        expiresAt: NOW + HOUR,
        checkpoint,
      });
      assert.equal(rest.length, 0);
      const bytes = encodeEnvelope((copy as { envelope: Envelope }).envelope);
      const env = decodeEnvelope(bytes);
      assert.deepEqual(
        env.wraps.map((w) => w.recipient),
        [bob.did, carol.did, dave.did],
      );
      for (const r of [bob, carol, dave]) {
        const m = openEnvelope(bytes, r, OPEN);
        assert.deepEqual(
          m.recipients.map((x) => x.did),
          [bob.did, carol.did, dave.did],
        );
        assert.deepEqual(m.checkpoint, checkpoint);
        assert.deepEqual(m.content, BODY.content);
      }
      assert.throws(() => openEnvelope(bytes, alice, OPEN), code('ERR_ENVELOPE_NO_WRAP'));
    });

    it('gives each Bcc recipient its own envelope naming only the visible recipients and itself', () => {
      const out = sealMessage({
        author: alice,
        to: [bob.record],
        bcc: [carol.record, dave.record],
        body: BODY,
        createdAt: NOW,
        expiresAt: NOW + HOUR,
      });
      assert.equal(out.length, 3);
      const [visible, bccCarol, bccDave] = out.map((o) => o.envelope) as [
        Envelope,
        Envelope,
        Envelope,
      ];
      assert.deepEqual(
        visible.wraps.map((w) => w.recipient),
        [bob.did],
      );
      assert.deepEqual(
        openEnvelope(visible, bob, OPEN).recipients.map((r) => r.did),
        [bob.did],
      );
      assert.deepEqual(
        bccCarol.wraps.map((w) => w.recipient),
        [carol.did],
      );
      assert.deepEqual(
        openEnvelope(bccCarol, carol, OPEN).recipients.map((r) => r.did),
        [bob.did, carol.did],
      );
      assert.deepEqual(
        openEnvelope(bccDave, dave, OPEN).recipients.map((r) => r.did),
        [bob.did, dave.did],
      );
      assert.equal(out[1]?.bcc?.did, carol.did);
      assert.throws(() => openEnvelope(bccCarol, bob, OPEN), code('ERR_ENVELOPE_NO_WRAP'));
      assert.throws(() => openEnvelope(visible, carol, OPEN), code('ERR_ENVELOPE_NO_WRAP'));
      const ids = new Set([visible, bccCarol, bccDave].map((e) => e.messageId.toString('hex')));
      assert.equal(ids.size, 3, 'each copy has its own message id (and content key)');
    });

    it('rejects a forwarded wrap: a recipient re-wraps the content key for someone not in the signed list', () => {
      const env = seal1(suite);
      // Bob (a genuine recipient) learns the content key and wraps it for Carol.
      const w = env.wraps[0] as Envelope['wraps'][number];
      const contentKey = bob.hpkeOpen(
        w.enc,
        wrapInfo(suite, env.messageId, bob.record, env.expiresAt),
        WRAP_AAD,
        w.wrappedKey,
      );
      const sealed = hpkeSeal(
        SUITES[suite].kem,
        carol.record.kemPublicKey,
        wrapInfo(suite, env.messageId, carol.record, env.expiresAt),
        WRAP_AAD,
        contentKey,
      );
      const forwarded = withHeader(env, {
        wraps: [
          {
            recipient: carol.did,
            keyId: carol.keyId,
            enc: sealed.enc,
            wrappedKey: sealed.ciphertext,
          },
        ],
      });
      assert.throws(
        () => openEnvelope(encodeEnvelope(forwarded), carol, OPEN),
        code('ERR_ENVELOPE_NOT_A_RECIPIENT'),
      );
    });

    it('refuses an expired message (expires-at is the first instant it is invalid)', () => {
      const env = seal1(suite);
      openEnvelope(env, bob, { now: env.expiresAt - 1 });
      assert.throws(
        () => openEnvelope(env, bob, { now: env.expiresAt }),
        code('ERR_ENVELOPE_EXPIRED'),
      );
      assert.throws(
        () => openEnvelope(env, bob, { now: env.expiresAt + 365 * 24 * HOUR }),
        code('ERR_ENVELOPE_EXPIRED'),
      );
    });

    describe('tampered cleartext header fields', () => {
      const env = seal1(suite);
      const cases: [string, Partial<Envelope>, string][] = [
        ['message id', { messageId: flip(env.messageId, 3) }, 'ERR_ENVELOPE_WRAP'],
        ['sender', { sender: 'did:aftersmtp:example.com:mallory' }, 'ERR_ENVELOPE_HEADER'],
        ['created-at', { createdAt: env.createdAt - 1 }, 'ERR_ENVELOPE_HEADER'],
        ['expires-at (extended)', { expiresAt: env.expiresAt + HOUR }, 'ERR_ENVELOPE_WRAP'],
        [
          'suite',
          { suite: suite === 'classic-v1' ? 'hybrid-v1' : 'classic-v1' },
          'ERR_ENVELOPE_SUITE',
        ],
      ];
      for (const [what, patch, want] of cases) {
        it(`rejects a changed ${what} (${want})`, () => {
          assert.throws(() => openEnvelope(withHeader(env, patch), bob, OPEN), code(want));
        });
      }
      it('rejects an unknown version at decode', () => {
        const bytes = encodeEnvelope(env);
        assert.equal(bytes[0], 0x08); // field 1 varint
        const v2 = Buffer.from(bytes);
        v2[1] = 2;
        assert.throws(() => decodeEnvelope(v2), code('ERR_ENVELOPE_VERSION'));
      });
    });

    it('rejects tampered content ciphertext and tampered wraps', () => {
      const env = seal1(suite);
      for (const i of [0, 17, -1, Math.floor(env.ciphertext.length / 2)]) {
        assert.throws(
          () => openEnvelope(withHeader(env, { ciphertext: flip(env.ciphertext, i) }), bob, OPEN),
          code('ERR_ENVELOPE_CONTENT'),
        );
      }
      const w = env.wraps[0] as Envelope['wraps'][number];
      for (const wrap of [
        { ...w, enc: flip(w.enc, 5) },
        { ...w, wrappedKey: flip(w.wrappedKey, 40) },
      ]) {
        assert.throws(
          () => openEnvelope(withHeader(env, { wraps: [wrap] }), bob, OPEN),
          code('ERR_ENVELOPE_WRAP'),
        );
      }
    });

    it('rejects a forged author signature', () => {
      const forgeEd = forgingAuthor(alice, (s) => ({ ...s, ed25519: flip(s.ed25519, 7) }));
      assert.throws(
        () => openEnvelope(seal1(suite, { author: forgeEd }), bob, OPEN),
        (e: unknown) => code('ERR_ENVELOPE_SIGNATURE')(e) && /Ed25519/.test((e as Error).message),
      );
      // Mallory signs with her own keys but presents Alice's record.
      const mallory = generateIdentity('did:aftersmtp:example.com:mallory', suite);
      const impostor = forgingAuthor(alice, () => ({}) as Signature);
      (impostor as unknown as { sign: SecretKeySet['sign'] }).sign = (t, p) => mallory.sign(t, p);
      assert.throws(
        () => openEnvelope(seal1(suite, { author: impostor }), bob, OPEN),
        code('ERR_ENVELOPE_SIGNATURE'),
      );
    });

    if (suite === 'hybrid-v1') {
      it('rejects a composite signature with only the ML-DSA-65 half forged', () => {
        const forgeMl = forgingAuthor(alice, (s) => ({
          ...s,
          mldsa65: flip(s.mldsa65 as Buffer, 1000),
        }));
        assert.throws(
          () => openEnvelope(seal1(suite, { author: forgeMl }), bob, OPEN),
          (e: unknown) =>
            code('ERR_ENVELOPE_SIGNATURE')(e) && /ML-DSA-65/.test((e as Error).message),
        );
      });
      it('rejects a composite signature stripped to its Ed25519 half', () => {
        const strip = forgingAuthor(alice, (s) => ({
          ed25519: s.ed25519,
          mldsa65: Buffer.alloc(0),
        }));
        assert.throws(
          () => openEnvelope(seal1(suite, { author: strip }), bob, OPEN),
          code('ERR_ENVELOPE_FORMAT'),
        );
      });
    }

    it('rejects a wrap relabelled for another key of the same DID, and finds no wrap for that key', () => {
      const bob2 = generateIdentity(bob.did, suite, NOW);
      const env = seal1(suite);
      assert.throws(() => openEnvelope(env, bob2, OPEN), code('ERR_ENVELOPE_NO_WRAP'));
      const w = env.wraps[0] as Envelope['wraps'][number];
      const relabelled = withHeader(env, { wraps: [{ ...w, keyId: bob2.keyId }] });
      assert.throws(() => openEnvelope(relabelled, bob2, OPEN), code('ERR_ENVELOPE_WRAP'));
    });

    it('rejects bad seal input', () => {
      const base = { author: alice, body: BODY };
      assert.throws(() => sealMessage({ ...base, to: [] }), code('ERR_ENVELOPE_INPUT'));
      assert.throws(
        () => sealMessage({ ...base, to: [bob.record, bob.record] }),
        code('ERR_ENVELOPE_INPUT'),
      );
      assert.throws(
        () => sealMessage({ ...base, to: [bob.record], createdAt: NOW, expiresAt: NOW }),
        code('ERR_ENVELOPE_INPUT'),
      );
      assert.throws(
        () =>
          sealMessage({
            ...base,
            to: [bob.record],
            body: { ...BODY, contentType: 'text/plain\r\nX: y' },
          }),
        code('ERR_ENVELOPE_INPUT'),
      );
      assert.throws(
        () =>
          sealMessage({ ...base, to: [bob.record], body: { ...BODY, subject: 'x'.repeat(4097) } }),
        code('ERR_ENVELOPE_INPUT'),
      );
      assert.throws(
        () => sealMessage({ ...base, to: [bob.record], maxBytes: 100 }),
        code('ERR_ENVELOPE_TOO_LARGE'),
      );
    });
  });
}

describe('suites', () => {
  it('refuses to mix recipient suites in one envelope', () => {
    assert.throws(
      () =>
        sealMessage({
          author: cast('classic-v1').alice,
          to: [cast('classic-v1').bob.record],
          bcc: [cast('hybrid-v1').bob.record],
          body: BODY,
        }),
      code('ERR_ENVELOPE_SUITE'),
    );
  });
  it('a hybrid author may write to classic recipients (the envelope suite is the KEM suite)', () => {
    const env = sealEnvelope({
      author: cast('hybrid-v1').alice,
      signedRecipients: [cast('classic-v1').bob.record],
      body: BODY,
      createdAt: NOW,
      expiresAt: NOW + HOUR,
    });
    assert.equal(env.suite, 'classic-v1');
    const m = openEnvelope(encodeEnvelope(env), cast('classic-v1').bob, OPEN);
    assert.equal(m.sender.record.suite, 'hybrid-v1');
  });
  it('rejects an envelope of the other suite', () => {
    const env = seal1('hybrid-v1');
    assert.throws(
      () => openEnvelope(env, cast('classic-v1').bob, OPEN),
      code('ERR_ENVELOPE_SUITE'),
    );
  });
});

describe('routing fields of other recipients', () => {
  it('rejects a wrap label that names nobody in the signed list (a relabelled or injected wrap)', () => {
    const { alice, bob, carol } = cast('classic-v1');
    const [s] = sealMessage({
      author: alice,
      to: [bob.record, carol.record],
      body: BODY,
      createdAt: NOW,
      expiresAt: NOW + HOUR,
    });
    const env = (s as { envelope: Envelope }).envelope;
    const wraps = env.wraps.map((w, i) =>
      i === 1 ? { ...w, recipient: 'did:aftersmtp:example.org:mallory' } : w,
    );
    assert.throws(
      () => openEnvelope(withHeader(env, { wraps }), bob, OPEN),
      code('ERR_ENVELOPE_HEADER'),
    );
  });
});
