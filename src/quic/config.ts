/**
 * The QUIC transport's settings from the validated configuration (AFTERSMTP_QUIC_*, see
 * src/config/schema.ts and docs/OPERATIONS.md), with the checks that span several variables.
 */
import { ConfigError } from '../errors.js';
import type { QuicLimits } from './transport.js';

/** Frame header bytes (type + length), see docs/PROTOCOL.md "QUIC framing". */
export const FRAME_HEADER_BYTES = 5;

/** The settings the QUIC endpoint's caps come from. */
export interface QuicConfig {
  readonly quicMaxConnections: number;
  readonly quicMaxConnectionsPerAddress: number;
  readonly quicMaxStreamsPerConnection: number;
  readonly quicMaxFrameBytes: number;
  readonly quicMaxBufferedBytes: number;
  readonly quicUnverifiedBufferedBytes: number;
  readonly quicPeerBufferedBytes: number;
  readonly quicConnectionWindowBytes: number;
  readonly quicQueueDepth: number;
  readonly quicRetryThreshold: number;
  readonly quicHandshakeTimeoutMs: number;
  readonly quicIdleTimeoutMs: number;
  readonly quicStreamTimeoutMs: number;
}

/** The endpoint caps; throws ConfigError when a message could never fit its budgets. */
export function quicLimitsFromConfig(c: QuicConfig): QuicLimits {
  if (c.quicMaxFrameBytes + FRAME_HEADER_BYTES > c.quicConnectionWindowBytes) {
    throw new ConfigError(
      'ERR_CONFIG',
      'AFTERSMTP_QUIC_CONNECTION_WINDOW_BYTES must be at least AFTERSMTP_QUIC_MAX_FRAME_BYTES + 5',
    );
  }
  if (c.quicMaxFrameBytes > c.quicMaxBufferedBytes) {
    throw new ConfigError(
      'ERR_CONFIG',
      'AFTERSMTP_QUIC_MAX_BUFFERED_BYTES must be at least AFTERSMTP_QUIC_MAX_FRAME_BYTES',
    );
  }
  return {
    maxConnections: c.quicMaxConnections,
    maxConnectionsPerAddress: c.quicMaxConnectionsPerAddress,
    maxStreamsPerConnection: c.quicMaxStreamsPerConnection,
    maxFrameBytes: c.quicMaxFrameBytes,
    maxBufferedBytes: c.quicMaxBufferedBytes,
    unverifiedBufferedBytes: c.quicUnverifiedBufferedBytes,
    peerBufferedBytes: c.quicPeerBufferedBytes,
    connectionWindowBytes: c.quicConnectionWindowBytes,
    queueDepth: c.quicQueueDepth,
    retryThreshold: c.quicRetryThreshold,
    handshakeTimeoutMs: c.quicHandshakeTimeoutMs,
    idleTimeoutMs: c.quicIdleTimeoutMs,
    streamTimeoutMs: c.quicStreamTimeoutMs,
  };
}
