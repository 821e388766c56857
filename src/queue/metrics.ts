/**
 * The queue's counters for operators: a function returning plain numbers (depth, age of the
 * oldest job, retries, dead letters, quarantined), and optional prom-client gauges over it on a
 * Registry the caller owns (no global registry is touched).
 */
import { Gauge, type Registry } from 'prom-client';
import type { DeliveryQueue, QueueStats } from './types.js';

export function queueCounters(queue: DeliveryQueue): Promise<QueueStats> {
  return queue.stats();
}

const GAUGES: readonly [keyof QueueStats, string, string][] = [
  ['depth', 'aftersmtp_queue_depth', 'Jobs queued or leased (one per destination of an entry).'],
  ['oldestAgeSeconds', 'aftersmtp_queue_oldest_age_seconds', 'Age of the oldest queued job.'],
  ['retries', 'aftersmtp_queue_retries', 'Temporary failures rescheduled.'],
  ['deadLetters', 'aftersmtp_queue_dead_letters', 'Recipients in the dead-letter store.'],
  ['quarantined', 'aftersmtp_queue_quarantined', 'Undecodable records moved to quarantine.'],
];

/** Registers one gauge per counter; each scrape reads `queue.stats()` once. */
export function registerQueueGauges(registry: Registry, queue: DeliveryQueue): void {
  let pending: Promise<QueueStats> | undefined;
  const read = (): Promise<QueueStats> => {
    pending ??= queue.stats().finally(() => setImmediate(() => (pending = undefined)));
    return pending;
  };
  for (const [field, name, help] of GAUGES) {
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.set((await read())[field]);
      },
    });
  }
}
