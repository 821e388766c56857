/**
 * The store's records and how they are sealed, shared by both backends:
 *
 * - validation of every input against StoreLimits (StoreInputError before anything is written);
 * - the plaintext records (msgpackr, DESIGN.md §5: records that never leave the node), decoded
 *   with every field's type checked: a decoder never returns a half-valid record;
 * - the keyed hashes that index mailboxes without the cleartext DID or message id (HMAC-SHA256
 *   under the store's index key, a random secret kept wrapped under the node key);
 * - the sealed frame of the lmdb backend (AEAD in the store layer):
 *
 *     frame = 0x01 | key id (8) | header length (1) | header | nonce (12) | ChaCha20-Poly1305(ct || tag)
 *     aad   = "aftersmtp/store/v1/" kind 0x00 | identity | every frame byte before the nonce
 *
 *   A random 96-bit nonce per record (at 2^32 records under one key the collision chance is still
 *   below 2^-32; rotation resets the count). The identity (the record's key: recipient hash, seq or
 *   message-id hash) is the aad, so a record copied to another slot fails to open.
 */
import { createHmac } from 'node:crypto';
import { Packr } from 'msgpackr';
import { BoundedMap } from '../bounded-map.js';
import { InputError } from '../errors.js';
import { checkDid } from '../identity/did.js';
import { aeadOpen, aeadSeal } from '../native/index.js';
import { randomBytes } from '../random.js';
import { StoreCorruptError, StoreInputError, StoreKeyError } from './errors.js';
import { KEY_ID_BYTES, subkey, type Keyring, type NodeKey } from './keys.js';
import {
  KEY_SHARE_LENGTH,
  MAILBOX_FOLDERS,
  MAX_DID_BYTES,
  MAX_MESSAGE_ID_LENGTH,
  type DeliverInput,
  type MailboxFolder,
  type DeliverWithReceipt,
  type KeptReceipt,
  type KeptShare,
  type ListOptions,
  type StoreLimits,
} from './types.js';

export const RECORD_VERSION = 1;
export const FRAME_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const ALG = 'chacha20-poly1305';

// ---------------------------------------------------------------------------------------------
// Input bounds

const MESSAGE_ID = /^[\x21-\x7e]+$/;
/** Latest time accepted (year 9999): keeps timestamps exact in a double and in a bigint column. */
export const MAX_TIME = 253_402_300_799_999;

export function checkRecipient(did: unknown, what = 'recipient'): string {
  if (typeof did !== 'string' || Buffer.byteLength(did) > MAX_DID_BYTES) {
    throw new StoreInputError(`${what}: expected a DID of at most ${MAX_DID_BYTES} bytes`);
  }
  try {
    return checkDid(did);
  } catch (err) {
    if (err instanceof InputError) throw new StoreInputError(`${what}: ${err.message}`);
    throw err;
  }
}

export function checkMessageId(id: unknown): string {
  if (
    typeof id !== 'string' ||
    id.length === 0 ||
    id.length > MAX_MESSAGE_ID_LENGTH ||
    !MESSAGE_ID.test(id)
  ) {
    throw new StoreInputError(
      `messageId: expected 1 to ${MAX_MESSAGE_ID_LENGTH} printable ASCII characters`,
    );
  }
  return id;
}

export function checkTime(t: unknown, what: string): number {
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 0 || t > MAX_TIME) {
    throw new StoreInputError(`${what}: expected whole milliseconds since the epoch`);
  }
  return t;
}

export function checkDeliver(input: DeliverWithReceipt, limits: StoreLimits, now: number): void {
  if (typeof input !== 'object' || input === null)
    throw new StoreInputError('deliver: expected an object');
  checkRecipient(input.recipient);
  checkRecipient(input.sender, 'sender');
  checkMessageId(input.messageId);
  checkTime(input.receivedAt, 'receivedAt');
  checkTime(input.expiresAt, 'expiresAt');
  if (input.expiresAt <= now)
    throw new StoreInputError('expiresAt: the envelope has already expired');
  if (!(input.ciphertextHash instanceof Uint8Array) || input.ciphertextHash.length !== 32) {
    throw new StoreInputError('ciphertextHash: expected 32 bytes (SHA-256)');
  }
  if (!(input.envelope instanceof Uint8Array))
    throw new StoreInputError('envelope: expected bytes');
  if (input.envelope.length === 0 || input.envelope.length > limits.maxEnvelopeBytes) {
    throw new StoreInputError(
      `envelope: expected 1 to ${limits.maxEnvelopeBytes} bytes, got ${input.envelope.length}`,
    );
  }
  checkReceipt(input.receipt, input.expiresAt, limits, now);
  if (
    input.transitCommitment !== undefined &&
    !(input.transitCommitment instanceof Uint8Array && input.transitCommitment.length === 32)
  ) {
    throw new StoreInputError('transitCommitment: expected 32 bytes');
  }
}

