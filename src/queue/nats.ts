/**
 * The NATS JetStream backend, for several gateway processes sharing one queue.
 *
 * - Jobs live in a work-queue stream with file storage; the server must run with
 *   `sync_interval: always` (scripts/services/nats.sh), so a publish acknowledgement (PubAck)
 *   means the job is on disk. `commit()` resolves when every job of the entry is acknowledged.
 * - One durable pull consumer with explicit acks and `ack_wait` = the lease: a job that is not
 *   acknowledged in time is redelivered by the server, which counts redeliveries.
 * - Settling publishes what changes (the job with its remaining recipients and their next
 *   attempt, dead letters, a bounce) and only then acknowledges the delivered message, so a crash
 *   in between repeats work but loses none (at least once). Publishes carry a Nats-Msg-Id derived
 *   from the job's revision, so a repeat within the duplicate window is dropped by the server.
 * - A job that is not due yet (a retry) is handed back with a delayed negative acknowledgement,
 *   which does not block other jobs (no head-of-line blocking).
 * - Dead letters and quarantined bytes go to two limits-retention streams.
 * - On a cluster (several URLs, `replicas` 3) every stream is replicated by RAFT: a publish is
 *   acknowledged once a majority of the servers have it on disk, so a job survives the loss of
 *   one server; the client reconnects to another server by itself, and a publish made while the
 *   stream elects a new leader fails or times out (the caller's commit fails: nothing was
 *   acknowledged) or lands once (de-duplicated by Nats-Msg-Id).
 */
import {
  AckPolicy,
  DeliverPolicy,
  RetentionPolicy,
  StorageType,
  connect,
  nanos,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type NatsConnection,
} from 'nats';
import { bounceJobRecord, buildBounce, type BounceOptions } from './bounce.js';
import { QueueUnavailableError, QueueDecodeError, QueueUnsupportedError } from './errors.js';
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

/**
 * How long a publish waits for JetStream's acknowledgement. The server syncs every write before
 * it answers; a busy disk takes longer than nats.js's 5 s default, and a timeout there only
 * makes the caller retry a write that may have landed (de-duplicated by msgID).
 */
const PUBLISH_TIMEOUT_MS = 30_000;

export interface NatsQueueOptions {
  /** One server's URL, or a cluster's, separated by commas. */
  readonly url: string;
  /** The streams' replicas (JetStream num_replicas; default 1, at most the cluster's size). */
  readonly replicas?: number;
  /** Prefix of the stream names (default AFTERSMTP_QUEUE) and subjects (lower-cased). */
  readonly name?: string;
  readonly retry?: RetryPolicy;
  readonly leaseMs?: number;
  readonly bounce: BounceOptions;
  readonly random?: Random;
  readonly clock?: () => number;
  /** Connection timeout in ms (default 5000). */
  readonly connectTimeoutMs?: number;
}

const DUPLICATE_WINDOW_MS = 120_000;

