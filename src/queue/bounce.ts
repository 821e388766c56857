/**
 * Turns dead recipients into the bounce that goes back to the sender: a DSN (dsn.ts) for a legacy
 * sender, an AMP failure notice (amp-notice.ts) for an AMP sender. Returns nothing for an entry
 * that is itself a bounce or has the null sender, so a bounce never bounces (RFC 5321 6.1).
 * The bounce's message id is derived from the failures, so a bounce enqueued twice after a crash
 * is recognisable as a duplicate.
 */
import { createHash } from 'node:crypto';
import { buildAmpNotice, encodeAmpNotice } from './amp-notice.js';
import { buildDsn, dsnMessageId } from './dsn.js';
import { jobIdOf } from './ids.js';
import { decodeOutbound, encodeOutbound } from './outbound.js';
import { RECORD_VERSION, type DeadRecord, type JobRecord } from './record.js';
import type { EnvelopeInfo, RecipientInput, SenderKind } from './types.js';

export interface BounceOptions {
  /** This gateway's host name (Reporting-MTA) or gateway DID domain. */
  readonly reportingMta: string;
  /** Where a bounce to `address` is delivered; default: smtp:<domain> or amp:<DID domain>. */
  readonly route?: (address: string, kind: SenderKind) => string;
  /** Signs a DSN before it goes out (DKIM of the reporting domain); default: unsigned. */
  readonly sign?: (message: Buffer) => Buffer;
}

export interface BounceSpec {
  readonly info: EnvelopeInfo;
  readonly recipient: RecipientInput;
  readonly body: Buffer;
}

export function defaultBounceRoute(address: string, kind: SenderKind): string {
  if (kind === 'amp') {
    const parts = address.split(':');
    return `amp:${(parts.length >= 4 ? (parts[2] ?? '') : address).toLowerCase()}`;
  }
  const at = address.lastIndexOf('@');
  return `smtp:${(at >= 0 ? address.slice(at + 1) : address).toLowerCase()}`;
}

export function buildBounce(
  job: {
    sender: string;
    senderKind: SenderKind;
    bounce: boolean;
    messageId: string;
    enqueuedAt: number;
  },
  dead: readonly DeadRecord[],
  originalBody: Uint8Array | undefined,
  options: BounceOptions,
  now: number,
): BounceSpec | undefined {
  if (dead.length === 0 || job.bounce || job.sender === '') return undefined;
  const route = options.route ?? defaultBounceRoute;
  const recipient = { address: job.sender, destination: route(job.sender, job.senderKind) };
  if (job.senderKind === 'amp') {
    const notice = buildAmpNotice(options.reportingMta, dead, now);
    const id = createHash('sha256')
      .update(job.messageId)
      .update(dead.map((d) => `${d.jobId}/${d.recipient}`).join('\0'))
      .digest('hex')
      .slice(0, 32);
    return {
      info: { messageId: `notice.${id}`, sender: '', senderKind: 'amp', bounce: true },
      recipient,
      body: encodeAmpNotice(notice),
    };
  }
  const input = {
    reportingMta: options.reportingMta,
    originalSender: job.sender,
    originalMessageId: job.messageId,
    arrivalDate: job.enqueuedAt,
    failures: dead,
    originalBody: originalMessage(originalBody),
    now,
  };
  // The DSN goes out through the off-ramp like any mail for an ordinary address: its record
  // names the null reverse path, so it is never bounced itself (RFC 5321 §4.5.5).
  return {
    info: { messageId: dsnMessageId(input), sender: '', senderKind: 'legacy', bounce: true },
    recipient,
    body: encodeOutbound({ mailFrom: '', message: (options.sign ?? same)(buildDsn(input)) }),
  };
}

function same(message: Buffer): Buffer {
  return message;
}

/** The message inside an off-ramp record, or the body as it is (a sealed envelope: none). */
function originalMessage(body: Uint8Array | undefined): Uint8Array | undefined {
  if (body === undefined) return undefined;
  try {
    return decodeOutbound(body).message;
  } catch {
    return undefined;
  }
}

/**
 * The one job that carries a bounce to the original sender: a new entry, one recipient, due
 * now, never itself bounced. `withBody` puts the bounce body inside the job (the broker backends
 * carry bodies in their jobs; lmdb stores the body once in its entry).
 */
export function bounceJobRecord(
  bounce: BounceSpec,
  entryId: string,
  now: number,
  withBody: boolean,
): JobRecord {
  return {
    v: RECORD_VERSION,
    jobId: jobIdOf(entryId, 0),
    entryId,
    messageId: bounce.info.messageId,
    sender: '',
    senderKind: bounce.info.senderKind,
    bounce: true,
    destination: bounce.recipient.destination,
    enqueuedAt: now,
    recipients: [{ address: bounce.recipient.address, attempts: 0, nextAt: now, lastError: '' }],
    deliveries: 0,
    held: false,
    rev: 0,
    ...(withBody ? { body: bounce.body } : {}),
  };
}
