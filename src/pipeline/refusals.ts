/**
 * The pipeline's refusal codes in one table: the code, and whether the condition is temporary.
 * Each edge maps these codes to its own reply in one place (SMTP: src/legacy/smtp/replies.ts;
 * gRPC: src/amp/client-api/status.ts; QUIC: src/amp/relay/errors.ts). A refusal may also carry
 * a code from elsewhere (a relay or ledger failure met while resolving a remote recipient), with
 * the temporary flag its own module decided.
 */
import type { Refusal } from './types.js';

export const PIPELINE_REFUSALS = {
  /** access_map REJECT. */
  ERR_ACCESS_DENIED: false,
  /** access_map DEFER. */
  ERR_ACCESS_DEFERRED: true,
  /** Port 25: the client's address is on a DNS blocklist (AFTERSMTP_SMTP_DNSBL). */
  ERR_CLIENT_BLOCKED: false,
  /** Port 25: the reverse path's domain is on a domain blocklist (AFTERSMTP_SMTP_RHSBL). */
  ERR_SENDER_BLOCKED: false,
  /** Port 25: the reverse path's domain does not exist, or has no MX nor address record. */
  ERR_SENDER_DOMAIN_UNKNOWN: true,
  /** Port 25: the reverse path's domain publishes a null MX (RFC 7505): it sends no mail. */
  ERR_SENDER_NULL_MX: false,
  /** A recipient domain this gateway does not accept mail for, from a client that may not relay. */
  ERR_RELAY_DENIED: false,
  /** Submission without AUTH. */
  ERR_AUTH_REQUIRED: false,
  /** The message's sender is not the authenticated party's. */
  ERR_SENDER_MISMATCH: false,
  ERR_SENDER_UNKNOWN: false,
  ERR_SENDER_REVOKED: false,
  /** Relay: the sending gateway's record cannot be verified. */
  ERR_SENDER_UNVERIFIABLE: false,
  /** Relay: the sending gateway's record cannot be resolved now. */
  ERR_SENDER_UNAVAILABLE: true,
  /** Relay: the gateway signature is missing, names another gateway, or does not verify. */
  ERR_GATEWAY_SIGNATURE: false,
  /** Relay: the QUIC certificate is not the one the sending gateway publishes. */
  ERR_PEER_MISMATCH: false,
  /** An AMP recipient of a domain this gateway does not serve. */
  ERR_NOT_OUR_DOMAIN: false,
  ERR_RECIPIENT_INVALID: false,
  ERR_RECIPIENT_UNKNOWN: false,
  ERR_RECIPIENT_REVOKED: false,
  /** The envelope is not wrapped to the recipient's current key. */
  ERR_RECIPIENT_KEY_STALE: false,
  /** mx_record_map says `error:`. */
  ERR_ROUTE_ERROR: false,
  /** virtual_alias_maps went over a limit (RFC 3463 4.6.0, as Postfix). */
  ERR_ALIAS_LIMIT: true,
  /** Mail for ordinary addresses names an address of an AMP identity (send to its DID). */
  ERR_RECIPIENT_IS_AMP: false,
  /** Mail for ordinary addresses: the gateway cannot open the envelope sealed to it. */
  ERR_ENVELOPE_INVALID: false,
  /** Mail for ordinary addresses: the author is not the sender's current key. */
  ERR_SENDER_KEY_STALE: false,
  /** Mail for ordinary addresses that is not message/rfc822. */
  ERR_CONTENT_TYPE: false,
  ERR_ENVELOPE_EXPIRED: false,
  /** Ephemeral mail (PROTOCOL.md §6.10): the key share is missing, malformed, or not expected. */
  ERR_EPHEMERAL_SHARE: false,
  /** Ephemeral mail: this gateway is not the holder, or a recipient cannot fetch the share here. */
  ERR_EPHEMERAL_HOLDER: false,
  ERR_ENVELOPE_FORMAT: false,
  ERR_MESSAGE_FORMAT: false,
  ERR_TOO_LARGE: false,
  ERR_TOO_MANY_RECIPIENTS: true,
  ERR_MAILBOX_FULL: true,
  /** The same message id was delivered before with other content. */
  ERR_DUPLICATE_CONFLICT: false,
  /** The queue or the store could not commit (down). */
  ERR_STORAGE_UNAVAILABLE: true,
  /** A MailScript reject() (its own code decides; this is the default). */
  ERR_SCRIPT_REJECT: false,
  /** A MailScript defer(). */
  ERR_SCRIPT_DEFER: true,
  /** A MailScript failed (an exception, its deadline, its memory, a bad action): try again. */
  ERR_SCRIPT_FAILED: true,
  /** Port 25: the message fails DMARC and its From domain's policy is reject (dmarc.ts). */
  ERR_DMARC_REJECT: false,
  /** The spam policy: a score at or over the recipient's reject threshold. */
  ERR_SPAM: false,
  /** The spam policy: a scanner gave no score and the recipient's rule is unavailable=tempfail. */
  ERR_SPAM_SCANNER_UNAVAILABLE: true,
  /** The queue or the store has no room (below the reserve, or a write failed for lack of it). */
  ERR_STORAGE_FULL: true,
} as const;

export type PipelineRefusalCode = keyof typeof PIPELINE_REFUSALS;

export function refusal(code: PipelineRefusalCode, text: string): Refusal {
  return { code, temporary: PIPELINE_REFUSALS[code], text: oneLine(text) };
}

/** Texts go to peers: one line, bounded. */
export function oneLine(text: string): string {
  return text.replace(/[\r\n\0]+/g, ' ').slice(0, 400);
}
