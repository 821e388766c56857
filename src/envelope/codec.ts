/**
 * Protobuf codec for the AMP envelope and its sealed content (proto/aftersmtp/amp/v1/
 * envelope.proto, loaded from the generated descriptor). Guarantees: decodeEnvelope checks the
 * total size before decoding (ERR_ENVELOPE_TOO_LARGE), then every field's presence, exact
 * length, count and string cap (ERR_ENVELOPE_FORMAT, ERR_ENVELOPE_VERSION, ERR_ENVELOPE_SUITE);
 * any exception from the protobuf reader becomes ERR_ENVELOPE_FORMAT. The returned objects own
 * copies of their bytes (nothing aliases the input buffer). Encoders validate the same rules, so
 * what we send always passes our own decoder.
 */
import protobuf from 'protobufjs';
import { AfterSmtpError, InputError } from '../errors.js';
import { MAX_DID_LENGTH, checkDid } from '../identity/did.js';
import { KEY_ID_LENGTH, checkPublicRecord, type PublicKeyRecord } from '../identity/keys.js';
import { decodeBatchPlace, type BatchPlace } from '../identity/batch-signature.js';
import type { Signature } from '../identity/signature.js';
import { SUITES, isSuiteId, type SuiteId } from '../identity/suites.js';
import { ENVELOPE_SCHEMA } from './envelope-schema.generated.js';
import {
  AEAD_TAG_LENGTH,
  DEFAULT_MAX_ENVELOPE_BYTES,
  ENVELOPE_VERSION,
  MAX_CHECKPOINT_BYTES,
  MAX_CONTENT_TYPE_BYTES,
  MAX_RECIPIENTS,
  MAX_SUBJECT_BYTES,
  MESSAGE_ID_LENGTH,
  WRAPPED_KEY_LENGTH,
} from './limits.js';

const root = protobuf.Root.fromJSON(ENVELOPE_SCHEMA as unknown as protobuf.INamespace);
const EnvelopeType = root.lookupType('aftersmtp.amp.v1.Envelope');
const SealedContentType = root.lookupType('aftersmtp.amp.v1.SealedContent');

/** A recipient key reference: DID + the key record's keyId. */
export interface RecipientRef {
  readonly did: string;
  readonly keyId: Buffer;
}

export interface Wrap {
  readonly recipient: string;
  readonly keyId: Buffer;
  readonly enc: Buffer;
  readonly wrappedKey: Buffer;
}

export interface GatewaySignature {
  readonly gateway: string;
  readonly keyId: Buffer;
  readonly suite: SuiteId;
  readonly signature: Signature;
  /** Present when the signature is over a batch of envelopes (docs/PROTOCOL.md §6.4). */
  readonly batch?: BatchPlace;
}

/** What the gateway that let a legacy message into AMP saw (docs/PROTOCOL.md §6.8). */
export interface Origin {
  readonly entrance: 'smtp' | 'submission';
  readonly mailFrom: string;
  readonly headerFrom: string;
  readonly clientAddress: string;
  readonly helo: string;
  readonly login: string;
  readonly authenticationResults: string;
  readonly spf: string;
  readonly dkim: string;
  readonly dmarc: string;
  readonly arc: string;
  readonly receivedAt: number;
}

/** Longest string of an Origin field; the Authentication-Results value may be longer. */
export const MAX_ORIGIN_FIELD_BYTES = 1024;
export const MAX_AUTHENTICATION_RESULTS_BYTES = 8192;

/** The spam verdict for the recipient of one copy (docs/PROTOCOL.md §6.9). */
export type SpamVerdictKind = 'ham' | 'junk' | 'unavailable';
export const SPAM_VERDICTS: readonly SpamVerdictKind[] = ['ham', 'junk', 'unavailable'];

export interface SpamScan {
  readonly scanner: string;
  readonly result: string;
  /** Decimal (at most 3 decimals); '' unless result is 'ok'. */
  readonly score: string;
  /** Comma-separated rule names. */
  readonly symbols: string;
}

export interface SpamPart {
  readonly verdict: SpamVerdictKind;
  /** Decimal; '' when no scanner answered. */
  readonly score: string;
  readonly junkScore: string;
  readonly rejectScore: string;
  readonly scans: readonly SpamScan[];
  readonly scannedAt: number;
}

