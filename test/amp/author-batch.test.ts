// Batched author signatures (docs/PROTOCOL.md §3.3, §6.1): envelopes sealed together by one
// author share one signature over a Merkle tree of their author transcripts, each carrying its
// place inside the ciphertext; the recipient's opener checks the place and the batch signature.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { AfterSmtpError } from '../../src/errors.js';
import {
  decodeSealedContent,
  encodeSealedContent,
  type SealedContent,
} from '../../src/envelope/codec.js';
import {
  AuthorSigner,
  openEnvelope,
  sealEnvelope,
  sealEnvelopeAsync,
  type SealEnvelopeInput,
} from '../../src/envelope/envelope.js';
import type { Envelope } from '../../src/envelope/index.js';
import { WRAP_AAD, contentAad, deriveContentKey, wrapInfo } from '../../src/envelope/transcript.js';
import type { BatchPlace } from '../../src/identity/batch-signature.js';
import type { SecretKeySet } from '../../src/identity/keys.js';
import { aeadOpen, aeadSeal } from '../../src/native/index.js';
import { BODY, HOUR, NOW, cast, flip } from './helpers.js';

const code = (c: string) => (err: unknown) => err instanceof AfterSmtpError && err.code === c;

/** How `reader` (a recipient with a wrap) decrypts `env`: the content key and nonce, the AAD. */
function contentKeyOf(env: Envelope, reader: SecretKeySet) {
  const w = env.wraps.find((x) => x.recipient === reader.did) as Envelope['wraps'][number];
  const key = reader.hpkeOpen(
    w.enc,
    wrapInfo(env.suite, env.messageId, reader.record, env.expiresAt),
    WRAP_AAD,
    w.wrappedKey,
  );
  return {
    ...deriveContentKey(key, env.suite, env.messageId),
    aad: contentAad(env.suite, env.messageId),
  };
}

/** The sealed content of `env`, as `reader` decrypts it. */
function contentOf(env: Envelope, reader: SecretKeySet): SealedContent {
  const k = contentKeyOf(env, reader);
  return decodeSealedContent(aeadOpen('chacha20-poly1305', k.key, k.nonce, k.aad, env.ciphertext));
}

/** `env` with its sealed content changed by `change`, encrypted again under the same key. */
function resealed(
  env: Envelope,
  reader: SecretKeySet,
  change: (c: SealedContent) => SealedContent,
): Envelope {
  const k = contentKeyOf(env, reader);
  const content = encodeSealedContent(change(contentOf(env, reader)));
  return { ...env, ciphertext: aeadSeal('chacha20-poly1305', k.key, k.nonce, k.aad, content) };
}

