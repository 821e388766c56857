/**
 * The RabbitMQ backend (Debian's rabbitmq-server 3.10, no plugins), for several gateway
 * processes sharing one queue.
 *
 * - Jobs are persistent messages in a durable quorum queue (Raft log, fsynced by the server); a
 *   publisher confirm means the job is stored, and `commit()` resolves only after the confirm of
 *   every job of the entry.
 * - Workers consume with manual acks and a bounded prefetch. A lease is a delivered message that
 *   is not yet acknowledged: if it is not settled within `leaseMs` it is requeued (nack) and a
 *   process that dies has its deliveries requeued by the server; quorum queues count
 *   redeliveries in `x-delivery-count`.
 * - Delayed retries without a plugin: per-delay quorum queues whose messages expire (x-message-ttl)
 *   and are dead-lettered back into the job queue (at-least-once dead-lettering). A retry goes to
 *   the longest delay queue not longer than its wait; a job that comes back early is delayed
 *   again for the rest, so one queue never holds messages of different delays (a TTL queue
 *   expires only at its head).
 * - Settling publishes what changes (remaining job, dead letters, bounce), waits for the
 *   confirms, and only then acknowledges the delivered message: at least once.
 */
import amqp, {
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
} from 'amqplib';
import { bounceJobRecord, buildBounce, type BounceOptions } from './bounce.js';
import {
  QueueDecodeError,
  QueueStateError,
  QueueUnavailableError,
  QueueUnsupportedError,
} from './errors.js';
import { newEntryId } from './ids.js';
import { decodeJob, encodeRecord, RECORD_VERSION, type JobRecord } from './record.js';
import { dueAt, dueRecipients, leasedJob, planSettle, settleResult } from './settle.js';
import { Transaction } from './transaction.js';
import type { Random } from './backoff.js';
import {
  DEFAULT_RETRY,
  type DeliveryQueue,
  type EnqueueTransaction,
  type EnvelopeInfo,
  type Lease,
  type QueueStats,
  type RecipientOutcome,
  type RetryPolicy,
  type SettleResult,
} from './types.js';

export interface AmqpQueueOptions {
  readonly url: string;
  /** Prefix of the queue names (default `aftersmtp`). */
  readonly name?: string;
  readonly retry?: RetryPolicy;
  readonly leaseMs?: number;
  readonly bounce: BounceOptions;
  /** Unacknowledged deliveries this process holds at most (default 256). */
  readonly prefetch?: number;
  readonly random?: Random;
  readonly clock?: () => number;
}

/** Delay queues, in ms. A job that is due within the smallest one is delivered at once. */
export const DELAY_BUCKETS_MS = [50, 200, 1000, 5000, 15_000, 60_000, 300_000, 900_000, 3_600_000];
const EARLY_MS = DELAY_BUCKETS_MS[0] as number;

const QUORUM = { durable: true, arguments: { 'x-queue-type': 'quorum' } };

export class AmqpQueue implements DeliveryQueue {
  readonly backend = 'rabbitmq' as const;
  private readonly ready: ConsumeMessage[] = [];
  private waiters = new Set<() => void>();
  private readonly delayQueues = new Set<string>();
  private readonly leased = new Map<ConsumeMessage, { enqueuedAt: number }>();
  private retriesSinceStart = 0;
  private closed = false;

  private constructor(
    private readonly conn: ChannelModel,
    private readonly pub: ConfirmChannel,
    private readonly sub: Channel,
    private readonly names: { jobs: string; dead: string; quarantine: string; prefix: string },
    private readonly options: AmqpQueueOptions,
    private readonly retry: RetryPolicy,
    private readonly leaseMs: number,
    private readonly random: Random,
    private readonly clock: () => number,
  ) {}