export const MAX_SPAM_SCANS = 4;
export const MAX_SPAM_NAME_BYTES = 32;
export const MAX_SPAM_SYMBOLS_BYTES = 1024;
const DECIMAL = /^-?\d{1,6}(\.\d{1,3})?$/;

/** A score as the spam part writes it: at most 3 decimals, no exponent, no trailing zeros. */
export function spamDecimal(n: number): string {
  const s = (Math.round(n * 1000) / 1000).toFixed(3).replace(/\.?0+$/, '');
  return s === '-0' ? '0' : s;
}

export interface Envelope {
  readonly version: number;
  readonly suite: SuiteId;
  readonly messageId: Buffer;
  readonly sender: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly wraps: readonly Wrap[];
  readonly ciphertext: Buffer;
  readonly gatewaySignature?: GatewaySignature;
  readonly origin?: Origin;
  readonly spam?: SpamPart;
  /** Set on an ephemeral message: the gateway that holds the key share (PROTOCOL.md §6.10). */
  readonly ephemeral?: { readonly holder: string };
}

export interface MessageBody {
  readonly subject: string;
  /** e.g. `message/rfc822` for a MIME message. */
  readonly contentType: string;
  readonly content: Buffer;
}

export interface SealedContent {
  readonly author: PublicKeyRecord;
  readonly recipients: readonly RecipientRef[];
  readonly checkpoint: Buffer;
  readonly body: MessageBody;
  readonly signature: Signature;
  /** Present when the author signature is over a batch of author transcripts (§6.1). */
  readonly signatureBatch?: BatchPlace;
  readonly suite: SuiteId;
  readonly messageId: Buffer;
  readonly createdAt: number;
  readonly expiresAt: number;
}

const FORMAT = 'ERR_ENVELOPE_FORMAT';

function fail(message: string, code = FORMAT): never {
  throw new InputError(code, `envelope: ${message}`);
}

// ---- field readers over a decoded protobufjs message (untyped by nature) ----

type Msg = Record<string, unknown>;

function bytes(v: unknown, field: string, min: number, max: number): Buffer {
  const b =
    v instanceof Uint8Array ? v : Array.isArray(v) && v.length === 0 ? new Uint8Array(0) : null;
  if (b === null) fail(`${field} is not bytes`);
  if (b.length < min || b.length > max) {
    fail(
      min === max
        ? `${field} must be ${min} bytes, got ${b.length}`
        : `${field} length ${b.length} is outside ${min}..${max}`,
    );
  }
  return Buffer.from(b);
}

function str(v: unknown, field: string, maxBytes: number, allowEmpty = false): string {
  if (typeof v !== 'string') fail(`${field} is not a string`);
  if (!allowEmpty && v.length === 0) fail(`${field} is missing`);
  if (Buffer.byteLength(v, 'utf8') > maxBytes) fail(`${field} is longer than ${maxBytes} bytes`);
  return v;
}

function did(v: unknown, field: string): string {
  const s = str(v, field, MAX_DID_LENGTH);
  try {
    return checkDid(s);
  } catch (err) {
    fail(`${field}: ${(err as Error).message}`);
  }
}

function suite(v: unknown, field: string): SuiteId {
  if (!isSuiteId(v))
    fail(`${field} is not a known suite (classic-v1, hybrid-v1)`, 'ERR_ENVELOPE_SUITE');
  return v;
}

/**
 * uint64 as a safe integer (protobufjs gives a Long, two 32-bit halves, or a number), read from
 * the halves: a value is safe when its high half is below 2^21.
 */
function u64(v: unknown, field: string): number {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 0) fail(`${field} is not an integer`);
    if (v > Number.MAX_SAFE_INTEGER) fail(`${field} is out of range`);
    return v;
  }
  if (typeof v !== 'object' || v === null || !('low' in v) || !('high' in v))
    fail(`${field} is not an integer`);
  const { low, high } = v as { low: unknown; high: unknown };
  if (typeof low !== 'number' || typeof high !== 'number') fail(`${field} is not an integer`);
  if (high >>> 0 >= 0x200000) fail(`${field} is out of range`);
  return (high >>> 0) * 2 ** 32 + (low >>> 0);
}

function msg(v: unknown, field: string): Msg {
  if (typeof v !== 'object' || v === null) fail(`${field} is missing`);
  return v as Msg;
}

function list(v: unknown, field: string, min: number, max: number): Msg[] {
  if (!Array.isArray(v)) fail(`${field} is not a list`);
  if (v.length < min || v.length > max)
    fail(`${field} count ${v.length} is outside ${min}..${max}`);
  return v as Msg[];
}

