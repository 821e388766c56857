/**
 * AMP failure notices: what an AMP sender gets instead of a DSN when recipients are dead. The
 * queue produces it as an internal msgpackr record (the body of a bounce entry); the relay that
 * delivers it to the sender's gateway carries it in the AMP wire format (proto/), like any other
 * message. Decoding validates every field.
 */
import { Packr } from 'msgpackr';
import { QueueDecodeError } from './errors.js';
import type { DeadRecord } from './record.js';

export const AMP_NOTICE_TYPE = 'aftersmtp.amp-failure-notice/1';

export interface AmpFailureNotice {
  readonly type: typeof AMP_NOTICE_TYPE;
  readonly reportingGateway: string;
  readonly originalMessageId: string;
  readonly originalSender: string;
  readonly createdAt: number;
  readonly failures: readonly {
    readonly recipient: string;
    readonly kind: 'permanent' | 'expired';
    readonly reason: string;
    readonly attempts: number;
    readonly deadAt: number;
  }[];
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

export function buildAmpNotice(
  reportingGateway: string,
  failures: readonly DeadRecord[],
  now: number,
): AmpFailureNotice {
  const first = failures[0];
  return {
    type: AMP_NOTICE_TYPE,
    reportingGateway,
    originalMessageId: first?.messageId ?? '',
    originalSender: first?.sender ?? '',
    createdAt: now,
    failures: failures.map((f) => ({
      recipient: f.recipient,
      kind: f.kind,
      reason: f.reason,
      attempts: f.attempts,
      deadAt: f.deadAt,
    })),
  };
}

export function encodeAmpNotice(notice: AmpFailureNotice): Buffer {
  return packr.pack(notice);
}

export function decodeAmpNotice(raw: Uint8Array): AmpFailureNotice {
  let v: unknown;
  try {
    v = packr.unpack(raw);
  } catch (err) {
    throw new QueueDecodeError(`AMP failure notice: not msgpack (${(err as Error).message})`);
  }
  const n = v as Partial<AmpFailureNotice> | null;
  const ok =
    typeof n === 'object' &&
    n !== null &&
    n.type === AMP_NOTICE_TYPE &&
    typeof n.reportingGateway === 'string' &&
    typeof n.originalMessageId === 'string' &&
    typeof n.originalSender === 'string' &&
    typeof n.createdAt === 'number' &&
    Array.isArray(n.failures) &&
    n.failures.every(
      (f) =>
        typeof f?.recipient === 'string' &&
        (f.kind === 'permanent' || f.kind === 'expired') &&
        typeof f.reason === 'string' &&
        typeof f.attempts === 'number' &&
        typeof f.deadAt === 'number',
    );
  if (!ok) throw new QueueDecodeError('AMP failure notice: malformed');
  return n as AmpFailureNotice;
}
