/**
 * A resolver's anchoring policy (DESIGN.md §2b): a lookup answer is accepted only if a checkpoint
 * of the log anchored on the chain no longer ago than `maxAgeMs` (by the block's own timestamp,
 * not by a clock the gateway controls) is consistent with the answer's checkpoint.
 *
 * Guarantees: the anchored checkpoint must be signed by the log's key, be no larger than the
 * answer's and be proven consistent with it; its anchor record is checked on the chain
 * (SubstrateChain.verify: canonical block, the remarkWithEvent extrinsic, its Remarked event),
 * optionally signed by a known account; a chain that cannot be reached is an error, never a pass.
 */
import { CryptoError } from '../errors.js';
import {
  verifyCheckpoint,
  verifyConsistency,
  type Checkpoint,
  type NoteVerifier,
} from '../ledger/index.js';
import { AnchorError, type AnchorRecord, type SubstrateChain } from './chain.js';

export interface AnchorPolicy {
  readonly chain: SubstrateChain;
  /** The anchor's block may be at most this old (ms). */
  readonly maxAgeMs: number;
  /** The account the log's operator anchors with (SS58), when the resolver knows it. */
  readonly account?: string;
}

export interface AnchoredCandidate {
  readonly note: string;
  readonly record: AnchorRecord;
  /** Consistency proof from the note's size to the answer's checkpoint. */
  readonly proof: readonly Uint8Array[];
}

/**
 * Resolves with the block time of the anchor that vouches for `answer`; rejects with
 * CryptoError(ERR_ANCHOR_REQUIRED) when no candidate is anchored recently enough and consistent,
 * or with AnchorError(ERR_ANCHOR_UNAVAILABLE) when the chain cannot be asked.
 */
export async function checkAnchored(
  answer: Checkpoint,
  candidates: readonly AnchoredCandidate[],
  logKey: NoteVerifier,
  policy: AnchorPolicy,
  now = Date.now(),
): Promise<{ blockTime: number; record: AnchorRecord }> {
  const why: string[] = [];
  for (const c of candidates) {
    let cp: Checkpoint;
    try {
      cp = verifyCheckpoint(c.note, logKey, answer.origin);
      if (cp.size > answer.size) throw new Error('larger than the answer');
      if (cp.size !== c.record.size || !cp.root.equals(c.record.root)) {
        throw new Error('the record is of another checkpoint');
      }
      verifyConsistency(cp.size, answer.size, c.proof, cp.root, answer.root);
    } catch (err) {
      why.push((err as Error).message);
      continue;
    }
    try {
      const { blockTime } = await policy.chain.verify(c.record, cp, policy.account);
      if (now - blockTime > policy.maxAgeMs) {
        why.push(`anchored at ${new Date(blockTime).toISOString()}, older than allowed`);
        continue;
      }
      return { blockTime, record: c.record };
    } catch (err) {
      if (err instanceof AnchorError && err.code === 'ERR_ANCHOR_UNAVAILABLE') throw err;
      why.push((err as Error).message);
    }
  }
  throw new CryptoError(
    'ERR_ANCHOR_REQUIRED',
    `no checkpoint of ${answer.origin} anchored within ${policy.maxAgeMs} ms vouches for this answer${why.length > 0 ? `: ${why.join('; ')}` : ''}`,
  );
}
