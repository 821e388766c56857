/**
 * Random bytes for the values a message needs many of and that are no key: queue ids, lease
 * tokens, log transaction ids, message ids, AEAD nonces of stored records.
 *
 * They come from one pool that the operating system's CSPRNG (`crypto.randomFillSync`) fills
 * 4 KiB at a time, as Node.js does for `randomUUID`. `crypto.randomBytes` per value made a job
 * object and a fork check (a `getpid` call) for 8 to 16 bytes, three to four times a relayed
 * message: under load 10-12 µs of the main thread's time each in the relay's profiles
 * (docs/ARCHITECTURE.md, "Where a relayed message's CPU goes").
 *
 * Guarantees: every byte handed out is the CSPRNG's and is handed out once; the bytes are
 * wiped from the pool as they leave it, so the pool holds only values not yet used. Not for
 * keys: a key's bytes come from the native core or `crypto.randomBytes` straight, never from
 * memory shared with other values. Not fork-safe (the gateway never forks).
 */
import { randomFillSync } from 'node:crypto';

const POOL_BYTES = 4096;
/** Larger requests bypass the pool (they are rare, and would empty it at once). */
const LARGEST_POOLED = 64;

const pool = Buffer.allocUnsafeSlow(POOL_BYTES);
let next = POOL_BYTES;

/** The offset of `n` fresh bytes in the pool, refilling it first when fewer are left. */
function take(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > LARGEST_POOLED) {
    throw new RangeError(`pooled random values are 1 to ${LARGEST_POOLED} bytes, not ${n}`);
  }
  if (next + n > POOL_BYTES) {
    randomFillSync(pool);
    next = 0;
  }
  const at = next;
  next += n;
  return at;
}

/** `n` random bytes (1 to 64) in a new Buffer. */
export function randomBytes(n: number): Buffer {
  const at = take(n);
  const out = Buffer.allocUnsafe(n);
  pool.copy(out, 0, at, at + n);
  pool.fill(0, at, at + n);
  return out;
}

/** `n` random bytes (1 to 64) as 2n lower-case hex digits. */
export function randomHex(n: number): string {
  const at = take(n);
  const hex = pool.toString('hex', at, at + n);
  pool.fill(0, at, at + n);
  return hex;
}

/** Fills `target` at `offset` with `n` random bytes (1 to 64). */
export function randomInto(target: Uint8Array, offset: number, n: number): void {
  const at = take(n);
  pool.copy(target, offset, at, at + n);
  pool.fill(0, at, at + n);
}
