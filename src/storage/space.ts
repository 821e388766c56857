/**
 * Room on the file system of the embedded stores (the lmdb queue and mailboxes, in the data
 * directory), and what a write that fails for lack of room becomes.
 *
 * - A free-space reserve (AFTERSMTP_STORAGE_MIN_FREE_BYTES, like Postfix's queue_minfree): below
 *   it, new mail (a queue entry, a mailbox delivery) is refused with StorageFullError before
 *   anything is written, while the writes that move mail on or free room (leases, settles,
 *   acks, purges) go on. The free space is read with statfs, at most every REFRESH_MS.
 * - A floor under the reserve that no setting removes (storageFloor: twice the largest envelope
 *   and 4 MiB): LMDB must not be left to find the disk full. lmdb-js 3.5.6 saves its free-page
 *   list in place, and a commit that fails for lack of room in the middle of that save can
 *   corrupt the process heap: the process aborts (SIGABRT in mdb_page_spill) at a later write,
 *   seen on a 40 MiB file system with no reserve. So new mail stops while there is still room
 *   for the largest transaction to commit.
 * - A write that fails anyway (another process filled the disk faster than the free space is
 *   read: ENOSPC, EDQUOT, LMDB's MDB_MAP_FULL, or the EIO that LMDB reports when it cannot spill
 *   pages to a full disk) becomes StorageFullError: a temporary refusal (gRPC UNAVAILABLE, QUIC
 *   BUSY, SMTP 452 4.3.1). The process may still end then (the corruption above); nothing
 *   committed is lost by it, as the kill tests show.
 * - Every change between "has room" and "full" is reported once to `onChange` (the log line),
 *   and counted (metrics).
 *
 * Guarantees: nothing acknowledged is touched by a refusal (a refused write is a whole
 * transaction that did not commit); the check costs one statfs per REFRESH_MS.
 */
import { statfsSync } from 'node:fs';
import { StorageFullError } from '../errors.js';
import { workAlone } from '../workload.js';

/** How long a free-space reading is reused. */
export const REFRESH_MS = 250;
/** Errno values and LMDB codes that mean "no room". */
const NO_ROOM = new Set([28 /* ENOSPC */, 122 /* EDQUOT */, -30792 /* MDB_MAP_FULL */]);
const EIO = 5;
/** An EIO is taken for a full disk when less than this (over the reserve) is left. */
const EIO_MARGIN = 64 * 1024 * 1024;
/** Once full, new mail is taken again when this much more than the reserve is free. */
export const REARM_BYTES = 2 * 1024 * 1024;

/**
 * The least reserve, whatever AFTERSMTP_STORAGE_MIN_FREE_BYTES says: room for the largest
 * envelope in the queue and in a mailbox at once, and 4 MiB for LMDB's pages around them.
 */
export function storageFloor(maxEnvelopeBytes: number): number {
  return 2 * maxEnvelopeBytes + 4 * 1024 * 1024;
}

export interface StorageSpaceOptions {
  /** A path on the file system to watch (the data directory). */
  readonly path: string;
  /** The reserve: new mail is refused below it (or below `floorBytes`, if more). */
  readonly minFreeBytes: number;
  /** The least reserve (storageFloor); default 0. */
  readonly floorBytes?: number;
  /** Called when the store becomes full (true) or has room again (false). */
  readonly onChange?: (full: boolean, freeBytes: number, why: string) => void;
  /** Free bytes of the file system at `path` (tests); default statfs. */
  readonly freeBytes?: (path: string) => number;
  readonly now?: () => number;
}

export interface StorageStats {
  freeBytes: number;
  /** 1 while new mail is refused. */
  full: number;
  /** New mail refused because the reserve was reached. */
  refused: number;
  /** Writes that failed for lack of room. */
  writeFailures: number;
}

function statfsFree(path: string): number {
  const s = statfsSync(path);
  return Number(s.bavail) * Number(s.bsize);
}

