/**
 * The queue body of a MailScript webhook call (destination `webhook:<name>`): an internal record
 * (msgpackr, DESIGN.md §5) with the name, the URL allowed when the script ran, the JSON payload
 * and the message it was about. Bounded: a decoder refuses anything else.
 */
import { Packr } from 'msgpackr';
import { InputError } from '../errors.js';

export const WEBHOOK_VERSION = 1;
export const WEBHOOK_DESTINATION_PREFIX = 'webhook:';

export interface WebhookRecord {
  readonly name: string;
  readonly url: string;
  /** JSON text. */
  readonly payload: string;
  /** The message the script ran on (hex). */
  readonly messageId: string;
}

const packr = new Packr({ useRecords: false });
const MAX = { name: 63, url: 2048, payload: 16 * 1024, messageId: 128 };

export function webhookDestination(name: string): string {
  return `${WEBHOOK_DESTINATION_PREFIX}${name}`;
}

export function encodeWebhook(w: WebhookRecord): Buffer {
  return packr.pack({ v: WEBHOOK_VERSION, ...w });
}

export function decodeWebhook(raw: Uint8Array): WebhookRecord {
  let v: unknown;
  try {
    v = packr.unpack(raw);
  } catch {
    throw new InputError('ERR_WEBHOOK_FORMAT', 'webhook record: not a record');
  }
  const r = v as Record<string, unknown>;
  const ok =
    typeof r === 'object' &&
    r !== null &&
    r.v === WEBHOOK_VERSION &&
    (Object.keys(MAX) as (keyof typeof MAX)[]).every(
      (k) => typeof r[k] === 'string' && (r[k] as string).length <= MAX[k],
    );
  if (!ok) throw new InputError('ERR_WEBHOOK_FORMAT', 'webhook record: malformed');
  return {
    name: r.name as string,
    url: r.url as string,
    payload: r.payload as string,
    messageId: r.messageId as string,
  };
}
