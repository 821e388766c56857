/**
 * Bounded big-endian readers and writers for the ledger's byte formats (leaf entries, stamps,
 * challenges). Guarantees: every read checks the remaining length before it slices, every
 * length-prefixed field has a caller-given maximum that is checked before anything is copied,
 * and `end()` refuses trailing bytes, so a decoder accepts exactly one encoding per value.
 * Failures are InputError(<code>) with the field name.
 */
import { InputError } from '../errors.js';

export class Reader {
  #off = 0;
  readonly #buf: Buffer;
  readonly #code: string;

  constructor(buf: Uint8Array, code: string) {
    this.#buf = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#code = code;
  }

  fail(why: string): never {
    throw new InputError(this.#code, why);
  }

  #need(n: number, field: string): void {
    if (this.#buf.length - this.#off < n) this.fail(`${field}: truncated`);
  }

  u8(field: string): number {
    this.#need(1, field);
    return this.#buf.readUInt8(this.#off++);
  }

  u32(field: string): number {
    this.#need(4, field);
    const v = this.#buf.readUInt32BE(this.#off);
    this.#off += 4;
    return v;
  }

  /** u64 big-endian that must fit a JavaScript safe integer. */
  u64(field: string): number {
    this.#need(8, field);
    const v = this.#buf.readBigUInt64BE(this.#off);
    this.#off += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${field}: larger than 2^53 - 1`);
    return Number(v);
  }

  bytes(n: number, field: string): Buffer {
    this.#need(n, field);
    const out = Buffer.from(this.#buf.subarray(this.#off, this.#off + n));
    this.#off += n;
    return out;
  }

  /** u32be length then that many bytes, at most `max`. */
  lp(field: string, max: number): Buffer {
    const n = this.u32(field);
    if (n > max) this.fail(`${field}: ${n} bytes is more than ${max}`);
    return this.bytes(n, field);
  }

  /** A length-prefixed UTF-8 string (well-formed, at most `max` bytes). */
  lpString(field: string, max: number): string {
    const b = this.lp(field, max);
    let s: string;
    try {
      s = new TextDecoder('utf-8', { fatal: true }).decode(b);
    } catch {
      this.fail(`${field}: not UTF-8`);
    }
    return s;
  }

  /** Runs `fn` on this reader and then requires that every byte was consumed. */
  whole<T>(fn: (r: Reader) => T): T {
    const v = fn(this);
    this.end();
    return v;
  }

  end(): void {
    if (this.#off !== this.#buf.length) this.fail('trailing bytes');
  }
}

export function u8(n: number): Buffer {
  return Buffer.from([n]);
}

export function u64(n: number): Buffer {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`u64: ${n} is not a safe uint`);
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** u32be(len) || bytes, for bytes or UTF-8 strings. */
export function lpBytes(item: Uint8Array | string): Buffer {
  const bytes = typeof item === 'string' ? Buffer.from(item, 'utf8') : Buffer.from(item);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}
