/**
 * A resolver's witness policy (DESIGN.md §2b): a lookup answer is accepted only if a checkpoint of
 * the log that k of the n witnesses the resolver knows have cosigned is consistent with the
 * answer's checkpoint. A log that shows this resolver a fork of what the witnesses saw cannot
 * give it a consistency proof to the witnessed checkpoint.
 *
 * Guarantees: the witnessed checkpoint must be signed by the log's key, be no larger than the
 * answer's and be proven consistent with it; only cosignatures that verify count, each witness
 * once; cosignatures older than maxAgeMs (by their own time) do not count.
 */
import { CryptoError } from '../errors.js';
import {
  verifyCheckpoint,
  verifyConsistency,
  type Checkpoint,
  type NoteVerifier,
} from '../ledger/index.js';
import { verifyCosignatures, type WitnessKey } from './cosignature.js';

export interface WitnessPolicy {
  readonly witnesses: readonly WitnessKey[];
  /** How many distinct known witnesses must have cosigned. */
  readonly k: number;
  /** Cosignatures older than this do not count (ms; none when absent). */
  readonly maxAgeMs?: number;
}

export interface WitnessedCandidate {
  /** The log's signed note with cosignature lines. */
  readonly note: string;
  /** Consistency proof from the note's size to the answer's checkpoint. */
  readonly proof: readonly Uint8Array[];
}

/**
 * Returns the witnesses that vouch for `answer` through one of `candidates`; throws
 * CryptoError(ERR_WITNESS_QUORUM) if no candidate reaches k.
 */
export function checkWitnessed(
  answer: Checkpoint,
  candidates: readonly WitnessedCandidate[],
  logKey: NoteVerifier,
  policy: WitnessPolicy,
  now = Date.now(),
): string[] {
  let best = 0;
  for (const c of candidates) {
    let cp: Checkpoint;
    let cosigned;
    try {
      cp = verifyCheckpoint(c.note, logKey, answer.origin);
      if (cp.size > answer.size) continue;
      verifyConsistency(cp.size, answer.size, c.proof, cp.root, answer.root);
      cosigned = verifyCosignatures(c.note, policy.witnesses);
    } catch {
      continue;
    }
    const fresh = cosigned.filter(
      (s) => policy.maxAgeMs === undefined || now - s.time * 1000 <= policy.maxAgeMs,
    );
    if (fresh.length >= policy.k) return fresh.map((s) => s.witness);
    best = Math.max(best, fresh.length);
  }
  throw new CryptoError(
    'ERR_WITNESS_QUORUM',
    `${best} of the required ${policy.k} known witnesses vouch for this checkpoint of ${answer.origin}`,
  );
}
