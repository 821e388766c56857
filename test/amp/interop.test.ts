// Interoperability: opens docs/PROTOCOL.md's worked example with an independent implementation
// written from the document alone — a standard HPKE library (@hpke/core), node:crypto for HKDF and
// ChaCha20-Poly1305, @noble/curves for Ed25519, and protobufjs parsing the .proto text — without
// any of this project's envelope code or native core. Then the reverse: a wrap made by @hpke/core
// opens with our code.
import { strict as assert } from 'node:assert';
import { createDecipheriv, createHash, hkdfSync } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CipherSuite, HkdfSha256 } from '@hpke/core';
import { Chacha20Poly1305 } from '@hpke/chacha20poly1305';
import { DhkemX25519HkdfSha256 } from '@hpke/dhkem-x25519';
import { ed25519 } from '@noble/curves/ed25519.js';
import protobuf from 'protobufjs';
import { protocolExample } from '../../src/envelope/example.js';
import { decodeEnvelope, openEnvelope } from '../../src/envelope/index.js';
import { SecretKeySet } from '../../src/identity/keys.js';

const here = (p: string) => fileURLToPath(new URL(`../../../${p}`, import.meta.url));

// ---- written from docs/PROTOCOL.md §1 ----
function lp(...items: (Uint8Array | string)[]): Buffer {
  return Buffer.concat(
    items.flatMap((i) => {
      const b = typeof i === 'string' ? Buffer.from(i, 'utf8') : Buffer.from(i);
      const len = Buffer.alloc(4);
      len.writeUInt32BE(b.length);
      return [len, b];
    }),
  );
}
const u32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
const u64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
};
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();
const num = (v: unknown) => Number(String(v));

type Obj = Record<string, unknown>;