  static async open(options: AmqpQueueOptions): Promise<AmqpQueue> {
    const prefix = options.name ?? 'aftersmtp';
    const names = {
      jobs: `${prefix}.jobs`,
      dead: `${prefix}.dead`,
      quarantine: `${prefix}.quarantine`,
      prefix,
    };
    let conn: ChannelModel;
    try {
      conn = await amqp.connect(options.url, { timeout: 5000, noDelay: true });
    } catch (err) {
      throw new QueueUnavailableError(
        `cannot reach RabbitMQ at ${redact(options.url)} (AFTERSMTP_AMQP_URL): ${(err as Error).message}`,
        err,
      );
    }
    try {
      conn.on('error', () => undefined); // surfaced through the channels' failures
      const pub = await conn.createConfirmChannel();
      for (const q of [names.jobs, names.dead, names.quarantine]) await pub.assertQueue(q, QUORUM);
      const sub = await conn.createChannel();
      await sub.prefetch(options.prefetch ?? 256);
      const queue = new AmqpQueue(
        conn,
        pub,
        sub,
        names,
        options,
        options.retry ?? DEFAULT_RETRY,
        options.leaseMs ?? 300_000,
        options.random ?? Math.random,
        options.clock ?? Date.now,
      );
      await sub.consume(names.jobs, (m) => m && queue.delivered(m), { noAck: false });
      return queue;
    } catch (err) {
      await conn.close().catch(() => undefined);
      throw new QueueUnavailableError(
        `RabbitMQ at ${redact(options.url)} refused the queue setup: ${(err as Error).message}`,
        err,
      );
    }
  }