function signature(v: unknown, s: SuiteId, field: string): Signature {
  const m = msg(v, field);
  const ed25519 = bytes(m.ed25519, `${field}.ed25519`, 64, 64);
  if (!SUITES[s].hybridSignature) {
    bytes(m.ml_dsa_65, `${field}.ml_dsa_65`, 0, 0);
    return { ed25519 };
  }
  return { ed25519, mldsa65: bytes(m.ml_dsa_65, `${field}.ml_dsa_65`, 3309, 3309) };
}

function timestamps(
  created: unknown,
  expires: unknown,
  where: string,
): { createdAt: number; expiresAt: number } {
  const createdAt = u64(created, `${where}created_at`);
  const expiresAt = u64(expires, `${where}expires_at`);
  if (expiresAt <= createdAt) fail(`${where}expires_at must be later than created_at`);
  return { createdAt, expiresAt };
}

function checkUnique(refs: readonly { did: string; keyId: Buffer }[], field: string): void {
  const seen = new Set<string>();
  for (const r of refs) {
    const k = `${r.did}\u0000${r.keyId.toString('hex')}`;
    if (seen.has(k)) fail(`${field} names ${r.did} with the same key twice`);
    seen.add(k);
  }
}

// ---- envelope ----

function envelopeFromMessage(m: Msg): Envelope {
  const version = typeof m.version === 'number' ? m.version : -1;
  if (version !== ENVELOPE_VERSION) {
    fail(
      `version ${version} is not supported (expected ${ENVELOPE_VERSION})`,
      'ERR_ENVELOPE_VERSION',
    );
  }
  const s = suite(m.suite, 'suite');
  const spec = SUITES[s];
  const wraps = list(m.wraps, 'wraps', 1, MAX_RECIPIENTS).map((w, i): Wrap => ({
    recipient: did(w.recipient, `wraps[${i}].recipient`),
    keyId: bytes(w.key_id, `wraps[${i}].key_id`, KEY_ID_LENGTH, KEY_ID_LENGTH),
    enc: bytes(w.enc, `wraps[${i}].enc`, spec.encLength, spec.encLength),
    wrappedKey: bytes(
      w.wrapped_key,
      `wraps[${i}].wrapped_key`,
      WRAPPED_KEY_LENGTH,
      WRAPPED_KEY_LENGTH,
    ),
  }));
  checkUnique(
    wraps.map((w) => ({ did: w.recipient, keyId: w.keyId })),
    'wraps',
  );
  const envelope: Envelope = {
    version,
    suite: s,
    messageId: bytes(m.message_id, 'message_id', MESSAGE_ID_LENGTH, MESSAGE_ID_LENGTH),
    sender: did(m.sender, 'sender'),
    ...timestamps(m.created_at, m.expires_at, ''),
    wraps,
    ciphertext: bytes(m.ciphertext, 'ciphertext', AEAD_TAG_LENGTH, Number.MAX_SAFE_INTEGER),
  };
  const withOrigin =
    m.origin === null || m.origin === undefined
      ? envelope
      : { ...envelope, origin: originFromMessage(msg(m.origin, 'origin')) };
  const withSpam =
    m.spam === null || m.spam === undefined
      ? withOrigin
      : { ...withOrigin, spam: spamFromMessage(msg(m.spam, 'spam')) };
  const withEphemeral =
    m.ephemeral === null || m.ephemeral === undefined
      ? withSpam
      : {
          ...withSpam,
          ephemeral: { holder: did(msg(m.ephemeral, 'ephemeral').holder, 'ephemeral.holder') },
        };
  if (m.gateway_signature === null || m.gateway_signature === undefined) return withEphemeral;
  return { ...withEphemeral, gatewaySignature: gatewaySignatureFromMessage(m.gateway_signature) };
}

function gatewaySignatureFromMessage(v: unknown): GatewaySignature {
  const g = msg(v, 'gateway_signature');
  const gs = suite(g.suite, 'gateway_signature.suite');
  return {
    gateway: did(g.gateway, 'gateway_signature.gateway'),
    keyId: bytes(g.key_id, 'gateway_signature.key_id', KEY_ID_LENGTH, KEY_ID_LENGTH),
    suite: gs,
    signature: signature(g.signature, gs, 'gateway_signature.signature'),
    ...(g.batch === null || g.batch === undefined
      ? {}
      : { batch: batchPlace(g.batch, 'gateway_signature') }),
  };
}

