/**
 * The on-disk layout of the embedded queue (one LMDB environment, several named databases) and the
 * writes that keep its invariants, each meant to run inside one LMDB write transaction:
 *
 *   entries     <entry id>            -> EntryRecord (body + ids of unfinished jobs)
 *   jobs        <job id>              -> JobRecord
 *   schedule    [due ms, <job id>]    -> (empty)  exactly one key per job that is not held:
 *                                                 its next due time, or its lease expiry
 *   dead        [dead ms, <job id>, <recipient>] -> DeadRecord
 *   quarantine  [ms, <source>]        -> QuarantineRecord (undecodable bytes and the reason)
 *   meta        'retries' | 'dead' | 'quarantined' -> counters
 *   holders     <queue instance id>   -> HolderRecord (holders.ts): the open queues, whose ids
 *                                        begin their lease tokens
 *
 * Values are msgpackr records encoded by record.ts (the store itself sees bytes), so a corrupt
 * value surfaces as a QueueDecodeError that the caller quarantines. The writes are synchronous
 * (putSync, removeSync): they belong to the caller's transaction, whose one promise reports a
 * failed commit (src/storage/space.ts), instead of a promise per write that nobody awaits.
 */
import { open, type Database, type RootDatabase } from 'lmdb';
import { entryIdOf } from './ids.js';
import {
  RECORD_VERSION,
  decodeEntry,
  encodeRecord,
  type DeadRecord,
  type EntryRecord,
  type JobRecord,
} from './record.js';
import type { HolderRecord } from './holders.js';
import { dueAt } from './settle.js';

type Key = string | number | (string | number)[];
export type Counter = 'retries' | 'dead' | 'quarantined';

/** A job as stored: the record plus where it sits in the schedule and who holds its lease. */
export interface StoredJob extends JobRecord {
  /** The time part of its schedule key; -1 while held. */
  readonly scheduledAt: number;
  /** Token of the current lease, '' when not leased. */
  readonly leaseToken: string;
}

export class LmdbStore {
  readonly root: RootDatabase;
  readonly entries: Database<Buffer, string>;
  readonly jobs: Database<Buffer, string>;
  readonly schedule: Database<Buffer, Key>;
  readonly dead: Database<Buffer, Key>;
  readonly quarantine: Database<Buffer, Key>;
  readonly meta: Database<number, string>;
  readonly holders: Database<HolderRecord, string>;

  constructor(path: string) {
    // Never noSync: durability comes from awaiting `flushed` after each commit.
    this.root = open({ path, maxDbs: 8, compression: false });
    const bin = { encoding: 'binary' as const, compression: false };
    this.entries = this.root.openDB<Buffer, string>('entries', bin);
    this.jobs = this.root.openDB<Buffer, string>('jobs', bin);
    this.schedule = this.root.openDB<Buffer, Key>('schedule', bin);
    this.dead = this.root.openDB<Buffer, Key>('dead', bin);
    this.quarantine = this.root.openDB<Buffer, Key>('quarantine', bin);
    this.meta = this.root.openDB<number, string>('meta', { encoding: 'msgpack' });
    this.holders = this.root.openDB<HolderRecord, string>('holders', { encoding: 'msgpack' });
  }

  /** Resolves when every earlier commit is on disk. */
  get flushed(): Promise<boolean> {
    return this.root.flushed;
  }

  counter(name: Counter): number {
    return this.meta.get(name) ?? 0;
  }

  bump(name: Counter, by: number): void {
    if (by !== 0) this.meta.putSync(name, this.counter(name) + by);
  }

  /** Writes a job and its schedule key (none while held), removing the old key. */
  putJob(job: JobRecord, leaseToken = '', leaseUntil?: number, previous?: StoredJob): StoredJob {
    if (previous && previous.scheduledAt >= 0) {
      this.schedule.removeSync([previous.scheduledAt, previous.jobId]);
    }
    const scheduledAt = job.held ? -1 : (leaseUntil ?? dueAt(job));
    const stored: StoredJob = { ...job, scheduledAt, leaseToken };
    this.jobs.putSync(job.jobId, encodeRecord(stored));
    if (scheduledAt >= 0) this.schedule.putSync([scheduledAt, job.jobId], Buffer.alloc(0));
    return stored;
  }

  /** Removes a finished job, and its entry once no job of it is left. */
  removeJob(job: StoredJob | { jobId: string; scheduledAt: number }): void {
    if (job.scheduledAt >= 0) this.schedule.removeSync([job.scheduledAt, job.jobId]);
    this.jobs.removeSync(job.jobId);
    const entryId = entryIdOf(job.jobId);
    const raw = this.entries.get(entryId);
    if (raw === undefined) return;
    let entry: EntryRecord;
    try {
      entry = decodeEntry(raw);
    } catch {
      return; // quarantined when a job of it is next leased
    }
    const jobs = entry.jobs.filter((j) => j !== job.jobId);
    if (jobs.length === 0) this.entries.removeSync(entryId);
    else this.entries.putSync(entryId, encodeRecord({ ...entry, jobs }));
  }

  putEntry(entryId: string, jobIds: string[], body: Uint8Array): void {
    const entry: EntryRecord = { v: RECORD_VERSION, entryId, body, jobs: jobIds };
    this.entries.putSync(entryId, encodeRecord(entry));
  }

  putDead(records: readonly DeadRecord[]): void {
    for (const d of records) this.dead.putSync([d.deadAt, d.jobId, d.recipient], encodeRecord(d));
    this.bump('dead', records.length);
  }

  /** Moves undecodable bytes aside with the reason; the caller removes them from where they were. */
  putQuarantine(source: string, reason: string, raw: Uint8Array, now: number): void {
    const rec = { v: RECORD_VERSION, source, reason, raw, at: now };
    this.quarantine.putSync([now, source], encodeRecord(rec));
    this.bump('quarantined', 1);
  }

  close(): Promise<void> {
    return this.root.close();
  }
}
