/**
 * The data directory's room as Prometheus metrics, read at every scrape: the free bytes of its
 * file system, whether new mail is refused now (the reserve), and the refusals and failed writes
 * so far (counters, `_total`).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { StorageSpace } from './space.js';

export function registerStorageMetrics(registry: Registry, space: StorageSpace): void {
  new Gauge({
    name: 'aftersmtp_storage_free_bytes',
    help: 'Free bytes on the file system of the embedded stores (-1 when unknown).',
    registers: [registry],
    collect() {
      space.freeBytes();
      this.set(space.stats().freeBytes);
    },
  });
  new Gauge({
    name: 'aftersmtp_storage_full',
    help: '1 while new mail is refused for lack of room (below AFTERSMTP_STORAGE_MIN_FREE_BYTES), else 0.',
    registers: [registry],
    collect() {
      this.set(space.stats().full);
    },
  });
  new Counter({
    name: 'aftersmtp_storage_refusals_total',
    help: 'New mail refused for lack of room, by cause: below the reserve, or a write that failed.',
    labelNames: ['cause'],
    registers: [registry],
    collect() {
      const s = space.stats();
      this.reset();
      this.inc({ cause: 'reserve' }, s.refused);
      this.inc({ cause: 'write_failed' }, s.writeFailures);
    },
  });
}
