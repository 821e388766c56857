/**
 * The native QUIC endpoint's counters as Prometheus metrics: one gauge family,
 * `aftersmtp_quic{counter="<name>"}`, read from QuicTransport.stats() at every scrape (no
 * polling, no copy kept). Names are the native counters' (connectionsOpen, refusedBusy, ...).
 */
import { Gauge, type Registry } from 'prom-client';
import type { QuicTransport } from './transport.js';

export function registerQuicMetrics(registry: Registry, transport: QuicTransport): void {
  new Gauge({
    name: 'aftersmtp_quic',
    help: 'Counters and gauges of the native QUIC endpoint (connections, streams, frames, bytes, refusals by reason).',
    labelNames: ['counter'],
    registers: [registry],
    collect() {
      for (const [counter, value] of Object.entries(transport.stats())) {
        if (typeof value === 'number') this.set({ counter }, value);
      }
    },
  });
}
