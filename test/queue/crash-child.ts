// Child process of crash.test.ts. It opens the queue given on the command line, enqueues a
// burst (printing `ack <message id>` only after each commit has resolved) while delivery
// workers lease and settle (printing `delivered <message id>` before each settle), until the
// parent kills it with SIGKILL. In `drain` mode it only delivers, and prints `drained` once the
// queue is empty. It does nothing unless started by the parent.
import { AmqpQueue } from '../../src/queue/amqp.js';
import { LmdbQueue } from '../../src/queue/lmdb.js';
import { NatsQueue } from '../../src/queue/nats.js';
import type { DeliveryQueue } from '../../src/queue/types.js';

const say = (line: string): void => {
  process.stdout.write(`${line}\n`); // synchronous on a pipe: written before the next step
};

async function openQueue(backend: string, where: string, name: string): Promise<DeliveryQueue> {
  const common = { leaseMs: 1000, bounce: { reportingMta: 'mx.test' } };
  if (backend === 'lmdb') return new LmdbQueue({ path: where, ...common });
  if (backend === 'nats') return NatsQueue.open({ url: where, name, ...common });
  return AmqpQueue.open({ url: where, name, ...common });
}

async function main(): Promise<void> {
  const [backend = '', where = '', name = '', mode = '', run = 'r', count = '0'] =
    process.argv.slice(2);
  const queue = await openQueue(backend, where, name);
  say('ready');
  let stop = false;
  const deliver = async (): Promise<void> => {
    while (!stop) {
      const leases = await queue.lease(32, 100);
      for (const l of leases) say(`delivered ${l.job.messageId}`);
      await Promise.all(
        leases.map((l) =>
          l.settle(l.job.recipients.map((r) => ({ recipient: r, status: 'delivered' as const }))),
        ),
      );
    }
  };
  const workers = [deliver(), deliver()];
  if (mode === 'burst') {
    const producers = Array.from({ length: 8 }, async (_, p) => {
      for (let i = p; i < Number(count); i += 8) {
        const tx = queue.begin({
          messageId: `${run}-${i}`,
          sender: 'a@b.example',
          senderKind: 'legacy',
        });
        tx.addRecipient({ address: `r${i}@rcpt.example`, destination: `smtp:d${i % 5}.example` });
        tx.body(Buffer.from(`Subject: ${run}-${i}\r\n\r\nbody\r\n`));
        await tx.commit();
        say(`ack ${run}-${i}`);
      }
    });
    await Promise.all(producers);
  }
  // Drain: wait until nothing is queued (expired leases of a killed run come back meanwhile).
  for (;;) {
    await new Promise((r) => setTimeout(r, 200));
    if ((await queue.stats()).depth === 0) break;
  }
  stop = true;
  await Promise.all(workers);
  say('drained');
  await queue.close();
}

if (process.env.AFTERSMTP_QUEUE_CRASH_CHILD === '1') {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
