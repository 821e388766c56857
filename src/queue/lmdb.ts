/**
 * The embedded queue backend (the default): LMDB through lmdb-js, no other process.
 *
 * Durability: `commit()` resolves after the write transaction has committed AND `flushed` has
 * resolved (lmdb-js overlaps the sync with later transactions, so a committed write is not yet
 * durable). Group commit: lmdb-js batches concurrent transactions into one LMDB commit, and every
 * waiter of that commit shares its one sync. With `groupCommit: false` each entry is committed
 * and synced alone, one after another (the benchmark's baseline).
 *
 * Leases are written to the store (the job's schedule key moves to the lease expiry), so a job
 * leased by a process that died is due again when the lease expires, also after a restart; and
 * sooner: each open queue registers as a lease holder (holders.ts), and a queue opening (and a
 * working queue, every HOLDERS_CHECK_MS) makes the leases of holders that are gone due at once.
 *
 * Hand-off: a new entry's jobs are leased to this queue in the transaction that commits them, and
 * handed to the next `lease` call from memory once the commit is durable, so a message that is
 * delivered at once costs no lease transaction of its own. They are leases like any other (a
 * process that dies with them in memory gives them back as above); while more than
 * HAND_OFF_MAX_JOBS jobs or HAND_OFF_MAX_BYTES of bodies wait, new entries are committed due
 * instead, and a hand-off with less than half its lease left is dropped from memory and comes
 * back due when its lease expires.
 */
import { randomHex } from '../random.js';
import { bounceJobRecord, buildBounce, type BounceOptions } from './bounce.js';
import { QueueDecodeError, QueueStateError } from './errors.js';
import { holderAlive, thisHolder } from './holders.js';
import { LmdbWriter, type StorageSpace } from '../storage/space.js';
import { entryIdOf, newEntryId } from './ids.js';
import { LmdbStore, type StoredJob } from './lmdb-store.js';
import { decodeEntry, decodeJob, type JobRecord } from './record.js';
import { dueRecipients, leasedJob, planSettle, settleResult } from './settle.js';
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

/** How often a working queue looks for other holders that died (processes sharing it). */
export const HOLDERS_CHECK_MS = 5000;

/** Bounds of the jobs leased at commit that wait in memory for `lease` (the hand-off). */
export const HAND_OFF_MAX_JOBS = 1024;
export const HAND_OFF_MAX_BYTES = 64 * 1024 * 1024;

export interface LmdbQueueOptions {
  /** Directory of the LMDB environment (created if missing). */
  readonly path: string;
  readonly retry?: RetryPolicy;
  /** How long a lease lasts before the job is deliverable again (default 5 minutes). */
  readonly leaseMs?: number;
  /** Share one sync between concurrent commits (default true). */
  readonly groupCommit?: boolean;
  /**
   * Lease a new entry's jobs to this queue as they commit and hand them to `lease` from memory
   * (default true); off, every job waits for a lease transaction (the benchmark's baseline).
   */
  readonly handOff?: boolean;
  readonly bounce: BounceOptions;
  readonly random?: Random;
  readonly clock?: () => number;
  /** How often a working queue looks for holders that died (default HOLDERS_CHECK_MS). */
  readonly holdersCheckMs?: number;
  /**
   * The room on the queue's file system: new entries are refused below its reserve, and
   * writes that fail for lack of room become StorageFullError (temporary).
   */
  readonly space?: StorageSpace;
}

/** A stored job, or a QueueDecodeError naming what is wrong with it. */
export function decodeStoredJob(raw: Uint8Array): StoredJob {
  const job = decodeJob(raw) as Partial<StoredJob> & JobRecord;
  if (typeof job.scheduledAt !== 'number' || typeof job.leaseToken !== 'string') {
    throw new QueueDecodeError('job: field scheduledAt or leaseToken is missing or invalid');
  }
  return job as StoredJob;
}

/** The first key of a range, read synchronously. */
export function firstKey<K>(keys: Iterable<K>): K | undefined {
  for (const k of keys) return k;
  return undefined;
}

interface Leased {
  readonly job: StoredJob;
  readonly token: string;
  readonly recipients: string[];
  readonly body: Buffer;
}

/** A job leased in the transaction that committed it, waiting in memory for `lease`. */
interface HandOff extends Leased {
  /** When its lease expires (its schedule key). */
  readonly until: number;
}

