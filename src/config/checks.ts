/**
 * Checks that span several AFTERSMTP_* variables: settings that are each valid alone but
 * contradict each other (a request limit below the envelope it must carry, a retry cap below
 * its base, a budget smaller than the one message it must hold). The loader runs them after
 * every variable parsed, so an operator sees every problem in one pass, each naming its
 * variables; nothing here reads the machine (see src/net/limits.ts for the descriptor budget).
 */
import type { Config } from './schema.js';

/** Bytes a DispatchMessageRequest adds around its envelope (field tag and varint length). */
export const DISPATCH_OVERHEAD_BYTES = 16;
/** QUIC frame header bytes (type + length), docs/PROTOCOL.md §11.3. */
const FRAME_HEADER_BYTES = 5;

type Check = (c: Config) => string | undefined;

/** Room an envelope needs around the SMTP message it seals (trace lines, signatures, origin). */
export const SEAL_OVERHEAD_BYTES = 64 * 1024;

const CHECKS: readonly Check[] = [
  (c) =>
    (c.smtpTlsCert === undefined) !== (c.smtpTlsKey === undefined)
      ? 'AFTERSMTP_SMTP_TLS_CERT and AFTERSMTP_SMTP_TLS_KEY go together: set both or neither'
      : undefined,
  (c) =>
    c.smtpMaxMessageBytes !== undefined &&
    c.smtpMaxMessageBytes > c.maxEnvelopeBytes - SEAL_OVERHEAD_BYTES
      ? `AFTERSMTP_SMTP_MAX_MESSAGE_BYTES (${c.smtpMaxMessageBytes}) must be at most AFTERSMTP_MAX_ENVELOPE_BYTES less 64 KiB (${c.maxEnvelopeBytes - SEAL_OVERHEAD_BYTES}): a message must fit its envelope`
      : undefined,
  (c) =>
    c.smtpMaxConnectionsPerAddress > c.smtpMaxConnections
      ? `AFTERSMTP_SMTP_MAX_CONNECTIONS_PER_ADDRESS (${c.smtpMaxConnectionsPerAddress}) must not be above AFTERSMTP_SMTP_MAX_CONNECTIONS (${c.smtpMaxConnections})`
      : undefined,
  (c) =>
    c.grpcMaxMessageBytes < c.maxEnvelopeBytes + DISPATCH_OVERHEAD_BYTES
      ? `AFTERSMTP_GRPC_MAX_MESSAGE_BYTES (${c.grpcMaxMessageBytes}) must be at least AFTERSMTP_MAX_ENVELOPE_BYTES + ${DISPATCH_OVERHEAD_BYTES} (${c.maxEnvelopeBytes + DISPATCH_OVERHEAD_BYTES}): a DispatchMessage carries one envelope`
      : undefined,
  (c) =>
    c.grpcMaxUnauthenticatedBytes > c.grpcMaxMessageBytes
      ? `AFTERSMTP_GRPC_MAX_UNAUTHENTICATED_BYTES (${c.grpcMaxUnauthenticatedBytes}) must not be above AFTERSMTP_GRPC_MAX_MESSAGE_BYTES (${c.grpcMaxMessageBytes})`
      : undefined,
  (c) =>
    c.grpcMaxInflightBytes < c.grpcMaxMessageBytes
      ? `AFTERSMTP_GRPC_MAX_INFLIGHT_BYTES (${c.grpcMaxInflightBytes}) must be at least AFTERSMTP_GRPC_MAX_MESSAGE_BYTES (${c.grpcMaxMessageBytes}), or the largest request could never be read`
      : undefined,
  (c) =>
    c.grpcMaxConnectionsPerAddress > c.grpcMaxConnections
      ? `AFTERSMTP_GRPC_MAX_CONNECTIONS_PER_ADDRESS (${c.grpcMaxConnectionsPerAddress}) must not be above AFTERSMTP_GRPC_MAX_CONNECTIONS (${c.grpcMaxConnections})`
      : undefined,
  (c) =>
    c.queueRetryCapMs < c.queueRetryBaseMs
      ? `AFTERSMTP_QUEUE_RETRY_CAP_MS (${c.queueRetryCapMs}) must be at least AFTERSMTP_QUEUE_RETRY_BASE_MS (${c.queueRetryBaseMs})`
      : undefined,
  (c) =>
    c.queueMaxAgeMs < c.queueRetryBaseMs
      ? `AFTERSMTP_QUEUE_MAX_AGE_MS (${c.queueMaxAgeMs}) must be at least AFTERSMTP_QUEUE_RETRY_BASE_MS (${c.queueRetryBaseMs}), or no retry would ever happen`
      : undefined,
  (c) =>
    c.quicMaxFrameBytes + FRAME_HEADER_BYTES > c.quicConnectionWindowBytes
      ? `AFTERSMTP_QUIC_CONNECTION_WINDOW_BYTES (${c.quicConnectionWindowBytes}) must be at least AFTERSMTP_QUIC_MAX_FRAME_BYTES + 5 (${c.quicMaxFrameBytes + FRAME_HEADER_BYTES})`
      : undefined,
  (c) =>
    c.quicMaxFrameBytes + FRAME_HEADER_BYTES > c.quicPeerBufferedBytes
      ? `AFTERSMTP_QUIC_PEER_BUFFERED_BYTES (${c.quicPeerBufferedBytes}) must be at least AFTERSMTP_QUIC_MAX_FRAME_BYTES + 5 (${c.quicMaxFrameBytes + FRAME_HEADER_BYTES})`
      : undefined,
  (c) =>
    c.quicMaxFrameBytes > c.quicMaxBufferedBytes
      ? `AFTERSMTP_QUIC_MAX_BUFFERED_BYTES (${c.quicMaxBufferedBytes}) must be at least AFTERSMTP_QUIC_MAX_FRAME_BYTES (${c.quicMaxFrameBytes})`
      : undefined,
  (c) =>
    c.quicUnverifiedBufferedBytes >= c.quicMaxBufferedBytes
      ? `AFTERSMTP_QUIC_UNVERIFIED_BUFFERED_BYTES (${c.quicUnverifiedBufferedBytes}) must be below AFTERSMTP_QUIC_MAX_BUFFERED_BYTES (${c.quicMaxBufferedBytes}), or verified peers would have nothing kept for them`
      : undefined,
  (c) =>
    c.quicMaxConnectionsPerAddress > c.quicMaxConnections
      ? `AFTERSMTP_QUIC_MAX_CONNECTIONS_PER_ADDRESS (${c.quicMaxConnectionsPerAddress}) must not be above AFTERSMTP_QUIC_MAX_CONNECTIONS (${c.quicMaxConnections})`
      : undefined,
];

/** The contradictions in `config`, one line each (empty when there is none). */
export function contradictions(config: Config): string[] {
  return CHECKS.map((check) => check(config)).filter((p): p is string => p !== undefined);
}
