/**
 * Why the ledger refused a request, as stable codes (the gRPC edge maps them to statuses in one
 * place). Malformed input is InputError and failed signatures are CryptoError (src/errors.ts);
 * LedgerError is for well-formed requests that the log's state or policy refuses.
 */
import { AfterSmtpError } from '../errors.js';

export const LEDGER_REFUSALS = {
  /** The DID's domain is not served by this log. */
  ERR_DOMAIN_NOT_SERVED: 'permission-denied',
  /** The domain's policy is `closed`: only an administrator registers. */
  ERR_POLICY_CLOSED: 'permission-denied',
  /** The domain's policy is `admin-only` and no valid approval was given. */
  ERR_POLICY_ADMIN_ONLY: 'permission-denied',
  /** The domain's policy is `open-pow` and no stamp was given. */
  ERR_STAMP_MISSING: 'permission-denied',
  /** The challenge of this stamp was already spent. */
  ERR_STAMP_REUSED: 'already-exists',
  /** The admin approval reference is unknown, used, expired or for another DID. */
  ERR_APPROVAL_INVALID: 'permission-denied',
  ERR_DID_EXISTS: 'already-exists',
  ERR_DID_UNKNOWN: 'not-found',
  /** The DID is revoked: only an administrator's re-registration is accepted. */
  ERR_DID_REVOKED: 'failed-precondition',
  /** The request names a previous leaf or key that is not the DID's current one. */
  ERR_LEDGER_STALE: 'failed-precondition',
  ERR_RATE_LIMITED: 'resource-exhausted',
  /** The log key on disk is not the key this log database was created with. */
  ERR_LOG_KEY_MISMATCH: 'failed-precondition',
} as const;

export type LedgerRefusal = keyof typeof LEDGER_REFUSALS;

export class LedgerError extends AfterSmtpError {
  /** For ERR_RATE_LIMITED: when to try again. */
  readonly retryAfterMs: number | undefined;

  constructor(code: LedgerRefusal, message: string, retryAfterMs?: number) {
    super(code, message);
    this.retryAfterMs = retryAfterMs;
  }
}