export class StorageSpace {
  readonly #o: StorageSpaceOptions;
  readonly #free: (path: string) => number;
  readonly #now: () => number;
  /** The reserve in force: the setting, or the floor when that is more. */
  readonly #reserve: number;
  #readAt = -Infinity;
  #freeBytes = Infinity;
  #full = false;
  #refused = 0;
  #writeFailures = 0;

  constructor(opts: StorageSpaceOptions) {
    this.#o = opts;
    this.#free = opts.freeBytes ?? statfsFree;
    this.#now = opts.now ?? Date.now;
    this.#reserve = Math.max(opts.minFreeBytes, opts.floorBytes ?? 0);
  }

  /** The reserve in force: the setting, or the floor when that is more. */
  get reserveBytes(): number {
    return this.#reserve;
  }

  /** Free bytes now (a reading at most REFRESH_MS old); Infinity when it cannot be read. */
  freeBytes(): number {
    const now = this.#now();
    if (now - this.#readAt >= REFRESH_MS) {
      this.#readAt = now;
      try {
        this.#freeBytes = this.#free(this.#o.path);
      } catch {
        this.#freeBytes = Infinity;
      }
    }
    return this.#freeBytes;
  }

  #setFull(full: boolean, why: string): void {
    if (full === this.#full) return;
    this.#full = full;
    this.#o.onChange?.(full, this.#freeBytes, why);
  }

