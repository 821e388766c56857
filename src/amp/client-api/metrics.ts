/**
 * The client API listener's own statistics as Prometheus metrics, read from the listener at every
 * scrape: connections (open; accepted; refused by reason), calls admitted and refused by reason
 * before their body was read, and the request bytes held now. Counters end in `_total`, units are
 * in the names, and a label only splits one meaning (docs/OPERATIONS.md, metrics).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClientApiStats } from './server.js';

export function registerClientApiMetrics(
  registry: Registry,
  source: { stats(): ClientApiStats },
): void {
  const gauge = (name: string, help: string, read: (s: ClientApiStats) => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read(source.stats()));
      },
    });
  };
  const counter = (
    name: string,
    help: string,
    label: string | undefined,
    read: (s: ClientApiStats) => Record<string, number>,
  ): void => {
    new Counter({
      name,
      help,
      labelNames: label === undefined ? [] : [label],
      registers: [registry],
      collect() {
        this.reset();
        for (const [value, n] of Object.entries(read(source.stats()))) {
          if (label === undefined) this.inc(n);
          else this.inc({ [label]: value }, n);
        }
      },
    });
  };
  gauge(
    'aftersmtp_client_api_connections_open',
    'Client API connections open now (TLS handshakes in progress included).',
    (s) => s.connections,
  );
  gauge(
    'aftersmtp_client_api_inflight_bytes',
    'Request bytes the client API holds now, against AFTERSMTP_GRPC_MAX_INFLIGHT_BYTES.',
    (s) => s.inflightBytes,
  );
  gauge(
    'aftersmtp_client_api_inflight_peak_bytes',
    'The highest aftersmtp_client_api_inflight_bytes seen.',
    (s) => s.inflightBytesPeak,
  );
  counter(
    'aftersmtp_client_api_connections_accepted_total',
    'Client API connections accepted.',
    undefined,
    (s) => ({ all: s.connectionsAccepted }),
  );
  counter(
    'aftersmtp_client_api_connections_refused_total',
    'Client API connections closed at accept or during their handshake, by reason.',
    'reason',
    (s) => ({
      max_connections: s.refusedTotal,
      max_connections_per_address: s.refusedAddress,
      handshake_timeout: s.handshakeTimeouts,
      handshake_failed: s.handshakeFailures,
    }),
  );
  counter(
    'aftersmtp_client_api_calls_admitted_total',
    'Client API calls admitted before their body was read.',
    undefined,
    (s) => ({ all: s.callsAdmitted }),
  );
  counter(
    'aftersmtp_client_api_calls_refused_total',
    'Client API calls refused before their body was read, by reason.',
    'reason',
    (s) => ({
      rate_limited: s.refusedRateLimited,
      unauthenticated: s.refusedUnauthenticated,
      too_large: s.refusedTooLarge,
      busy: s.refusedBusy,
      malformed: s.refusedMalformed,
    }),
  );
}
