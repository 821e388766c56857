/**
 * The client API listener's counters as Prometheus metrics: one gauge family,
 * `aftersmtp_client_api{counter="<name>"}` (connections open and accepted, refusals by reason,
 * request bytes in flight), read from the listener at every scrape.
 */
import { Gauge, type Registry } from 'prom-client';
import type { ClientApiStats } from './server.js';

export function registerClientApiMetrics(
  registry: Registry,
  source: { stats(): ClientApiStats },
): void {
  new Gauge({
    name: 'aftersmtp_client_api',
    help: 'Counters and gauges of the client API listener (connections, refusals by reason, request bytes in flight).',
    labelNames: ['counter'],
    registers: [registry],
    collect() {
      for (const [counter, value] of Object.entries(source.stats())) {
        if (typeof value === 'number') this.set({ counter }, value);
      }
    },
  });
}