for (const suite of ['classic-v1', 'hybrid-v1'] as const) {
  describe(`batched author signature ${suite}`, () => {
    const { bob, gateway } = cast(suite);
    const input = (i: number): SealEnvelopeInput => ({
      author: gateway,
      signedRecipients: [bob.record],
      body: { ...BODY, subject: `message ${i}` },
      createdAt: NOW,
      expiresAt: NOW + HOUR,
    });
    const sealTogether = (signer: AuthorSigner, n: number): Promise<Envelope[]> =>
      Promise.all(Array.from({ length: n }, (_, i) => sealEnvelopeAsync(input(i), signer)));
    const placeOf = (env: Envelope): BatchPlace | undefined => contentOf(env, bob).signatureBatch;

    it('envelopes sealed together share one signature, and each opens alone', async () => {
      const sealed = await sealTogether(new AuthorSigner(gateway), 5);
      const first = contentOf(sealed[0] as Envelope, bob).signature;
      sealed.forEach((env, i) => {
        const content = contentOf(env, bob);
        assert.deepEqual(
          { index: content.signatureBatch?.index, size: content.signatureBatch?.size },
          { index: i, size: 5 },
        );
        assert.ok(content.signature.ed25519.equals(first.ed25519));
        const opened = openEnvelope(env, bob, { now: NOW });
        assert.equal(opened.subject, `message ${i}`);
        assert.equal(opened.sender.did, gateway.did);
      });
    });

    it('an envelope alone gets the plain author signature', async () => {
      const [env] = (await sealTogether(new AuthorSigner(gateway), 1)) as [Envelope];
      assert.equal(placeOf(env), undefined);
      openEnvelope(env, bob, { now: NOW });
    });

    it('refuses a changed path, index or size, a place removed or added', async () => {
      const [a] = (await sealTogether(new AuthorSigner(gateway), 3)) as [Envelope];
      const place = placeOf(a) as BatchPlace;
      const refused = (env: Envelope): void =>
        assert.throws(() => openEnvelope(env, bob, { now: NOW }), code('ERR_ENVELOPE_SIGNATURE'));
      const withPlace =
        (p: BatchPlace | undefined) =>
        (content: SealedContent): SealedContent => ({ ...content, signatureBatch: p });
      refused(
        resealed(
          a,
          bob,
          withPlace({ ...place, path: [flip(place.path[0] as Buffer, 1), ...place.path.slice(1)] }),
        ),
      );
      refused(resealed(a, bob, withPlace({ ...place, index: 1 })));
      refused(resealed(a, bob, withPlace({ ...place, size: 4 })));
      refused(resealed(a, bob, withPlace(undefined)));
      // A plain signature presented as one of a batch.
      const [alone] = (await sealTogether(new AuthorSigner(gateway), 1)) as [Envelope];
      refused(resealed(alone, bob, withPlace(place)));
      // The unchanged content, encrypted again, still opens: the checks above are the changes'.
      openEnvelope(
        resealed(a, bob, (x) => x),
        bob,
        { now: NOW },
      );
    });

    it('copies of one message never share a batch: each recipient sees hashes of other messages only', async () => {
      const { carol, dave } = cast(suite);
      const readers = [bob, carol, dave];
      const signer = new AuthorSigner(gateway);
      const messages = [Buffer.alloc(16, 1), Buffer.alloc(16, 2)];
      const sealed = await Promise.all(
        messages.flatMap((messageId) =>
          readers.map(async (reader) => ({
            reader,
            env: await sealEnvelopeAsync(
              { ...input(0), signedRecipients: [reader.record], messageId },
              signer,
            ),
          })),
        ),
      );
      const batches = new Map<string, string[]>();
      for (const { reader, env } of sealed) {
        openEnvelope(env, reader, { now: NOW });
        const content = contentOf(env, reader);
        if (content.signatureBatch === undefined) continue;
        const key = content.signature.ed25519.toString('hex');
        batches.set(key, [...(batches.get(key) ?? []), env.messageId.toString('hex')]);
      }
      assert.equal(batches.size, 1, 'the first copy of each message shares a batch');
      for (const ids of batches.values()) {
        assert.equal(
          new Set(ids).size,
          ids.length,
          `one batch holds copies of one message: ${ids}`,
        );
        assert.equal(ids.length, 2);
      }
    });

    it('a batch never holds more than its maximum', async () => {
      const sealed = await sealTogether(new AuthorSigner(gateway, 4), 10);
      assert.deepEqual(
        sealed.map((env) => placeOf(env)?.size),
        [4, 4, 4, 4, 4, 4, 4, 4, 2, 2],
      );
      for (const env of sealed) openEnvelope(env, bob, { now: NOW });
    });

    it("refuses a signer of another key than the author's", async () => {
      const { alice } = cast(suite);
      await assert.rejects(
        sealEnvelopeAsync(input(0), new AuthorSigner(alice)),
        code('ERR_ENVELOPE_INPUT'),
      );
    });
  });
}

describe('sealed content: the author signature batch place', () => {
  it('decodes only a place of 2..256 leaves with an index below its size', () => {
    const { bob, gateway } = cast('classic-v1');
    const env = sealEnvelope({
      author: gateway,
      signedRecipients: [bob.record],
      body: BODY,
      createdAt: NOW,
      expiresAt: NOW + HOUR,
    });
    const content = contentOf(env, bob);
    const bytes = (p: BatchPlace) => encodeSealedContent({ ...content, signatureBatch: p });
    const hash = Buffer.alloc(32, 7);
    assert.deepEqual(
      decodeSealedContent(bytes({ index: 1, size: 2, path: [hash] })).signatureBatch,
      {
        index: 1,
        size: 2,
        path: [hash],
      },
    );
    for (const bad of [
      { index: 0, size: 1, path: [] },
      { index: 2, size: 2, path: [hash] },
      { index: 0, size: 257, path: Array(9).fill(hash) },
      { index: 0, size: 2, path: [] },
      { index: 0, size: 2, path: [Buffer.alloc(31)] },
    ]) {
      assert.throws(
        () => decodeSealedContent(bytes(bad)),
        (err: unknown) =>
          code('ERR_ENVELOPE_FORMAT')(err) && /signature\.batch/.test((err as Error).message),
      );
    }
  });
});
