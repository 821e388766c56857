/**
 * Operator actions on the embedded queue (the `aftersmtp queue` CLI): list, show, hold, release,
 * retry now, drop, and the dead-letter list. Each change is one LMDB transaction, synced before it
 * returns. An id is an entry id (all its destinations) or a job id (one destination). A dropped
 * entry is gone without a bounce: dropping is the operator's decision, not a delivery failure.
 */
import { QueueNotFoundError, QueueDecodeError } from './errors.js';
import { entryIdOf, isQueueId } from './ids.js';
import { decodeStoredJob, firstKey, type LmdbQueue } from './lmdb.js';
import type { StoredJob } from './lmdb-store.js';
import { decodeDead, decodeEntry, type DeadRecord } from './record.js';

export interface JobView {
  readonly jobId: string;
  readonly destination: string;
  readonly state: 'queued' | 'leased' | 'held';
  readonly deliveries: number;
  /** Next attempt, or lease expiry, as an ISO date; undefined while held. */
  readonly nextAttempt: string | undefined;
  readonly recipients: readonly {
    address: string;
    attempts: number;
    nextAttempt: string;
    lastError: string;
  }[];
}

export interface EntryView {
  readonly entryId: string;
  readonly messageId: string;
  readonly sender: string;
  readonly senderKind: string;
  readonly bounce: boolean;
  readonly enqueuedAt: string;
  readonly ageSeconds: number;
  readonly bodyBytes: number;
  readonly jobs: readonly JobView[];
}

const iso = (ms: number): string => new Date(ms).toISOString();

export class QueueAdmin {
  constructor(
    private readonly queue: LmdbQueue,
    private readonly clock: () => number = Date.now,
  ) {}

  private get store() {
    return this.queue.store;
  }

  private jobsOf(entryId: string): StoredJob[] {
    const out: StoredJob[] = [];
    for (const { key, value } of this.store.jobs.getRange({
      start: `${entryId}.`,
      end: `${entryId}/`,
    })) {
      try {
        out.push(decodeStoredJob(value));
      } catch (err) {
        throw new QueueDecodeError(`job ${String(key)}: ${(err as Error).message}`);
      }
    }
    return out;
  }

  private view(entryId: string): EntryView | undefined {
    const raw = this.store.entries.get(entryId);
    if (raw === undefined) return undefined;
    const entry = decodeEntry(raw);
    const jobs = this.jobsOf(entryId);
    const first = jobs[0];
    const enqueuedAt = first?.enqueuedAt ?? parseInt(entryId.slice(0, 12), 16);
    return {
      entryId,
      messageId: first?.messageId ?? '',
      sender: first?.sender ?? '',
      senderKind: first?.senderKind ?? '',
      bounce: first?.bounce ?? false,
      enqueuedAt: iso(enqueuedAt),
      ageSeconds: Math.max(0, Math.round((this.clock() - enqueuedAt) / 1000)),
      bodyBytes: entry.body.length,
      jobs: jobs.map((j) => ({
        jobId: j.jobId,
        destination: j.destination,
        state: j.held ? 'held' : j.leaseToken !== '' ? 'leased' : 'queued',
        deliveries: j.deliveries,
        nextAttempt: j.scheduledAt >= 0 ? iso(j.scheduledAt) : undefined,
        recipients: j.recipients.map((r) => ({
          address: r.address,
          attempts: r.attempts,
          nextAttempt: iso(r.nextAt),
          lastError: r.lastError,
        })),
      })),
    };
  }

  /** Entries, oldest first. */
  list(limit = 1000): EntryView[] {
    const out: EntryView[] = [];
    for (const key of this.store.entries.getKeys({ limit })) {
      const v = this.view(key);
      if (v) out.push(v);
    }
    return out;
  }

  show(id: string): EntryView {
    const v = isQueueId(id) ? this.view(entryIdOf(id)) : undefined;
    if (!v) throw new QueueNotFoundError(id);
    return v;
  }

  private async change(
    id: string | 'all',
    fn: (job: StoredJob) => 'keep' | 'drop' | StoredJob,
  ): Promise<number> {
    if (id !== 'all' && !isQueueId(id)) throw new QueueNotFoundError(id);
    let count = 0;
    await this.store.root.transaction(() => {
      const jobs =
        id === 'all'
          ? [...this.store.jobs.getRange({})].map(({ value }) => decodeStoredJob(value))
          : this.jobsOf(entryIdOf(id)).filter((j) => id === entryIdOf(id) || j.jobId === id);
      for (const job of jobs) {
        const r = fn(job);
        if (r === 'keep') continue;
        count++;
        if (r === 'drop') this.store.removeJob(job);
        else
          this.store.putJob(
            r,
            r.leaseToken,
            r.leaseToken !== '' ? job.scheduledAt : undefined,
            job,
          );
      }
    });
    await this.store.flushed;
    if (count === 0 && id !== 'all') throw new QueueNotFoundError(id);
    return count;
  }

  /** Keeps the jobs out of delivery until released (a leased job finishes its current attempt). */
  hold(id: string): Promise<number> {
    return this.change(id, (j) => ({ ...j, held: true }));
  }

  release(id: string): Promise<number> {
    return this.change(id, (j) => (j.held ? { ...j, held: false } : 'keep'));
  }

  /** Makes every pending recipient due now (held jobs stay held). */
  retry(id: string | 'all'): Promise<number> {
    const now = this.clock();
    return this.change(id, (j) =>
      j.leaseToken !== ''
        ? 'keep'
        : {
            ...j,
            recipients: j.recipients.map((r) => ({ ...r, nextAt: Math.min(r.nextAt, now) })),
          },
    );
  }

  drop(id: string): Promise<number> {
    return this.change(id, () => 'drop');
  }

  /** Dead letters, newest first. */
  dead(limit = 1000): DeadRecord[] {
    const out: DeadRecord[] = [];
    for (const { value } of this.store.dead.getRange({ reverse: true, limit })) {
      out.push(decodeDead(value));
    }
    return out;
  }

  oldestEntryId(): string | undefined {
    return firstKey(this.store.entries.getKeys({ limit: 1 }));
  }
}
