/**
 * The receipts' way into the gateway's transit log (docs/PROTOCOL.md §12.7) with one commit per
 * delivery: the mailbox store puts a receipt's commitment in its transit outbox in the delivery's
 * own transaction (`DeliverWithReceipt.transitCommitment`), so the acknowledgement waits for that
 * one commit and fsync only. The outbox here appends those commitments to the log in groups
 * (one SQLite transaction, flushed to disk off the event loop, every `intervalMs` or `maxBatch`
 * commitments), then empties them from the store's outbox.
 *
 * Guarantees:
 * - A receipt whose delivery resolved is in the log or in the store's outbox; `recover` (at start,
 *   before any entrance opens) appends what a crash left in the outbox. A removal a crash takes
 *   back only appends a commitment again, and the log keeps one leaf per commitment.
 * - `prove` appends what is pending first, so a receipt an acknowledgement carried is provable
 *   as soon as the sender asks.
 * - A failed append leaves the commitments in the store's outbox (not in memory: a log that
 *   stays unwritable costs no memory per message), and the outbox is appended again from the
 *   store after `retryMs`, until it succeeds; `flush` throws the failure to a caller that needs
 *   the append now.
 * - A checkpoint never covers a leaf a crash could take back: appends are durable before they
 *   count (TransitLog).
 */
import type { MailboxStore } from '../store/types.js';
import type { TransitLog, TransitProof } from '../transit/index.js';

/** Commitments read from the store's outbox per step of `recover`. */
const RECOVER_BATCH = 1000;

export interface TransitOutboxOptions {
  readonly store: Pick<MailboxStore, 'transitOutbox' | 'transitLogged'>;
  readonly log: Pick<TransitLog, 'append' | 'prove' | 'inclusionProof'>;
  /** The longest a commitment waits before its group is appended (default 20 ms). */
  readonly intervalMs?: number;
  /** A group this large is appended at once (default 512). */
  readonly maxBatch?: number;
  /** After a failed append, the wait before the next try (default 1 s). */
  readonly retryMs?: number;
  /** Told of a failed append or outbox removal (the gateway logs it). */
  readonly onError: (err: unknown) => void;
}

export class TransitOutbox {
  readonly #o: TransitOutboxOptions;
  readonly #intervalMs: number;
  readonly #maxBatch: number;
  readonly #retryMs: number;
  #pending: Buffer[] = [];
  #timer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  #closed = false;
  #emptying: Promise<unknown> = Promise.resolve();

  constructor(options: TransitOutboxOptions) {
    this.#o = options;
    this.#intervalMs = options.intervalMs ?? 20;
    this.#maxBatch = options.maxBatch ?? 512;
    this.#retryMs = options.retryMs ?? 1000;
  }

  /** Appends what the store's outbox holds (left by a crash); returns how many commitments. */
  async recover(): Promise<number> {
    let total = 0;
    for (;;) {
      const batch = await this.#o.store.transitOutbox(RECOVER_BATCH);
      if (batch.length === 0) return total;
      await this.#o.log.append(batch);
      await this.#o.store.transitLogged(batch);
      total += batch.length;
    }
  }

  /** A commitment the store made durable in its outbox: appended within `intervalMs`. */
  add(commitment: Buffer): void {
    this.#pending.push(commitment);
    if (this.#pending.length >= this.#maxBatch) void this.#flushOrRetry();
    else this.#timer ??= setTimeout(() => void this.#flushOrRetry(), this.#intervalMs).unref();
  }

  /**
   * Appends every pending commitment now in one transaction, resolves once they are on disk, and
   * starts emptying them from the store's outbox. Rejects when the append fails (the commitments
   * stay in the store's outbox and are appended from there after `retryMs`).
   */
  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    try {
      await this.#o.log.append(batch);
    } catch (err) {
      this.#retry();
      throw err;
    }
    this.#emptying = this.#emptying
      .then(() => this.#o.store.transitLogged(batch))
      .catch(this.#o.onError);
  }

  /** Appends the store's outbox after `retryMs` (and again, until it succeeds). */
  #retry(): void {
    if (this.#closed) return;
    this.#retryTimer ??= setTimeout(() => {
      this.#emptying = this.#emptying
        .then(() => this.recover())
        .then(
          () => (this.#retryTimer = undefined),
          (err: unknown) => {
            this.#o.onError(err);
            this.#retryTimer = undefined;
            this.#retry();
          },
        );
    }, this.#retryMs).unref();
  }

  /** Appends what is pending; a failure is told to `onError` (and retried from the store). */
  #flushOrRetry(): Promise<void> {
    return this.flush().catch(this.#o.onError);
  }

  /** The proof of `commitment` in the log, after appending what is pending. */
  async prove(commitment: Buffer): Promise<TransitProof | undefined> {
    if (this.#pending.length > 0) await this.#flushOrRetry();
    return this.#o.log.prove(commitment);
  }

  inclusionProof(index: number, size: number): Buffer[] {
    return this.#o.log.inclusionProof(index, size);
  }

  /** Appends what is pending and waits for the store's outbox to be emptied of it. */
  async close(): Promise<void> {
    await this.#flushOrRetry();
    clearTimeout(this.#timer);
    clearTimeout(this.#retryTimer);
    this.#closed = true;
    await this.#emptying;
  }
}
