/**
 * The anchor commitment of a checkpoint (docs/PROTOCOL.md, "Anchoring"): the 32 bytes that a
 * gateway puts on a Substrate chain with `system.remarkWithEvent`, a hash of what identifies a
 * checkpoint of a log (its origin, size and root) and nothing else: no identity, no mail metadata.
 *
 *   commitment = SHA-256("aftersmtp-anchor/v1\n" || origin || "\n" || decimal size || "\n" ||
 *                        base64(root) || "\n")
 *
 * The three lines after the label are exactly the first three lines of the C2SP checkpoint text,
 * so the commitment can be recomputed from any copy of the checkpoint; extension lines and
 * signatures are not committed to (they do not identify the tree).
 *
 * Guarantees: deterministic; distinct (origin, size, root) give distinct inputs (the origin has
 * no newline, the size is canonical decimal, the root canonical base64).
 */
import { createHash } from 'node:crypto';
import type { Checkpoint } from '../ledger/index.js';

export const COMMITMENT_LABEL = 'aftersmtp-anchor/v1\n';
export const COMMITMENT_LENGTH = 32;

export function anchorCommitment(cp: Pick<Checkpoint, 'origin' | 'size' | 'root'>): Buffer {
  const body = `${cp.origin}\n${cp.size}\n${cp.root.toString('base64')}\n`;
  return createHash('sha256').update(COMMITMENT_LABEL).update(body).digest();
}
