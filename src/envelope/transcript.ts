/**
 * Every byte string the AMP envelope signs, authenticates or derives keys from
 * (docs/PROTOCOL.md §6.2–6.4), built with the u32be length-prefixed encoding of
 * identity/lp.ts. Each starts with its own label, so no two of them can collide. Guarantees:
 * these functions are pure and byte-exact; the golden example (test/fixtures/envelope/) pins them.
 */
import { hkdfSha256, sha256 } from '../native/index.js';
import { lp, u32be, u64be } from '../identity/lp.js';
import type { SuiteId } from '../identity/suites.js';
import type { MessageBody, Origin, RecipientRef, SpamPart, Wrap } from './codec.js';
import { ENVELOPE_VERSION } from './limits.js';

export const LABEL_CONTENT_KEY = 'aftersmtp/amp/v1/content-key';
export const LABEL_CONTENT_AAD = 'aftersmtp/amp/v1/content-aad';
export const LABEL_WRAP = 'aftersmtp/amp/v1/wrap';
export const LABEL_BODY = 'aftersmtp/amp/v1/body';
export const LABEL_WRAPS = 'aftersmtp/amp/v1/wraps';
export const LABEL_ORIGIN = 'aftersmtp/amp/v1/origin';
export const LABEL_SPAM = 'aftersmtp/amp/v1/spam';
export const LABEL_EPHEMERAL_KEY = 'aftersmtp/amp/v1/ephemeral-key';
/** The gateway's key share of an ephemeral message (§6.10), in bytes. */
export const KEY_SHARE_LENGTH = 32;
/** Transcript label and signature purpose (signature.ts derives the per-algorithm contexts). */
export const PURPOSE_AUTHOR = 'aftersmtp/amp/v1/author';
export const PURPOSE_AUTHOR_BATCH = 'aftersmtp/amp/v1/author-batch';
export const PURPOSE_GATEWAY = 'aftersmtp/amp/v1/gateway';
export const PURPOSE_GATEWAY_BATCH = 'aftersmtp/amp/v1/gateway-batch';

/** HKDF-SHA256(ikm = content key, salt = message id, info = lp(label, suite), 44) -> key, nonce. */
export function deriveContentKey(
  contentKey: Buffer,
  suite: SuiteId,
  messageId: Buffer,
): { key: Buffer; nonce: Buffer } {
  const okm = hkdfSha256(contentKey, messageId, lp(LABEL_CONTENT_KEY, suite), 44);
  const out = { key: Buffer.from(okm.subarray(0, 32)), nonce: Buffer.from(okm.subarray(32, 44)) };
  okm.fill(0);
  return out;
}

/**
 * The content key of an ephemeral message (§6.10): neither the wrapped key nor the share alone.
 * HKDF-SHA256(ikm = wrapped key || share, salt = message id,
 *             info = lp(label, suite, holder, u64(expires_at)), 32).
 */
export function ephemeralContentKey(
  wrappedKey: Buffer,
  share: Uint8Array,
  suite: SuiteId,
  messageId: Buffer,
  holder: string,
  expiresAt: number,
): Buffer {
  const ikm = Buffer.concat([wrappedKey, share]);
  try {
    return hkdfSha256(
      ikm,
      messageId,
      lp(LABEL_EPHEMERAL_KEY, suite, holder, u64be(expiresAt)),
      KEY_SHARE_LENGTH,
    );
  } finally {
    ikm.fill(0);
  }
}

/** AEAD associated data of the content ciphertext. */
export function contentAad(suite: SuiteId, messageId: Buffer): Buffer {
  return lp(LABEL_CONTENT_AAD, suite, messageId);
}

/** HPKE `info` of the wrap for one recipient key (RFC 9180 §5.1: bound into the key schedule). */
export function wrapInfo(
  suite: SuiteId,
  messageId: Buffer,
  recipient: RecipientRef,
  expiresAt: number,
): Buffer {
  return lp(LABEL_WRAP, suite, messageId, recipient.did, recipient.keyId, u64be(expiresAt));
}

