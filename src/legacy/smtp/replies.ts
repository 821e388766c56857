/**
 * SMTP replies in one place: the basic reply codes (RFC 5321 §4.2.2-§4.2.3, RFC 7504), the
 * enhanced status codes (RFC 3463, RFC 3886 registry; RFC 4954 and RFC 7372 for AUTH), and the
 * one mapping from the pipeline's refusal codes (src/pipeline/refusals.ts) to the reply a client
 * gets. A reply's text never carries internal error text (DESIGN.md §7).
 */
import type { Refusal } from '../../pipeline/types.js';

/** Basic reply codes (RFC 5321 §4.2.3 unless noted). */
export const CODE = {
  SERVICE_READY: 220,
  CLOSING: 221,
  AUTH_SUCCEEDED: 235, // RFC 4954 §6
  OK: 250,
  START_MAIL_INPUT: 354,
  SERVICE_UNAVAILABLE: 421,
  MAILBOX_BUSY: 450,
  LOCAL_ERROR: 451,
  INSUFFICIENT_STORAGE: 452,
  COMMAND_UNRECOGNIZED: 500,
  SYNTAX_ERROR: 501,
  BAD_SEQUENCE: 503,
  NO_MAIL_HERE: 521, // RFC 7504 §3
  AUTH_REQUIRED: 530, // RFC 4954 §6
  AUTH_FAILED: 535, // RFC 4954 §6
  MAILBOX_UNAVAILABLE: 550,
  EXCEEDED_STORAGE: 552,
  MAILBOX_NAME_NOT_ALLOWED: 553,
  TRANSACTION_FAILED: 554,
} as const;

/** Enhanced status codes (RFC 3463 §3). */
export const STATUS = {
  OK: '2.0.0',
  SENDER_OK: '2.1.0',
  RECIPIENT_OK: '2.1.5',
  ACCEPTED: '2.6.0',
  OTHER_TEMPORARY: '4.0.0',
  MAILBOX_FULL: '4.2.2',
  SYSTEM_TEMPORARY: '4.3.0',
  SYSTEM_FULL: '4.3.1',
  BAD_SENDER_SYSTEM: '4.1.8', // as Postfix's reject_unknown_sender_domain (450)
  ROUTING_TEMPORARY: '4.4.3',
  CONNECTION_DROPPED: '4.4.2',
  TOO_MANY_RECIPIENTS: '4.5.3',
  CONVERSION_TEMPORARY: '4.6.0', // as Postfix answers an alias expansion over its limits
  SECURITY_TEMPORARY: '4.7.0',
  POLICY_TEMPORARY: '4.7.1',
  OTHER_PERMANENT: '5.0.0',
  BAD_MAILBOX: '5.1.1',
  BAD_SYSTEM: '5.1.2',
  BAD_MAILBOX_SYNTAX: '5.1.3',
  MAILBOX_DISABLED: '5.2.1',
  TOO_BIG: '5.3.4',
  SYNTAX: '5.5.2',
  BAD_ARGUMENTS: '5.5.4',
  MEDIA: '5.6.0',
  SECURITY: '5.7.0',
  NOT_AUTHORIZED: '5.7.1',
  AUTH_INVALID: '5.7.8', // RFC 4954 §6
  NULL_MX_SENDER: '5.7.27', // RFC 7505 §4.2
} as const;

export interface SmtpReply {
  readonly code: number;
  readonly status: string;
  readonly text: string;
}

