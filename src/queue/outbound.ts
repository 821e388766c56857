/**
 * The queue body of mail for the off-ramp (destination `smtp:<domain>`): what the pipeline
 * committed for ordinary addresses, an internal record (msgpackr, DESIGN.md §5): the reverse
 * path to give in MAIL FROM (the sender, its canonical address, or an SRS address when
 * forwarding) and the message exactly as it is to be sent (already signed: DKIM, or ARC when
 * forwarded). The recipients are the job's. Bounded: a decoder refuses anything else.
 */
import { Packr } from 'msgpackr';
import { InputError } from '../errors.js';

export const OUTBOUND_VERSION = 1;

export interface OutboundMessage {
  /** RFC 5321 reverse path for MAIL FROM; '' is the null sender. */
  readonly mailFrom: string;
  /** The message to send (RFC 5322, CRLF line ends, signed). */
  readonly message: Buffer;
  /**
   * A route for every recipient of the entry, instead of their mx_record_map routes (MailScript
   * route_via: `smtp:[host]:port`, `smtp:host:port` or `smtps:`).
   */
  readonly route?: string;
}

const packr = new Packr({ useRecords: false });
const MAX_MAIL_FROM = 256;
const MAX_ROUTE = 300;

export function encodeOutbound(m: OutboundMessage): Buffer {
  return packr.pack({
    v: OUTBOUND_VERSION,
    mailFrom: m.mailFrom,
    message: m.message,
    ...(m.route !== undefined ? { route: m.route } : {}),
  });
}

export function decodeOutbound(raw: Uint8Array): OutboundMessage {
  let v: unknown;
  try {
    v = packr.unpack(raw);
  } catch {
    throw new InputError('ERR_OUTBOUND_FORMAT', 'off-ramp record: not a record');
  }
  const r = v as { v?: unknown; mailFrom?: unknown; message?: unknown; route?: unknown };
  if (
    typeof r !== 'object' ||
    r === null ||
    r.v !== OUTBOUND_VERSION ||
    typeof r.mailFrom !== 'string' ||
    r.mailFrom.length > MAX_MAIL_FROM ||
    !(r.message instanceof Uint8Array) ||
    (r.route !== undefined && (typeof r.route !== 'string' || r.route.length > MAX_ROUTE))
  ) {
    throw new InputError('ERR_OUTBOUND_FORMAT', 'off-ramp record: malformed');
  }
  return {
    mailFrom: r.mailFrom,
    message: Buffer.from(r.message),
    ...(typeof r.route === 'string' ? { route: r.route } : {}),
  };
}