/** The batch place of the signature in `owner` (`owner.batch` in errors). */
function batchPlace(v: unknown, owner: string): BatchPlace {
  const b = msg(v, `${owner}.batch`);
  return decodeBatchPlace({ index: b.index, size: b.size, path: b.path }, (why) =>
    fail(`${owner}.${why}`),
  );
}

function batchPlaceToMessage(b: BatchPlace): Msg {
  return { index: b.index, size: b.size, path: b.path };
}

function originFromMessage(o: Msg): Origin {
  const field = (name: string, max = MAX_ORIGIN_FIELD_BYTES): string =>
    str(o[name] ?? '', `origin.${name}`, max, true);
  const entrance = field('entrance');
  if (entrance !== 'smtp' && entrance !== 'submission') {
    fail(`origin.entrance ${JSON.stringify(entrance.slice(0, 32))} is not smtp or submission`);
  }
  return {
    entrance,
    mailFrom: field('mail_from'),
    headerFrom: field('header_from'),
    clientAddress: field('client_address'),
    helo: field('helo'),
    login: field('login'),
    authenticationResults: field('authentication_results', MAX_AUTHENTICATION_RESULTS_BYTES),
    spf: field('spf'),
    dkim: field('dkim'),
    dmarc: field('dmarc'),
    arc: field('arc'),
    receivedAt: u64(o.received_at ?? 0, 'origin.received_at'),
  };
}

function spamFromMessage(o: Msg): SpamPart {
  const decimal = (v: unknown, field: string): string => {
    const d = str(v ?? '', field, 16, true);
    if (d !== '' && !DECIMAL.test(d)) fail(`${field} is not a decimal score`);
    return d;
  };
  const verdict = str(o.verdict ?? '', 'spam.verdict', MAX_SPAM_NAME_BYTES);
  if (!(SPAM_VERDICTS as readonly string[]).includes(verdict)) {
    fail(`spam.verdict ${JSON.stringify(verdict.slice(0, 32))} is not ham, junk or unavailable`);
  }
  const scans = list(o.scans ?? [], 'spam.scans', 0, MAX_SPAM_SCANS).map((x, i) => ({
    scanner: str(x.scanner, `spam.scans[${i}].scanner`, MAX_SPAM_NAME_BYTES),
    result: str(x.result, `spam.scans[${i}].result`, MAX_SPAM_NAME_BYTES),
    score: decimal(x.score, `spam.scans[${i}].score`),
    symbols: str(x.symbols ?? '', `spam.scans[${i}].symbols`, MAX_SPAM_SYMBOLS_BYTES, true),
  }));
  return {
    verdict: verdict as SpamVerdictKind,
    score: decimal(o.score, 'spam.score'),
    junkScore: decimal(o.junk_score, 'spam.junk_score'),
    rejectScore: decimal(o.reject_score, 'spam.reject_score'),
    scans,
    scannedAt: u64(o.scanned_at ?? 0, 'spam.scanned_at'),
  };
}

function spamToMessage(p: SpamPart): Msg {
  return {
    verdict: p.verdict,
    score: p.score,
    junk_score: p.junkScore,
    reject_score: p.rejectScore,
    scans: p.scans.map((x) => ({
      scanner: x.scanner,
      result: x.result,
      score: x.score,
      symbols: x.symbols,
    })),
    scanned_at: p.scannedAt,
  };
}

function originToMessage(o: Origin): Msg {
  return {
    entrance: o.entrance,
    mail_from: o.mailFrom,
    header_from: o.headerFrom,
    client_address: o.clientAddress,
    helo: o.helo,
    login: o.login,
    authentication_results: o.authenticationResults,
    spf: o.spf,
    dkim: o.dkim,
    dmarc: o.dmarc,
    arc: o.arc,
    received_at: o.receivedAt,
  };
}

function envelopeToMessage(e: Envelope): Msg {
  const m: Msg = {
    version: e.version,
    suite: e.suite,
    message_id: e.messageId,
    sender: e.sender,
    created_at: e.createdAt,
    expires_at: e.expiresAt,
    wraps: e.wraps.map((w) => ({
      recipient: w.recipient,
      key_id: w.keyId,
      enc: w.enc,
      wrapped_key: w.wrappedKey,
    })),
    ciphertext: e.ciphertext,
  };
  if (e.origin) m.origin = originToMessage(e.origin);
  if (e.spam) m.spam = spamToMessage(e.spam);
  if (e.ephemeral) m.ephemeral = { holder: e.ephemeral.holder };
  if (e.gatewaySignature) m.gateway_signature = gatewaySignatureToMessage(e.gatewaySignature);
  return m;
}

