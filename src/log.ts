/**
 * The gateway's structured log: JSON lines on standard output (pino), in the shape log
 * collectors expect without configuration: `level` as a name ("info", "warn"), `time` in ISO 8601
 * (UTC), and `pid` and `hostname` on every line, next to `service`.
 *
 * Errors: a typed error (AfterSmtpError: an expected condition with a stable code, such as a
 * peer that is down, a refused registration or a disk that is full) is logged as its type, code
 * and message, without a stack: it is not a bug, and a stack would only make a routine line
 * look like one. Any other error (a bug) keeps its stack.
 */
import { hostname } from 'node:os';
import { pino, stdSerializers, stdTimeFunctions, type DestinationStream, type Logger } from 'pino';
import { AfterSmtpError } from './errors.js';

export type { Logger } from 'pino';

/** pino's `err` serializer, less the stack of typed errors (and of their causes). */
export function serializeError(err: unknown): unknown {
  if (err instanceof AfterSmtpError) {
    const out: Record<string, unknown> = { type: err.name, code: err.code, message: err.message };
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof AfterSmtpError) out.cause = serializeError(cause);
    else if (cause instanceof Error) {
      const c = cause as Error & { code?: unknown };
      out.cause = {
        type: c.name,
        message: c.message,
        ...(c.code !== undefined ? { code: c.code } : {}),
      };
    }
    return out;
  }
  return err instanceof Error ? stdSerializers.err(err) : err;
}

/**
 * Whether an error is routine (an expected condition with a stable code, logged at warn) or a
 * bug (logged at error, with its stack).
 */
export function isRoutine(err: unknown): boolean {
  return err instanceof AfterSmtpError && err.code !== 'ERR_INTERNAL';
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    base: { service: 'aftersmtp', pid: process.pid, hostname: hostname() },
    timestamp: stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
    serializers: { err: serializeError, error: serializeError },
  };
  return destination === undefined ? pino(options) : pino(options, destination);
}
