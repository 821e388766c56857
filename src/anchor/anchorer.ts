/**
 * Anchoring a log's checkpoints on a Substrate chain, off the hot path (DESIGN.md §2b): a timer
 * looks at the log's current checkpoint and, when `everyEntries` entries were added since the
 * last anchor or `intervalMs` passed with any entry added, commits an anchor job to the durable
 * queue (destination `anchor:substrate`, the signed checkpoint as body). The delivery worker hands
 * the job to `deliver`, which submits the commitment and keeps the anchor record beside the log.
 *
 * Guarantees:
 * - Registrations never wait for the chain: the timer only reads the cached checkpoint and writes
 *   a queue entry; a chain that is down makes `deliver` fail temporarily, and the queue retries
 *   the job with backoff until it lands (or the queue's maximum age passes).
 * - A job for a checkpoint older than one already anchored is settled without touching the chain
 *   (the newer anchor covers it: the log is append-only and checkpoints are consistent).
 * - Once per interval the latest anchor is checked against the chain; if the chain no longer
 *   holds it (a restarted or reset chain, a reorganisation), the record is dropped and the
 *   current checkpoint is anchored again.
 * - Anchor jobs are bounces with a null sender in the queue's terms: a failure never produces
 *   a bounce.
 */
import type { KeyringPair } from '@polkadot/keyring/types';
import { AfterSmtpError } from '../errors.js';
import { parseCheckpoint, parseNote } from '../ledger/index.js';
import type { DeliveryQueue, LeasedJob, RecipientOutcome } from '../queue/types.js';
import { AnchorError, type SubstrateChain } from './chain.js';
import type { AnchorStore } from './store.js';

export const ANCHOR_DESTINATION = 'anchor:substrate';

/** A log whose checkpoints are anchored (the IdentityLedger is one). */
export interface CheckpointSource {
  readonly origin: string;
  checkpoint(): { size: number; root: Buffer; note: string };
}

export interface AnchorLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface AnchorerOptions {
  readonly source: CheckpointSource;
  readonly chain: SubstrateChain;
  readonly account: KeyringPair;
  readonly store: AnchorStore;
  readonly queue: Pick<DeliveryQueue, 'begin'>;
  /** Anchor at least this often while entries are added (ms). */
  readonly intervalMs: number;
  /** Anchor as soon as this many entries were added since the last anchor. */
  readonly everyEntries: number;
  /** How often the timer looks (default min(1 s, intervalMs)). */
  readonly tickMs?: number;
  readonly log: AnchorLogger;
  readonly clock?: () => number;
}

export type AnchorOutcome = RecipientOutcome & { readonly code?: string };

export class Anchorer {
  readonly #o: AnchorerOptions;
  readonly #clock: () => number;
  #enqueuedSize: number;
  #enqueuedAt: number;
  #checkedAt: number;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;

  constructor(opts: AnchorerOptions) {
    if (!Number.isSafeInteger(opts.everyEntries) || opts.everyEntries < 1) {
      throw new RangeError('everyEntries must be a positive integer');
    }
    this.#o = opts;
    this.#clock = opts.clock ?? Date.now;
    this.#enqueuedSize = opts.store.latest(opts.source.origin)?.record.size ?? 0;
    this.#enqueuedAt = this.#clock();
    this.#checkedAt = this.#clock();
  }

  start(): void {
    if (this.#timer !== undefined) return;
    const every = this.#o.tickMs ?? Math.min(1000, this.#o.intervalMs);
    this.#timer = setInterval(() => {
      this.#ticking ??= this.tick()
        .catch((err: unknown) => this.#o.log.warn({ err }, 'anchor: tick failed'))
        .finally(() => {
          this.#ticking = undefined;
        });
    }, every);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#ticking;
  }

  /** Decides whether the current checkpoint is due for anchoring, and enqueues it if so. */
  async tick(): Promise<void> {
    const now = this.#clock();
    if (now - this.#checkedAt >= this.#o.intervalMs) {
      this.#checkedAt = now;
      await this.#recheck();
    }
    const cp = this.#o.source.checkpoint();
    if (cp.size === 0 || cp.size <= this.#enqueuedSize) return;
    const added = cp.size - this.#enqueuedSize;
    if (added >= this.#o.everyEntries || now - this.#enqueuedAt >= this.#o.intervalMs) {
      await this.enqueue(cp);
    }
  }

  /** Commits an anchor job for `cp` to the queue. */
  async enqueue(cp: { size: number; note: string }): Promise<void> {
    const origin = this.#o.source.origin;
    const tx = this.#o.queue.begin({
      messageId: `anchor/${origin}/${cp.size}`,
      sender: '',
      senderKind: 'amp',
      bounce: true,
    });
    tx.addRecipient({ address: origin, destination: ANCHOR_DESTINATION });
    tx.body(Buffer.from(cp.note, 'utf8'));
    const entry = await tx.commit();
    this.#enqueuedSize = cp.size;
    this.#enqueuedAt = this.#clock();
    this.#o.log.info({ origin, size: cp.size, entry }, 'anchor: checkpoint queued');
  }

  /** Whether the chain still holds the latest anchor; if it does not, anchor again. */
  async #recheck(): Promise<void> {
    const latest = this.#o.store.latest(this.#o.source.origin);
    if (latest === undefined) return;
    try {
      await this.#o.chain.verify(latest.record, latest.record, this.#o.account.address);
    } catch (err) {
      if (!(err instanceof AnchorError) || err.code !== 'ERR_ANCHOR_INVALID') return;
      this.#o.log.warn(
        { origin: latest.record.origin, size: latest.record.size, why: err.message },
        'anchor: the chain no longer holds the latest anchor; anchoring again',
      );
      this.#o.store.drop(latest.record.origin, latest.record.size);
      this.#enqueuedSize = this.#o.store.latest(this.#o.source.origin)?.record.size ?? 0;
      this.#enqueuedAt = 0;
      await this.enqueue(this.#o.source.checkpoint());
    }
  }

  /** The queue worker's handler of `anchor:` jobs. */
  deliver = async (job: LeasedJob): Promise<AnchorOutcome[]> => {
    type Result =
      | { status: 'delivered' }
      | { status: 'temporary' | 'permanent'; reason: string; code?: string };
    const all = (o: Result): AnchorOutcome[] =>
      job.recipients.map((recipient) => ({ recipient, ...o }));
    let cp;
    let note: string;
    try {
      note = Buffer.from(job.body).toString('utf8');
      cp = parseCheckpoint(parseNote(note).text);
    } catch (err) {
      return all({ status: 'permanent', reason: `not a signed checkpoint: ${String(err)}` });
    }
    if (cp.origin !== this.#o.source.origin) {
      return all({ status: 'permanent', reason: `not a checkpoint of ${this.#o.source.origin}` });
    }
    const latest = this.#o.store.latest(cp.origin);
    if (latest !== undefined && latest.record.size >= cp.size) return all({ status: 'delivered' });
    try {
      const record = await this.#o.chain.anchor(cp, this.#o.account);
      this.#o.store.put(record, note);
      this.#o.log.info(
        {
          origin: cp.origin,
          size: cp.size,
          block: record.blockHash,
          number: record.blockNumber,
          extrinsic: record.extrinsicIndex,
        },
        'anchor: checkpoint anchored',
      );
      return all({ status: 'delivered' });
    } catch (err) {
      const code = err instanceof AfterSmtpError ? err.code : 'ERR_ANCHOR_UNAVAILABLE';
      const reason = err instanceof AfterSmtpError ? `${err.code}: ${err.message}` : String(err);
      return all({ status: 'temporary', reason, code });
    }
  };
}