function gatewaySignatureToMessage(g: GatewaySignature): Msg {
  return {
    gateway: g.gateway,
    key_id: g.keyId,
    suite: g.suite,
    signature: {
      ed25519: g.signature.ed25519,
      ml_dsa_65: g.signature.mldsa65 ?? Buffer.alloc(0),
    },
    ...(g.batch === undefined ? {} : { batch: batchPlaceToMessage(g.batch) }),
  };
}

function decodeMessage(type: protobuf.Type, data: Uint8Array, what: string): Msg {
  try {
    return type.decode(data) as unknown as Msg;
  } catch (err) {
    fail(`${what} is not valid protobuf (${(err as Error).message.slice(0, 80)})`);
  }
}

/** Rethrows our typed errors; anything else (a reader bug, a stack overflow) becomes FORMAT. */
function typed<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof AfterSmtpError) throw err;
    throw new InputError(
      FORMAT,
      `envelope: malformed (${(err as Error)?.message?.slice(0, 80) ?? 'error'})`,
      { cause: err },
    );
  }
}

export interface DecodeOptions {
  /** Cap on the encoded size; DEFAULT_MAX_ENVELOPE_BYTES (32 MiB) if absent. */
  maxBytes?: number;
}

/** Decodes and validates an envelope from untrusted bytes. */
export function decodeEnvelope(data: Uint8Array, options: DecodeOptions = {}): Envelope {
  const max = options.maxBytes ?? DEFAULT_MAX_ENVELOPE_BYTES;
  if (!(data instanceof Uint8Array)) fail('input is not bytes');
  if (data.length > max)
    fail(`${data.length} bytes is over the ${max}-byte limit`, 'ERR_ENVELOPE_TOO_LARGE');
  return typed(() => envelopeFromMessage(decodeMessage(EnvelopeType, data, 'envelope')));
}

/**
 * Validates and encodes an envelope. What we send always passes our own decoder: the message is
 * checked with the decoder's own field rules (envelopeFromMessage) and the output against the
 * size cap, without a second protobuf pass.
 */
export function encodeEnvelope(envelope: Envelope, options: DecodeOptions = {}): Buffer {
  const max = options.maxBytes ?? DEFAULT_MAX_ENVELOPE_BYTES;
  const message = envelopeToMessage(envelope);
  typed(() => envelopeFromMessage(message));
  const written = EnvelopeType.encode(message).finish();
  if (written.length > max) {
    fail(`${written.length} bytes is over the ${max}-byte limit`, 'ERR_ENVELOPE_TOO_LARGE');
  }
  return Buffer.from(written.buffer, written.byteOffset, written.length);
}

/**
 * The encoding of `envelope`, decoded from `encoded`, with `signature` as its gateway signature,
 * made by appending the signature's field to `encoded`: the bytes already decoded and checked
 * are not checked or copied field by field again, only the new part is. Protobuf reads a field
 * wherever it appears, and the gateway signature is the first field after the ciphertext, so
 * when `envelope` ends at its ciphertext (no gateway signature, origin, spam or ephemeral part:
 * as a client submits it) the result is what encodeEnvelope gives for the same bytes in field
 * order; any other envelope goes through encodeEnvelope. Fields of `encoded` that this version
 * does not know travel along unread, as protobuf keeps unknown fields (no signature covers them,
 * as none covers the encoding of any field: the signatures are over the transcripts of
 * docs/PROTOCOL.md §6).
 */
export function encodeWithGatewaySignature(
  envelope: Envelope,
  encoded: Uint8Array,
  signature: GatewaySignature,
  options: DecodeOptions = {},
): Buffer {
  if (
    envelope.gatewaySignature !== undefined ||
    envelope.origin !== undefined ||
    envelope.spam !== undefined ||
    envelope.ephemeral !== undefined
  ) {
    return encodeEnvelope({ ...envelope, gatewaySignature: signature }, options);
  }
  const max = options.maxBytes ?? DEFAULT_MAX_ENVELOPE_BYTES;
  const part = gatewaySignatureToMessage(signature);
  typed(() => gatewaySignatureFromMessage(part));
  const field = EnvelopeType.encode({ gateway_signature: part }).finish();
  const length = encoded.length + field.length;
  if (length > max) fail(`${length} bytes is over the ${max}-byte limit`, 'ERR_ENVELOPE_TOO_LARGE');
  return Buffer.concat([encoded, field], length);
}

