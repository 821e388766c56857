/**
 * The body of the relay's QUIC ACK frame (docs/PROTOCOL.md §13.4): one result per recipient of
 * the envelope copy, each either a delivery receipt signed by the receiving gateway (the fields
 * and transcript of src/envelope/receipt.ts, so the sender can store and serve it as is) or
 * a refusal of that recipient with a relay code.
 *
 *     ack      = lp("aftersmtp/amp/v1/relay-ack", u32(n)) || n × result
 *     result   = lp(0x01, gateway, gateway_key_id, message_id, ciphertext_hash, recipient, sender,
 *                   u64(delivered_at), ed25519_sig, ml_dsa_65_sig or empty)         delivered
 *              | lp(0x02, recipient, u16(code), reason)                             refused
 *              | lp(0x03, the items of 0x01, u32(index), u32(size), path)           delivered, the
 *                                             receipt signed in a batch (§3.3); path = the hashes
 *
 * Guarantees: decodeRelayAck is bounded (at most MAX_ACK_BYTES, MAX_ACK_RESULTS results, every
 * item within its size) and throws RelayError ERR_RELAY_RECEIPT on anything else, including
 * trailing bytes. It checks shape only: the sender verifies each receipt's signature.
 */
import { lp, u32be, u64be } from '../../identity/lp.js';
import type { DeliveryReceipt } from '../../envelope/receipt.js';
import { MAX_BATCH_PATH, decodeBatchPlace } from '../../identity/batch-signature.js';
import { HASH_LENGTH } from '../../identity/merkle.js';
import { RelayError } from './errors.js';

export const ACK_LABEL = 'aftersmtp/amp/v1/relay-ack';
/** The QUIC ACK body limit (PROTOCOL.md §11.3). */
export const MAX_ACK_BYTES = 65_536;
export const MAX_ACK_RESULTS = 1000;
const MAX_TEXT = 1024;

export type RelayResult =
  | { readonly kind: 'delivered'; readonly receipt: DeliveryReceipt }
  | {
      readonly kind: 'refused';
      readonly recipient: string;
      readonly wireCode: number;
      readonly reason: string;
    };

function u16be(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
}

export function encodeRelayAck(results: readonly RelayResult[]): Buffer {
  const parts: Buffer[] = [lp(ACK_LABEL, u32be(results.length))];
  for (const r of results) {
    if (r.kind === 'delivered') {
      const x = r.receipt;
      const place =
        x.batch === undefined
          ? []
          : [u32be(x.batch.index), u32be(x.batch.size), Buffer.concat(x.batch.path)];
      parts.push(
        lp(
          Buffer.of(x.batch === undefined ? 1 : 3),
          x.gateway,
          x.gatewayKeyId,
          x.messageId,
          x.ciphertextHash,
          x.recipient,
          x.sender,
          u64be(x.deliveredAt),
          x.signature.ed25519,
          x.signature.mldsa65 ?? Buffer.alloc(0),
          ...place,
        ),
      );
    } else {
      parts.push(lp(Buffer.of(2), r.recipient, u16be(r.wireCode), r.reason.slice(0, 512)));
    }
  }
  return Buffer.concat(parts);
}

function bad(why: string): RelayError {
  return new RelayError(
    'ERR_RELAY_RECEIPT',
    `the peer's acknowledgement is malformed: ${why}`,
    false,
  );
}

class Reader {
  #off = 0;
  constructor(private readonly buf: Buffer) {}

  item(max: number, min = 0): Buffer {
    if (this.#off + 4 > this.buf.length) throw bad('truncated');
    const len = this.buf.readUInt32BE(this.#off);
    if (len > max || len < min) throw bad(`an item of ${len} bytes is out of bounds`);
    if (this.#off + 4 + len > this.buf.length) throw bad('truncated');
    const out = Buffer.from(this.buf.subarray(this.#off + 4, this.#off + 4 + len));
    this.#off += 4 + len;
    return out;
  }

  text(max: number): string {
    const b = this.item(max);
    const s = b.toString('utf8');
    if (!Buffer.from(s, 'utf8').equals(b)) throw bad('a text item is not UTF-8');
    return s;
  }

  fixed(n: number): Buffer {
    return this.item(n, n);
  }

  get done(): boolean {
    return this.#off === this.buf.length;
  }
}

export function decodeRelayAck(body: Uint8Array): RelayResult[] {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  if (buf.length > MAX_ACK_BYTES) throw bad(`${buf.length} bytes`);
  const rd = new Reader(buf);
  if (rd.text(64) !== ACK_LABEL) throw bad('unknown label');
  const n = rd.fixed(4).readUInt32BE(0);
  if (n > MAX_ACK_RESULTS) throw bad(`${n} results`);
  const out: RelayResult[] = [];
  for (let i = 0; i < n; i++) {
    const kind = rd.fixed(1)[0];
    if (kind === 1 || kind === 3) {
      const gateway = rd.text(MAX_TEXT);
      const gatewayKeyId = rd.fixed(16);
      const messageId = rd.fixed(16);
      const ciphertextHash = rd.fixed(32);
      const recipient = rd.text(MAX_TEXT);
      const sender = rd.text(MAX_TEXT);
      const t = rd.fixed(8).readBigUInt64BE(0);
      if (t > BigInt(Number.MAX_SAFE_INTEGER)) throw bad('time out of range');
      const ed25519 = rd.fixed(64);
      const ml = rd.item(3309);
      if (ml.length !== 0 && ml.length !== 3309) throw bad('ML-DSA-65 signature length');
      const batch = kind === 3 ? readBatch(rd) : undefined;
      out.push({
        kind: 'delivered',
        receipt: {
          gateway,
          gatewayKeyId,
          messageId,
          ciphertextHash,
          recipient,
          sender,
          deliveredAt: Number(t),
          signature: ml.length === 0 ? { ed25519 } : { ed25519, mldsa65: ml },
          ...(batch !== undefined ? { batch } : {}),
        },
      });
    } else if (kind === 2) {
      const recipient = rd.text(MAX_TEXT);
      const wireCode = rd.fixed(2).readUInt16BE(0);
      const reason = rd.text(MAX_TEXT);
      out.push({ kind: 'refused', recipient, wireCode, reason });
    } else {
      throw bad(`unknown result kind ${String(kind)}`);
    }
  }
  if (!rd.done) throw bad('trailing bytes');
  return out;
}

/** A receipt's place in its batch: u32 index, u32 size, the path's hashes concatenated. */
function readBatch(rd: Reader): NonNullable<DeliveryReceipt['batch']> {
  const index = rd.fixed(4).readUInt32BE(0);
  const size = rd.fixed(4).readUInt32BE(0);
  const hashes = rd.item(MAX_BATCH_PATH * HASH_LENGTH);
  if (hashes.length % HASH_LENGTH !== 0) throw bad('a batch path is not whole hashes');
  const path: Buffer[] = [];
  for (let at = 0; at < hashes.length; at += HASH_LENGTH) {
    path.push(hashes.subarray(at, at + HASH_LENGTH));
  }
  return decodeBatchPlace({ index, size, path }, bad);
}
