/**
 * Hashcash proof-of-work for registrations (Sybil protection): server challenges, stamp encoding,
 * minting and verification. SHA-256, difficulty = number of leading zero bits.
 *
 * - challenge = 0x01 || u64(expiresAt ms) || nonce[16] || mac[16], where
 *   mac = HMAC-SHA256(secret, lp(CHALLENGE_LABEL, domain, first 25 bytes))[:16]: the log issues
 *   challenges without storing them, and only it can make one; a challenge is bound to a domain.
 * - binding = SHA-256(lp(STAMP_LABEL, challenge, did, recordHash, u8(bits)))
 * - work = SHA-256(binding || u64(counter)); valid when it has >= bits leading zero bits.
 * - stamp = 0x01 || u8(bits) || lp(challenge) || lp(did) || lp(recordHash) || u64(counter)
 *
 * Minting hashes a single 40-byte block per attempt. The inner loop is a MintKernel so the
 * native core can replace it (mintSearch is the pure TypeScript one, on node:crypto).
 *
 * Guarantees: parseStamp is bounded and exact (ERR_STAMP_MALFORMED); checkStamp refuses, each
 * with its own code, a stamp bound to another DID (ERR_STAMP_WRONG_DID) or key record
 * (ERR_STAMP_WRONG_KEY), a challenge this log did not issue for this domain
 * (ERR_STAMP_BAD_CHALLENGE), an expired one (ERR_STAMP_EXPIRED), and too little work
 * (ERR_STAMP_DIFFICULTY). Single use (ERR_STAMP_REUSED) is enforced by the ledger's spent set,
 * keyed by the challenge nonce, in the same transaction as the append.
 */
