/**
 * The queue's counters for operators: a function returning plain numbers (depth, age of the
 * oldest job, retries, dead letters, quarantined), and Prometheus metrics over it on a Registry
 * the caller owns (no global registry is touched). Each scrape reads `queue.stats()` once.
 *
 * Conventions: retries is a counter (`_total`; the lmdb queue keeps it across restarts, the
 * server backends count since the process started); depth, age, dead letters and quarantined
 * are gauges of what is in the stores now.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { DeliveryQueue, QueueStats } from './types.js';

export function queueCounters(queue: DeliveryQueue): Promise<QueueStats> {
  return queue.stats();
}

const GAUGES: readonly [keyof QueueStats, string, string][] = [
  [
    'depth',
    'aftersmtp_queue_depth',
    'Jobs queued or leased now (one per destination of an entry).',
  ],
  ['oldestAgeSeconds', 'aftersmtp_queue_oldest_age_seconds', 'Age of the oldest queued entry.'],
  [
    'deadLetters',
    'aftersmtp_queue_dead_letters',
    'Recipients in the dead-letter store (given up on).',
  ],
  ['quarantined', 'aftersmtp_queue_quarantined', 'Undecodable records in quarantine.'],
];

/**
 * Registers the queue metrics. `queue` may be a function giving the queue or undefined (not open
 * yet): every series is then present from the first scrape, reading 0.
 */
export function registerQueueMetrics(
  registry: Registry,
  queue: DeliveryQueue | (() => DeliveryQueue | undefined),
): void {
  const current = typeof queue === 'function' ? queue : () => queue;
  let pending: Promise<QueueStats | undefined> | undefined;
  const read = (): Promise<QueueStats | undefined> => {
    const q = current();
    if (q === undefined) return Promise.resolve(undefined);
    pending ??= q
      .stats()
      .catch(() => undefined) // a queue server that is down: /readyz says so, metrics keep going
      .finally(() => setImmediate(() => (pending = undefined)));
    return pending;
  };
  for (const [field, name, help] of GAUGES) {
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.set((await read())?.[field] ?? 0);
      },
    });
  }
  new Counter({
    name: 'aftersmtp_queue_retries_total',
    help: 'Temporary delivery failures rescheduled with backoff.',
    registers: [registry],
    async collect() {
      this.reset();
      this.inc((await read())?.retries ?? 0);
    },
  });
}