/** Checks a receipt of another gateway for `keepReceipt`. */
export function checkKept(input: KeptReceipt, limits: StoreLimits, now: number): void {
  if (typeof input !== 'object' || input === null)
    throw new StoreInputError('keepReceipt: expected an object');
  checkRecipient(input.recipient);
  checkMessageId(input.messageId);
  checkReceipt(input.receipt, input.expiresAt, limits, now);
}

/** A key share to keep: 32 bytes, not yet expired. */
export function checkShare(input: KeptShare, now: number): void {
  if (typeof input !== 'object' || input === null)
    throw new StoreInputError('keepShare: expected an object');
  checkRecipient(input.recipient);
  checkMessageId(input.messageId);
  if (!(input.share instanceof Uint8Array) || input.share.length !== KEY_SHARE_LENGTH) {
    throw new StoreInputError(`share: expected ${KEY_SHARE_LENGTH} bytes`);
  }
  checkTime(input.expiresAt, 'expiresAt');
  if (input.expiresAt <= now)
    throw new StoreInputError('expiresAt: the share would expire at once');
}

export function checkList(
  options: ListOptions,
  limits: StoreLimits,
): { after: number; limit: number; folder?: MailboxFolder } {
  const after = options.after ?? 0;
  const limit = options.limit ?? limits.maxPageSize;
  if (!Number.isSafeInteger(after) || after < 0)
    throw new StoreInputError('after: expected a cursor (a whole number >= 0)');
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > limits.maxPageSize) {
    throw new StoreInputError(`limit: expected 1 to ${limits.maxPageSize}`);
  }
  const folder = options.folder;
  if (folder !== undefined && !MAILBOX_FOLDERS.includes(folder))
    throw new StoreInputError(`folder: expected ${MAILBOX_FOLDERS.join(' or ')}`);
  return { after, limit, ...(folder !== undefined ? { folder } : {}) };
}

export function checkAck(ids: readonly string[], limits: StoreLimits): string[] {
  if (!Array.isArray(ids) || ids.length > limits.maxAckIds) {
    throw new StoreInputError(`ack: expected at most ${limits.maxAckIds} message ids`);
  }
  return [...new Set(ids.map(checkMessageId))];
}

/** The most commitments one `transitOutbox` or `transitLogged` call takes. */
export const MAX_TRANSIT_BATCH = 10_000;

/** A `transitOutbox` limit: 1 to MAX_TRANSIT_BATCH. */
export function checkLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_TRANSIT_BATCH) {
    throw new StoreInputError(`limit: expected 1 to ${MAX_TRANSIT_BATCH}`);
  }
  return limit;
}

/** Commitments for `transitLogged`: at most MAX_TRANSIT_BATCH of 32 bytes each, as Buffers. */
export function checkCommitments(commitments: readonly Uint8Array[]): Buffer[] {
  if (!Array.isArray(commitments) || commitments.length > MAX_TRANSIT_BATCH) {
    throw new StoreInputError(`transitLogged: expected at most ${MAX_TRANSIT_BATCH} commitments`);
  }
  return commitments.map((c) => {
    if (!(c instanceof Uint8Array) || c.length !== 32) {
      throw new StoreInputError('transitLogged: a commitment is 32 bytes');
    }
    return Buffer.from(c);
  });
}

export function checkReceipt(
  receipt: Uint8Array,
  expiresAt: number,
  limits: StoreLimits,
  now: number,
): void {
  if (
    !(receipt instanceof Uint8Array) ||
    receipt.length === 0 ||
    receipt.length > limits.maxReceiptBytes
  ) {
    throw new StoreInputError(`receipt: expected 1 to ${limits.maxReceiptBytes} bytes`);
  }
  checkTime(expiresAt, 'expiresAt');
  if (expiresAt <= now) throw new StoreInputError('expiresAt: the receipt would expire at once');
}

// ---------------------------------------------------------------------------------------------
// Keyed hashes