/** Code and status of each refusal code, where it differs from the default of its kind. */
const BY_REFUSAL: Readonly<Record<string, readonly [number, string]>> = {
  ERR_ACCESS_DENIED: [CODE.TRANSACTION_FAILED, STATUS.NOT_AUTHORIZED],
  ERR_ACCESS_DEFERRED: [CODE.MAILBOX_BUSY, STATUS.POLICY_TEMPORARY],
  ERR_RELAY_DENIED: [CODE.TRANSACTION_FAILED, STATUS.NOT_AUTHORIZED],
  ERR_CLIENT_BLOCKED: [CODE.TRANSACTION_FAILED, STATUS.NOT_AUTHORIZED],
  ERR_SENDER_BLOCKED: [CODE.TRANSACTION_FAILED, STATUS.NOT_AUTHORIZED],
  ERR_SENDER_DOMAIN_UNKNOWN: [CODE.MAILBOX_BUSY, STATUS.BAD_SENDER_SYSTEM],
  ERR_SENDER_NULL_MX: [CODE.MAILBOX_UNAVAILABLE, STATUS.NULL_MX_SENDER],
  ERR_AUTH_REQUIRED: [CODE.AUTH_REQUIRED, STATUS.SECURITY],
  ERR_SENDER_MISMATCH: [CODE.MAILBOX_NAME_NOT_ALLOWED, STATUS.NOT_AUTHORIZED],
  ERR_RECIPIENT_INVALID: [CODE.SYNTAX_ERROR, STATUS.BAD_MAILBOX_SYNTAX],
  ERR_RECIPIENT_UNKNOWN: [CODE.MAILBOX_UNAVAILABLE, STATUS.BAD_MAILBOX],
  ERR_RECIPIENT_REVOKED: [CODE.MAILBOX_UNAVAILABLE, STATUS.MAILBOX_DISABLED],
  ERR_ROUTE_ERROR: [CODE.MAILBOX_UNAVAILABLE, STATUS.OTHER_PERMANENT],
  ERR_ALIAS_LIMIT: [CODE.LOCAL_ERROR, STATUS.CONVERSION_TEMPORARY],
  ERR_TOO_LARGE: [CODE.EXCEEDED_STORAGE, STATUS.TOO_BIG],
  ERR_TOO_MANY_RECIPIENTS: [CODE.INSUFFICIENT_STORAGE, STATUS.TOO_MANY_RECIPIENTS],
  ERR_MAILBOX_FULL: [CODE.INSUFFICIENT_STORAGE, STATUS.MAILBOX_FULL],
  ERR_STORAGE_UNAVAILABLE: [CODE.INSUFFICIENT_STORAGE, STATUS.SYSTEM_FULL],
  ERR_STORAGE_FULL: [CODE.INSUFFICIENT_STORAGE, STATUS.SYSTEM_FULL],
  ERR_MESSAGE_FORMAT: [CODE.MAILBOX_UNAVAILABLE, STATUS.MEDIA],
  ERR_INTERNAL: [CODE.LOCAL_ERROR, STATUS.SYSTEM_TEMPORARY],
  ERR_SPAM: [CODE.MAILBOX_UNAVAILABLE, STATUS.NOT_AUTHORIZED],
  ERR_DMARC_REJECT: [CODE.MAILBOX_UNAVAILABLE, STATUS.NOT_AUTHORIZED],
  ERR_SPAM_SCANNER_UNAVAILABLE: [CODE.LOCAL_ERROR, STATUS.POLICY_TEMPORARY],
};

/**
 * The reply to a refusal: its own code and status, else by kind (a failure resolving a remote
 * identity: 451 4.4.3 or 550 5.1.2; anything else: 451 4.3.0 or 554 5.7.1). An operator's code
 * from an access_map entry (`550 text`) wins, with a status of its class.
 */
export function refusalReply(r: Refusal): SmtpReply {
  if (r.smtpCode !== undefined) {
    const status = r.smtpCode < 500 ? STATUS.POLICY_TEMPORARY : STATUS.NOT_AUTHORIZED;
    return { code: r.smtpCode, status, text: r.text };
  }
  const known = BY_REFUSAL[r.code];
  if (known !== undefined) return { code: known[0], status: known[1], text: r.text };
  const remote = r.code.startsWith('ERR_RELAY_') || r.code.startsWith('ERR_LEDGER_');
  if (r.temporary) {
    return {
      code: CODE.LOCAL_ERROR,
      status: remote ? STATUS.ROUTING_TEMPORARY : STATUS.SYSTEM_TEMPORARY,
      text: r.text,
    };
  }
  return remote
    ? { code: CODE.MAILBOX_UNAVAILABLE, status: STATUS.BAD_SYSTEM, text: r.text }
    : { code: CODE.TRANSACTION_FAILED, status: STATUS.NOT_AUTHORIZED, text: r.text };
}
