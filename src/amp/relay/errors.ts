/**
 * Typed outcomes of the gateway-to-gateway relay (docs/PROTOCOL.md §13): the error class the
 * relay modules throw, the 16-bit application codes a receiving gateway puts in a QUIC ERROR
 * frame (§11.5, range 0x1000+), and the one place that decides whether a failure is temporary
 * (the queue retries) or permanent (the queue bounces).
 *
 * Guarantees: every code a receiver sends maps back to exactly one `ERR_RELAY_*` code on the
 * sender; an unknown application code is treated as permanent (a peer that refuses with a code
 * we do not know has refused); failures of transport and DNS are temporary.
 */
import { AfterSmtpError } from '../../errors.js';
import { QuicError } from '../../quic/errors.js';

export class RelayError extends AfterSmtpError {
  /** Whether trying again later may succeed. */
  readonly temporary: boolean;

  constructor(code: string, message: string, temporary: boolean, options?: { cause?: unknown }) {
    super(code, message, options);
    this.temporary = temporary;
  }
}

/** Refusal codes in QUIC ERROR frames (application range, §11.5), with their meaning. */
export const RELAY_REFUSALS = {
  ERR_RELAY_ENVELOPE_FORMAT: { wire: 0x1001, temporary: false },
  ERR_RELAY_TOO_LARGE: { wire: 0x1002, temporary: false },
  ERR_RELAY_EXPIRED: { wire: 0x1003, temporary: false },
  ERR_RELAY_GATEWAY_SIGNATURE: { wire: 0x1004, temporary: false },
  ERR_RELAY_PEER_MISMATCH: { wire: 0x1005, temporary: false },
  ERR_RELAY_SENDER_UNVERIFIABLE: { wire: 0x1006, temporary: false },
  ERR_RELAY_SENDER_UNAVAILABLE: { wire: 0x1007, temporary: true },
  ERR_RELAY_NOT_OUR_DOMAIN: { wire: 0x1010, temporary: false },
  ERR_RELAY_UNKNOWN_RECIPIENT: { wire: 0x1011, temporary: false },
  ERR_RELAY_RECIPIENT_REVOKED: { wire: 0x1012, temporary: false },
  ERR_RELAY_RECIPIENT_KEY: { wire: 0x1013, temporary: false },
  ERR_RELAY_MAILBOX_FULL: { wire: 0x1020, temporary: true },
  /** The receiver cannot take the message now (its storage is full or down); try later. */
  ERR_RELAY_BUSY: { wire: 0x1021, temporary: true },
  /** Refused by the receiver's policy for a reason without a code of its own. */
  ERR_RELAY_REFUSED: { wire: 0x1030, temporary: false },
} as const;

export type RelayRefusalCode = keyof typeof RELAY_REFUSALS;

const BY_WIRE = new Map<number, RelayRefusalCode>(
  Object.entries(RELAY_REFUSALS).map(([code, v]) => [v.wire, code as RelayRefusalCode]),
);

export function refusalByWire(wire: number): RelayRefusalCode | undefined {
  return BY_WIRE.get(wire);
}

/** The pipeline's refusal codes (src/pipeline/refusals.ts) as relay codes on the wire. */
const FROM_PIPELINE: Readonly<Record<string, RelayRefusalCode>> = {
  ERR_ENVELOPE_EXPIRED: 'ERR_RELAY_EXPIRED',
  ERR_ENVELOPE_FORMAT: 'ERR_RELAY_ENVELOPE_FORMAT',
  ERR_DUPLICATE_CONFLICT: 'ERR_RELAY_ENVELOPE_FORMAT',
  ERR_TOO_LARGE: 'ERR_RELAY_TOO_LARGE',
  ERR_GATEWAY_SIGNATURE: 'ERR_RELAY_GATEWAY_SIGNATURE',
  ERR_PEER_MISMATCH: 'ERR_RELAY_PEER_MISMATCH',
  ERR_SENDER_UNVERIFIABLE: 'ERR_RELAY_SENDER_UNVERIFIABLE',
  ERR_SENDER_UNAVAILABLE: 'ERR_RELAY_SENDER_UNAVAILABLE',
  ERR_NOT_OUR_DOMAIN: 'ERR_RELAY_NOT_OUR_DOMAIN',
  ERR_RECIPIENT_INVALID: 'ERR_RELAY_NOT_OUR_DOMAIN',
  ERR_RECIPIENT_UNKNOWN: 'ERR_RELAY_UNKNOWN_RECIPIENT',
  ERR_RECIPIENT_REVOKED: 'ERR_RELAY_RECIPIENT_REVOKED',
  ERR_RECIPIENT_KEY_STALE: 'ERR_RELAY_RECIPIENT_KEY',
  ERR_MAILBOX_FULL: 'ERR_RELAY_MAILBOX_FULL',
  ERR_STORAGE_UNAVAILABLE: 'ERR_RELAY_BUSY',
  ERR_STORAGE_FULL: 'ERR_RELAY_BUSY',
};

