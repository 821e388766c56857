/**
 * Length-prefixed, byte-exact encoding used by every transcript, HPKE info, AEAD aad, key id and
 * the key file header (docs/PROTOCOL.md §1). Each item is written as a u32 big-endian length
 * followed by its bytes; integers are first written as fixed-width big-endian bytes. Guarantees:
 * the encoding of a tuple is injective (no two different tuples encode to the same bytes), and
 * nothing here depends on platform endianness or string normalisation.
 */

/** A value that can appear in a length-prefixed tuple. Strings are encoded as UTF-8. */
export type LpItem = Uint8Array | string;

/** u32 big-endian. Throws RangeError for values outside 0..2^32-1 (a programming error). */
export function u32be(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}

/** u64 big-endian from a non-negative safe integer (timestamps in ms since the epoch). */
export function u64be(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`u64be: ${n} is not a safe uint`);
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n), 0);
  return b;
}

/** Concatenates u32be(len(item)) || item for every item, in order (one allocation, one copy). */
export function lp(...items: LpItem[]): Buffer {
  let size = 0;
  for (const item of items) {
    size += 4 + (typeof item === 'string' ? Buffer.byteLength(item, 'utf8') : item.length);
  }
  const out = Buffer.allocUnsafe(size);
  let at = 0;
  for (const item of items) {
    let length: number;
    if (typeof item === 'string') {
      length = out.write(item, at + 4, 'utf8');
    } else {
      out.set(item, at + 4);
      length = item.length;
    }
    out.writeUInt32BE(length, at);
    at += 4 + length;
  }
  return out;
}