export class NatsQueue implements DeliveryQueue {
  readonly backend = 'nats' as const;
  private retriesSinceStart = 0;
  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly js: JetStreamClient,
    private readonly names: { jobs: string; dead: string; quarantine: string; subject: string },
    private readonly options: NatsQueueOptions,
    private readonly retry: RetryPolicy,
    private readonly random: Random,
    private readonly clock: () => number,
  ) {}

  /** Connects, creates the streams and the consumer if needed; a clear error if unreachable. */
  static async open(options: NatsQueueOptions): Promise<NatsQueue> {
    const base = options.name ?? 'AFTERSMTP_QUEUE';
    const subject = base.toLowerCase();
    const names = {
      jobs: base,
      dead: `${base}_DEAD`,
      quarantine: `${base}_QUARANTINE`,
      subject,
    };
    let nc: NatsConnection;
    try {
      nc = await connect({
        servers: options.url.split(',').map((u) => u.trim()),
        timeout: options.connectTimeoutMs ?? 5000,
        maxReconnectAttempts: -1,
      });
    } catch (err) {
      throw new QueueUnavailableError(
        `cannot reach the NATS server at ${options.url} (AFTERSMTP_NATS_URL): ${(err as Error).message}`,
        err,
      );
    }
    try {
      const jsm = await nc.jetstreamManager({ timeout: 5000 });
      const file = { storage: StorageType.File, num_replicas: options.replicas ?? 1 };
      await ensureStream(jsm, {
        name: names.jobs,
        subjects: [`${subject}.jobs`],
        retention: RetentionPolicy.Workqueue,
        duplicate_window: nanos(DUPLICATE_WINDOW_MS),
        ...file,
      });
      await ensureStream(jsm, {
        name: names.dead,
        subjects: [`${subject}.dead`],
        retention: RetentionPolicy.Limits,
        duplicate_window: nanos(DUPLICATE_WINDOW_MS),
        ...file,
      });
      await ensureStream(jsm, {
        name: names.quarantine,
        subjects: [`${subject}.quarantine`],
        retention: RetentionPolicy.Limits,
        ...file,
      });
      const consumer = {
        durable_name: 'delivery',
        ack_policy: AckPolicy.Explicit,
        ack_wait: nanos(options.leaseMs ?? 300_000),
        deliver_policy: DeliverPolicy.All,
        max_deliver: -1,
        // Jobs waiting for a delayed retry are "pending"; they must never starve new ones.
        max_ack_pending: -1,
        filter_subject: `${subject}.jobs`,
      };
      try {
        await jsm.consumers.add(names.jobs, consumer);
      } catch {
        await jsm.consumers.update(names.jobs, 'delivery', consumer);
      }
      return new NatsQueue(
        nc,
        jsm,
        nc.jetstream(),
        names,
        options,
        options.retry ?? DEFAULT_RETRY,
        options.random ?? Math.random,
        options.clock ?? Date.now,
      );
    } catch (err) {
      await nc.close().catch(() => undefined);
      throw new QueueUnavailableError(
        `the NATS server at ${options.url} refused the JetStream setup (is JetStream enabled?): ${(err as Error).message}`,
        err,
      );
    }
  }

  begin(info: EnvelopeInfo): EnqueueTransaction {
    if (info.hold === true) {
      throw new QueueUnsupportedError('this queue backend cannot hold entries; use lmdb for HOLD');
    }
    return new Transaction(
      info,
      async (_entryId, jobs, body) => {
        await Promise.all(jobs.map((j) => this.publishJob({ ...j, body })));
      },
      this.clock,
    );
  }

  private async publishJob(job: JobRecord, msgID = `${job.jobId}@${job.rev}`): Promise<void> {
    await this.js.publish(`${this.names.subject}.jobs`, encodeRecord(job), {
      msgID,
      timeout: PUBLISH_TIMEOUT_MS,
    });
  }

  async lease(max: number, waitMs = 0): Promise<Lease[]> {
    const deadline = this.clock() + waitMs;
    for (;;) {
      let msgs = await this.fetch(max, 0);
      if (msgs.length === 0 && waitMs > 0) {
        msgs = await this.fetch(1, Math.max(1000, deadline - this.clock()));
        if (msgs.length > 0 && max > 1) msgs.push(...(await this.fetch(max - 1, 0)));
      }
      const leases: Lease[] = [];
      for (const m of msgs) {
        const lease = await this.toLease(m);
        if (lease) leases.push(lease);
      }
      if (leases.length > 0 || msgs.length === 0 || this.clock() >= deadline) return leases;
    }
  }

  private async fetch(max: number, expiresMs: number): Promise<JsMsg[]> {
    const iter = this.js.fetch(
      this.names.jobs,
      'delivery',
      expiresMs > 0 ? { batch: max, expires: expiresMs } : { batch: max, no_wait: true },
    );
    const out: JsMsg[] = [];
    for await (const m of iter) out.push(m);
    return out;
  }

  private async toLease(m: JsMsg): Promise<Lease | undefined> {
    let job: JobRecord;
    try {
      job = decodeJob(m.data);
      if (job.body === undefined) throw new QueueDecodeError('job: no body');
    } catch (err) {
      await this.quarantine(`nats:${this.names.jobs}/${m.seq}`, (err as Error).message, m.data);
      await m.ackAck();
      return undefined;
    }
    const now = this.clock();
    const recipients = dueRecipients(job, now);
    if (recipients.length === 0) {
      m.nak(Math.max(1, dueAt(job) - now));
      return undefined;
    }
    const body = Buffer.from(job.body as Uint8Array);
    return {
      job: leasedJob(
        job,
        recipients,
        body,
        job.deliveries + Math.max(0, m.info.redeliveryCount - 1),
      ),
      settle: (outcomes) => this.settle(m, job, recipients, body, outcomes),
    };
  }

  private async quarantine(source: string, reason: string, raw: Uint8Array): Promise<void> {
    const rec = { v: RECORD_VERSION, source, reason, raw, at: this.clock() };
    await this.js.publish(`${this.names.subject}.quarantine`, encodeRecord(rec), {
      timeout: PUBLISH_TIMEOUT_MS,
    });
  }

  private async settle(
    m: JsMsg,
    job: JobRecord,
    leased: string[],
    body: Buffer,
    outcomes: readonly RecipientOutcome[],
  ): Promise<SettleResult> {
    const now = this.clock();
    const plan = planSettle(job, leased, outcomes, now, this.retry, this.random);
    const bounce = buildBounce(job, plan.dead, body, this.options.bounce, now);
    let bounceEntryId: string | undefined;
    if (bounce) {
      // The id is derived from the failure, so a repeated settle publishes a duplicate that the
      // server drops (Nats-Msg-Id) rather than a second bounce.
      bounceEntryId = newEntryId(now);
      await this.publishJob(
        bounceJobRecord(bounce, bounceEntryId, now, true),
        `bounce:${bounce.info.messageId}`,
      );
    }
    await Promise.all(
      plan.dead.map((d) =>
        this.js.publish(`${this.names.subject}.dead`, encodeRecord(d), {
          msgID: `${d.jobId}/${d.recipient}@${job.rev}`,
          timeout: PUBLISH_TIMEOUT_MS,
        }),
      ),
    );
    if (plan.next) await this.publishJob({ ...plan.next, body });
    await m.ackAck();
    this.retriesSinceStart += plan.retried;
    return settleResult(plan, bounceEntryId);
  }

  /** Depth and age from the job stream; retries are counted since this process started. */
  async stats(): Promise<QueueStats> {
    const [jobs, dead, quarantine] = await Promise.all([
      this.jsm.streams.info(this.names.jobs),
      this.jsm.streams.info(this.names.dead),
      this.jsm.streams.info(this.names.quarantine),
    ]);
    const first = jobs.state.messages > 0 ? Date.parse(jobs.state.first_ts) : NaN;
    return {
      depth: jobs.state.messages,
      oldestAgeSeconds: Number.isFinite(first) ? Math.max(0, (this.clock() - first) / 1000) : 0,
      retries: this.retriesSinceStart,
      deadLetters: dead.state.messages,
      quarantined: quarantine.state.messages,
    };
  }

  /** Deletes the streams (tests only: every queued job is lost). */
  async destroy(): Promise<void> {
    for (const s of [this.names.jobs, this.names.dead, this.names.quarantine]) {
      await this.jsm.streams.delete(s).catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    if (!this.nc.isClosed()) await this.nc.drain().catch(() => this.nc.close());
  }

  /** Publishes raw bytes as if they were a job (tests: the quarantine path). */
  async publishRaw(bytes: Uint8Array): Promise<void> {
    await this.js.publish(`${this.names.subject}.jobs`, bytes, { timeout: PUBLISH_TIMEOUT_MS });
  }
}

async function ensureStream(
  jsm: JetStreamManager,
  config: Parameters<JetStreamManager['streams']['add']>[0],
): Promise<void> {
  try {
    await jsm.streams.info(config.name as string);
    await jsm.streams.update(config.name as string, config);
  } catch (err) {
    if (!/stream not found/i.test((err as Error).message)) throw err;
    await jsm.streams.add(config);
  }
}
