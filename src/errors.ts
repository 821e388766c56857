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
 * The settings' problems as one ConfigError: one line for one problem, else one per line under
 * a heading, each naming its variable.
 */
export function invalidConfiguration(problems: readonly string[]): ConfigError {
  const text =
    problems.length === 1
      ? `invalid configuration: ${problems[0]}`
      : `invalid configuration:\n  ${problems.join('\n  ')}`;
  return new ConfigError('ERR_CONFIG', text);
}

/**
 * Something in the environment is not as it must be (a port taken, a file missing or
 * unreadable, a disk full, a server down): the operator fixes it, not the code. The message
 * names the thing (the address, the path, the variable) and says what is wrong, in one line.
 */
export class EnvironmentError extends AfterSmtpError {}

/** The errno codes an operator fixes, in words. */
const ERRNO_WORDS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EEXIST: 'already exists',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
  EISDIR: 'is a directory',
  ENOTDIR: 'a component of the path is not a directory',
  ENOTEMPTY: 'directory not empty',
  EMFILE: 'too many open files in this process',
  ENFILE: 'too many open files on this system',
  EIO: 'input/output error',
  EADDRINUSE: 'address already in use',
  EADDRNOTAVAIL: 'address not available on this machine',
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'temporary DNS failure',
  // SQLite (better-sqlite3 sets these as err.code)
  SQLITE_FULL: 'database or disk is full',
  SQLITE_IOERR: 'input/output error',
  SQLITE_CANTOPEN: 'unable to open the database file',
  SQLITE_READONLY: 'the database is read-only',
  SQLITE_PERM: 'permission denied',
  SQLITE_BUSY: 'the database is locked by another process',
  // LMDB (lmdb-js)
  MDB_MAP_FULL: 'the LMDB map is full',
};

/** `code` in words ("address already in use"), or undefined for a code that is not the environment's. */
export function errnoWords(code: unknown): string | undefined {
  return typeof code === 'string' ? ERRNO_WORDS[code] : undefined;
}

/**
 * An operating system error (`err.code` an errno name an operator fixes) as an EnvironmentError
 * with the stable code `code`: "<what>: <words> [ERRNO]". Anything else: undefined (a bug, or
 * an error already typed).
 */
export function environmentError(
  err: unknown,
  code: string,
  what: string,
): EnvironmentError | undefined {
  if (err instanceof AfterSmtpError) return undefined;
  const errno = (err as { code?: unknown } | null)?.code;
  const words = errnoWords(errno);
  if (words === undefined) return undefined;
  return new EnvironmentError(code, `${what}: ${words} [${String(errno)}]`, { cause: err });
}

/** environmentError, or `err` itself when it is not the environment's. */
export function asEnvironmentError(err: unknown, code: string, what: string): unknown {
  return environmentError(err, code, what) ?? err;
}

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
