/**
 * The worked examples of docs/PROTOCOL.md §8: an envelope from Alice to Bob sealed
 * deterministically from fixed seeds and fixed "randomness", with every intermediate value, for
 * classic-v1 and for hybrid-v1 (whose ML-DSA-65 signature uses FIPS 204's deterministic variant,
 * rnd = 32 zero bytes, for the example only). Used by scripts/protocol-example.js (prints them)
 * and the golden-file test (test/fixtures/envelope/<suite>-example.{json,bin}). Nothing here is
 * for production use.
 */
import { aeadOpen, sha256 } from '../native/index.js';
import { KEY_ID_LABEL, SecretKeySet, type SecretSeeds } from '../identity/keys.js';
import type { SuiteId } from '../identity/suites.js';
import { lp } from '../identity/lp.js';
import { ed25519Message, mlDsa65Context } from '../identity/signature.js';
import { decodeSealedContent, encodeEnvelope, type MessageBody } from './codec.js';
import { openEnvelope, sealEnvelope } from './envelope.js';
import {
  PURPOSE_AUTHOR,
  authorTranscript,
  bodyHash,
  contentAad,
  deriveContentKey,
  wrapInfo,
} from './transcript.js';

export interface ProtocolExample {
  /** Every input and intermediate value, hex for bytes. */
  values: Record<string, string | number>;
  /** The encoded envelope. */
  envelope: Buffer;
}

const fill = (byte: number) => Buffer.alloc(32, byte);

/** The seeds of a party whose bytes all start with `base` (0xa1.. for Alice, 0xb1.. for Bob). */
function seeds(suite: SuiteId, base: number): SecretSeeds {
  return {
    kem: fill(base),
    ed25519: fill(base + 1),
    ...(suite === 'hybrid-v1' ? { mldsa65: fill(base + 2) } : {}),
  };
}

export function protocolExample(suite: SuiteId = 'classic-v1'): ProtocolExample {
  const hybrid = suite === 'hybrid-v1';
  const createdAt = 1_735_689_600_000; // 2025-01-01T00:00:00Z
  const expiresAt = createdAt + 7 * 24 * 3600 * 1000;
  const alice = SecretKeySet.fromSeeds(
    'did:aftersmtp:example.com:alice',
    suite,
    createdAt,
    seeds(suite, 0xa1),
  );
  const bob = SecretKeySet.fromSeeds(
    'did:aftersmtp:example.org:bob',
    suite,
    createdAt,
    seeds(suite, 0xb1),
  );
  const contentKey = fill(0xc0);
  const messageId = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  // DeriveKeyPair(ikmE) for DHKEM(X25519); X-Wing's encapsulation takes a 64-byte eseed.
  const ikmE = Buffer.alloc(hybrid ? 64 : 32, 0xe0);
  const mlDsa = hybrid ? Buffer.alloc(32) : undefined;
  const body: MessageBody = {
    subject: 'Hello Bob',
    contentType: 'text/plain; charset=utf-8',
    content: Buffer.from('Hi Bob,\r\nthis is the AfterSMTP worked example.\r\n'),
  };
  const envelope = sealEnvelope({
    author: alice,
    signedRecipients: [bob.record],
    body,
    createdAt,
    expiresAt,
    randomness: { contentKey, messageId, ikmE: [ikmE], ...(mlDsa ? { mlDsa } : {}) },
  });
  const bytes = encodeEnvelope(envelope);

  if (!openEnvelope(bytes, bob, { now: createdAt }).content.equals(body.content)) {
    throw new Error('the worked example does not open');
  }
  // Recompute the intermediates the document shows (the seal above does the same internally).
  const { key, nonce } = deriveContentKey(contentKey, suite, messageId);
  const transcript = authorTranscript({
    suite,
    messageId,
    sender: alice.record,
    recipients: [bob.record],
    createdAt,
    expiresAt,
    bodyHash: bodyHash(body),
    checkpoint: Buffer.alloc(0),
  });
  const wrap = envelope.wraps[0];
  if (!wrap) throw new Error('no wrap');
  // Decrypting with the known key gives the exact plaintext bytes that were sealed.
  const aad = contentAad(suite, messageId);
  const sealedBytes = aeadOpen('chacha20-poly1305', key, nonce, aad, envelope.ciphertext);
  const sealed = decodeSealedContent(sealedBytes);
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  const keyIdInput = (r: SecretKeySet) =>
    lp(
      KEY_ID_LABEL,
      r.suite,
      r.record.kemPublicKey,
      r.record.signingPublicKeys.ed25519,
      ...(hybrid ? [r.record.signingPublicKeys.mldsa65 as Buffer] : []),
    );
  const kem = hybrid ? 'XWing' : 'X25519';
  const party = (name: string, k: SecretKeySet, base: number) => ({
    [`${name}Did`]: k.did,
    [`${name}${kem}${hybrid ? 'Seed' : 'Secret'}`]: hex(fill(base)),
    [`${name}Ed25519Seed`]: hex(fill(base + 1)),
    ...(hybrid ? { [`${name}MlDsa65Seed`]: hex(fill(base + 2)) } : {}),
    [`${name}${kem}Public`]: hex(k.record.kemPublicKey),
    [`${name}Ed25519Public`]: hex(k.record.signingPublicKeys.ed25519),
    ...(hybrid
      ? { [`${name}MlDsa65Public`]: hex(k.record.signingPublicKeys.mldsa65 as Buffer) }
      : {}),
  });
  return {
    envelope: bytes,
    values: {
      suite,
      createdAt,
      expiresAt,
      ...party('alice', alice, 0xa1),
      aliceKeyIdInput: hex(keyIdInput(alice)),
      aliceKeyIdSha256: hex(sha256(keyIdInput(alice))),
      aliceKeyId: hex(alice.keyId),
      ...party('bob', bob, 0xb1),
      bobKeyId: hex(bob.keyId),
      contentKey: hex(contentKey),
      messageId: hex(messageId),
      [hybrid ? 'xwingEseed' : 'hpkeIkmE']: hex(ikmE),
      subject: body.subject,
      contentType: body.contentType,
      content: hex(body.content),
      bodyHashInput: hex(lp('aftersmtp/amp/v1/body', body.subject, body.contentType, body.content)),
      bodyHash: hex(bodyHash(body)),
      checkpoint: '',
      authorTranscript: hex(transcript),
      authorEd25519Message: hex(ed25519Message(PURPOSE_AUTHOR, transcript)),
      authorEd25519Signature: hex(sealed.signature.ed25519),
      ...(hybrid
        ? {
            authorMlDsa65Context: hex(mlDsa65Context(PURPOSE_AUTHOR)),
            authorMlDsa65Rnd: hex(mlDsa as Buffer),
            authorMlDsa65Signature: hex(sealed.signature.mldsa65 as Buffer),
          }
        : {}),
      sealedContent: hex(sealedBytes),
      contentKdfInfo: hex(lp('aftersmtp/amp/v1/content-key', suite)),
      contentAeadKey: hex(key),
      contentAeadNonce: hex(nonce),
      contentAad: hex(aad),
      contentCiphertext: hex(envelope.ciphertext),
      hpkeInfo: hex(wrapInfo(suite, messageId, bob.record, expiresAt)),
      hpkeAad: '',
      hpkeEnc: hex(wrap.enc),
      hpkeWrappedKey: hex(wrap.wrappedKey),
      envelope: hex(bytes),
    },
  };
}