  private delivered(m: ConsumeMessage): void {
    this.ready.push(m);
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const w of waiters) w();
  }

  private send(queue: string, body: Buffer, messageId?: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pub.sendToQueue(
        queue,
        body,
        { persistent: true, ...(messageId ? { messageId } : {}) },
        (err: unknown) =>
          err ? reject(new QueueUnavailableError('RabbitMQ refused a publish', err)) : resolve(),
      );
    });
  }

  /** Publishes a job: to the job queue when due, else to the delay queue that fits its wait. */
  private async publishJob(job: JobRecord, now: number): Promise<void> {
    const wait = dueAt(job) - now;
    let target = this.names.jobs;
    const bucket = [...DELAY_BUCKETS_MS].reverse().find((b) => b <= wait);
    if (bucket !== undefined && wait >= EARLY_MS) target = await this.delayQueue(bucket);
    await this.send(target, encodeRecord(job), `${job.jobId}@${job.rev}`);
  }

  private async delayQueue(ms: number): Promise<string> {
    const name = `${this.names.prefix}.delay.${ms}`;
    if (!this.delayQueues.has(name)) {
      await this.pub.assertQueue(name, {
        durable: true,
        arguments: {
          'x-queue-type': 'quorum',
          'x-message-ttl': ms,
          'x-dead-letter-exchange': '',
          'x-dead-letter-routing-key': this.names.jobs,
          'x-dead-letter-strategy': 'at-least-once',
          'x-overflow': 'reject-publish',
        },
      });
      this.delayQueues.add(name);
    }
    return name;
  }

  begin(info: EnvelopeInfo): EnqueueTransaction {
    if (info.hold === true) {
      throw new QueueUnsupportedError('this queue backend cannot hold entries; use lmdb for HOLD');
    }
    if (this.closed) throw new QueueStateError('the queue is closed');
    return new Transaction(
      info,
      async (_entryId, jobs, body) => {
        const now = this.clock();
        await Promise.all(jobs.map((j) => this.publishJob({ ...j, body }, now)));
      },
      this.clock,
    );
  }

  async lease(max: number, waitMs = 0): Promise<Lease[]> {
    const deadline = this.clock() + waitMs;
    for (;;) {
      const out: Lease[] = [];
      while (out.length < max && this.ready.length > 0) {
        const lease = await this.toLease(this.ready.shift() as ConsumeMessage);
        if (lease) out.push(lease);
      }
      const now = this.clock();
      if (out.length > 0 || this.closed || now >= deadline) return out;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, deadline - now);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  private async toLease(m: ConsumeMessage): Promise<Lease | undefined> {
    const now = this.clock();
    let job: JobRecord;
    try {
      job = decodeJob(m.content);
      if (job.body === undefined) throw new QueueDecodeError('job: no body');
    } catch (err) {
      const rec = {
        v: RECORD_VERSION,
        source: `rabbitmq:${this.names.jobs}`,
        reason: (err as Error).message,
        raw: m.content,
        at: now,
      };
      await this.send(this.names.quarantine, encodeRecord(rec));
      this.sub.ack(m);
      return undefined;
    }
    const recipients = dueRecipients(job, now + EARLY_MS);
    if (recipients.length === 0) {
      await this.publishJob(job, now); // back into the delay queue for the rest of its wait
      this.sub.ack(m);
      return undefined;
    }
    const body = Buffer.from(job.body as Uint8Array);
    this.leased.set(m, { enqueuedAt: job.enqueuedAt });
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      this.leased.delete(m);
      this.sub.nack(m, false, true); // back to the queue: deliverable again
    }, this.leaseMs);
    const redeliveries = Number(m.properties.headers?.['x-delivery-count'] ?? 0);
    return {
      job: leasedJob(
        job,
        recipients,
        body,
        job.deliveries + (Number.isFinite(redeliveries) ? redeliveries : 0),
      ),
      settle: async (outcomes) => {
        if (expired) throw new QueueStateError(`the lease on ${job.jobId} expired`);
        clearTimeout(timer);
        try {
          return await this.settle(m, job, recipients, body, outcomes);
        } finally {
          this.leased.delete(m);
        }
      },
    };
  }

  private async settle(
    m: ConsumeMessage,
    job: JobRecord,
    leased: string[],
    body: Buffer,
    outcomes: readonly RecipientOutcome[],
  ): Promise<SettleResult> {
    const now = this.clock();
    const plan = planSettle(job, leased, outcomes, now, this.retry, this.random);
    const bounce = buildBounce(job, plan.dead, body, this.options.bounce, now);
    const writes: Promise<void>[] = [];
    let bounceEntryId: string | undefined;
    if (bounce) {
      bounceEntryId = newEntryId(now);
      const bounceJob = bounceJobRecord(bounce, bounceEntryId, now, true);
      writes.push(this.publishJob(bounceJob, now));
    }
    for (const d of plan.dead) writes.push(this.send(this.names.dead, encodeRecord(d)));
    if (plan.next) writes.push(this.publishJob({ ...plan.next, body }, now));
    await Promise.all(writes);
    this.sub.ack(m);
    this.retriesSinceStart += plan.retried;
    return settleResult(plan, bounceEntryId);
  }

  /**
   * Depth counts ready jobs, jobs waiting in delay queues this process has used, and this
   * process's unacknowledged deliveries; retries count since start; the oldest age is known only
   * for jobs this process holds.
   */
  async stats(): Promise<QueueStats> {
    const count = async (q: string): Promise<number> => (await this.pub.checkQueue(q)).messageCount;
    let depth = (await count(this.names.jobs)) + this.ready.length + this.leased.size;
    for (const q of this.delayQueues) depth += await count(q);
    const now = this.clock();
    let oldest = 0;
    for (const { enqueuedAt } of this.leased.values())
      oldest = Math.max(oldest, (now - enqueuedAt) / 1000);
    return {
      depth,
      oldestAgeSeconds: oldest,
      retries: this.retriesSinceStart,
      deadLetters: await count(this.names.dead),
      quarantined: await count(this.names.quarantine),
    };
  }

  /** Publishes raw bytes as if they were a job (tests: the quarantine path). */
  async publishRaw(bytes: Uint8Array): Promise<void> {
    await this.send(this.names.jobs, Buffer.from(bytes));
  }

  /** Deletes this queue's RabbitMQ queues (tests only: every queued job is lost). */
  async destroy(): Promise<void> {
    for (const q of [
      this.names.jobs,
      this.names.dead,
      this.names.quarantine,
      ...this.delayQueues,
    ]) {
      await this.pub.deleteQueue(q).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiters) w();
    await this.conn.close().catch(() => undefined);
  }
}

/** The URL without its password, for error messages. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'the configured URL';
  }
}
