/**
 * The one place where errors become gRPC statuses on the client API (STYLE.md: translate at the
 * edge, once). Refusals keep their stable code in the `aftersmtp-code` trailer and a message
 * about the request; anything unexpected becomes INTERNAL with a transaction id that the
 * gateway's log also carries, never the internal text (DESIGN.md §7).
 *
 *   ClientApiRefusal     -> its own status (UNAUTHENTICATED, PERMISSION_DENIED, NOT_FOUND, ...)
 *   LedgerError          -> LEDGER_REFUSALS[code] (permission-denied, already-exists, ...)
 *   StorageFullError     -> UNAVAILABLE       (ERR_STORAGE_FULL: no room for new mail; retry)
 *   InputError           -> INVALID_ARGUMENT  (malformed request, bad or expired stamp, ...)
 *   CryptoError          -> INVALID_ARGUMENT  (a signature in the request does not verify)
 *   anything else        -> INTERNAL "internal error (transaction <id>)"
 *
 * The client helper (client.ts) turns a status back into a typed ClientApiError carrying the
 * same code, so a CLI prints e.g. ERR_STAMP_REUSED whichever side detected it.
 */
import { randomBytes } from 'node:crypto';
import { Metadata, status, type ServiceError, type StatusObject } from '@grpc/grpc-js';
import { AfterSmtpError, CryptoError, InputError, StorageFullError } from '../../errors.js';
import { LEDGER_REFUSALS, LedgerError, type LedgerRefusal } from '../../ledger/index.js';

export const CODE_TRAILER = 'aftersmtp-code';
export const RETRY_AFTER_TRAILER = 'aftersmtp-retry-after-ms';
export const TRANSACTION_TRAILER = 'aftersmtp-transaction';

const REFUSAL_STATUS: Record<(typeof LEDGER_REFUSALS)[LedgerRefusal], status> = {
  'permission-denied': status.PERMISSION_DENIED,
  'already-exists': status.ALREADY_EXISTS,
  'not-found': status.NOT_FOUND,
  'failed-precondition': status.FAILED_PRECONDITION,
  'resource-exhausted': status.RESOURCE_EXHAUSTED,
};

/** Messages sent to peers are one line and bounded, whatever the error said. */
function safeMessage(message: string): string {
  return message.replace(/[\r\n]+/g, ' ').slice(0, 512);
}

export interface MappedError {
  readonly status: StatusObject;
  /** Set for INTERNAL: the id logged with the real error. */
  readonly transaction?: string;
}

/**
 * A refusal of the messaging methods (auth, dispatch, mailbox) that names its gRPC status: the
 * code is stable (PROTOCOL.md §12.6), the message is about the request and safe to show.
 */
export class ClientApiRefusal extends AfterSmtpError {
  readonly grpcStatus: status;

  constructor(grpcStatus: status, code: string, message: string) {
    super(code, message);
    this.grpcStatus = grpcStatus;
  }
}

/** A refusal the pipeline decided, as a ClientApiRefusal (refusalToStatus). */
export class PipelineRefusal extends ClientApiRefusal {}

/** gRPC statuses of the pipeline's refusal codes (src/pipeline/refusals.ts) that are not the default. */
const PIPELINE_STATUS: Readonly<Record<string, status>> = {
  ERR_SENDER_MISMATCH: status.PERMISSION_DENIED,
  ERR_ACCESS_DENIED: status.PERMISSION_DENIED,
  ERR_RECIPIENT_UNKNOWN: status.NOT_FOUND,
  ERR_RECIPIENT_INVALID: status.INVALID_ARGUMENT,
  ERR_ENVELOPE_FORMAT: status.INVALID_ARGUMENT,
  ERR_EPHEMERAL_SHARE: status.INVALID_ARGUMENT,
  ERR_ENVELOPE_INVALID: status.INVALID_ARGUMENT,
  ERR_CONTENT_TYPE: status.INVALID_ARGUMENT,
  ERR_RECIPIENT_IS_AMP: status.INVALID_ARGUMENT,
  ERR_TOO_LARGE: status.RESOURCE_EXHAUSTED,
  ERR_MAILBOX_FULL: status.RESOURCE_EXHAUSTED,
  ERR_INTERNAL: status.INTERNAL,
};

/**
 * A pipeline refusal as the status the client sees: the code in the trailer, and the status by
 * code, else UNAVAILABLE for a temporary refusal and FAILED_PRECONDITION for a permanent one.
 */
export function refusalToStatus(r: {
  code: string;
  temporary: boolean;
  text: string;
}): PipelineRefusal {
  const s =
    PIPELINE_STATUS[r.code] ?? (r.temporary ? status.UNAVAILABLE : status.FAILED_PRECONDITION);
  return new PipelineRefusal(s, r.code, r.text);
}

export function toGrpcStatus(err: unknown): MappedError {
  const metadata = new Metadata();
  if (err instanceof ClientApiRefusal) {
    metadata.set(CODE_TRAILER, err.code);
    return {
      status: { code: err.grpcStatus, details: safeMessage(err.message), metadata },
    };
  }
  if (err instanceof LedgerError && Object.hasOwn(LEDGER_REFUSALS, err.code)) {
    metadata.set(CODE_TRAILER, err.code);
    if (err.retryAfterMs !== undefined) {
      metadata.set(RETRY_AFTER_TRAILER, String(Math.ceil(err.retryAfterMs)));
    }
    return {
      status: {
        code: REFUSAL_STATUS[LEDGER_REFUSALS[err.code as LedgerRefusal]],
        details: safeMessage(err.message),
        metadata,
      },
    };
  }
  if (err instanceof StorageFullError) {
    metadata.set(CODE_TRAILER, err.code);
    return {
      status: {
        code: status.UNAVAILABLE,
        details: "the gateway's storage is full; retry later",
        metadata,
      },
    };
  }
  if (err instanceof InputError || err instanceof CryptoError) {
    metadata.set(CODE_TRAILER, err.code);
    return {
      status: { code: status.INVALID_ARGUMENT, details: safeMessage(err.message), metadata },
    };
  }
  const transaction = randomBytes(8).toString('hex');
  metadata.set(CODE_TRAILER, 'ERR_INTERNAL');
  metadata.set(TRANSACTION_TRAILER, transaction);
  return {
    status: {
      code: status.INTERNAL,
      details: `internal error (transaction ${transaction})`,
      metadata,
    },
    transaction,
  };
}

/** A refusal or failure reported by the gateway, with its stable code. */
export class ClientApiError extends AfterSmtpError {
  readonly grpcCode: status;
  readonly retryAfterMs: number | undefined;

  constructor(grpcCode: status, code: string, details: string, retryAfterMs?: number) {
    super(code, `gateway: ${details}`);
    this.grpcCode = grpcCode;
    this.retryAfterMs = retryAfterMs;
  }

  /** A call's error status, with the code from its trailer (or GRPC_<status> without one). */
  static fromStatus(err: ServiceError): ClientApiError {
    const code = err.metadata?.get(CODE_TRAILER)[0];
    const retry = err.metadata?.get(RETRY_AFTER_TRAILER)[0];
    return new ClientApiError(
      err.code,
      typeof code === 'string' ? code : `GRPC_${status[err.code] ?? err.code}`,
      err.details || err.message,
      typeof retry === 'string' ? Number(retry) : undefined,
    );
  }
}
