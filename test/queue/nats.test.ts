// The nats backend against the shared contract suite, on a real NATS server with JetStream
// (scripts/services/nats.sh; AFTERSMTP_NATS_URL). Each test gets its own streams.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { QueueUnavailableError } from '../../src/queue/errors.js';
import { NatsQueue } from '../../src/queue/nats.js';
import { queueContract, type Harness } from './contract.js';
import { service } from './services.js';

const nats = await service('AFTERSMTP_NATS_URL', 'nats://127.0.0.1:4222', 'nats.sh');

export function natsName(): string {
  return `T${randomBytes(6).toString('hex').toUpperCase()}`;
}

if (nats.skip !== undefined) {
  describe('queue contract: nats', () => {
    it('needs a NATS server', { skip: nats.skip }, () => undefined);
  });
} else {
  queueContract('nats', async ({ retry, leaseMs }): Promise<Harness> => {
    const queue = await NatsQueue.open({
      url: nats.url,
      name: natsName(),
      retry,
      leaseMs,
      bounce: { reportingMta: 'mx.test' },
    });
    return {
      queue,
      injectGarbage: (bytes) => queue.publishRaw(bytes),
      async close() {
        await queue.destroy();
        await queue.close();
      },
    };
  });
}

describe('nats queue', () => {
  it('reports an unreachable server as a clear error naming the variable', async () => {
    await assert.rejects(
      NatsQueue.open({
        url: 'nats://127.0.0.1:1',
        bounce: { reportingMta: 'mx.test' },
        connectTimeoutMs: 1000,
      }),
      (err: unknown) =>
        err instanceof QueueUnavailableError && /AFTERSMTP_NATS_URL/.test(err.message),
    );
  });
});
