/**
 * Queue benchmark: enqueue-to-commit throughput and latency (p50/p99) of 4 KiB entries with 1, 16
 * and 256 concurrent producers, for every backend, in one run on one machine (DESIGN.md §8):
 *   - lmdb, group commit (the default): concurrent commits share one LMDB commit and one fsync;
 *   - lmdb, one entry per sync: each commit is committed and fsynced alone (the baseline);
 *   - nats: JetStream file storage, server with sync_interval: always (fsync before every PubAck);
 *   - rabbitmq: quorum queue, persistent messages, a publisher confirm per entry.
 * Every figure is "commit() resolved", i.e. durable. nats and rabbitmq rows appear when their
 * servers answer at AFTERSMTP_NATS_URL / AFTERSMTP_AMQP_URL (scripts/services/*.sh start).
 *
 * A second table follows one message through the whole lmdb queue as the delivery worker sees it
 * (enqueue, lease, settle; 64 producers and one lease loop), with the hand-off (new entries
 * leased as they commit, src/queue/lmdb.ts) and without it (each job leased by a transaction of
 * its own, the baseline), interleaved: messages a second and the process's CPU per message.
 *
 * Run: `node dist/bench/queue.js` (BENCH_SECONDS: seconds per figure, default 0.4, at least 1 s
 * is used per figure here; QUEUE_CYCLE_MESSAGES, default 20000 per cycle run). It reports; it
 * never asserts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { AmqpQueue } from '../src/queue/amqp.js';
import { LmdbQueue } from '../src/queue/lmdb.js';
import { NatsQueue } from '../src/queue/nats.js';
import type { DeliveryQueue } from '../src/queue/types.js';
import { measureBackends, type Backend } from './lib/backends.js';
import {
  defaultSeconds,
  formatOps,
  formatRatio,
  median,
  ratio,
  runSections,
} from './lib/measure.js';

const CONCURRENCY = [1, 16, 256];
const CYCLE_MESSAGES = Number(process.env.QUEUE_CYCLE_MESSAGES ?? 20_000);
const CYCLE_PRODUCERS = 64;
const BODY = randomBytes(4096);

/** One entry (one recipient, 4 KiB) begun, filled and committed. */
function enqueue(queue: DeliveryQueue): () => Promise<unknown> {
  let n = 0;
  return () => {
    const tx = queue.begin({
      messageId: `bench-${n++}`,
      sender: 'a@b.example',
      senderKind: 'legacy',
    });
    tx.addRecipient({ address: 'r@rcpt.example', destination: 'smtp:rcpt.example' });
    tx.body(BODY);
    return tx.commit();
  };
}

const bounce = { reportingMta: 'bench.test' };

