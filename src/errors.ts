/**
 * Typed errors shared by every domain. Each error carries a stable `code` that callers and the
 * edges (CLI exit codes, gRPC statuses, SMTP replies, QUIC stream errors) translate in exactly one
 * place; the message is for operators and never leaks to a remote peer.
 */
export class AfterSmtpError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** The caller passed something malformed (bad DID, bad flag value, truncated bytes...). */
export class InputError extends AfterSmtpError {}

/** A cryptographic check failed (bad signature, failed AEAD open, wrong key). */
export class CryptoError extends AfterSmtpError {}

/** Configuration is invalid; the message names the variable. */
export class ConfigError extends AfterSmtpError {}

/**
 * The file system of a store has no room for this write (below the free-space reserve, or the
 * write itself failed for lack of space). Temporary: the sender retries later (gRPC UNAVAILABLE,
 * QUIC BUSY, SMTP 452 4.3.1); nothing acknowledged is lost. Raised by the queue and the
 * mailbox store (src/storage/space.ts).
 */
export class StorageFullError extends AfterSmtpError {
  readonly temporary = true;

  constructor(message: string, cause?: unknown) {
    super('ERR_STORAGE_FULL', message, { cause });
  }
}
