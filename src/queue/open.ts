/**
 * Opens the queue backend the configuration names (AFTERSMTP_QUEUE): lmdb in <data dir>/queue,
 * nats at AFTERSMTP_NATS_URL, rabbitmq at AFTERSMTP_AMQP_URL, with the retry policy and lease from
 * the AFTERSMTP_QUEUE_* settings. An unreachable server is a QueueUnavailableError naming the
 * variable, raised here at start-up rather than at the first message.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { AmqpQueue } from './amqp.js';
import type { BounceOptions } from './bounce.js';
import { LmdbQueue } from './lmdb.js';
import { NatsQueue } from './nats.js';
import type { BackendName, DeliveryQueue, RetryPolicy } from './types.js';
import type { StorageSpace } from '../storage/space.js';

/** The settings a queue is opened with (AFTERSMTP_QUEUE*, AFTERSMTP_NATS_URL, ...). */
export interface QueueConfig {
  readonly dataDir: string;
  readonly domain: string;
  readonly queue: BackendName;
  readonly natsUrl: string;
  /** JetStream replicas of the nats backend's streams (AFTERSMTP_NATS_REPLICAS; default 1). */
  readonly natsReplicas?: number;
  readonly amqpUrl: string;
  readonly queueRetryBaseMs: number;
  readonly queueRetryCapMs: number;
  readonly queueMaxAgeMs: number;
  readonly queueLeaseMs: number;
}

export function retryPolicy(config: QueueConfig): RetryPolicy {
  return {
    baseMs: config.queueRetryBaseMs,
    capMs: Math.max(config.queueRetryCapMs, config.queueRetryBaseMs),
    maxAgeMs: config.queueMaxAgeMs,
  };
}

export function lmdbQueuePath(dataDir: string): string {
  return join(dataDir, 'queue');
}

/** `space`: the room on the data directory's file system (the lmdb queue's reserve). */
export async function openQueue(
  config: QueueConfig,
  bounce: BounceOptions = { reportingMta: config.domain },
  space?: StorageSpace,
): Promise<DeliveryQueue> {
  const common = { retry: retryPolicy(config), leaseMs: config.queueLeaseMs, bounce };
  switch (config.queue) {
    case 'lmdb': {
      const path = lmdbQueuePath(config.dataDir);
      mkdirSync(path, { recursive: true });
      return new LmdbQueue({ path, ...common, space });
    }
    case 'nats':
      return NatsQueue.open({ url: config.natsUrl, replicas: config.natsReplicas, ...common });
    case 'rabbitmq':
      return AmqpQueue.open({ url: config.amqpUrl, ...common });
  }
}