// ---- sealed content (the AEAD plaintext) ----

function recordFromMessage(v: unknown): PublicKeyRecord {
  const m = msg(v, 'author');
  const s = suite(m.suite, 'author.suite');
  const hybrid = SUITES[s].hybridSignature;
  const ed25519 = bytes(m.ed25519_public_key, 'author.ed25519_public_key', 32, 32);
  const mldsa = bytes(
    m.ml_dsa_65_public_key,
    'author.ml_dsa_65_public_key',
    hybrid ? 1952 : 0,
    hybrid ? 1952 : 0,
  );
  const klen = SUITES[s].kemPublicKeyLength;
  const record: PublicKeyRecord = {
    did: did(m.did, 'author.did'),
    suite: s,
    keyId: bytes(m.key_id, 'author.key_id', KEY_ID_LENGTH, KEY_ID_LENGTH),
    kemPublicKey: bytes(m.kem_public_key, 'author.kem_public_key', klen, klen),
    signingPublicKeys: hybrid ? { ed25519, mldsa65: mldsa } : { ed25519 },
    createdAt: u64(m.created_at, 'author.created_at'),
  };
  return checkPublicRecord(record, FORMAT);
}

/** Decodes and validates the AEAD plaintext. */
export function decodeSealedContent(data: Uint8Array): SealedContent {
  return typed(() => {
    const m = decodeMessage(SealedContentType, data, 'sealed content');
    const recipients = list(m.recipients, 'recipients', 1, MAX_RECIPIENTS).map((r, i) => ({
      did: did(r.did, `recipients[${i}].did`),
      keyId: bytes(r.key_id, `recipients[${i}].key_id`, KEY_ID_LENGTH, KEY_ID_LENGTH),
    }));
    checkUnique(recipients, 'recipients');
    const author = recordFromMessage(m.author);
    const body = msg(m.body, 'body');
    return {
      author,
      recipients,
      checkpoint: bytes(m.checkpoint, 'checkpoint', 0, MAX_CHECKPOINT_BYTES),
      body: {
        subject: str(body.subject, 'body.subject', MAX_SUBJECT_BYTES, true),
        contentType: str(body.content_type, 'body.content_type', MAX_CONTENT_TYPE_BYTES),
        content: bytes(body.content, 'body.content', 0, Number.MAX_SAFE_INTEGER),
      },
      signature: signature(m.signature, author.suite, 'signature'),
      ...(m.signature_batch === null || m.signature_batch === undefined
        ? {}
        : { signatureBatch: batchPlace(m.signature_batch, 'signature') }),
      suite: suite(m.suite, 'sealed suite'),
      messageId: bytes(m.message_id, 'sealed message_id', MESSAGE_ID_LENGTH, MESSAGE_ID_LENGTH),
      ...timestamps(m.created_at, m.expires_at, 'sealed '),
    };
  });
}

export function encodeSealedContent(c: SealedContent): Buffer {
  const a = c.author;
  const m: Msg = {
    author: {
      did: a.did,
      suite: a.suite,
      key_id: a.keyId,
      kem_public_key: a.kemPublicKey,
      ed25519_public_key: a.signingPublicKeys.ed25519,
      ml_dsa_65_public_key: a.signingPublicKeys.mldsa65 ?? Buffer.alloc(0),
      created_at: a.createdAt,
    },
    recipients: c.recipients.map((r) => ({ did: r.did, key_id: r.keyId })),
    checkpoint: c.checkpoint,
    body: { subject: c.body.subject, content_type: c.body.contentType, content: c.body.content },
    signature: { ed25519: c.signature.ed25519, ml_dsa_65: c.signature.mldsa65 ?? Buffer.alloc(0) },
    suite: c.suite,
    message_id: c.messageId,
    created_at: c.createdAt,
    expires_at: c.expiresAt,
    ...(c.signatureBatch === undefined
      ? {}
      : { signature_batch: batchPlaceToMessage(c.signatureBatch) }),
  };
  return Buffer.from(SealedContentType.encode(SealedContentType.fromObject(m)).finish());
}
