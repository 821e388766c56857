/**
 * Typed errors of the QUIC transport, and the one place where AMP/QUIC wire codes (stream ERROR
 * frames, RESET_STREAM / STOP_SENDING and CONNECTION_CLOSE application codes; docs/PROTOCOL.md,
 * "QUIC framing") become error codes and back.
 */
import { AfterSmtpError } from '../errors.js';

/** Wire codes (16 bits). 0x0100 and up are local-only outcomes, never sent. */
export const QUIC_CODES = {
  busy: 0x0001,
  tooLarge: 0x0002,
  malformed: 0x0003,
  refused: 0x0004,
  internal: 0x0005,
  timeout: 0x0006,
  shutdown: 0x0007,
  peerRejected: 0x0010,
  connectionRefused: 0x0011,
  handshakeTimeout: 0x0012,
  reset: 0x0100,
  closed: 0x0101,
} as const;

export type QuicErrorCode =
  | 'ERR_QUIC_BUSY'
  | 'ERR_QUIC_TOO_LARGE'
  | 'ERR_QUIC_MALFORMED'
  | 'ERR_QUIC_REFUSED'
  | 'ERR_QUIC_INTERNAL'
  | 'ERR_QUIC_TIMEOUT'
  | 'ERR_QUIC_SHUTDOWN'
  | 'ERR_QUIC_PEER_REJECTED'
  | 'ERR_QUIC_CONNECTION_REFUSED'
  | 'ERR_QUIC_HANDSHAKE_TIMEOUT'
  | 'ERR_QUIC_RESET'
  | 'ERR_QUIC_CLOSED'
  | 'ERR_QUIC_APPLICATION';

const BY_WIRE: ReadonlyMap<number, QuicErrorCode> = new Map([
  [QUIC_CODES.busy, 'ERR_QUIC_BUSY'],
  [QUIC_CODES.tooLarge, 'ERR_QUIC_TOO_LARGE'],
  [QUIC_CODES.malformed, 'ERR_QUIC_MALFORMED'],
  [QUIC_CODES.refused, 'ERR_QUIC_REFUSED'],
  [QUIC_CODES.internal, 'ERR_QUIC_INTERNAL'],
  [QUIC_CODES.timeout, 'ERR_QUIC_TIMEOUT'],
  [QUIC_CODES.shutdown, 'ERR_QUIC_SHUTDOWN'],
  [QUIC_CODES.peerRejected, 'ERR_QUIC_PEER_REJECTED'],
  [QUIC_CODES.connectionRefused, 'ERR_QUIC_CONNECTION_REFUSED'],
  [QUIC_CODES.handshakeTimeout, 'ERR_QUIC_HANDSHAKE_TIMEOUT'],
  [QUIC_CODES.reset, 'ERR_QUIC_RESET'],
  [QUIC_CODES.closed, 'ERR_QUIC_CLOSED'],
]);

/** A message was not acknowledged: `code` says why, `wireCode` is the peer's or local code. */
export class QuicError extends AfterSmtpError {
  declare readonly code: QuicErrorCode;
  /** The 16-bit wire code (or a local 0x01xx code). */
  readonly wireCode: number;
  /** Whether sending again later may succeed (busy, timeout, shutdown, reset, closed). */
  readonly temporary: boolean;

  constructor(wireCode: number, reason: string) {
    const code = BY_WIRE.get(wireCode) ?? 'ERR_QUIC_APPLICATION';
    super(code, reason === '' ? code : reason);
    this.wireCode = wireCode;
    this.temporary = TEMPORARY.has(code);
  }
}

const TEMPORARY: ReadonlySet<QuicErrorCode> = new Set([
  'ERR_QUIC_BUSY',
  'ERR_QUIC_INTERNAL',
  'ERR_QUIC_TIMEOUT',
  'ERR_QUIC_SHUTDOWN',
  'ERR_QUIC_HANDSHAKE_TIMEOUT',
  'ERR_QUIC_RESET',
  'ERR_QUIC_CLOSED',
  'ERR_QUIC_CONNECTION_REFUSED',
]);

/** First code of the range the application may use for its own refusals (up to 0xffff). */
export const QUIC_APPLICATION_CODES_FROM = 0x1000;

/**
 * Thrown by an inbound-message handler to refuse the message with a chosen wire code (REFUSED
 * by default; BUSY, INTERNAL and the other stream codes 0x0001..0x0007, or an application code
 * 0x1000..0xffff) and a reason for the peer (never internal text).
 */
export class QuicRefusal extends AfterSmtpError {
  readonly wireCode: number;

  constructor(reason: string, wireCode: number = QUIC_CODES.refused) {
    super('ERR_QUIC_REFUSAL', reason);
    const stream = wireCode >= QUIC_CODES.busy && wireCode <= QUIC_CODES.shutdown;
    const app = wireCode >= QUIC_APPLICATION_CODES_FROM && wireCode <= 0xffff;
    if (!Number.isInteger(wireCode) || !(stream || app)) {
      throw new RangeError('a refusal code is 0x0001..0x0007 or 0x1000..0xffff');
    }
    this.wireCode = wireCode;
  }
}
