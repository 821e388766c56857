/**
 * The Sender Rewriting Scheme (SRS, the scheme of libsrs2 and postsrsd): when the gateway
 * forwards a message to another domain it gives its own domain in MAIL FROM, so the receiver's
 * SPF check sees a sender that authorises the gateway, and a bounce comes back here, where the
 * address is turned back into the original one.
 *
 *   user@example.com   -> SRS0=HHHH=TT=example.com=user@forwarder.org
 *   SRS0=HHHH=TT=d=u@first.net -> SRS1=HHHH=first.net==HHHH=TT=d=u@forwarder.org
 *
 * HHHH is the first 4 characters of base64(HMAC-SHA1(secret, the fields that follow, lower-cased)),
 * compared without case on the way back; TT is the day number modulo 1024 in two base32
 * characters. A reversed address must carry a valid hash and a time stamp at most `maxAgeDays`
 * old (21 by default), so the gateway cannot be used to send bounces to arbitrary addresses.
 *
 * Written here rather than taken from npm: the packages there are unmaintained; this is the
 * whole scheme. Its output is checked against postsrsd in the tests.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../identity/files.js';

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const HASH_LENGTH = 4;
const DAY_MS = 86_400_000;
/** The stamp's period: 10 bits of day numbers. */
const STAMP_PERIOD = 1024;

export interface SrsOptions {
  /** The secret the hashes are made with (the bytes of its text). */
  readonly secret: string;
  readonly maxAgeDays?: number;
}

export class Srs {
  readonly #secret: Buffer;
  readonly #maxAgeDays: number;

  constructor(options: SrsOptions) {
    if (options.secret.length < 16) throw new RangeError('SRS secret: at least 16 characters');
    this.#secret = Buffer.from(options.secret, 'utf8');
    this.#maxAgeDays = options.maxAgeDays ?? 21;
  }

  #hash(...parts: string[]): string {
    const h = createHmac('sha1', this.#secret);
    for (const p of parts) h.update(p.toLowerCase(), 'utf8');
    return h.digest('base64').slice(0, HASH_LENGTH);
  }

  /**
   * The reverse path to use when `domain` forwards mail from `sender`. The null sender stays
   * null; a sender of `domain` itself is not rewritten.
   */
  forward(sender: string, domain: string, now = Date.now()): string {
    const at = sender.lastIndexOf('@');
    if (sender === '' || at <= 0) return sender;
    const local = sender.slice(0, at);
    const host = sender.slice(at + 1);
    if (host.toLowerCase() === domain.toLowerCase()) return sender;
    const tag = local.slice(0, 4).toUpperCase();
    const sep = local.charAt(4);
    if (tag === 'SRS1' && isSeparator(sep)) {
      // Already forwarded twice or more: keep the first forwarder and its part, re-sign.
      const m = /^SRS1[=+-][^=]*=([^=]+)=(=.*)$/i.exec(local);
      if (m !== null) {
        const [, firstHost, rest] = m as unknown as [string, string, string];
        return `SRS1=${this.#hash(firstHost, rest)}=${firstHost}=${rest}@${domain}`;
      }
    }
    if (tag === 'SRS0' && isSeparator(sep)) {
      const rest = `=${local.slice(5)}`;
      return `SRS1=${this.#hash(host, rest)}=${host}=${rest}@${domain}`;
    }
    const stamp = stampOf(now);
    return `SRS0=${this.#hash(stamp, host, local)}=${stamp}=${host}=${local}@${domain}`;
  }

  /**
   * The address an SRS address of ours stands for (for SRS1, the first forwarder's SRS0
   * address), or undefined when `local` (the part before '@') is not one that this secret made
   * in the last `maxAgeDays` days.
   */
  reverse(local: string, now = Date.now()): string | undefined {
    const tag = local.slice(0, 4).toUpperCase();
    if (!isSeparator(local.charAt(4))) return undefined;
    if (tag === 'SRS0') {
      const m = /^([^=]+)=([^=]{2})=([^=]+)=(.+)$/.exec(local.slice(5));
      if (m === null) return undefined;
      const [, hash, stamp, host, user] = m as unknown as [string, string, string, string, string];
      if (!this.#hashMatches(hash, stamp, host, user)) return undefined;
      if (!this.#fresh(stamp, now)) return undefined;
      return `${user}@${host}`;
    }
    if (tag === 'SRS1') {
      const m = /^([^=]+)=([^=]+)=(=.+)$/.exec(local.slice(5));
      if (m === null) return undefined;
      const [, hash, host, rest] = m as unknown as [string, string, string, string];
      if (!this.#hashMatches(hash, host, rest)) return undefined;
      return `SRS0${rest}@${host}`;
    }
    return undefined;
  }

  #hashMatches(given: string, ...parts: string[]): boolean {
    return given.toLowerCase() === this.#hash(...parts).toLowerCase();
  }

  #fresh(stamp: string, now: number): boolean {
    const value = decodeStamp(stamp);
    if (value === undefined) return false;
    const today = Math.floor(now / DAY_MS) % STAMP_PERIOD;
    const age = (today - value + STAMP_PERIOD) % STAMP_PERIOD;
    return age <= this.#maxAgeDays;
  }
}

function isSeparator(c: string): boolean {
  return c === '=' || c === '+' || c === '-';
}

/** Two base32 characters of the day number modulo 1024. */
export function stampOf(now: number): string {
  const day = Math.floor(now / DAY_MS) % STAMP_PERIOD;
  return `${BASE32.charAt(day >> 5)}${BASE32.charAt(day & 31)}`;
}

function decodeStamp(stamp: string): number | undefined {
  const hi = BASE32.indexOf(stamp.charAt(0).toUpperCase());
  const lo = BASE32.indexOf(stamp.charAt(1).toUpperCase());
  return hi < 0 || lo < 0 ? undefined : (hi << 5) | lo;
}

/** Whether the local part of an address looks like SRS (worth trying to reverse). */
export function isSrsLocal(local: string): boolean {
  return /^SRS[01][=+-]/i.test(local);
}

/** The SRS secret of a data directory (`srs.secret`), made on first use (mode 0600). */
export async function loadSrsSecret(dataDir: string): Promise<string> {
  const file = join(dataDir, 'srs.secret');
  try {
    return (await readFile(file, 'utf8')).trim();
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
  }
  const secret = randomBytes(32).toString('base64url');
  await writeFileAtomic(file, Buffer.from(`${secret}\n`), {
    mode: 0o600,
    overwrite: false,
    code: 'ERR_SRS_SECRET',
  }).catch((err: unknown) => {
    // Another process made it first: use that one.
    if ((err as { code?: string }).code !== 'ERR_SRS_SECRET_EXISTS') throw err;
  });
  return (await readFile(file, 'utf8')).trim();
}