function lmdbBackend(groupCommit: boolean): Backend<DeliveryQueue> {
  return {
    name: groupCommit ? 'lmdb group commit' : 'lmdb one entry per sync',
    fsync: groupCommit ? 'fsync per group commit' : 'fsync per entry',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-bench-queue-'));
      const queue = new LmdbQueue({ path: dir, groupCommit, bounce });
      return {
        handle: queue,
        async close() {
          await queue.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  };
}

const BACKENDS: Backend<DeliveryQueue>[] = [
  lmdbBackend(true),
  lmdbBackend(false),
  {
    name: 'nats',
    fsync: 'server sync_interval: always',
    async open() {
      const url = process.env.AFTERSMTP_NATS_URL ?? 'nats://127.0.0.1:4222';
      try {
        const queue = await NatsQueue.open({
          url,
          name: `BENCH${Date.now()}`,
          bounce,
          connectTimeoutMs: 2000,
        });
        return { handle: queue, close: async () => (await queue.destroy(), await queue.close()) };
      } catch (err) {
        return `skipped: ${(err as Error).message}`;
      }
    },
  },
  {
    name: 'rabbitmq',
    fsync: 'quorum queue, publisher confirms',
    async open() {
      const url = process.env.AFTERSMTP_AMQP_URL ?? 'amqp://127.0.0.1:5672';
      try {
        const queue = await AmqpQueue.open({ url, name: `bench-${Date.now()}`, bounce });
        return { handle: queue, close: async () => (await queue.destroy(), await queue.close()) };
      } catch (err) {
        return `skipped: ${(err as Error).message}`;
      }
    },
  },
];

interface CycleFigure {
  readonly handOff: boolean;
  readonly messagesPerSecond: number;
  readonly cpuUsPerMessage: number;
}

/** `CYCLE_MESSAGES` entries enqueued by 64 producers, leased by one loop and settled delivered. */
async function cycle(handOff: boolean): Promise<CycleFigure> {
  const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-bench-queue-'));
  const queue = new LmdbQueue({ path: dir, handOff, bounce });
  const next = enqueue(queue);
  let begun = 0;
  let settled = 0;
  const produce = async (): Promise<void> => {
    while (begun++ < CYCLE_MESSAGES) await next();
  };
  const deliver = async (): Promise<void> => {
    while (settled < CYCLE_MESSAGES) {
      const leases = await queue.lease(CYCLE_PRODUCERS, 200);
      await Promise.all(
        leases.map(async (l) => {
          await l.settle([{ recipient: 'r@rcpt.example', status: 'delivered' }]);
          settled++;
        }),
      );
    }
  };
  try {
    const cpu = process.cpuUsage();
    const started = process.hrtime.bigint();
    await Promise.all([...Array.from({ length: CYCLE_PRODUCERS }, produce), deliver()]);
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const used = process.cpuUsage(cpu);
    return {
      handOff,
      messagesPerSecond: CYCLE_MESSAGES / seconds,
      cpuUsPerMessage: (used.user + used.system) / CYCLE_MESSAGES,
    };
  } finally {
    await queue.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await runSections([
  {
    id: 'enqueue',
    title: 'Enqueue to durable commit, 4 KiB entries, one recipient',
    async run() {
      const seconds = Math.max(1, defaultSeconds());
      const { cells, notes } = await measureBackends(BACKENDS, CONCURRENCY, enqueue, seconds, 200);
      const baseline = (p: number) =>
        cells.find((c) => c.backend === 'lmdb one entry per sync' && c.concurrency === p)
          ?.opsPerSecond;
      const rows = cells.map((c) => [
        c.backend,
        c.fsync,
        String(c.concurrency),
        formatOps(c.opsPerSecond),
        c.p50ms.toFixed(2),
        c.p99ms.toFixed(2),
        formatRatio(ratio(c.opsPerSecond, baseline(c.concurrency))),
      ]);
      notes.push(
        `${seconds} s measured per row after 0.2 s warm-up; ratio: against lmdb one entry per sync at the same concurrency.`,
      );
      return {
        headers: [
          'backend',
          'fsync policy',
          'producers',
          'entries/s',
          'p50 ms',
          'p99 ms',
          'vs baseline',
        ],
        rows,
        notes,
        json: cells.map((c) => ({
          ...c,
          ratioToBaseline: ratio(c.opsPerSecond, baseline(c.concurrency)),
        })),
      };
    },
  },
  {
    id: 'cycle',
    title: `Enqueue, lease and settle, lmdb, ${CYCLE_PRODUCERS} producers and one lease loop, 4 KiB`,
    async run() {
      const runs: CycleFigure[] = [];
      for (let round = 0; round < 3; round++) runs.push(await cycle(false), await cycle(true));
      const of = (handOff: boolean) => runs.filter((r) => r.handOff === handOff);
      const rate = (handOff: boolean) => median(of(handOff).map((r) => r.messagesPerSecond));
      const cpu = (handOff: boolean) => median(of(handOff).map((r) => r.cpuUsPerMessage));
      const rows = [false, true].map((handOff) => [
        handOff ? 'hand-off (default)' : 'a lease transaction per lease call',
        formatOps(rate(handOff)),
        of(handOff)
          .map((r) => formatOps(r.messagesPerSecond))
          .join(', '),
        cpu(handOff).toFixed(0),
        formatRatio(ratio(rate(handOff), rate(false))),
      ]);
      return {
        headers: ['lmdb queue', 'messages/s (median)', 'runs', 'CPU µs/msg', 'vs baseline'],
        rows,
        notes: [
          `${CYCLE_MESSAGES} messages per run, three runs each, interleaved; CPU: this process (user + system).`,
        ],
        json: runs,
      };
    },
  },
]);