describe('interop: the worked example with an independent implementation', () => {
  const { values, envelope } = protocolExample();
  const suite = new CipherSuite({
    kem: new DhkemX25519HkdfSha256(),
    kdf: new HkdfSha256(),
    aead: new Chacha20Poly1305(),
  });
  const bobSecret = Buffer.from(String(values.bobX25519Secret), 'hex');

  it('opens, decrypts and verifies the envelope from the document alone', async () => {
    const root = protobuf.parse(
      await readFile(here('proto/aftersmtp/amp/v1/envelope.proto'), 'utf8'),
      { keepCase: true },
    ).root;
    const Envelope = root.lookupType('aftersmtp.amp.v1.Envelope');
    const Sealed = root.lookupType('aftersmtp.amp.v1.SealedContent');
    const env = Envelope.toObject(Envelope.decode(envelope), { longs: String }) as Obj;
    assert.equal(env.version, 1);
    assert.equal(env.suite, 'classic-v1');
    const wraps = env.wraps as Obj[];
    const wrap = wraps[0] as Obj;
    assert.equal(wrap.recipient, values.bobDid);

    // §6.3: HPKE Base mode, info = lp(label, suite, message id, recipient DID, key id, u64(expiry)), aad empty
    const messageId = env.message_id as Uint8Array;
    const info = lp(
      'aftersmtp/amp/v1/wrap',
      'classic-v1',
      messageId,
      wrap.recipient as string,
      wrap.key_id as Uint8Array,
      u64(num(env.expires_at)),
    );
    const skR = await suite.kem.importKey('raw', bobSecret, false);
    const recipient = await suite.createRecipientContext({
      recipientKey: skR,
      enc: wrap.enc as Uint8Array,
      info,
    });
    const contentKey = Buffer.from(
      await recipient.open(wrap.wrapped_key as Uint8Array, new Uint8Array(0)),
    );
    assert.equal(contentKey.toString('hex'), values.contentKey);

    // §6.2: HKDF-SHA256(content key, salt = message id, info = lp(label, suite), 44)
    const okm = Buffer.from(
      hkdfSync(
        'sha256',
        contentKey,
        messageId,
        lp('aftersmtp/amp/v1/content-key', 'classic-v1'),
        44,
      ),
    );
    const ct = env.ciphertext as Uint8Array;
    const decipher = createDecipheriv(
      'chacha20-poly1305',
      okm.subarray(0, 32),
      okm.subarray(32, 44),
      { authTagLength: 16 },
    );
    decipher.setAAD(lp('aftersmtp/amp/v1/content-aad', 'classic-v1', messageId), {
      plaintextLength: ct.length - 16,
    });
    decipher.setAuthTag(ct.subarray(ct.length - 16));
    const plaintext = Buffer.concat([
      decipher.update(ct.subarray(0, ct.length - 16)),
      decipher.final(),
    ]);
    const sealed = Sealed.toObject(Sealed.decode(plaintext), { longs: String }) as Obj;

    // §4.1: key id of the embedded author record
    const author = sealed.author as Obj;
    const keyId = sha256(
      lp(
        'aftersmtp/identity/v1/key-id',
        'classic-v1',
        author.kem_public_key as Uint8Array,
        author.ed25519_public_key as Uint8Array,
      ),
    ).subarray(0, 16);
    assert.deepEqual(Buffer.from(author.key_id as Uint8Array), keyId);

    // §6.1: author transcript; §3.2: Ed25519 signs lp(purpose + "/ed25519") || transcript
    const body = sealed.body as Obj;
    const recipients = sealed.recipients as Obj[];
    const transcript = lp(
      'aftersmtp/amp/v1/author',
      sealed.suite as string,
      sealed.message_id as Uint8Array,
      author.did as string,
      author.key_id as Uint8Array,
      u32(recipients.length),
      ...recipients.flatMap((r) => [r.did as string, r.key_id as Uint8Array]),
      u64(num(sealed.created_at)),
      u64(num(sealed.expires_at)),
      sha256(
        lp(
          'aftersmtp/amp/v1/body',
          body.subject as string,
          body.content_type as string,
          body.content as Uint8Array,
        ),
      ),
      (sealed.checkpoint as Uint8Array | undefined) ?? new Uint8Array(0),
    );
    assert.equal(transcript.toString('hex'), values.authorTranscript);
    const message = Buffer.concat([lp('aftersmtp/amp/v1/author/ed25519'), transcript]);
    const sig = (sealed.signature as Obj).ed25519 as Uint8Array;
    assert.ok(ed25519.verify(sig, message, author.ed25519_public_key as Uint8Array));

    // §6.6: header equals its signed copy; Bob is a signed recipient
    assert.equal(env.sender, author.did);
    assert.equal(env.created_at, sealed.created_at);
    assert.equal(env.expires_at, sealed.expires_at);
    assert.ok(recipients.some((r) => r.did === values.bobDid));
    assert.equal(Buffer.from(body.content as Uint8Array).toString('hex'), values.content);
  });

  it('a wrap sealed by @hpke/core (with the example ikmE) is byte-identical and opens with our code', async () => {
    const env = decodeEnvelope(envelope);
    const w = env.wraps[0] as (typeof env.wraps)[number];
    const info = lp(
      'aftersmtp/amp/v1/wrap',
      'classic-v1',
      env.messageId,
      w.recipient,
      w.keyId,
      u64(env.expiresAt),
    );
    const pkR = await suite.kem.importKey(
      'raw',
      Buffer.from(String(values.bobX25519Public), 'hex'),
      true,
    );
    const sender = await suite.createSenderContext({
      recipientPublicKey: pkR,
      info,
      ekm: Buffer.from(String(values.hpkeIkmE), 'hex'),
    });
    const wrapped = Buffer.from(
      await sender.seal(Buffer.from(String(values.contentKey), 'hex'), new Uint8Array(0)),
    );
    assert.deepEqual(Buffer.from(sender.enc), w.enc);
    assert.deepEqual(wrapped, w.wrappedKey);
    // and a fresh random wrap from the library opens with our code
    const fresh = await suite.createSenderContext({ recipientPublicKey: pkR, info });
    const freshWrapped = Buffer.from(
      await fresh.seal(Buffer.from(String(values.contentKey), 'hex'), new Uint8Array(0)),
    );
    const bob = SecretKeySet.fromSeeds(String(values.bobDid), 'classic-v1', num(values.createdAt), {
      kem: Buffer.from(bobSecret),
      ed25519: Buffer.from(String(values.bobEd25519Seed), 'hex'),
    });
    const opened = openEnvelope(
      { ...env, wraps: [{ ...w, enc: Buffer.from(fresh.enc), wrappedKey: freshWrapped }] },
      bob,
      { now: num(values.createdAt) },
    );
    assert.equal(opened.subject, values.subject);
  });
});
