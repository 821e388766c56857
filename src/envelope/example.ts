/**
 * The worked example of docs/PROTOCOL.md §8: a classic-v1 envelope from Alice to Bob sealed
 * deterministically from fixed seeds and fixed "randomness", with every intermediate value.
 * Used by scripts/protocol-example.js (prints it) and the golden-file test
 * (test/fixtures/envelope/classic-v1-example.{json,bin}). Nothing here is for production use.
 */
import { aeadOpen, sha256 } from '../native/index.js';
import { KEY_ID_LABEL, SecretKeySet } from '../identity/keys.js';
import { lp } from '../identity/lp.js';
import { ed25519Message } from '../identity/signature.js';
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

export function protocolExample(): ProtocolExample {
  const createdAt = 1_735_689_600_000; // 2025-01-01T00:00:00Z
  const expiresAt = createdAt + 7 * 24 * 3600 * 1000;
  const alice = SecretKeySet.fromSeeds('did:aftersmtp:example.com:alice', 'classic-v1', createdAt, {
    kem: fill(0xa1),
    ed25519: fill(0xa2),
  });
  const bob = SecretKeySet.fromSeeds('did:aftersmtp:example.org:bob', 'classic-v1', createdAt, {
    kem: fill(0xb1),
    ed25519: fill(0xb2),
  });
  const contentKey = fill(0xc0);
  const messageId = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
  const ikmE = fill(0xe0);
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
    randomness: { contentKey, messageId, ikmE: [ikmE] },
  });
  const bytes = encodeEnvelope(envelope);

  if (!openEnvelope(bytes, bob, { now: createdAt }).content.equals(body.content)) {
    throw new Error('the worked example does not open');
  }
  // Recompute the intermediates the document shows (the seal above does the same internally).
  const { key, nonce } = deriveContentKey(contentKey, 'classic-v1', messageId);
  const transcript = authorTranscript({
    suite: 'classic-v1',
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
  const aad = contentAad('classic-v1', messageId);
  const sealedBytes = aeadOpen('chacha20-poly1305', key, nonce, aad, envelope.ciphertext);
  const sealed = decodeSealedContent(sealedBytes);
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  const keyIdInput = (r: SecretKeySet) =>
    lp(KEY_ID_LABEL, r.suite, r.record.kemPublicKey, r.record.signingPublicKeys.ed25519);
  return {
    envelope: bytes,
    values: {
      suite: 'classic-v1',
      createdAt,
      expiresAt,
      aliceDid: alice.did,
      aliceX25519Secret: hex(fill(0xa1)),
      aliceEd25519Seed: hex(fill(0xa2)),
      aliceX25519Public: hex(alice.record.kemPublicKey),
      aliceEd25519Public: hex(alice.record.signingPublicKeys.ed25519),
      aliceKeyIdInput: hex(keyIdInput(alice)),
      aliceKeyIdSha256: hex(sha256(keyIdInput(alice))),
      aliceKeyId: hex(alice.keyId),
      bobDid: bob.did,
      bobX25519Secret: hex(fill(0xb1)),
      bobEd25519Seed: hex(fill(0xb2)),
      bobX25519Public: hex(bob.record.kemPublicKey),
      bobEd25519Public: hex(bob.record.signingPublicKeys.ed25519),
      bobKeyId: hex(bob.keyId),
      contentKey: hex(contentKey),
      messageId: hex(messageId),
      hpkeIkmE: hex(ikmE),
      subject: body.subject,
      contentType: body.contentType,
      content: hex(body.content),
      bodyHashInput: hex(lp('aftersmtp/amp/v1/body', body.subject, body.contentType, body.content)),
      bodyHash: hex(bodyHash(body)),
      checkpoint: '',
      authorTranscript: hex(transcript),
      authorEd25519Message: hex(ed25519Message(PURPOSE_AUTHOR, transcript)),
      authorEd25519Signature: hex(sealed.signature.ed25519),
      sealedContent: hex(sealedBytes),
      contentKdfInfo: hex(lp('aftersmtp/amp/v1/content-key', 'classic-v1')),
      contentAeadKey: hex(key),
      contentAeadNonce: hex(nonce),
      contentAad: hex(aad),
      contentCiphertext: hex(envelope.ciphertext),
      hpkeInfo: hex(wrapInfo('classic-v1', messageId, bob.record, expiresAt)),
      hpkeAad: '',
      hpkeEnc: hex(wrap.enc),
      hpkeWrappedKey: hex(wrap.wrappedKey),
      envelope: hex(bytes),
    },
  };
}
