/**
 * What a settled lease changes, computed once for every backend: which recipients are done,
 * which are retried and when (backoff.ts), which are dead (permanent failure or maximum age), and
 * the job that remains. Pure: the backends only persist the plan, atomically where they can.
 */
import { nextAttemptAt, type Random } from './backoff.js';
import { RECORD_VERSION, type DeadRecord, type JobRecord, type RecipientState } from './record.js';
import type { LeasedJob, RecipientOutcome, RetryPolicy, SettleResult } from './types.js';

export interface SettlePlan {
  /** The job with its remaining recipients, or undefined when it is finished. */
  readonly next: JobRecord | undefined;
  readonly dead: readonly DeadRecord[];
  readonly delivered: number;
  readonly retried: number;
}

/** What a lease hands out of `job`: its due `recipients`, its `body`, and `deliveries`. */
export function leasedJob(
  job: JobRecord,
  recipients: readonly string[],
  body: Uint8Array,
  deliveries: number,
): LeasedJob {
  return {
    jobId: job.jobId,
    entryId: job.entryId,
    messageId: job.messageId,
    sender: job.sender,
    senderKind: job.senderKind,
    bounce: job.bounce,
    destination: job.destination,
    recipients,
    body,
    enqueuedAt: job.enqueuedAt,
    deliveries,
  };
}

/** The recipients of `job` that are due at `now` (the ones a lease hands out). */
export function dueRecipients(job: JobRecord, now: number): string[] {
  return job.recipients.filter((r) => r.nextAt <= now).map((r) => r.address);
}

/** The time the job is next due: its earliest pending recipient. */
export function dueAt(job: JobRecord): number {
  let due = Infinity;
  for (const r of job.recipients) due = Math.min(due, r.nextAt);
  return due === Infinity ? 0 : due;
}

/** The reason text kept in records: one line, bounded, no control characters. */
export function cleanReason(reason: string): string {
  // eslint-disable-next-line no-control-regex
  const line = reason.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return line.length > 512 ? `${line.slice(0, 509)}...` : line || 'no reason given';
}

export function planSettle(
  job: JobRecord,
  leased: readonly string[],
  outcomes: readonly RecipientOutcome[],
  now: number,
  policy: RetryPolicy,
  random: Random,
): SettlePlan {
  const byRecipient = new Map<string, RecipientOutcome>();
  for (const o of outcomes) byRecipient.set(o.recipient, o);
  const leasedSet = new Set(leased);
  const remaining: RecipientState[] = [];
  const dead: DeadRecord[] = [];
  let delivered = 0;
  let retried = 0;
  const bury = (r: RecipientState, reason: string, kind: DeadRecord['kind']): void => {
    dead.push({
      v: RECORD_VERSION,
      entryId: job.entryId,
      jobId: job.jobId,
      messageId: job.messageId,
      sender: job.sender,
      senderKind: job.senderKind,
      recipient: r.address,
      destination: job.destination,
      reason: cleanReason(reason),
      kind,
      attempts: r.attempts,
      enqueuedAt: job.enqueuedAt,
      deadAt: now,
    });
  };
  for (const r of job.recipients) {
    if (!leasedSet.has(r.address)) {
      remaining.push(r);
      continue;
    }
    const o = byRecipient.get(r.address) ?? {
      recipient: r.address,
      status: 'temporary' as const,
      reason: 'no outcome reported',
    };
    if (o.status === 'delivered') {
      delivered++;
    } else if (o.status === 'permanent') {
      bury({ ...r, attempts: r.attempts + 1 }, o.reason, 'permanent');
    } else {
      const attempts = r.attempts + 1;
      const at = nextAttemptAt(attempts, job.enqueuedAt, now, policy, random);
      if (at === undefined) {
        bury({ ...r, attempts }, `delivery time expired: ${o.reason}`, 'expired');
      } else {
        retried++;
        remaining.push({
          address: r.address,
          attempts,
          nextAt: at,
          lastError: cleanReason(o.reason),
        });
      }
    }
  }
  const next =
    remaining.length === 0
      ? undefined
      : { ...job, recipients: remaining, deliveries: job.deliveries + 1, rev: job.rev + 1 };
  return { next, dead, delivered, retried };
}

/** What a backend reports once it has persisted `plan` (and the bounce, if it enqueued one). */
export function settleResult(plan: SettlePlan, bounceEntryId: string | undefined): SettleResult {
  return {
    delivered: plan.delivered,
    retried: plan.retried,
    dead: plan.dead.length,
    ...(bounceEntryId !== undefined ? { bounceEntryId } : {}),
  };
}