/**
 * The relay code a pipeline refusal is sent with: its own, or for a code the relay has no
 * counterpart for, a generic one of the same kind (temporary: BUSY; permanent: REFUSED).
 */
export function relayRefusalFor(r: { code: string; temporary: boolean }): RelayRefusalCode {
  return FROM_PIPELINE[r.code] ?? (r.temporary ? 'ERR_RELAY_BUSY' : 'ERR_RELAY_REFUSED');
}

export function isRelayRefusalCode(code: string): code is RelayRefusalCode {
  return Object.prototype.hasOwnProperty.call(RELAY_REFUSALS, code);
}

/**
 * Codes of failures found by the sending side that are permanent. Anything about the remote
 * log's integrity (a changed key, a split view, a bad proof) is permanent and loud: the message
 * must not wait silently for an attacker to go away; an operator re-pins deliberately.
 */
const PERMANENT_LOCAL = new Set([
  'ERR_RELAY_UNREACHABLE_DOMAIN',
  'ERR_RELAY_NO_WRAP',
  'ERR_RELAY_NOT_THEIR_DOMAIN',
  'ERR_RELAY_TOO_LARGE',
  'ERR_RELAY_EXPIRED',
  'ERR_RELAY_GATEWAY_RECORD',
  'ERR_RELAY_UNKNOWN_RECIPIENT',
  'ERR_RELAY_RECIPIENT_REVOKED',
  'ERR_DID_UNKNOWN',
  'ERR_DID_REVOKED',
  'ERR_DISCOVERY_SYNTAX',
  'ERR_DISCOVERY_AMBIGUOUS',
  'ERR_DISCOVERY_NONE',
  'ERR_LEDGER_KEY_CHANGED',
  'ERR_LEDGER_NO_PIN',
  'ERR_LEDGER_SPLIT_VIEW',
  'ERR_LEDGER_SHRANK',
  'ERR_LEDGER_CONSISTENCY',
  'ERR_LEDGER_INCLUSION',
  'ERR_LEDGER_WRONG_DID',
  'ERR_LEDGER_SIGNATURE',
  'ERR_LEDGER_ENTRY',
  'ERR_NOTE_SIGNATURE',
  'ERR_NOTE_FORMAT',
  'ERR_CHECKPOINT_FORMAT',
  'ERR_CHECKPOINT_ORIGIN',
  'ERR_ENVELOPE_FORMAT',
  'ERR_ENVELOPE_TOO_LARGE',
  'ERR_ENVELOPE_EXPIRED',
  'ERR_QUIC_TOO_LARGE',
  'ERR_QUIC_MALFORMED',
  'ERR_QUIC_REFUSED',
  'ERR_QUIC_PEER_REJECTED',
  'ERR_QUIC_APPLICATION',
]);

export interface Classified {
  readonly temporary: boolean;
  readonly code: string;
  readonly reason: string;
}

/** Classifies any failure of one relay attempt: the one place temporary vs permanent is decided. */
export function classify(err: unknown): Classified {
  if (err instanceof QuicError) {
    const refusal = err.code === 'ERR_QUIC_APPLICATION' ? refusalByWire(err.wireCode) : undefined;
    if (refusal !== undefined) {
      return {
        temporary: RELAY_REFUSALS[refusal].temporary,
        code: refusal,
        reason: err.message,
      };
    }
    return { temporary: err.temporary, code: err.code, reason: err.message };
  }
  if (err instanceof RelayError) {
    return { temporary: err.temporary, code: err.code, reason: err.message };
  }
  if (err instanceof AfterSmtpError) {
    return { temporary: !PERMANENT_LOCAL.has(err.code), code: err.code, reason: err.message };
  }
  return { temporary: true, code: 'ERR_INTERNAL', reason: 'internal error' };
}
