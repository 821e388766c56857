/**
 * The data directory's room as Prometheus metrics: `aftersmtp_storage{counter="<name>"}`
 * (freeBytes, full, refused, writeFailures), read at every scrape.
 */
import { Gauge, type Registry } from 'prom-client';
import type { StorageSpace } from './space.js';

export function registerStorageMetrics(registry: Registry, space: StorageSpace): void {
  new Gauge({
    name: 'aftersmtp_storage',
    help: 'Room on the file system of the embedded stores: free bytes, 1 while new mail is refused, refusals below the reserve, writes failed for lack of room.',
    labelNames: ['counter'],
    registers: [registry],
    collect() {
      space.freeBytes();
      for (const [counter, value] of Object.entries(space.stats())) this.set({ counter }, value);
    },
  });
}
