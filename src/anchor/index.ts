/**
 * Anchoring checkpoints on a Substrate chain (DESIGN.md §2b, issue 16): the commitment, the chain
 * client (submit and verify), the anchor records kept beside the log, the anchorer that runs off
 * the hot path through the durable queue, and the resolver's freshness policy.
 */
export {
  ANCHOR_DESTINATION,
  Anchorer,
  type AnchorerOptions,
  type CheckpointSource,
} from './anchorer.js';
export {
  AnchorError,
  SubstrateChain,
  anchorAccountFromUri,
  loadAnchorAccount,
  type AnchorRecord,
} from './chain.js';
export { checkAnchored, type AnchorPolicy, type AnchoredCandidate } from './policy.js';
export { COMMITMENT_LABEL, anchorCommitment } from './commitment.js';
export { ANCHOR_DB_FILE, AnchorStore, type StoredAnchor } from './store.js';
