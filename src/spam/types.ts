/**
 * The spam scanners' common contract (docs/OPERATIONS.md, "Spam policy"): what a scanner is
 * asked (the message as received and what the SMTP dialogue established), what it answers (a
 * score and the names of the rules that hit), and how it fails. A scanner never decides: the
 * pipeline's spam check compares the score with each recipient's thresholds.
 *
 * Guarantees: `scan` either resolves with a finite score or rejects with a ScannerError (never
 * another error, never a made-up score): down, slow, refused or an answer that does not parse
 * are all ScannerErrors with `reason` saying which, so the caller can apply the
 * scanner-unavailable rule and count it.
 */
import { AfterSmtpError } from '../errors.js';
import type { SpamScannerName } from '../routing/index.js';

export type { SpamScannerName } from '../routing/index.js';

export interface ScanRequest {
  /** The message as received (CRLF line ends). */
  readonly message: Buffer;
  /** RFC 5321 reverse path ('' for the null sender). */
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  /** The SMTP client's IP address. */
  readonly clientAddress: string;
  readonly helo?: string;
  /** The client's host name, if known (Rspamd's Hostname header). */
  readonly clientHostname?: string;
  /** The transaction id (Rspamd's Queue-Id). */
  readonly queueId: string;
  /** The authenticated login, for submission (Rspamd's User header). */
  readonly user?: string;
}

export interface ScanResult {
  readonly scanner: SpamScannerName;
  readonly score: number;
  /** The scanner's own threshold (Rspamd's reject score, spamd's required_score). */
  readonly required: number;
  /** Rspamd's action (no action, add header, reject, ...); spamd has none. */
  readonly action?: string;
  /** The rules (symbols) that hit, at most MAX_SYMBOLS, each at most 64 characters. */
  readonly symbols: readonly string[];
}

export interface SpamScanner {
  readonly name: SpamScannerName;
  scan(request: ScanRequest): Promise<ScanResult>;
}

export type ScannerFailure = 'timeout' | 'connect' | 'protocol' | 'too-large' | 'refused';

/** The scanner could not give a score: `reason` is what went wrong. */
export class ScannerError extends AfterSmtpError {
  readonly scanner: SpamScannerName;
  readonly reason: ScannerFailure;

  constructor(scanner: SpamScannerName, reason: ScannerFailure, message: string, cause?: unknown) {
    super('ERR_SCANNER_UNAVAILABLE', `${scanner}: ${message}`, { cause });
    this.scanner = scanner;
    this.reason = reason;
  }
}

/** Most symbols kept from one answer, and the longest name kept. */
export const MAX_SYMBOLS = 64;
export const MAX_SYMBOL_LENGTH = 64;
/** Default cap on a scanner's reply (a verdict with its symbols is a few KiB). */
export const DEFAULT_MAX_REPLY_BYTES = 256 * 1024;
export const DEFAULT_SCAN_TIMEOUT_MS = 10_000;

/** Keeps printable symbol names within the caps. */
export function cleanSymbols(names: readonly string[]): string[] {
  return names
    .map((s) => s.replace(/[^\x21-\x7e]/g, '').slice(0, MAX_SYMBOL_LENGTH))
    .filter((s) => s.length > 0)
    .slice(0, MAX_SYMBOLS);
}

/** A score is a finite number within ±100000 (GTUBE in SpamAssassin is 1000 and more). */
export function checkScore(scanner: SpamScannerName, v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || Math.abs(v) > 100_000) {
    throw new ScannerError(scanner, 'protocol', `${what} is not a score`);
  }
  return v;
}