  /**
   * Before new mail is written (`what` names it in the error): throws StorageFullError when
   * the file system has less than the reserve left.
   */
  admit(what: string): void {
    const min = this.#reserve;
    const free = this.freeBytes();
    // Once full (below the reserve, or a write failed for lack of room), new mail waits until
    // REARM_BYTES more than the reserve are free: no flapping at the edge, and no hammering a
    // disk that has just failed a write.
    const floor = this.#full ? min + REARM_BYTES : min;
    if (free < floor && (min > 0 || this.#full)) {
      this.#refused++;
      this.#setFull(true, `less than the ${min}-byte reserve is free`);
      throw new StorageFullError(
        `${what} refused: ${free} bytes free on the file system of ${this.#o.path}, below ${floor} (AFTERSMTP_STORAGE_MIN_FREE_BYTES and its margin)`,
      );
    }
    this.#setFull(false, 'there is room again');
  }

  /**
   * A failed write's error as it should travel: StorageFullError when it failed for lack of
   * room (`code` is its errno or LMDB code, if known), else `err` itself.
   */
  classify(err: unknown, code?: number): unknown {
    if (err instanceof StorageFullError) return err;
    const c = code ?? (err as { code?: unknown })?.code;
    const n = typeof c === 'number' ? c : c === 'ENOSPC' ? 28 : c === 'EDQUOT' ? 122 : undefined;
    this.#readAt = -Infinity; // look again: a failure is news
    const lowRoom = this.freeBytes() < this.#reserve + EIO_MARGIN;
    if ((n !== undefined && NO_ROOM.has(n)) || (n === EIO && lowRoom)) {
      this.#writeFailures++;
      this.#setFull(true, `a write failed for lack of room (code ${n})`);
      return new StorageFullError(
        `the write failed for lack of room on the file system of ${this.#o.path}`,
        err,
      );
    }
    return err;
  }

  stats(): StorageStats {
    return {
      freeBytes: Number.isFinite(this.#freeBytes) ? this.#freeBytes : -1,
      full: this.#full ? 1 : 0,
      refused: this.#refused,
      writeFailures: this.#writeFailures,
    };
  }
}

/** The LMDB environment an LmdbWriter works on (lmdb-js RootDatabase). */
export interface LmdbRoot {
  transaction<T>(fn: () => T): Promise<T>;
  transactionSync<T>(fn: () => T): T;
  readonly flushed: PromiseLike<unknown>;
}

/** lmdb-js's RootDatabase.sync (mdb_env_sync on its write thread), missing from its types. */
type Syncable = { sync?: (callback: (error?: unknown) => void) => unknown };

/** How long a flush waits for lmdb-js before it syncs the environment itself. */
const FLUSH_PATIENCE_MS = 10_000;

/**
 * When the writer's commits on the event loop take longer than this on average (a slow disk's
 * flush: a network block device, a busy array; the average moves an eighth of the way to each
 * commit's time, so one stray slow flush does not count), its commits go to the write thread for
 * HERE_PAUSE_MS: the event loop is not held for slow flushes, even with no other message waiting.
 */
const HERE_MAX_MS = 4;
const HERE_PAUSE_MS = 10_000;

/**
 * Writes to one LMDB environment and waits for them to be on disk, through the failures of a
 * full disk:
 * - a failed commit's error is turned into what it means: lmdb-js rejects it with an error
 *   whose `commitError` promise carries the cause (rejected unobserved otherwise); the cause's
 *   code decides whether it was for lack of room (StorageFullError) or something else;
 * - lmdb-js never settles the flush promise of a batch whose commit failed, and `flushed`
 *   returns the newest batch's: a writer whose own transaction committed could wait forever
 *   when a later one failed. So a flush that sees a commit fail (now or while it waits), or
 *   that waits longer than FLUSH_PATIENCE_MS, syncs the environment itself (mdb_env_sync),
 *   which puts every committed transaction on disk.
 *
 * A write for a message alone in the process (src/workload.ts), with none of this writer's
 * transactions on lmdb-js's write thread or waiting for their flush, commits on the event loop
 * (lmdb-js's transactionSync: the commit and its flush happen in the call, with no hand-off to
 * the write thread and back); others go to the write thread, which groups the transactions that
 * arrive together into one commit and one flush. Either way `flush` is what a caller awaits
 * before it answers. When commits on the event loop take longer than HERE_MAX_MS on average (a
 * slow disk), the writer keeps to the write thread for HERE_PAUSE_MS.
 */
export class LmdbWriter {
  readonly #root: LmdbRoot;
  readonly #space: StorageSpace | undefined;
  /** A commit failed and no write succeeded since: lmdb-js's current flush may never settle. */
  #suspect = false;
  /**
   * This writer's transactions handed to lmdb-js's write thread whose flush has not been seen:
   * a transaction on the event loop would wait for that flush (lmdb-js's overlapping sync) and
   * block the loop meanwhile. A failed batch's flush never settles: then it stays above zero.
   */
  #unflushed = 0;
  /** The average time of a commit on the event loop, ms, and when one may run there again. */
  #hereMs = 0;
  #hereAgainAt = 0;
  #failed!: Promise<void>;
  #signalFailure!: () => void;

  constructor(root: LmdbRoot, space?: StorageSpace) {
    this.#root = root;
    this.#space = space;
    this.#arm();
    tolerateLmdbCommitRejections();
  }

  #arm(): void {
    this.#failed = new Promise<void>((resolve) => (this.#signalFailure = resolve));
  }

  #noteFailure(): void {
    this.#suspect = true;
    const signal = this.#signalFailure;
    this.#arm();
    signal();
  }

  /**
   * One write transaction; a failed commit is classified (StorageFullError or its cause). `fn`
   * throws, if at all, before it writes: on the write thread the transactions of a batch are one
   * LMDB transaction, and lmdb-js commits what a callback wrote before it threw.
   */
  async write<T>(fn: () => T): Promise<T> {
    if (
      this.#unflushed === 0 &&
      !this.#suspect &&
      workAlone() &&
      performance.now() >= this.#hereAgainAt
    ) {
      return this.#writeHere(fn);
    }
    this.#unflushed++;
    try {
      const result = await this.#root.transaction(fn);
      this.#suspect = false;
      return result;
    } catch (err) {
      const commitError = (err as { commitError?: Promise<unknown> }).commitError;
      if (commitError === undefined) throw err; // the callback threw: no commit was tried
      this.#noteFailure();
      const cause = await settledWithin(commitError, 100);
      const c = (cause as { code?: unknown } | undefined)?.code;
      throw this.#space === undefined
        ? err
        : this.#space.classify(err, typeof c === 'number' ? c : undefined);
    } finally {
      Promise.resolve(this.#root.flushed).then(
        () => this.#unflushed--,
        () => undefined, // a failed flush: the next flush syncs the environment (#suspect)
      );
    }
  }

