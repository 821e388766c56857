/**
 * The queue's typed errors, each with a stable code (src/errors.ts): callers branch on the class
 * or the code, never on the message.
 */
import { AfterSmtpError } from '../errors.js';

/** Misuse of the enqueue transaction or a lease (used twice, no body, no recipient...). */
export class QueueStateError extends AfterSmtpError {
  constructor(message: string) {
    super('ERR_QUEUE_STATE', message);
  }
}

/** A stored record could not be decoded; the entry is quarantined with this message. */
export class QueueDecodeError extends AfterSmtpError {
  constructor(message: string) {
    super('ERR_QUEUE_DECODE', message);
  }
}

/** The queue server cannot be reached or refused the configuration. */
export class QueueUnavailableError extends AfterSmtpError {
  constructor(message: string, cause?: unknown) {
    super('ERR_QUEUE_UNAVAILABLE', message, { cause });
  }
}

/** No queued entry has that id. */
export class QueueNotFoundError extends AfterSmtpError {
  constructor(id: string) {
    super('ERR_QUEUE_NOT_FOUND', `no queue entry ${JSON.stringify(id)}`);
  }
}

/** The operation exists for the embedded (lmdb) queue only. */
export class QueueUnsupportedError extends AfterSmtpError {
  constructor(message: string) {
    super('ERR_QUEUE_UNSUPPORTED', message);
  }
}

/** No room on the queue's file system: temporary (src/errors.ts). */
export { StorageFullError } from '../errors.js';
