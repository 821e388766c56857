/**
 * The ledger domain's public surface (the verifiable identity log, issue 4): the gateway-side
 * IdentityLedger, client-side verification, checkpoints and notes, hashcash, policies, rate
 * limiting and the CLI pieces. Other domains (amp, cli, admin) import from here only.
 */
export {
  IdentityLedger,
  type LedgerReplication,
  type ReplicaTarget,
  type AppendResult,
  type BatchResult,
  type DidState,
  type LedgerOptions,
  type LookupAnswer,
  type RegisterRequest,
  type RevokeRequest,
  type RotateRequest,
} from './ledger.js';
export { LEDGER_REFUSALS, LedgerError, type LedgerRefusal } from './errors.js';
export {
  ClientState,
  checkAgainstPinned,
  observeCheckpoint,
  verifyAnswer,
  type PinnedLog,
  type ProofBundle,
  type VerifiedEntry,
} from './verify.js';
export {
  EXT_QUIC_TLS_SPKI,
  PURPOSE_REGISTER,
  PURPOSE_REVOKE,
  PURPOSE_ROTATE,
  PURPOSE_ROTATE_POP,
  decodeEntry,
  encodeEntry,
  encodeRecord,
  recordHash,
  registerTranscript,
  revokeTranscript,
  rotateTranscript,
  type Extension,
  type LedgerEntry,
  type RegisterEntry,
  type RevokeEntry,
  type RotateEntry,
} from './entries.js';
export {
  DEFAULT_BITS,
  mint,
  mintSearch,
  nativeMintKernel,
  mintStamp,
  parseStamp,
  stampBinding,
  type Challenge,
  type MintKernel,
  type MintProgress,
} from './hashcash.js';
export {
  DEFAULT_POLICY,
  POLICIES,
  parsePolicySpec,
  type DomainPolicy,
  type PolicyName,
} from './policy.js';
export {
  TokenBucketLimiter,
  type RateDecision,
  type RateLimiter,
  type RateLimitOptions,
} from './ratelimit.js';
export {
  formatCheckpoint,
  logOrigin,
  parseCheckpoint,
  signCheckpoint,
  verifyCheckpoint,
  type Checkpoint,
} from './checkpoint.js';
export {
  NoteSigner,
  formatVerifierKey,
  openNote,
  parseNote,
  parseVerifierKey,
  signNote,
  type NoteVerifier,
} from './note.js';
export { LOG_KEY_FILE, loadOrCreateLogKey, readLogKey, readLogKeyPublic } from './logkey.js';
export {
  LEDGER_DB_FILE,
  formatLedgerCheckpoint,
  formatLedgerConsistency,
  formatLedgerKey,
  ledgerCheckpoint,
  ledgerConsistency,
  ledgerKey,
  mintProgressLine,
  openDataDirLedger,
  type LedgerCheckpointInfo,
  type LedgerConsistencyInfo,
  type LedgerKeyInfo,
} from './cli-support.js';
export {
  EMPTY_ROOT,
  MemoryTree,
  consistencyProof,
  inclusionProof,
  leafHash,
  sha256,
  nodeHash,
  rootAt,
  verifyConsistency,
  verifyInclusion,
  type NodeSource,
} from '../identity/merkle.js';
export { LogStore } from './store.js';
export {
  LEDGER_REPLICA_FILE,
  PgLedgerReplication,
  PgRateLimiter,
  openPostgresLedger,
  type PgLedgerOptions,
} from './postgres.js';
