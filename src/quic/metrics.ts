/**
 * The native QUIC endpoint's statistics as Prometheus metrics, read from QuicTransport.stats()
 * at every scrape (no polling, no copy kept). Prometheus conventions: a counter ends in `_total`,
 * a unit is in the name (`_bytes`), one metric per meaning, and a label only splits one meaning
 * (direction, refusal reason), never a counter from a gauge. Every series exists from the first
 * scrape, zero before the endpoint is open.
 *
 * The table below names a metric for EVERY field of the native QuicStats: a field added in Rust
 * and not mapped here fails the type check, so no statistic is silently left out.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { QuicStats } from '../native/index.js';

type Kind = 'counter' | 'gauge';

interface Family {
  readonly kind: Kind;
  readonly help: string;
  readonly label?: string;
}

const FAMILIES = {
  aftersmtp_quic_connections_open: {
    kind: 'gauge',
    help: 'QUIC connections open now (inbound and outbound).',
  },
  aftersmtp_quic_connections_opened_total: {
    kind: 'counter',
    help: 'QUIC connections opened, by direction.',
    label: 'direction',
  },
  aftersmtp_quic_connections_closed_total: { kind: 'counter', help: 'QUIC connections closed.' },
  aftersmtp_quic_handshakes_completed_total: {
    kind: 'counter',
    help: 'QUIC handshakes completed.',
  },
  aftersmtp_quic_handshake_timeouts_total: {
    kind: 'counter',
    help: 'QUIC handshakes abandoned after AFTERSMTP_QUIC_HANDSHAKE_TIMEOUT_MS.',
  },
  aftersmtp_quic_retries_sent_total: {
    kind: 'counter',
    help: 'QUIC Retry packets sent (address validation, AFTERSMTP_QUIC_RETRY_THRESHOLD).',
  },
  aftersmtp_quic_streams_opened_total: {
    kind: 'counter',
    help: 'QUIC streams (one AMP message each) opened, by direction.',
    label: 'direction',
  },
  aftersmtp_quic_frames_total: {
    kind: 'counter',
    help: 'AMP MESSAGE frames, by direction.',
    label: 'direction',
  },
  aftersmtp_quic_acks_total: {
    kind: 'counter',
    help: 'AMP ACK frames, by direction.',
    label: 'direction',
  },
  aftersmtp_quic_error_frames_total: {
    kind: 'counter',
    help: 'AMP ERROR frames (refused messages), by direction.',
    label: 'direction',
  },
  aftersmtp_quic_message_bytes_total: {
    kind: 'counter',
    help: 'Stream bytes of AMP messages (frame headers included), by direction.',
    label: 'direction',
  },
  aftersmtp_quic_packets_total: {
    kind: 'counter',
    help: 'UDP packets, by direction.',
    label: 'direction',
  },
  aftersmtp_quic_packets_dropped_total: {
    kind: 'counter',
    help: 'UDP packets dropped (undecodable, or over a per-sweep limit).',
  },
  aftersmtp_quic_refusals_total: {
    kind: 'counter',
    help: 'Connections and messages refused, by reason.',
    label: 'reason',
  },
  aftersmtp_quic_buffered_bytes: {
    kind: 'gauge',
    help: 'Message bytes held now (being received, or with the application), against AFTERSMTP_QUIC_MAX_BUFFERED_BYTES.',
  },
  aftersmtp_quic_buffered_peak_bytes: {
    kind: 'gauge',
    help: 'The highest aftersmtp_quic_buffered_bytes seen.',
  },
  aftersmtp_quic_unverified_buffered_bytes: {
    kind: 'gauge',
    help: 'Message bytes held now for connections not yet bound to a verified gateway, against AFTERSMTP_QUIC_UNVERIFIED_BUFFERED_BYTES.',
  },
  aftersmtp_quic_connections_verified: {
    kind: 'gauge',
    help: 'Open connections bound to a verified gateway record (they have the verified budget).',
  },
  aftersmtp_quic_pending_messages: {
    kind: 'gauge',
    help: 'Messages handed to the application and not yet answered, against AFTERSMTP_QUIC_QUEUE_DEPTH.',
  },
} as const satisfies Record<string, Family>;

type FamilyName = keyof typeof FAMILIES;

/** Where each native field goes: its metric and, for a labelled metric, its label value. */
export const QUIC_FIELDS: Readonly<Record<keyof QuicStats, readonly [FamilyName, string?]>> = {
  connectionsOpen: ['aftersmtp_quic_connections_open'],
  connectionsInbound: ['aftersmtp_quic_connections_opened_total', 'inbound'],
  connectionsOutbound: ['aftersmtp_quic_connections_opened_total', 'outbound'],
  connectionsClosed: ['aftersmtp_quic_connections_closed_total'],
  handshakesCompleted: ['aftersmtp_quic_handshakes_completed_total'],
  handshakeTimeouts: ['aftersmtp_quic_handshake_timeouts_total'],
  retriesSent: ['aftersmtp_quic_retries_sent_total'],
  streamsInbound: ['aftersmtp_quic_streams_opened_total', 'inbound'],
  streamsOutbound: ['aftersmtp_quic_streams_opened_total', 'outbound'],
  framesReceived: ['aftersmtp_quic_frames_total', 'received'],
  framesSent: ['aftersmtp_quic_frames_total', 'sent'],
  acksReceived: ['aftersmtp_quic_acks_total', 'received'],
  acksSent: ['aftersmtp_quic_acks_total', 'sent'],
  errorsReceived: ['aftersmtp_quic_error_frames_total', 'received'],
  errorsSent: ['aftersmtp_quic_error_frames_total', 'sent'],
  bytesReceived: ['aftersmtp_quic_message_bytes_total', 'received'],
  bytesSent: ['aftersmtp_quic_message_bytes_total', 'sent'],
  packetsReceived: ['aftersmtp_quic_packets_total', 'received'],
  packetsSent: ['aftersmtp_quic_packets_total', 'sent'],
  packetsDropped: ['aftersmtp_quic_packets_dropped_total'],
  refusedConnectionsTotal: ['aftersmtp_quic_refusals_total', 'max_connections'],
  refusedConnectionsPerAddress: ['aftersmtp_quic_refusals_total', 'max_connections_per_address'],
  refusedBusy: ['aftersmtp_quic_refusals_total', 'busy'],
  refusedTooLarge: ['aftersmtp_quic_refusals_total', 'too_large'],
  refusedMalformed: ['aftersmtp_quic_refusals_total', 'malformed'],
  refusedTimeout: ['aftersmtp_quic_refusals_total', 'timeout'],
  bufferedBytes: ['aftersmtp_quic_buffered_bytes'],
  bufferedBytesPeak: ['aftersmtp_quic_buffered_peak_bytes'],
  queueLength: ['aftersmtp_quic_pending_messages'],
  bufferedBytesUnverified: ['aftersmtp_quic_unverified_buffered_bytes'],
  connectionsVerified: ['aftersmtp_quic_connections_verified'],
};