/** HPKE `aad` of every wrap: empty (everything is bound through `info`). */
export const WRAP_AAD = Buffer.alloc(0);

/** SHA-256 over lp(label, subject, content type, content). */
export function bodyHash(body: MessageBody): Buffer {
  return sha256(lp(LABEL_BODY, body.subject, body.contentType, body.content));
}

export interface AuthorTranscriptInput {
  suite: SuiteId;
  messageId: Buffer;
  sender: RecipientRef;
  recipients: readonly RecipientRef[];
  createdAt: number;
  expiresAt: number;
  bodyHash: Buffer;
  checkpoint: Buffer;
}

/** The bytes the author signs (purpose PURPOSE_AUTHOR). */
export function authorTranscript(t: AuthorTranscriptInput): Buffer {
  return lp(
    PURPOSE_AUTHOR,
    t.suite,
    t.messageId,
    t.sender.did,
    t.sender.keyId,
    u32be(t.recipients.length),
    ...t.recipients.flatMap((r) => [r.did, r.keyId]),
    u64be(t.createdAt),
    u64be(t.expiresAt),
    t.bodyHash,
    t.checkpoint,
  );
}

/** SHA-256 over lp(label, u32be(n), then recipient, key id, enc, wrapped key of each wrap). */
export function wrapsHash(wraps: readonly Wrap[]): Buffer {
  return sha256(
    lp(
      LABEL_WRAPS,
      u32be(wraps.length),
      ...wraps.flatMap((w) => [w.recipient, w.keyId, w.enc, w.wrappedKey]),
    ),
  );
}

export interface GatewayTranscriptInput {
  suite: SuiteId;
  messageId: Buffer;
  sender: string;
  createdAt: number;
  expiresAt: number;
  wraps: readonly Wrap[];
  ciphertext: Buffer;
  gateway: RecipientRef;
  origin?: Origin;
  spam?: SpamPart;
}

/**
 * SHA-256 over lp(label, verdict, score, junk_score, reject_score, u32be(n), then scanner,
 * result, score and symbols of each scan, u64be(scanned_at)) (§6.9).
 */
export function spamHash(p: SpamPart): Buffer {
  return sha256(
    lp(
      LABEL_SPAM,
      p.verdict,
      p.score,
      p.junkScore,
      p.rejectScore,
      u32be(p.scans.length),
      ...p.scans.flatMap((x) => [x.scanner, x.result, x.score, x.symbols]),
      u64be(p.scannedAt),
    ),
  );
}

/** SHA-256 over lp(label, every Origin field in proto order, u64be(received_at)) (§6.8). */
export function originHash(o: Origin): Buffer {
  return sha256(
    lp(
      LABEL_ORIGIN,
      o.entrance,
      o.mailFrom,
      o.headerFrom,
      o.clientAddress,
      o.helo,
      o.login,
      o.authenticationResults,
      o.spf,
      o.dkim,
      o.dmarc,
      o.arc,
      u64be(o.receivedAt),
    ),
  );
}

/** The bytes the sending gateway signs (purpose PURPOSE_GATEWAY). */
export function gatewayTranscript(t: GatewayTranscriptInput): Buffer {
  return lp(
    PURPOSE_GATEWAY,
    u32be(ENVELOPE_VERSION),
    t.suite,
    t.messageId,
    t.sender,
    u32be(t.wraps.length),
    ...t.wraps.flatMap((w) => [w.recipient, w.keyId]),
    u64be(t.createdAt),
    u64be(t.expiresAt),
    sha256(t.ciphertext),
    wrapsHash(t.wraps),
    t.gateway.did,
    t.gateway.keyId,
    // Present only on mail that entered from SMTP: one more element, so the transcripts of
    // envelopes without an origin are unchanged.
    ...(t.origin === undefined ? [] : [originHash(t.origin)]),
    // The spam part comes after the origin's element; without an origin, an empty element holds
    // its place, so that a spam hash can never be read as an origin hash or the other way round.
    ...(t.spam === undefined
      ? []
      : [...(t.origin === undefined ? [Buffer.alloc(0)] : []), spamHash(t.spam)]),
  );
}
