/**
 * The mailbox store's typed errors, each with a stable code (src/errors.ts): callers branch on the
 * class or the code, never on the message. The client API maps them to gRPC statuses in one place.
 */
import { AfterSmtpError } from '../errors.js';

/** An input out of bounds or malformed (bad DID, oversized envelope, page too large...). */
export class StoreInputError extends AfterSmtpError {
  constructor(message: string) {
    super('ERR_STORE_INPUT', message);
  }
}

/**
 * The node key is missing, malformed, or not the one the records were sealed with (a key id that
 * the keyring does not hold). Never quarantines anything: the operator fixes the keyring.
 */
export class StoreKeyError extends AfterSmtpError {
  constructor(message: string, cause?: unknown) {
    super('ERR_STORE_KEY', message, { cause });
  }
}

/** A stored record failed authentication or decoding; it has been quarantined. */
export class StoreCorruptError extends AfterSmtpError {
  constructor(message: string, cause?: unknown) {
    super('ERR_STORE_CORRUPT', message, { cause });
  }
}

/** A mailbox is full (count or bytes); a temporary condition for the sending gateway. */
export class StoreQuotaError extends AfterSmtpError {
  constructor(message: string) {
    super('ERR_STORE_QUOTA', message);
  }
}

/** The database cannot be reached, or refused the schema; raised at start-up by `open`. */
export class StoreUnavailableError extends AfterSmtpError {
  constructor(message: string, cause?: unknown) {
    super('ERR_STORE_UNAVAILABLE', message, { cause });
  }
}

/** The store was used after close(). */
export class StoreClosedError extends AfterSmtpError {
  constructor() {
    super('ERR_STORE_CLOSED', 'the mailbox store is closed');
  }
}

/** No room on the store's file system: temporary (src/errors.ts). */
export { StorageFullError } from '../errors.js';
