/**
 * Checking a receipt's transit proof (docs/PROTOCOL.md §12.7), for clients: that the commitment
 * of the receipt is a leaf of the signing gateway's transit log, in a checkpoint signed by the
 * log key the gateway's ledger record publishes.
 *
 * Guarantees: verifyTransitProof returns only if the checkpoint note verifies with the given key
 * under the origin `<receipt gateway's domain>/aftersmtp-transit/v1`, its size is the proof's
 * tree size, and the RFC 9162 inclusion proof of the receipt's leaf leads to its root. Every
 * failure is a TransitError: ERR_TRANSIT_KEY (no usable key), ERR_TRANSIT_CHECKPOINT (the note
 * does not verify, or is another log's), ERR_TRANSIT_PROOF (the proof does not lead to the root,
 * or is of another receipt). The receipt's own signature is checked elsewhere (verifyReceipt).
 */
import { AfterSmtpError, CryptoError } from '../errors.js';
import type { DeliveryReceipt } from '../envelope/receipt.js';
import {
  formatVerifierKey,
  leafHash,
  parseVerifierKey,
  verifyCheckpoint,
  verifyInclusion,
  type Checkpoint,
  type NoteVerifier,
} from '../ledger/index.js';
import { transitCommitment, transitLeaf, transitOrigin } from './commitment.js';

export class TransitError extends CryptoError {}

export interface TransitProofInput {
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly proof: readonly Uint8Array[];
  readonly checkpoint: string;
}

/** The note verifier of a gateway's transit log from the key its record publishes. */
export function transitVerifier(domain: string, publicKey: Uint8Array | undefined): NoteVerifier {
  if (publicKey === undefined || publicKey.length !== 32) {
    throw new TransitError(
      'ERR_TRANSIT_KEY',
      `the gateway of ${domain} publishes no transit log key (32 bytes)`,
    );
  }
  return parseVerifierKey(formatVerifierKey(transitOrigin(domain), publicKey));
}

function gatewayDomain(did: string): string {
  const parts = did.split(':');
  if (parts.length !== 4 || parts[3] !== 'gateway') {
    throw new TransitError('ERR_TRANSIT_PROOF', `${did} is not a gateway DID`);
  }
  return parts[2] as string;
}

/** Verifies the proof of `receipt` with the transit log key of the receipt's gateway. */
export function verifyTransitProof(
  receipt: Omit<DeliveryReceipt, 'signature'>,
  p: TransitProofInput,
  transitKey: Uint8Array | undefined,
): Checkpoint {
  const domain = gatewayDomain(receipt.gateway);
  const verifier = transitVerifier(domain, transitKey);
  let cp: Checkpoint;
  try {
    cp = verifyCheckpoint(p.checkpoint, verifier, transitOrigin(domain));
  } catch (err) {
    const why = err instanceof AfterSmtpError ? `${err.message} (${err.code})` : String(err);
    throw new TransitError('ERR_TRANSIT_CHECKPOINT', `transit checkpoint refused: ${why}`, {
      cause: err,
    });
  }
  if (cp.size !== p.treeSize) {
    throw new TransitError(
      'ERR_TRANSIT_PROOF',
      `the proof is for tree size ${p.treeSize}, the checkpoint is of ${cp.size}`,
    );
  }
  const leaf = leafHash(transitLeaf(transitCommitment(receipt)));
  try {
    verifyInclusion(leaf, p.leafIndex, p.treeSize, p.proof, cp.root);
  } catch (err) {
    throw new TransitError(
      'ERR_TRANSIT_PROOF',
      `the receipt is not proven in ${cp.origin}: ${(err as Error).message}`,
      { cause: err },
    );
  }
  return cp;
}