export function recipientHash(indexKey: Buffer, recipient: string): Buffer {
  return createHmac('sha256', indexKey)
    .update('aftersmtp/store/v1/recipient\0')
    .update(recipient)
    .digest();
}

/** How many recipients' hashes a store keeps in memory. */
const RECIPIENT_HASHES = 4096;

/**
 * `recipientHash`, remembered for the last RECIPIENT_HASHES recipients under the index key it was
 * last asked with (a store's key is set when it opens; another key forgets them all): a store's
 * recipients are few and come again, and each hash made anew is an HMAC object made and spent
 * (with the message id's, the store's one keyed hash per message that cannot be kept). The
 * Buffers it returns are shared: callers copy them (Buffer.concat) or compare them, never write
 * into them.
 */
export class RecipientHashes {
  #indexKey: Buffer | undefined;
  readonly #known = new BoundedMap<string, Buffer>(RECIPIENT_HASHES);

  of(indexKey: Buffer, recipient: string): Buffer {
    if (indexKey !== this.#indexKey) {
      this.#indexKey = indexKey;
      this.#known.clear();
    }
    let hash = this.#known.get(recipient);
    if (hash === undefined) {
      hash = recipientHash(indexKey, recipient);
      this.#known.set(recipient, hash);
    }
    return hash;
  }
}

export function messageIdHash(indexKey: Buffer, recipientHash_: Buffer, messageId: string): Buffer {
  return createHmac('sha256', indexKey)
    .update('aftersmtp/store/v1/message-id\0')
    .update(recipientHash_)
    .update(messageId)
    .digest();
}

// ---------------------------------------------------------------------------------------------
// Plaintext records

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

/** The sealed content of a stored envelope: metadata and body together. */
interface EnvelopePlain {
  v: number;
  r: string;
  m: string;
  s: string;
  ra: number;
  ea: number;
  h: Uint8Array;
  b: Uint8Array;
  /** The folder when it is not the inbox (absent in records written before folders). */
  f?: 'junk';
}

interface ReceiptPlain {
  v: number;
  r: string;
  m: string;
  ea: number;
  x: Uint8Array;
}

export function encodeEnvelopeRecord(input: DeliverInput): Buffer {
  const rec: EnvelopePlain = {
    v: RECORD_VERSION,
    r: input.recipient,
    m: input.messageId,
    s: input.sender,
    ra: input.receivedAt,
    ea: input.expiresAt,
    h: input.ciphertextHash,
    b: input.envelope,
    ...(input.folder === 'junk' ? { f: 'junk' as const } : {}),
  };
  return packr.pack(rec);
}

function unpackObject(raw: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = packr.unpack(raw);
  } catch (err) {
    throw new StoreCorruptError(`${what}: not msgpack (${(err as Error).message})`);
  }
  if (
    typeof value !== 'object' ||
    value === null ||
    Array.isArray(value) ||
    value instanceof Uint8Array
  ) {
    throw new StoreCorruptError(`${what}: not a map`);
  }
  const obj = value as Record<string, unknown>;
  if (obj.v !== RECORD_VERSION) throw new StoreCorruptError(`${what}: unknown record version`);
  return obj;
}

const isTime = (v: unknown): v is number =>
  typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v <= MAX_TIME;
const isStr = (v: unknown, max: number): v is string =>
  typeof v === 'string' && v.length > 0 && v.length <= max;

/** Decodes a stored envelope's plaintext; throws StoreCorruptError unless every field is valid. */
export function decodeEnvelopeRecord(raw: Uint8Array): DeliverInput {
  const o = unpackObject(raw, 'envelope record');
  if (
    !isStr(o.r, MAX_DID_BYTES) ||
    !isStr(o.s, MAX_DID_BYTES) ||
    !isStr(o.m, MAX_MESSAGE_ID_LENGTH) ||
    !isTime(o.ra) ||
    !isTime(o.ea) ||
    !(o.h instanceof Uint8Array) ||
    o.h.length !== 32 ||
    !(o.b instanceof Uint8Array) ||
    (o.f !== undefined && o.f !== 'junk')
  ) {
    throw new StoreCorruptError('envelope record: a field is missing or invalid');
  }
  return {
    recipient: o.r,
    messageId: o.m,
    sender: o.s,
    receivedAt: o.ra,
    expiresAt: o.ea,
    ciphertextHash: Buffer.from(o.h),
    envelope: Buffer.from(o.b),
    ...(o.f === 'junk' ? { folder: 'junk' as const } : {}),
  };
}

