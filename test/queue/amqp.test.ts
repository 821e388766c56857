// The rabbitmq backend against the shared contract suite, on Debian's real RabbitMQ server
// (scripts/services/rabbitmq.sh; AFTERSMTP_AMQP_URL). Each test gets its own queues.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { AmqpQueue } from '../../src/queue/amqp.js';
import { QueueUnavailableError } from '../../src/queue/errors.js';
import { queueContract, type Harness } from './contract.js';
import { service } from './services.js';

const rabbit = await service('AFTERSMTP_AMQP_URL', 'amqp://127.0.0.1:5672', 'rabbitmq.sh');

export function amqpName(): string {
  return `test-${randomBytes(6).toString('hex')}`;
}

if (rabbit.skip !== undefined) {
  describe('queue contract: rabbitmq', () => {
    it('needs a RabbitMQ server', { skip: rabbit.skip }, () => undefined);
  });
} else {
  queueContract('rabbitmq', async ({ retry, leaseMs }): Promise<Harness> => {
    const queue = await AmqpQueue.open({
      url: rabbit.url,
      name: amqpName(),
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

describe('rabbitmq queue', () => {
  it('reports an unreachable server as a clear error naming the variable', async () => {
    await assert.rejects(
      AmqpQueue.open({ url: 'amqp://127.0.0.1:1', bounce: { reportingMta: 'mx.test' } }),
      (err: unknown) =>
        err instanceof QueueUnavailableError && /AFTERSMTP_AMQP_URL/.test(err.message),
    );
  });
});
