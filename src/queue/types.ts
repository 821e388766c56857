/**
 * The delivery queue's contract: the one interface that the pipeline hands accepted mail to and
 * that delivery workers take it from, implemented by every backend (lmdb, nats, rabbitmq).
 *
 * Enqueue is a transaction (STYLE.md, "the hand-off to the queue"):
 *
 *   const tx = queue.begin({ messageId, sender, senderKind });
 *   tx.addRecipient({ address, destination });   // one or more
 *   tx.body(bytes);                              // exactly once
 *   const entryId = await tx.commit();           // resolves ONLY once the entry is durable
 *   // ...or tx.abort(): nothing was written, nothing will be delivered.
 *
 * - `commit()` resolves after the backend has made the entry durable (LMDB: committed and
 *   flushed to disk; NATS: JetStream acknowledged a file-stored publish on a server that syncs
 *   every write; RabbitMQ: a publisher confirm from a quorum queue). Only then may the caller
 *   answer 250 / send an AMP acknowledgement. If it rejects, nothing may be acknowledged.
 * - A transaction is used once: after commit or abort, every call throws.
 *
 * Delivery:
 *
 *   const leases = await queue.lease(max, waitMs);
 *   for (const l of leases) await l.settle(outcomesFor(l.job));
 *
 * - Recipients are grouped by `destination` (a domain, a peer gateway, the local store...); each
 *   group is a job scheduled on its own, so a destination that fails does not delay the others.
 * - A lease gives one worker a job until `leaseMs` elapses. `settle` reports one outcome per
 *   leased recipient: delivered, temporary failure (retried with exponential backoff and full
 *   jitter until the maximum age), permanent failure (dead-lettered and bounced at once).
 * - A lease that is neither settled nor renewed in time (the worker crashed or hung) expires and
 *   the job becomes deliverable again. Delivery is therefore AT LEAST ONCE: a recipient may be
 *   handed to a worker more than once; `messageId` (and `entryId`) let the receiver detect it.
 * - Dead recipients are kept in a dead-letter store; unless the entry is itself a bounce (null
 *   sender or `bounce: true`), a bounce is enqueued to the sender: an RFC 3464 DSN for a legacy
 *   sender, an AMP failure notice for an AMP sender. A bounce never bounces.
 * - A stored record that cannot be decoded is quarantined with the reason; `lease` moves on.
 */

export type BackendName = 'lmdb' | 'nats' | 'rabbitmq';
export const BACKEND_NAMES: readonly BackendName[] = ['lmdb', 'nats', 'rabbitmq'];

/** Who sent the message, which decides the form of a bounce. */
export type SenderKind = 'legacy' | 'amp';

export interface EnvelopeInfo {
  /** The message's own id (AMP message id, or the RFC 5322 Message-ID): duplicates share it. */
  readonly messageId: string;
  /** Reverse path (legacy address or DID); '' is the null sender of a bounce (RFC 5321 4.5.5). */
  readonly sender: string;
  readonly senderKind: SenderKind;
  /** Set on bounces; with a null sender it means: never produce a bounce about this entry. */
  readonly bounce?: boolean;
  /**
   * Commit the entry held (Postfix's hold queue): nothing is delivered until an operator releases
   * it. The embedded lmdb queue only; the others refuse it in `begin` (QueueUnsupportedError).
   */
  readonly hold?: boolean;
}

export interface RecipientInput {
  /** The recipient address or DID. */
  readonly address: string;
  /** Where it is delivered: the scheduling key (e.g. `amp:example.org`, `smtp:example.net`). */
  readonly destination: string;
}

/** The transactional hand-off; see the contract above. */
export interface EnqueueTransaction {
  addRecipient(recipient: RecipientInput): void;
  body(bytes: Uint8Array): void;
  /** Resolves with the entry id once the entry is durable; rejects if it is not. */
  commit(): Promise<string>;
  /** Discards the transaction; nothing is written. */
  abort(): void;
}

/** What a worker is handed: one destination of one entry, with the recipients due now. */
export interface LeasedJob {
  readonly jobId: string;
  readonly entryId: string;
  readonly messageId: string;
  readonly sender: string;
  readonly senderKind: SenderKind;
  readonly bounce: boolean;
  readonly destination: string;
  readonly recipients: readonly string[];
  readonly body: Uint8Array;
  /** When the entry was committed (ms since the epoch). */
  readonly enqueuedAt: number;
  /** How many times this job has been handed out before (lease expiries and retries). */
  readonly deliveries: number;
}

export type RecipientOutcome =
  | { readonly recipient: string; readonly status: 'delivered' }
  | { readonly recipient: string; readonly status: 'temporary'; readonly reason: string }
  | { readonly recipient: string; readonly status: 'permanent'; readonly reason: string };

export interface SettleResult {
  readonly delivered: number;
  /** Recipients scheduled again, with the time of their next attempt. */
  readonly retried: number;
  readonly dead: number;
  /** Entry id of the bounce that was enqueued, if one was. */
  readonly bounceEntryId?: string;
}

export interface Lease {
  readonly job: LeasedJob;
  /** Reports the outcome of every leased recipient (a missing one counts as temporary). */
  settle(outcomes: readonly RecipientOutcome[]): Promise<SettleResult>;
}

/** Counters for operators (the lead wires them to Prometheus); plain numbers. */
export interface QueueStats {
  /** Jobs waiting or leased (one job = one destination of one entry). */
  readonly depth: number;
  /** Age in seconds of the oldest queued job, 0 when empty. */
  readonly oldestAgeSeconds: number;
  /** Temporary failures rescheduled (since the store was created, or since start: see backend). */
  readonly retries: number;
  readonly deadLetters: number;
  readonly quarantined: number;
}

export interface DeliveryQueue {
  readonly backend: BackendName;
  begin(info: EnvelopeInfo): EnqueueTransaction;
  /**
   * Up to `max` due jobs, leased to the caller. Waits up to `waitMs` (default 0) for at least one
   * to become due; resolves with an empty list otherwise.
   */
  lease(max: number, waitMs?: number): Promise<Lease[]>;
  stats(): Promise<QueueStats>;
  close(): Promise<void>;
}

/** Retry policy: full-jitter exponential backoff per recipient, bounded by a maximum age. */
export interface RetryPolicy {
  readonly baseMs: number;
  readonly capMs: number;
  readonly maxAgeMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  baseMs: 30_000,
  capMs: 3_600_000,
  maxAgeMs: 5 * 24 * 3_600_000,
};