export function encodeReceiptRecord(
  recipient: string,
  messageId: string,
  receipt: Uint8Array,
  expiresAt: number,
): Buffer {
  const rec: ReceiptPlain = {
    v: RECORD_VERSION,
    r: recipient,
    m: messageId,
    ea: expiresAt,
    x: receipt,
  };
  return packr.pack(rec);
}

export function decodeReceiptRecord(raw: Uint8Array): {
  recipient: string;
  messageId: string;
  expiresAt: number;
  receipt: Buffer;
} {
  const o = unpackObject(raw, 'receipt record');
  if (
    !isStr(o.r, MAX_DID_BYTES) ||
    !isStr(o.m, MAX_MESSAGE_ID_LENGTH) ||
    !isTime(o.ea) ||
    !(o.x instanceof Uint8Array)
  ) {
    throw new StoreCorruptError('receipt record: a field is missing or invalid');
  }
  return { recipient: o.r, messageId: o.m, expiresAt: o.ea, receipt: Buffer.from(o.x) };
}

// ---------------------------------------------------------------------------------------------
// Sealed frames (lmdb)

export type FrameKind = 'envelope' | 'receipt' | 'share' | 'index-key';

export interface FrameInfo {
  readonly keyId: string;
  readonly header: Buffer;
}

function aadOf(kind: FrameKind, identity: Uint8Array, prefix: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`aftersmtp/store/v1/${kind}\0`), identity, prefix]);
}

export function sealFrame(
  key: NodeKey,
  kind: FrameKind,
  identity: Uint8Array,
  header: Uint8Array,
  plaintext: Uint8Array,
): Buffer {
  if (header.length > 255) throw new RangeError('frame header longer than 255 bytes');
  const prefix = Buffer.concat([
    Buffer.from([FRAME_VERSION]),
    Buffer.from(key.id, 'hex'),
    Buffer.from([header.length]),
    header,
  ]);
  const nonce = randomBytes(NONCE_BYTES);
  const ct = aeadSeal(
    ALG,
    subkey(key, 'aead'),
    nonce,
    aadOf(kind, identity, prefix),
    Buffer.from(plaintext.buffer, plaintext.byteOffset, plaintext.length),
  );
  return Buffer.concat([prefix, nonce, ct]);
}

/** The cleartext part of a frame; throws StoreCorruptError when it is not a frame. */
export function peekFrame(frame: Uint8Array): FrameInfo & { prefixLength: number } {
  const f = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
  const fixed = 1 + KEY_ID_BYTES + 1;
  if (f.length < fixed || f[0] !== FRAME_VERSION)
    throw new StoreCorruptError('sealed record: not a version 1 frame');
  const headerLength = f[1 + KEY_ID_BYTES] as number;
  const prefixLength = fixed + headerLength;
  if (f.length < prefixLength + NONCE_BYTES + TAG_BYTES)
    throw new StoreCorruptError('sealed record: truncated');
  return {
    keyId: f.subarray(1, 1 + KEY_ID_BYTES).toString('hex'),
    header: Buffer.from(f.subarray(fixed, prefixLength)),
    prefixLength,
  };
}

/**
 * Opens a frame with the key its key id names. StoreKeyError: the keyring does not hold that key;
 * StoreCorruptError: not a frame, or authentication failed (tampered, truncated, wrong slot).
 */
export function openFrame(
  ring: Keyring,
  kind: FrameKind,
  identity: Uint8Array,
  frame: Uint8Array,
): FrameInfo & { plaintext: Buffer } {
  const info = peekFrame(frame);
  const key = ring.get(info.keyId);
  if (key === undefined) {
    throw new StoreKeyError(
      `record sealed with store key ${info.keyId}, which is not in the keyring`,
    );
  }
  const f = Buffer.from(frame.buffer, frame.byteOffset, frame.length);
  const prefix = f.subarray(0, info.prefixLength);
  const nonce = f.subarray(info.prefixLength, info.prefixLength + NONCE_BYTES);
  const ct = f.subarray(info.prefixLength + NONCE_BYTES);
  let plaintext: Buffer;
  try {
    plaintext = aeadOpen(
      ALG,
      subkey(key, 'aead'),
      Buffer.from(nonce),
      aadOf(kind, identity, prefix),
      Buffer.from(ct),
    );
  } catch (err) {
    throw new StoreCorruptError(
      `sealed ${kind} record failed authentication (key ${info.keyId})`,
      err,
    );
  }
  return { keyId: info.keyId, header: info.header, plaintext };
}
