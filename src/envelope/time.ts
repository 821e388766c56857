/**
 * Trusted time for expiry (docs/EXPIRY.md, docs/PROTOCOL.md §12.8): the clock by which gateways
 * and clients judge `expires_at`, which a recipient cannot set back.
 *
 * - A gateway judges by `TrustedClock`: the largest of its local clock, the signed times it holds
 *   (the newest ledger entry's `loggedAt`, which its signed checkpoint covers; the newest anchor's
 *   block time) and every time it has handed out before. A local clock that jumps back does not
 *   move it back.
 * - A client judges by max(its local clock, the time of a fresh time statement its gateway signed,
 *   the largest such time it has seen before): setting the local clock back changes nothing.
 *
 * A time statement is the gateway key's signature over its time, the client's nonce (so the client
 * knows it is fresh, not replayed) and the gateway's current signed checkpoint (the log state at
 * that time). verifyTimeStatement returns only if the statement names the given gateway record,
 * carries the nonce asked for and its signature verifies (both halves for hybrid-v1).
 */
import { createHash } from 'node:crypto';
import { CryptoError, InputError } from '../errors.js';
import { lp, u64be } from '../identity/lp.js';
import type { PublicKeyRecord, SecretKeySet } from '../identity/keys.js';
import { verifySignature, type Signature } from '../identity/signature.js';

export const PURPOSE_TIME = 'aftersmtp/client/v1/time';
export const TIME_NONCE_LENGTH = 16;
/** The longest checkpoint note a statement carries (the C2SP note bound of §9.2). */
export const MAX_TIME_CHECKPOINT_BYTES = 16 * 1024;

export interface TimeStatement {
  readonly gateway: string;
  readonly gatewayKeyId: Buffer;
  /** The gateway's trusted time, ms since the epoch. */
  readonly time: number;
  /** The client's 16 random bytes. */
  readonly nonce: Buffer;
  /** The gateway's current signed checkpoint note (docs/PROTOCOL.md §9.2). */
  readonly checkpoint: string;
  readonly signature: Signature;
}

/** lp(label, gateway, key id, u64 time, nonce, SHA-256(checkpoint note)). */
export function timeTranscript(s: Omit<TimeStatement, 'signature'>): Buffer {
  return lp(
    PURPOSE_TIME,
    s.gateway,
    s.gatewayKeyId,
    u64be(s.time),
    s.nonce,
    createHash('sha256').update(s.checkpoint, 'utf8').digest(),
  );
}

function checkNonce(nonce: Uint8Array): Buffer {
  if (!(nonce instanceof Uint8Array) || nonce.length !== TIME_NONCE_LENGTH) {
    throw new InputError('ERR_TIME_NONCE', `the time nonce must be ${TIME_NONCE_LENGTH} bytes`);
  }
  return Buffer.from(nonce);
}

export function signTimeStatement(
  input: { time: number; nonce: Uint8Array; checkpoint: string },
  gateway: SecretKeySet,
): TimeStatement {
  const body = {
    gateway: gateway.record.did,
    gatewayKeyId: gateway.record.keyId,
    time: input.time,
    nonce: checkNonce(input.nonce),
    checkpoint: input.checkpoint,
  };
  return { ...body, signature: gateway.sign(timeTranscript(body), PURPOSE_TIME) };
}

export function verifyTimeStatement(
  s: TimeStatement,
  gateway: PublicKeyRecord,
  nonce: Uint8Array,
): void {
  if (s.gateway !== gateway.did || !s.gatewayKeyId.equals(gateway.keyId)) {
    throw new CryptoError(
      'ERR_TIME_SIGNATURE',
      `the time statement names ${s.gateway}'s other key`,
    );
  }
  if (!s.nonce.equals(checkNonce(nonce))) {
    throw new CryptoError('ERR_TIME_NONCE', 'the time statement answers another nonce (replayed?)');
  }
  if (!Number.isSafeInteger(s.time) || s.time < 0) {
    throw new CryptoError('ERR_TIME_SIGNATURE', 'the time statement has no valid time');
  }
  verifySignature(
    gateway.suite,
    gateway.signingPublicKeys,
    timeTranscript(s),
    PURPOSE_TIME,
    s.signature,
    'ERR_TIME_SIGNATURE',
  );
}

export interface TrustedClockOptions {
  /** The local clock (default Date.now). */
  readonly local?: () => number;
  /** Signed times this node holds (undefined: none yet); read at most once per `floorTtlMs`. */
  readonly floors?: readonly (() => number | undefined)[];
  readonly floorTtlMs?: number;
}

/**
 * max(local clock, signed floors, every time returned before): never goes back, whatever the
 * local clock does. `observe` raises it to a signed time learnt later (a time statement).
 */
export class TrustedClock {
  readonly #local: () => number;
  readonly #floors: readonly (() => number | undefined)[];
  readonly #ttl: number;
  #floor = 0;
  #floorAt = -Infinity;
  #high = 0;

  constructor(options: TrustedClockOptions = {}) {
    this.#local = options.local ?? Date.now;
    this.#floors = options.floors ?? [];
    this.#ttl = options.floorTtlMs ?? 1000;
  }

  now(): number {
    const local = this.#local();
    if (this.#floors.length > 0 && (local - this.#floorAt >= this.#ttl || local < this.#floorAt)) {
      this.#floorAt = local;
      for (const f of this.#floors) this.#floor = Math.max(this.#floor, f() ?? 0);
    }
    this.#high = Math.max(this.#high, local, this.#floor);
    return this.#high;
  }

  /** Raises the clock to a verified signed time (never lowers it). */
  observe(time: number): void {
    if (Number.isSafeInteger(time) && time > this.#high) this.#high = time;
  }
}