export class LmdbQueue implements DeliveryQueue {
  readonly backend = 'lmdb' as const;
  readonly store: LmdbStore;
  /** Transactions and flushes that survive a full disk (src/storage/space.ts). */
  private readonly writer: LmdbWriter;
  private readonly retry: RetryPolicy;
  private readonly leaseMs: number;
  private readonly groupCommit: boolean;
  private readonly random: Random;
  private readonly clock: () => number;
  private serial: Promise<unknown> = Promise.resolve();
  private waiters = new Set<() => void>();
  private closed = false;
  /** This queue's id as a lease holder: the prefix of its lease tokens. */
  private readonly holder = randomHex(6);
  /** When the other holders were last looked at (for processes sharing the queue). */
  private holdersCheckedAt = 0;
  /** Jobs leased at commit, oldest first, and their bodies' bytes (with those being committed). */
  private handOffs: HandOff[] = [];
  private handOffBytes = 0;
  private handOffJobs = 0;

  constructor(private readonly options: LmdbQueueOptions) {
    this.store = new LmdbStore(options.path);
    this.writer = new LmdbWriter(this.store.root, options.space);
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.leaseMs = options.leaseMs ?? 300_000;
    this.groupCommit = options.groupCommit ?? true;
    this.random = options.random ?? Math.random;
    this.clock = options.clock ?? Date.now;
    this.store.root.transactionSync(() => {
      this.store.holders.putSync(this.holder, thisHolder(this.leaseMs));
      this.releaseOrphanedLeases();
    });
    this.holdersCheckedAt = this.clock();
  }

  /**
   * Inside a write transaction: make the leased jobs of holders that are gone due again now
   * (their normal due time), and forget those holders. A lease sits in the schedule at its
   * expiry, at most a lease length from now, so only that stretch is read.
   */
  private releaseOrphanedLeases(): void {
    const store = this.store;
    const alive = new Set<string>();
    let longest = this.leaseMs;
    for (const { key, value } of store.holders.getRange()) {
      longest = Math.max(longest, value.leaseMs);
      if (key === this.holder || holderAlive(value)) alive.add(key);
      else store.holders.removeSync(key);
    }
    const now = this.clock();
    const keys = [...store.schedule.getKeys({ start: [now], end: [now + longest + 1] })] as [
      number,
      string,
    ][];
    for (const [scheduledAt, jobId] of keys) {
      const raw = store.jobs.get(jobId);
      if (raw === undefined) continue;
      let job: StoredJob;
      try {
        job = decodeStoredJob(raw);
      } catch {
        continue; // quarantined when it is next leased
      }
      const holder = job.leaseToken.split(':', 2);
      if (holder.length === 2 && !alive.has(holder[0] as string)) {
        store.putJob(job, '', undefined, { ...job, scheduledAt });
      }
    }
  }

  begin(info: EnvelopeInfo): EnqueueTransaction {
    this.checkOpen();
    this.options.space?.admit('a new queue entry');
    return new Transaction(
      info,
      (entryId, jobs, body) => this.persist(entryId, jobs, body),
      this.clock,
    );
  }

  private checkOpen(): void {
    if (this.closed) throw new QueueStateError('the queue is closed');
  }

  /** Commits and syncs; alone (serialised) when group commit is off. */
  private durable(write: () => void): Promise<void> {
    const run = async (): Promise<void> => {
      await this.writer.write(write);
      await this.writer.flush();
    };
    if (this.groupCommit) return run();
    const next = this.serial.then(run, run);
    this.serial = next.catch(() => undefined);
    return next;
  }

  private async persist(entryId: string, jobs: JobRecord[], body: Uint8Array): Promise<void> {
    this.options.space?.admit('a new queue entry');
    const reserved = this.reserveHandOff(jobs.length, body.byteLength);
    let handed: HandOff[] = [];
    try {
      let leased: HandOff[] = [];
      await this.durable(() => {
        leased = this.writeEntry(entryId, jobs, body, reserved);
      });
      handed = leased;
    } finally {
      if (reserved) this.releaseHandOff(jobs.length - handed.length, body.byteLength);
    }
    this.handOffs.push(...handed);
    this.wake();
  }

  /** Room in the hand-off for `jobs` jobs of one body (taken now; released when not used). */
  private reserveHandOff(jobs: number, bodyBytes: number): boolean {
    if (
      this.options.handOff === false ||
      this.handOffJobs + jobs > HAND_OFF_MAX_JOBS ||
      this.handOffBytes + jobs * bodyBytes > HAND_OFF_MAX_BYTES
    ) {
      return false;
    }
    this.handOffJobs += jobs;
    this.handOffBytes += jobs * bodyBytes;
    return true;
  }

  private releaseHandOff(jobs: number, bodyBytes: number): void {
    this.handOffJobs -= jobs;
    this.handOffBytes -= jobs * bodyBytes;
  }