  /** `write` on the event loop: the transaction has committed when this returns. */
  #writeHere<T>(fn: () => T): T {
    let ran = false;
    const start = performance.now();
    try {
      const result = this.#root.transactionSync(() => {
        const r = fn();
        ran = true;
        return r;
      });
      this.#suspect = false;
      return result;
    } catch (err) {
      if (!ran) throw err; // the callback threw: the transaction was aborted
      this.#noteFailure();
      throw this.#space === undefined ? err : this.#space.classify(err);
    } finally {
      // A callback that threw committed nothing: only commits count towards the average.
      const end = performance.now();
      if (ran) this.#hereMs += (end - start - this.#hereMs) / 8;
      if (this.#hereMs > HERE_MAX_MS) {
        this.#hereAgainAt = end + HERE_PAUSE_MS;
        this.#hereMs = 0;
      }
    }
  }

  /** Resolves once every transaction committed so far is on disk. */
  async flush(): Promise<void> {
    if (!this.#suspect && (await this.#flushed()) === 'flushed') return;
    const root = this.#root as LmdbRoot & Syncable;
    if (typeof root.sync !== 'function') throw new Error('lmdb-js has no RootDatabase.sync');
    await new Promise<void>((resolve, reject) =>
      root.sync?.((error) => (error ? reject(this.#space?.classify(error) ?? error) : resolve())),
    );
  }

  /** lmdb-js's flush, unless a commit fails meanwhile or it takes too long. */
  async #flushed(): Promise<'flushed' | 'failed' | 'slow'> {
    const failed = this.#failed;
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      Promise.resolve(this.#root.flushed).then(() => 'flushed' as const),
      failed.then(() => 'failed' as const),
      new Promise<'slow'>(
        (resolve) => (timer = setTimeout(() => resolve('slow'), FLUSH_PATIENCE_MS)),
      ),
    ]);
    clearTimeout(timer);
    return outcome;
  }
}

/** The rejection reason of `p` if it settles within `ms`, else undefined. */
async function settledWithin(p: Promise<unknown>, ms: number): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const reason = await Promise.race([
    p.then(
      () => undefined,
      (e: unknown) => e,
    ),
    new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms))),
  ]);
  clearTimeout(timer);
  return reason;
}

let tolerating = false;

/**
 * lmdb-js (3.5) rejects two promises of its own that nobody can observe when a commit fails:
 * the commit promise of its event-turn write batch, and the `commitError` of the failed commit
 * when no caller asked for it. Unobserved, either ends the process (Node's default for an
 * unhandled rejection), and a full disk would take the gateway down. The failure itself
 * reaches every caller through the transaction it awaits (lmdbWrite), so these two are dropped
 * here, recognised by lmdb-js's message and stack; any other unhandled rejection is rethrown,
 * which keeps Node's default (the process ends). Installed once per process by the lmdb stores.
 */
export function tolerateLmdbCommitRejections(): void {
  if (tolerating) return;
  tolerating = true;
  process.on('unhandledRejection', (reason) => {
    const e = reason as { message?: unknown; stack?: unknown; code?: unknown } | undefined;
    const fromLmdb = typeof e?.stack === 'string' && /[\\/]lmdb[\\/]write\.js/.test(e.stack);
    if (
      fromLmdb &&
      (e?.message === 'Commit failed (see commitError for details)' || typeof e?.code === 'number')
    ) {
      return;
    }
    throw reason;
  });
}
