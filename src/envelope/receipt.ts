/**
 * Delivery receipts (docs/PROTOCOL.md §12.4): what the recipient's gateway signs with its own
 * key once an envelope is durably in the recipient's mailbox: message id, ciphertext hash,
 * recipient, sender and time. Stored next to the envelope (an internal msgpackr record, DESIGN.md
 * §5) and served to clients as the DeliveryReceipt protobuf message.
 *
 * Guarantees: verifyReceipt returns only if the receipt names the given gateway record and its
 * signature verifies (both halves for hybrid-v1); decodeStoredReceipt validates every field.
 */
import { createHash } from 'node:crypto';
import { Packr } from 'msgpackr';
import { CryptoError, InputError } from '../errors.js';
import { lp, u64be } from '../identity/lp.js';
import type { PublicKeyRecord, SecretKeySet } from '../identity/keys.js';
import { verifySignature, type Signature } from '../identity/signature.js';

export const PURPOSE_RECEIPT = 'aftersmtp/amp/v1/receipt';

export interface DeliveryReceipt {
  readonly gateway: string;
  readonly gatewayKeyId: Buffer;
  readonly messageId: Buffer;
  readonly ciphertextHash: Buffer;
  readonly recipient: string;
  readonly sender: string;
  readonly deliveredAt: number;
  readonly signature: Signature;
}

export type UnsignedReceipt = Omit<DeliveryReceipt, 'signature' | 'gateway' | 'gatewayKeyId'>;

/** The ciphertext hash a receipt names: SHA-256 of the envelope's ciphertext. */
export function ciphertextHash(envelope: { readonly ciphertext: Uint8Array }): Buffer {
  return createHash('sha256').update(envelope.ciphertext).digest();
}

/** lp(label, gateway, key id, message id, ciphertext hash, recipient, sender, u64 time). */
export function receiptTranscript(r: Omit<DeliveryReceipt, 'signature'>): Buffer {
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
): Omit<DeliveryReceipt, 'signature'> {
  return { ...r, gateway: gateway.record.did, gatewayKeyId: gateway.record.keyId };
}

export function signReceipt(r: UnsignedReceipt, gateway: SecretKeySet): DeliveryReceipt {
  const body = receiptBody(r, gateway);
  return { ...body, signature: gateway.sign(receiptTranscript(body), PURPOSE_RECEIPT) };
}

/** `signReceipt` with the ML-DSA half on the thread pool (SecretKeySet.signAsync). */
export async function signReceiptAsync(
  r: UnsignedReceipt,
  gateway: SecretKeySet,
): Promise<DeliveryReceipt> {
  const body = receiptBody(r, gateway);
  return { ...body, signature: await gateway.signAsync(receiptTranscript(body), PURPOSE_RECEIPT) };
}

export function verifyReceipt(r: DeliveryReceipt, gateway: PublicKeyRecord): void {
  if (r.gateway !== gateway.did || !r.gatewayKeyId.equals(gateway.keyId)) {
    throw new CryptoError('ERR_RECEIPT_SIGNATURE', `the receipt names ${r.gateway}'s other key`);
  }
  verifySignature(
    gateway.suite,
    gateway.signingPublicKeys,
    receiptTranscript(r),
    PURPOSE_RECEIPT,
    r.signature,
    'ERR_RECEIPT_SIGNATURE',
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
    !(v.q === null || buf(v.q))
  ) {
    throw new InputError('ERR_RECEIPT_FORMAT', 'stored receipt: malformed');
  }
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
  };
}
