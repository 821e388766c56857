/**
 * The SMTP off-ramp: mail for ordinary addresses leaves here (DESIGN.md §1b). The pipeline
 * commits an `encodeOutbound` record per `smtp:<domain>` destination; the delivery worker hands
 * each such job to the handler `createOffRamp` makes.
 */
export {
  createOffRamp,
  DEFAULT_TIMEOUTS,
  type OffRampHandler,
  type OffRampLogger,
  type OffRampOptions,
  type OffRampOutcome,
  type OffRampTimeouts,
} from './offramp.js';
export { CredentialsFile, type CredentialLookup, type Credentials } from './credentials.js';
export {
  NO_OFFRAMP_METRICS,
  registerOffRampMetrics,
  TLSRPT_FAILURES,
  type OffRampMetrics,
  type TlsFailure,
  type TlsPolicyType,
} from './metrics.js';
