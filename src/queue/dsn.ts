/**
 * Delivery status notifications for legacy senders: a multipart/report message (RFC 6522) whose
 * second part is message/delivery-status (RFC 3464), built by hand with CRLF line ends, lines
 * well under 998 octets (RFC 5322 2.1.1), and every value taken from the queue made safe to put
 * in a header (no CR, LF or other controls). The third part returns the original headers
 * (text/rfc822-headers) when the original body is a MIME message.
 */
import { createHash } from 'node:crypto';
import type { DeadRecord } from './record.js';

export interface DsnInput {
  /** Hostname of this gateway, for Reporting-MTA and the From/Message-ID domains. */
  readonly reportingMta: string;
  readonly originalSender: string;
  readonly originalMessageId: string;
  readonly arrivalDate: number;
  readonly failures: readonly DeadRecord[];
  /** The original message, when it is readable MIME (legacy): its headers are returned. */
  readonly originalBody?: Uint8Array;
  readonly now: number;
}

const CRLF = '\r\n';
const MAX_RETURNED_HEADERS = 64 * 1024;

/** A header-safe single line: controls removed, bounded length. */
function safe(value: string, max = 900): string {
  // eslint-disable-next-line no-control-regex
  const v = value.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return v.length > max ? v.slice(0, max) : v;
}

/** An address for `rfc822;` fields and To: addr-spec characters only, else a placeholder. */
function safeAddress(value: string): string {
  // eslint-disable-next-line no-control-regex
  return /^[^\s<>()\\,;:"[\]\x00-\x1f\x7f]{1,320}$/.test(value) ? value : 'invalid-address';
}

/** RFC 5322 date-time in UTC, e.g. "Tue, 03 Nov 2026 10:00:00 +0000". */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

/** The enhanced status code (RFC 3463) for a dead recipient. */
export function statusFor(dead: DeadRecord): string {
  // An expired recipient: 4.4.7 "delivery time expired" (RFC 3463 3.5), Action: failed.
  if (dead.kind === 'expired') return '4.4.7';
  const m = /\b([45])\.(\d{1,3})\.(\d{1,3})\b/.exec(dead.reason);
  return m && m[1] === '5' ? `${m[1]}.${m[2]}.${m[3]}` : '5.0.0';
}

/** Folds a long Diagnostic-Code value over continuation lines (RFC 3464 2.1.1 allows folding). */
function fold(name: string, value: string): string {
  const words = value.split(' ');
  const lines: string[] = [];
  let line = `${name}:`;
  for (const w of words) {
    if (line.length + w.length + 1 > 76 && line.trim().length > name.length + 1) {
      lines.push(line);
      line = ' ';
    }
    line += line === ' ' ? w : ` ${w}`;
  }
  lines.push(line);
  return lines.join(CRLF);
}

/** The header section of a MIME message (up to the first empty line), if it looks like one. */
function headerSection(body: Uint8Array | undefined): string | undefined {
  if (body === undefined) return undefined;
  const text = Buffer.from(body.subarray(0, MAX_RETURNED_HEADERS)).toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  if (end <= 0) return undefined;
  const head = text.slice(0, end);
  // Only well-formed header lines (field: value, or folded continuations) are returned.
  const lines = head.split('\r\n');
  const ok = lines.every((l) => /^[!-9;-~]+:/.test(l) || /^[ \t]/.test(l));
  // eslint-disable-next-line no-control-regex
  if (!ok || /[\x00\r\n]/.test(lines.join(''))) return undefined;
  return lines.map((l) => (l.length > 998 ? l.slice(0, 998) : l)).join(CRLF);
}

export function dsnMessageId(input: DsnInput): string {
  const h = createHash('sha256')
    .update(input.originalMessageId)
    .update('\0')
    .update(input.failures.map((f) => `${f.jobId}/${f.recipient}`).join('\0'))
    .digest('hex')
    .slice(0, 32);
  return `<dsn.${h}@${safeAddress(input.reportingMta)}>`;
}

/** The complete DSN message (headers and body) as bytes ready to queue. */
export function buildDsn(input: DsnInput): Buffer {
  const mta = safe(input.reportingMta, 255);
  const messageId = dsnMessageId(input);
  const boundary = `=_aftersmtp_dsn_${messageId.slice(5, 29)}`;
  const returned = headerSection(input.originalBody);
  const human = [
    `This is the mail system at ${mta}.`,
    '',
    'Your message could not be delivered to one or more recipients.',
    'It will not be retried. The details are below.',
    '',
    ...input.failures.map((f) => `<${safeAddress(f.recipient)}>: ${safe(f.reason, 400)}`),
  ];
  const perRecipient = input.failures.map((f) =>
    [
      `Final-Recipient: rfc822; ${safeAddress(f.recipient)}`,
      'Action: failed',
      `Status: ${statusFor(f)}`,
      fold('Diagnostic-Code', `X-AfterSMTP; ${safe(f.reason)}`),
      `Last-Attempt-Date: ${rfc5322Date(f.deadAt)}`,
    ].join(CRLF),
  );
  const parts = [
    [
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
      '',
      ...human,
    ].join(CRLF),
    [
      'Content-Type: message/delivery-status',
      '',
      [`Reporting-MTA: dns; ${mta}`, `Arrival-Date: ${rfc5322Date(input.arrivalDate)}`].join(CRLF),
      '',
      perRecipient.join(CRLF + CRLF),
    ].join(CRLF),
  ];
  if (returned !== undefined)
    parts.push(['Content-Type: text/rfc822-headers', '', returned].join(CRLF));
  const headers = [
    `From: Mail Delivery System <MAILER-DAEMON@${mta}>`,
    `To: <${safeAddress(input.originalSender)}>`,
    'Subject: Undelivered Mail Returned to Sender',
    `Date: ${rfc5322Date(input.now)}`,
    `Message-ID: ${messageId}`,
    'Auto-Submitted: auto-replied',
    'MIME-Version: 1.0',
    `Content-Type: multipart/report; report-type=delivery-status;${CRLF} boundary="${boundary}"`,
  ];
  const body =
    parts.map((p) => `--${boundary}${CRLF}${p}${CRLF}`).join('') + `--${boundary}--${CRLF}`;
  return Buffer.from(`${headers.join(CRLF)}${CRLF}${CRLF}${body}`, 'utf8');
}