/**
 * Registers the QUIC metrics on `registry`. `stats` gives the endpoint's statistics, or
 * undefined while it is not open (every series then reads 0).
 */
export function registerQuicMetrics(registry: Registry, stats: () => QuicStats | undefined): void {
  const byFamily = new Map<FamilyName, [keyof QuicStats, string | undefined][]>();
  for (const [field, [family, label]] of Object.entries(QUIC_FIELDS) as [
    keyof QuicStats,
    readonly [FamilyName, string?],
  ][]) {
    const list = byFamily.get(family) ?? [];
    list.push([field, label]);
    byFamily.set(family, list);
  }
  for (const [name, family] of Object.entries(FAMILIES) as [FamilyName, Family][]) {
    const fields = byFamily.get(name) ?? [];
    const labelNames = family.label === undefined ? [] : [family.label];
    const read = (): [Record<string, string>, number][] => {
      const s = stats();
      return fields.map(([field, value]) => [
        family.label === undefined || value === undefined ? {} : { [family.label]: value },
        s?.[field] ?? 0,
      ]);
    };
    if (family.kind === 'gauge') {
      new Gauge({
        name,
        help: family.help,
        labelNames,
        registers: [registry],
        collect() {
          for (const [labels, v] of read()) this.set(labels, v);
        },
      });
    } else {
      new Counter({
        name,
        help: family.help,
        labelNames,
        registers: [registry],
        collect() {
          // The endpoint keeps the running totals; the counter shows them as they are.
          this.reset();
          for (const [labels, v] of read()) this.inc(labels, v);
        },
      });
    }
  }
}
