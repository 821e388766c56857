/**
 * Delivery receipts (docs/PROTOCOL.md §12.4): what the recipient's gateway signs with its own
 * key once an envelope is durably in the recipient's mailbox: message id, ciphertext hash,
 * recipient, sender and time. Stored next to the envelope (an internal msgpackr record, DESIGN.md
 * §5) and served to clients as the DeliveryReceipt protobuf message.
 *
 * A busy gateway signs its receipts in batches (ReceiptSigner, docs/PROTOCOL.md §3.3): a receipt
 * then carries its place in the batch, and its signature is over the batch's root.
 *
 * Guarantees: verifyReceipt returns only if the receipt names the given gateway record and its
 * signature verifies (both halves for hybrid-v1), alone or through its batch; decodeStoredReceipt
 * validates every field.
 */
import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { CryptoError, InputError } from '../errors.js';
import { lp, u64be } from '../identity/lp.js';
import {
  BatchSigner,
  decodeBatchPlace,
  verifyBatchSignature,
  type BatchPlace,
  type BatchPurposes,
  type VerifiedBatches,
} from '../identity/batch-signature.js';
import type { PublicKeyRecord, SecretKeySet } from '../identity/keys.js';
import type { Signature } from '../identity/signature.js';

export const PURPOSE_RECEIPT = 'aftersmtp/amp/v1/receipt';
export const PURPOSE_RECEIPT_BATCH = 'aftersmtp/amp/v1/receipt-batch';
const RECEIPT_PURPOSES: BatchPurposes = { single: PURPOSE_RECEIPT, batch: PURPOSE_RECEIPT_BATCH };

export interface DeliveryReceipt {
  readonly gateway: string;
  readonly gatewayKeyId: Buffer;
  readonly messageId: Buffer;
  readonly ciphertextHash: Buffer;
  readonly recipient: string;
  readonly sender: string;
  readonly deliveredAt: number;
  readonly signature: Signature;
  /** Present when the signature is over a batch of receipts. */
  readonly batch?: BatchPlace;
}

export type UnsignedReceipt = Omit<
  DeliveryReceipt,
  'signature' | 'batch' | 'gateway' | 'gatewayKeyId'
>;

/** The ciphertext hash a receipt names: SHA-256 of the envelope's ciphertext. */
export function ciphertextHash(envelope: { readonly ciphertext: Uint8Array }): Buffer {
  return createHash('sha256').update(envelope.ciphertext).digest();
}

/** lp(label, gateway, key id, message id, ciphertext hash, recipient, sender, u64 time). */
export function receiptTranscript(r: Omit<DeliveryReceipt, 'signature' | 'batch'>): Buffer {
  return lp(
    PURPOSE_RECEIPT,
    r.gateway,
    r.gatewayKeyId,
    r.messageId,
    r.ciphertextHash,
    r.recipient,
    r.sender,
    u64be(r.deliveredAt),
  );
}

/** The receipt as `gateway` signs it: the fields, and the gateway that vouches for them. */
function receiptBody(
  r: UnsignedReceipt,
  gateway: SecretKeySet,
): Omit<DeliveryReceipt, 'signature' | 'batch'> {
  return { ...r, gateway: gateway.record.did, gatewayKeyId: gateway.record.keyId };
}

export function signReceipt(r: UnsignedReceipt, gateway: SecretKeySet): DeliveryReceipt {
  const body = receiptBody(r, gateway);
  return { ...body, signature: gateway.sign(receiptTranscript(body), PURPOSE_RECEIPT) };
}

/**
 * The receipts of a busy gateway: those that ask while a signature is being made share the next
 * one, as a batch (BatchSigner); a receipt alone gets the plain signature of `signReceipt`, its
 * ML-DSA-65 half made on the thread pool.
 */
export class ReceiptSigner {
  readonly #gateway: SecretKeySet;
  readonly #signer: BatchSigner;

  constructor(gateway: SecretKeySet, maxBatch?: number) {
    this.#gateway = gateway;
    this.#signer = new BatchSigner(gateway, RECEIPT_PURPOSES, maxBatch);
  }

  async sign(r: UnsignedReceipt): Promise<DeliveryReceipt> {
    const body = receiptBody(r, this.#gateway);
    const signed = await this.#signer.sign(receiptTranscript(body));
    return {
      ...body,
      signature: signed.signature,
      ...(signed.batch !== undefined ? { batch: signed.batch } : {}),
    };
  }
}

/** Throws ERR_RECEIPT_SIGNATURE unless `gateway` signed `r`; `batches`: batches already verified. */
export function verifyReceipt(
  r: DeliveryReceipt,
  gateway: PublicKeyRecord,
  batches?: VerifiedBatches,
): void {
  if (r.gateway !== gateway.did || !r.gatewayKeyId.equals(gateway.keyId)) {
    throw new CryptoError('ERR_RECEIPT_SIGNATURE', `the receipt names ${r.gateway}'s other key`);
  }
  verifyBatchSignature(
    gateway,
    receiptTranscript(r),
    RECEIPT_PURPOSES,
    r,
    'ERR_RECEIPT_SIGNATURE',
    batches,
  );
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export function encodeStoredReceipt(r: DeliveryReceipt): Buffer {
  return packr.pack({
    v: 1,
    g: r.gateway,
    k: r.gatewayKeyId,
    m: r.messageId,
    h: r.ciphertextHash,
    r: r.recipient,
    s: r.sender,
    t: r.deliveredAt,
    e: r.signature.ed25519,
    q: r.signature.mldsa65 ?? null,
    ...(r.batch !== undefined ? { b: [r.batch.index, r.batch.size, r.batch.path] } : {}),
  });
}

export function decodeStoredReceipt(raw: Uint8Array): DeliveryReceipt {
  let v: Record<string, unknown>;
  try {
    v = packr.unpack(raw) as Record<string, unknown>;
  } catch {
    throw new InputError('ERR_RECEIPT_FORMAT', 'stored receipt: not msgpack');
  }
  const buf = (x: unknown): x is Uint8Array => x instanceof Uint8Array;
  if (
    typeof v !== 'object' ||
    v === null ||
    v.v !== 1 ||
    typeof v.g !== 'string' ||
    !buf(v.k) ||
    !buf(v.m) ||
    !buf(v.h) ||
    typeof v.r !== 'string' ||
    typeof v.s !== 'string' ||
    typeof v.t !== 'number' ||
    !buf(v.e) ||
    !(v.q === null || buf(v.q)) ||
    !(v.b === undefined || (Array.isArray(v.b) && v.b.length === 3))
  ) {
    throw new InputError('ERR_RECEIPT_FORMAT', 'stored receipt: malformed');
  }
  const place = v.b as [unknown, unknown, unknown] | undefined;
  const batch =
    place === undefined
      ? undefined
      : decodeBatchPlace(
          { index: place[0], size: place[1], path: place[2] },
          (why) => new InputError('ERR_RECEIPT_FORMAT', `stored receipt: ${why}`),
        );
  return {
    gateway: v.g,
    gatewayKeyId: Buffer.from(v.k),
    messageId: Buffer.from(v.m),
    ciphertextHash: Buffer.from(v.h),
    recipient: v.r,
    sender: v.s,
    deliveredAt: v.t,
    signature:
      v.q === null
        ? { ed25519: Buffer.from(v.e) }
        : { ed25519: Buffer.from(v.e), mldsa65: Buffer.from(v.q as Uint8Array) },
    ...(batch !== undefined ? { batch } : {}),
  };
}
