/**
 * Retry timing: exponential backoff with full jitter (delay drawn uniformly from
 * [0, min(cap, base * 2^(attempt-1))]), per recipient, bounded by the entry's maximum age. Pure
 * functions of their inputs and a random source, so tests pin them down exactly.
 */
import type { RetryPolicy } from './types.js';

export type Random = () => number;

/** The ceiling of the jitter window after `attempts` failures (attempts >= 1). */
export function backoffCeiling(attempts: number, policy: RetryPolicy): number {
  const exp = Math.min(Math.max(attempts - 1, 0), 52);
  return Math.min(policy.capMs, policy.baseMs * 2 ** exp);
}

export function fullJitterDelay(attempts: number, policy: RetryPolicy, random: Random): number {
  return Math.floor(random() * backoffCeiling(attempts, policy));
}

/**
 * When a recipient that has now failed `attempts` times is tried next, or undefined when the
 * maximum age has passed and it is dead. The last attempt is made at the deadline itself.
 */
export function nextAttemptAt(
  attempts: number,
  enqueuedAt: number,
  now: number,
  policy: RetryPolicy,
  random: Random,
): number | undefined {
  const deadline = enqueuedAt + policy.maxAgeMs;
  if (now >= deadline) return undefined;
  return Math.min(now + fullJitterDelay(attempts, policy, random), deadline);
}
