/**
 * Proof-of-transit (docs/PROTOCOL.md §12.7): the commitment of a signed receipt, the gateway's
 * transit log of those commitments (RFC 9162, signed C2SP checkpoints, anchored like the
 * ledger), and the client's check of a receipt's inclusion proof.
 */
export {
  COMMITMENT_LABEL,
  EXT_TRANSIT_LOG_KEY,
  TRANSIT_LEAF_LENGTH,
  parseTransitLeaf,
  transitCommitment,
  transitLeaf,
  transitOrigin,
} from './commitment.js';
export {
  TRANSIT_DB_FILE,
  TRANSIT_SEED_FILE,
  TransitLog,
  TransitLogError,
  openTransitLog,
  type TransitProof,
} from './log.js';
export {
  TransitError,
  transitVerifier,
  verifyTransitProof,
  type TransitProofInput,
} from './verify.js';
