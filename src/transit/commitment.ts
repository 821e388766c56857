/**
 * The transit log's leaves (docs/PROTOCOL.md §12.7): what a gateway appends for each receipt it
 * signs is a hash of the receipt's signed transcript, never the receipt itself, so the log holds
 * no metadata (no DID, no message id, no time) in the clear.
 *
 *   commitment = SHA-256(lp("aftersmtp/transit/v1/commitment", receipt transcript (§12.4)))
 *   leaf       = u8(0x01 version) || commitment                         (33 bytes)
 *
 * Guarantees: deterministic; the commitment changes with any field of the receipt (message id,
 * ciphertext hash, recipient, sender, time, signing gateway and key id); a leaf is exactly 33
 * bytes and parseTransitLeaf refuses anything else (ERR_TRANSIT_LEAF).
 */
import { InputError } from '../errors.js';
import { lp } from '../identity/lp.js';
import { receiptTranscript, type DeliveryReceipt } from '../envelope/receipt.js';
import { sha256 } from '../ledger/index.js';

export const COMMITMENT_LABEL = 'aftersmtp/transit/v1/commitment';
export const TRANSIT_LEAF_VERSION = 0x01;
export const TRANSIT_LEAF_LENGTH = 33;
/** The gateway record extension that publishes the transit log's Ed25519 key (32 bytes). */
export const EXT_TRANSIT_LOG_KEY = 'transit-log-key';

/** The origin (and note key name) of a gateway's transit log. */
export function transitOrigin(domain: string): string {
  return `${domain}/aftersmtp-transit/v1`;
}

export function transitCommitment(r: Omit<DeliveryReceipt, 'signature'>): Buffer {
  return sha256(lp(COMMITMENT_LABEL, receiptTranscript(r)));
}

export function transitLeaf(commitment: Uint8Array): Buffer {
  if (commitment.length !== 32) {
    throw new InputError('ERR_TRANSIT_LEAF', 'a transit commitment is 32 bytes');
  }
  return Buffer.concat([Buffer.from([TRANSIT_LEAF_VERSION]), commitment]);
}

/** The commitment a leaf carries. */
export function parseTransitLeaf(leaf: Uint8Array): Buffer {
  if (leaf.length !== TRANSIT_LEAF_LENGTH || leaf[0] !== TRANSIT_LEAF_VERSION) {
    throw new InputError('ERR_TRANSIT_LEAF', 'not a version 1 transit leaf of 33 bytes');
  }
  return Buffer.from(leaf.subarray(1));
}
