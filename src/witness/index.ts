/**
 * Witnesses of the ledger's checkpoints (DESIGN.md §2b, issue 16): C2SP tlog-cosignature keys and
 * lines, the C2SP tlog-witness client, the cosignatures kept beside the log, the witnesser that
 * sends checkpoints through the durable queue, and the resolver's k-of-n policy.
 */
export { WitnessError, addCheckpoint, type AddCheckpointResult } from './client.js';
export {
  CosignatureSigner,
  SIG_TYPE_COSIGNATURE_V1,
  cosignatureKeyId,
  parseWitnessKey,
  verifyCosignatures,
  type Cosigned,
  type WitnessKey,
} from './cosignature.js';
export { checkWitnessed, type WitnessPolicy, type WitnessedCandidate } from './policy.js';
export { WitnessService, startWitnessServer, type WitnessServerOptions } from './server.js';
export { WITNESS_DB_FILE, WitnessStore, type CosignedCheckpoint } from './store.js';
export {
  WITNESS_SCHEME,
  Witnesser,
  parseWitnessList,
  type WitnessEndpoint,
  type WitnessedLog,
  type WitnesserOptions,
} from './witnesser.js';
