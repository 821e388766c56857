/**
 * A per-source token bucket rate limiter (registrations per IP, per client, per anything with a
 * string key). Each key has a bucket of `capacity` tokens refilled at `refillPerSecond`; a request
 * takes one token or is refused with the time until one is available.
 *
 * Guarantees: memory is bounded by `maxKeys` buckets (the least recently used bucket is evicted
 * first; an evicted key starts again with a full bucket, so eviction can only be more lenient,
 * never lock anyone out); time comes from the injected clock, so tests are deterministic.
 */
import { BoundedMap } from '../bounded-map.js';

export interface RateLimitOptions {
  readonly capacity: number;
  readonly refillPerSecond: number;
  readonly maxKeys?: number;
  readonly clock?: () => number;
}

export type RateDecision =
  | { readonly allowed: true; readonly remaining: number }
  | { readonly allowed: false; readonly retryAfterMs: number };

/** What the ledger asks of a limiter: this one in memory, or one shared by several nodes. */
export interface RateLimiter {
  take(key: string, cost?: number): RateDecision;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

export class TokenBucketLimiter implements RateLimiter {
  readonly #buckets: BoundedMap<string, Bucket>;
  readonly #capacity: number;
  readonly #rate: number;
  readonly #clock: () => number;

  constructor(options: RateLimitOptions) {
    if (!(options.capacity >= 1) || !(options.refillPerSecond > 0)) {
      throw new RangeError('rate limit: capacity >= 1 and refillPerSecond > 0 are required');
    }
    this.#capacity = options.capacity;
    this.#rate = options.refillPerSecond / 1000;
    this.#buckets = new BoundedMap(options.maxKeys ?? 100_000);
    this.#clock = options.clock ?? Date.now;
  }

  /** Takes `cost` tokens from `key`'s bucket if it has them. */
  take(key: string, cost = 1): RateDecision {
    const now = this.#clock();
    let b = this.#buckets.get(key);
    if (b === undefined) {
      b = { tokens: this.#capacity, updatedAt: now };
    } else {
      const elapsed = Math.max(0, now - b.updatedAt);
      b.tokens = Math.min(this.#capacity, b.tokens + elapsed * this.#rate);
      b.updatedAt = now;
    }
    this.#buckets.set(key, b); // the newest: the least recently used key is dropped first
    if (b.tokens >= cost) {
      b.tokens -= cost;
      return { allowed: true, remaining: Math.floor(b.tokens) };
    }
    return { allowed: false, retryAfterMs: Math.ceil((cost - b.tokens) / this.#rate) };
  }

  get size(): number {
    return this.#buckets.size;
  }
}