import { createHmac, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { InputError } from '../errors.js';
import { hashcashSearch } from '../native/index.js';
import { Reader, lpBytes, u64, u8 } from './codec.js';
import { sha256 } from '../identity/merkle.js';

export const CHALLENGE_LABEL = 'aftersmtp/ledger/v1/challenge';
export const STAMP_LABEL = 'aftersmtp/ledger/v1/hashcash';
export const CHALLENGE_LENGTH = 41;
export const MAX_BITS = 40;
export const MIN_BITS = 1;
/**
 * Default difficulty, chosen by measurement (`node dist/bench/ledger.js --only mint` on this
 * 2-CPU AMD EPYC): the native kernel does about 12 M hashes/s on one thread (the TypeScript
 * kernel 1.15 M), so 2^23 attempts take about 0.7 s on average on an idle machine and about
 * 1.4 s when the other core is busy: "about a second". A single mint is geometric, so its time
 * varies around that mean by about as much as the mean.
 */
export const DEFAULT_BITS = 23;
export const DEFAULT_CHALLENGE_TTL_MS = 10 * 60 * 1000;

export interface Stamp {
  readonly bits: number;
  readonly challenge: Buffer;
  readonly did: string;
  readonly recordHash: Buffer;
  readonly counter: number;
}

export interface Challenge {
  readonly challenge: Buffer;
  readonly expiresAt: number;
  readonly bits: number;
}

function stampError(code: string, message: string): InputError {
  return new InputError(code, message);
}

/** Issues and authenticates challenges with a per-log secret (kept in the log database). */
export class ChallengeIssuer {
  readonly #secret: Buffer;

  constructor(secret: Buffer) {
    if (secret.length < 32) throw new RangeError('challenge secret must be at least 32 bytes');
    this.#secret = Buffer.from(secret);
  }

  #mac(domain: string, body: Buffer): Buffer {
    return createHmac('sha256', this.#secret)
      .update(Buffer.concat([lpBytes(CHALLENGE_LABEL), lpBytes(domain), lpBytes(body)]))
      .digest()
      .subarray(0, 16);
  }

  issue(domain: string, expiresAt: number): Buffer {
    const body = Buffer.concat([u8(0x01), u64(expiresAt), randomBytes(16)]);
    return Buffer.concat([body, this.#mac(domain, body)]);
  }

  /** Checks a challenge's MAC and expiry; returns its expiry and nonce. */
  check(domain: string, challenge: Buffer, now: number): { expiresAt: number; nonce: Buffer } {
    if (challenge.length !== CHALLENGE_LENGTH || challenge[0] !== 0x01) {
      throw stampError('ERR_STAMP_BAD_CHALLENGE', 'the stamp challenge is not one this log issues');
    }
    const body = challenge.subarray(0, 25);
    if (!timingSafeEqual(this.#mac(domain, body), challenge.subarray(25))) {
      throw stampError(
        'ERR_STAMP_BAD_CHALLENGE',
        `the stamp challenge was not issued by this log for ${domain}`,
      );
    }
    const expiresAt = Number(body.readBigUInt64BE(1));
    if (now >= expiresAt) throw stampError('ERR_STAMP_EXPIRED', 'the stamp challenge has expired');
    return { expiresAt, nonce: Buffer.from(body.subarray(9, 25)) };
  }
}

export function checkBits(bits: number): number {
  if (!Number.isInteger(bits) || bits < MIN_BITS || bits > MAX_BITS) {
    throw new InputError('ERR_STAMP_BITS', `difficulty must be ${MIN_BITS}..${MAX_BITS} bits`);
  }
  return bits;
}

/** The 32-byte value every attempt hashes with its counter. */
export function stampBinding(
  challenge: Buffer,
  did: string,
  recordHash: Buffer,
  bits: number,
): Buffer {
  return sha256(
    lpBytes(STAMP_LABEL),
    lpBytes(challenge),
    lpBytes(did),
    lpBytes(recordHash),
    lpBytes(u8(bits)),
  );
}

/** Number of leading zero bits of `h`. */
export function leadingZeroBits(h: Uint8Array): number {
  let n = 0;
  for (const byte of h) {
    if (byte === 0) {
      n += 8;
      continue;
    }
    return n + Math.clz32(byte) - 24;
  }
  return n;
}

/** SHA-256(binding || u64(counter)). */
export function workHash(binding: Buffer, counter: number): Buffer {
  return sha256(binding, u64(counter));
}

export function encodeStamp(s: Stamp): Buffer {
  return Buffer.concat([
    u8(0x01),
    u8(s.bits),
    lpBytes(s.challenge),
    lpBytes(s.did),
    lpBytes(s.recordHash),
    u64(s.counter),
  ]);
}

export function parseStamp(bytes: Buffer): Stamp {
  const rd: Reader = new Reader(bytes, 'ERR_STAMP_MALFORMED');
  if (bytes.length > 1024) rd.fail('stamp longer than 1024 bytes');
  if (rd.u8('stamp version') !== 0x01) rd.fail('unknown stamp version');
  const bits = rd.u8('bits');
  if (bits < MIN_BITS || bits > MAX_BITS) rd.fail('stamp bits out of range');
  const challenge = rd.lp('challenge', CHALLENGE_LENGTH);
  if (challenge.length !== CHALLENGE_LENGTH) rd.fail('challenge has the wrong length');
  const did = rd.lpString('did', 512);
  const recordHash = rd.lp('recordHash', 32);
  if (recordHash.length !== 32) rd.fail('recordHash must be 32 bytes');
  const counter = rd.u64('counter');
  rd.end();
  return { bits, challenge, did, recordHash, counter };
}

/**
 * Verifies a stamp for a registration of `did` with a record hashing to `recordHash`, needing at
 * least `requiredBits`. Returns the challenge nonce and expiry (for the spent set). Does not
 * check single use.
 */
export function checkStamp(
  stampBytes: Buffer,
  expect: { domain: string; did: string; recordHash: Buffer; requiredBits: number; now: number },
  issuer: ChallengeIssuer,
): { nonce: Buffer; expiresAt: number; stamp: Stamp } {
  const stamp = parseStamp(stampBytes);
  if (stamp.did !== expect.did) {
    throw stampError('ERR_STAMP_WRONG_DID', 'the stamp is bound to another DID');
  }
  if (!stamp.recordHash.equals(expect.recordHash)) {
    throw stampError('ERR_STAMP_WRONG_KEY', 'the stamp is bound to another key record');
  }
  const { nonce, expiresAt } = issuer.check(expect.domain, stamp.challenge, expect.now);
  if (stamp.bits < expect.requiredBits) {
    throw stampError(
      'ERR_STAMP_DIFFICULTY',
      `the stamp claims ${stamp.bits} bits; ${expect.requiredBits} are required`,
    );
  }
  const binding = stampBinding(stamp.challenge, stamp.did, stamp.recordHash, stamp.bits);
  if (leadingZeroBits(workHash(binding, stamp.counter)) < stamp.bits) {
    throw stampError('ERR_STAMP_DIFFICULTY', `the stamp does not carry ${stamp.bits} bits of work`);
  }
  return { nonce, expiresAt, stamp };
}

/**
 * Searches counters [start, start + count) for one whose work hash has `bits` leading zero bits.
 * Returns the counter or -1. The native core may provide a faster function of this type.
 */
export type MintKernel = (binding: Buffer, bits: number, start: number, count: number) => number;

/**
 * The native core's search, the default kernel: SHA-256(binding || u64be(counter)) with the
 * binding's state hashed once (native/src/crypto/hashcash.rs), about 10x the TypeScript kernel.
 */
export const nativeMintKernel: MintKernel = (binding, bits, start, count) =>
  hashcashSearch(binding, bits, start, count) ?? -1;

/**
 * The TypeScript kernel: one SHA-256 block per attempt with node:crypto's one-shot hash. Kept as
 * the independent reference the native kernel is tested against, and as the bench baseline.
 */
export const mintSearch: MintKernel = (binding, bits, start, count) => {
  const buf = Buffer.alloc(40);
  binding.copy(buf, 0, 0, 32);
  const fullBytes = Math.floor(bits / 8);
  const mask = (0xff << (8 - (bits % 8))) & 0xff;
  for (let c = start; c < start + count; c++) {
    buf.writeUInt32BE(Math.floor(c / 2 ** 32), 32);
    buf.writeUInt32BE(c % 2 ** 32, 36);
    const h = hash('sha256', buf, 'buffer');
    let ok = true;
    for (let i = 0; i < fullBytes; i++) {
      if (h[i] !== 0) {
        ok = false;
        break;
      }
    }
    if (ok && (mask === 0 || ((h[fullBytes] as number) & mask) === 0)) return c;
  }
  return -1;
};

export interface MintProgress {
  readonly hashes: number;
  readonly elapsedMs: number;
  /** Expected total attempts: 2^bits. */
  readonly expected: number;
}

/** Attempts per slice between progress reports and event-loop yields. */
const SLICE = 1 << 16;

/**
 * Finds a counter for `binding` at `bits` difficulty, reporting progress after each slice and
 * yielding to the event loop so a CLI can draw a progress bar. `signal` aborts.
 */
export async function mint(
  binding: Buffer,
  bits: number,
  onProgress?: (p: MintProgress) => void,
  options: { kernel?: MintKernel; signal?: AbortSignal } = {},
): Promise<{ counter: number; hashes: number; elapsedMs: number }> {
  checkBits(bits);
  if (binding.length !== 32) throw new InputError('ERR_STAMP_MALFORMED', 'binding is 32 bytes');
  const kernel = options.kernel ?? nativeMintKernel;
  const t0 = performance.now();
  for (let start = 0; start < Number.MAX_SAFE_INTEGER; start += SLICE) {
    options.signal?.throwIfAborted();
    const found = kernel(binding, bits, start, SLICE);
    const elapsedMs = performance.now() - t0;
    if (found >= 0) return { counter: found, hashes: found + 1, elapsedMs };
    onProgress?.({ hashes: start + SLICE, elapsedMs, expected: 2 ** bits });
    await yieldToLoop();
  }
  throw new InputError('ERR_STAMP_MINT', 'counter space exhausted');
}

/** Mints a complete stamp for registering `did` with the record hashing to `recordHash`. */
export async function mintStamp(
  challenge: Buffer,
  did: string,
  recordHash: Buffer,
  bits: number,
  onProgress?: (p: MintProgress) => void,
  options: { kernel?: MintKernel; signal?: AbortSignal } = {},
): Promise<Buffer> {
  const binding = stampBinding(challenge, did, recordHash, bits);
  const { counter } = await mint(binding, bits, onProgress, options);
  return encodeStamp({ bits, challenge, did, recordHash, counter });
}