  /**
   * Inside a write transaction: the entry and its jobs, those with recipients due leased to this
   * queue when `handOff` (held jobs and jobs with nothing due are written as they are); the leases
   * made, which share one copy of the body.
   */
  private writeEntry(
    entryId: string,
    jobs: readonly JobRecord[],
    body: Uint8Array,
    handOff = false,
  ): HandOff[] {
    this.store.putEntry(
      entryId,
      jobs.map((j) => j.jobId),
      body,
    );
    const now = this.clock();
    const leased: HandOff[] = [];
    const copy = handOff ? Buffer.from(body) : undefined;
    for (const j of jobs) {
      const recipients = copy !== undefined && !j.held ? dueRecipients(j, now) : [];
      if (copy === undefined || recipients.length === 0) {
        this.store.putJob(j);
        continue;
      }
      const token = `${this.holder}:${randomHex(8)}`;
      const until = now + this.leaseMs;
      const stored = this.store.putJob({ ...j, deliveries: j.deliveries + 1 }, token, until);
      const job = { ...stored, deliveries: j.deliveries };
      leased.push({ job, token, recipients, body: copy, until });
    }
    return leased;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = new Set();
    for (const w of waiters) w();
  }

  async lease(max: number, waitMs = 0): Promise<Lease[]> {
    this.checkOpen();
    const deadline = this.clock() + waitMs;
    for (;;) {
      const handed = this.takeHandOffs(max);
      const rest = max - handed.length;
      const leased = rest > 0 && this.worthLeasing(handed.length) ? await this.leaseNow(rest) : [];
      if (handed.length > 0 || leased.length > 0 || this.closed) {
        return [...handed, ...leased].map((l) => this.toLease(l));
      }
      const now = this.clock();
      if (now >= deadline) return [];
      const first = firstKey(this.store.schedule.getKeys({ limit: 1 })) as
        [number, string] | undefined;
      const until = Math.min(deadline, first ? Math.max(first[0], now + 1) : deadline);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, until - now);
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.waiters.add(done);
      });
    }
  }

  /**
   * Up to `max` hand-offs, oldest first; one with less than half its lease left is dropped (its
   * schedule key brings it back when the lease expires).
   */
  private takeHandOffs(max: number): Leased[] {
    const now = this.clock();
    const out: Leased[] = [];
    let taken = 0;
    while (out.length < max && taken < this.handOffs.length) {
      const h = this.handOffs[taken++] as HandOff;
      this.releaseHandOff(1, h.body.byteLength);
      if (h.until - now >= this.leaseMs / 2) out.push(h);
    }
    this.handOffs.splice(0, taken);
    return out;
  }

  /**
   * Whether a lease transaction may find anything: always when no hand-off was taken (as before
   * the hand-off), otherwise only if a job is due in the store or the other holders are due
   * for a look, so that jobs handed off cost no transaction of their own.
   */
  private worthLeasing(handed: number): boolean {
    if (handed === 0) return true;
    const now = this.clock();
    if (now - this.holdersCheckedAt >= (this.options.holdersCheckMs ?? HOLDERS_CHECK_MS)) {
      return true;
    }
    return firstKey(this.store.schedule.getKeys({ end: [now + 1], limit: 1 })) !== undefined;
  }

  private async leaseNow(max: number): Promise<Leased[]> {
    const now = this.clock();
    const out: Leased[] = [];
    const store = this.store;
    await this.writer.write(() => {
      // Another process sharing this queue may have died since: its leases come back now
      // rather than when they expire (a cheap look, at most every HOLDERS_CHECK_MS).
      if (now - this.holdersCheckedAt >= (this.options.holdersCheckMs ?? HOLDERS_CHECK_MS)) {
        this.holdersCheckedAt = now;
        if ((store.holders.getStats() as { entryCount: number }).entryCount > 1) {
          this.releaseOrphanedLeases();
        }
      }
      const keys = [
        ...store.schedule.getKeys({ end: [now + 1], limit: Math.max(max * 2, 16) }),
      ] as [number, string][];
      for (const key of keys) {
        if (out.length >= max) break;
        const jobId = key[1];
        store.schedule.removeSync(key);
        const leased = this.leaseOne(jobId, key[0], now);
        if (leased) out.push(leased);
      }
    });
    return out;
  }

  /** Inside a write transaction: lease one scheduled job, or quarantine what cannot be read. */
  private leaseOne(jobId: string, scheduledAt: number, now: number): Leased | undefined {
    const store = this.store;
    const raw = store.jobs.get(jobId);
    if (raw === undefined) return undefined; // a stale schedule key; already removed
    let job: StoredJob;
    try {
      job = decodeStoredJob(raw);
      if (job.jobId !== jobId)
        throw new QueueDecodeError(`job: stored under ${jobId}, names ${job.jobId}`);
    } catch (err) {
      store.putQuarantine(`lmdb:jobs/${jobId}`, (err as Error).message, raw, now);
      store.removeJob({ jobId, scheduledAt: -1 });
      return undefined;
    }
    const entryId = entryIdOf(jobId);
    const rawEntry = store.entries.get(entryId);
    let body: Buffer;
    try {
      if (rawEntry === undefined) throw new QueueDecodeError(`entry ${entryId} is missing`);
      body = Buffer.from(decodeEntry(rawEntry).body);
    } catch (err) {
      if (rawEntry !== undefined) {
        store.putQuarantine(`lmdb:entries/${entryId}`, (err as Error).message, rawEntry, now);
        store.entries.removeSync(entryId);
      }
      store.putQuarantine(`lmdb:jobs/${jobId}`, (err as Error).message, raw, now);
      store.jobs.removeSync(jobId);
      return undefined;
    }
    const current = { ...job, scheduledAt };
    if (job.held) {
      store.putJob(job, '', undefined, current);
      return undefined;
    }
    const recipients = dueRecipients(job, now);
    if (recipients.length === 0) {
      store.putJob(job, '', undefined, { ...current, scheduledAt: -1 });
      return undefined;
    }
    const token = `${this.holder}:${randomHex(8)}`;
    const updated = { ...job, deliveries: job.deliveries + 1 };
    const stored = store.putJob(updated, token, now + this.leaseMs, {
      ...current,
      scheduledAt: -1,
    });
    return { job: { ...stored, deliveries: job.deliveries }, token, recipients, body };
  }

  private toLease(l: Leased): Lease {
    const job = l.job;
    return {
      job: leasedJob(job, l.recipients, l.body, job.deliveries),
      settle: (outcomes) => this.settle(l, outcomes),
    };
  }

  private async settle(l: Leased, outcomes: readonly RecipientOutcome[]): Promise<SettleResult> {
    this.checkOpen();
    const store = this.store;
    let result: SettleResult | undefined;
    let stale = false;
    await this.durable(() => {
      const now = this.clock();
      const raw = store.jobs.get(l.job.jobId);
      const job = raw === undefined ? undefined : decodeStoredJob(raw);
      if (job === undefined || job.leaseToken !== l.token) {
        stale = true;
        return;
      }
      // The stored job (not the leased copy) is the base: an operator may have held it since.
      const plan = planSettle(job, l.recipients, outcomes, now, this.retry, this.random);
      if (plan.next) store.putJob({ ...plan.next, deliveries: job.deliveries }, '', undefined, job);
      else store.removeJob(job);
      store.putDead(plan.dead);
      store.bump('retries', plan.retried);
      const bounce = buildBounce(job, plan.dead, l.body, this.options.bounce, now);
      let bounceEntryId: string | undefined;
      if (bounce) {
        bounceEntryId = newEntryId(now);
        const bounceJob = bounceJobRecord(bounce, bounceEntryId, now, false);
        this.writeEntry(bounceEntryId, [bounceJob], bounce.body);
      }
      result = settleResult(plan, bounceEntryId);
    });
    if (stale || result === undefined) {
      throw new QueueStateError(`the lease on ${l.job.jobId} expired and the job was leased again`);
    }
    this.wake();
    return result;
  }

  async stats(): Promise<QueueStats> {
    const store = this.store;
    const first = firstKey(store.entries.getKeys({ limit: 1 }));
    const oldest = typeof first === 'string' ? parseInt(first.slice(0, 12), 16) : undefined;
    return {
      depth: (store.jobs.getStats() as { entryCount: number }).entryCount,
      oldestAgeSeconds: oldest === undefined ? 0 : Math.max(0, (this.clock() - oldest) / 1000),
      retries: store.counter('retries'),
      deadLetters: store.counter('dead'),
      quarantined: store.counter('quarantined'),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Hand-offs not taken are leases still out (below).
    this.handOffs = [];
    this.wake();
    await this.serial.catch(() => undefined);
    // Leases still out are orphaned now: the next queue to open makes them due at once (and
    // if this last write fails, a full disk, the holder is found dead all the same).
    await this.writer.write(() => this.store.holders.removeSync(this.holder)).catch(() => false);
    await this.writer.flush().catch(() => undefined);
    await this.store.close();
  }
}
