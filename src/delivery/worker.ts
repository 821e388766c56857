/**
 * The delivery worker (DESIGN.md §1b, §5): takes committed jobs from the queue and routes each by
 * its destination: `amp:<our domain>` into local mailboxes (through the one mailbox writer),
 * `amp:<other domain>` to the QUIC relay, `smtp:<domain>` to the off-ramp, `anchor:`, `witness:` and
 * `webhook:` jobs to the handlers of those schemes (src/anchor, src/witness, src/script); bounces the queue made
 * for AMP senders are sealed by the gateway and put in the sender's mailbox. It reports one
 * outcome per recipient back to the queue (settle): delivered, temporary (retried with backoff),
 * permanent (bounced).
 *
 * Local mail: the envelope must decode within bounds, carry a gateway signature that verifies with
 * this gateway's own record, not be expired, and be wrapped for each recipient, who must still be
 * active in the ledger (the one recipient check, src/pipeline/recipients.ts); faults of the
 * envelope or the recipient are permanent; trouble of the store is temporary.
 *
 * A slow or dead destination delays only its own recipients: jobs run concurrently up to
 * `concurrency` (no job waits for another to finish), at most `perPeer` of them for one AMP peer
 * gateway (its jobs share one QUIC connection, a stream each) and `perDestination` for one other
 * remote destination (the off-ramp's: a connection each, as Postfix counts them), each slot held
 * until the destination has answered (keeping receipts and settling are local commits); further
 * jobs of a busy destination wait in hand (at most `concurrency` x 4 jobs are in hand, so leasing
 * goes on for the others) and one that waited `maxWaitMs` is put back as a temporary failure; a
 * destination that could not be reached at all (DNS, connection, handshake) is left alone for a
 * while: its jobs are put back at once without an attempt, as Postfix does with a dead
 * destination; the while is 5 s after the first such failure and doubles with each one in a row
 * up to `deadDestinationMs`, so a peer that was only restarting is tried again soon and one that
 * stays down costs one attempt a minute. The local mailboxes are one destination without a cap of
 * its own.
 *
 * Memory: the jobs in hand (running or waiting) hold their bodies, together at most
 * `maxHeldBytes`. A lease asks for no more jobs than would fit if each had the largest body the
 * gateway accepts (`maxEnvelopeBytes`), so the bound holds before the bodies are read; when
 * nothing is in hand one job is always leased, whatever its size.
 *
 * stop() stops leasing and waits for the jobs in hand; an unsettled lease simply expires.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AfterSmtpError } from '../errors.js';
import { isRoutine } from '../log.js';
import { formatDid, parseDid } from '../identity/did.js';
import type { SecretKeySet } from '../identity/keys.js';
import { decodeAmpNotice } from '../queue/amp-notice.js';
import type { DeliveryQueue, Lease, LeasedJob, RecipientOutcome } from '../queue/types.js';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../envelope/codec.js';
import { sealEnvelope } from '../envelope/envelope.js';
import { addGatewaySignature, verifyGatewaySignature } from '../envelope/gateway.js';
import { VerifiedBatches } from '../identity/batch-signature.js';
import { NO_METRICS, type MessagingMetrics } from '../mailbox/metrics.js';
import { ciphertextHash, type DeliveryReceipt } from '../envelope/receipt.js';
import type { MailboxWriter } from '../mailbox/writer.js';
import { ampDestination } from '../pipeline/addresses.js';
import { beginWork } from '../workload.js';
import { localState, type LedgerView } from '../pipeline/recipients.js';

export const FAILURE_NOTICE_CONTENT_TYPE = 'application/vnd.aftersmtp.failure-notice+json';
const NOTICE_TTL_MS = 7 * 24 * 3_600_000;

export interface DeliveryLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** A recipient's outcome, with the stable code of a failure when the handler has one. */
export type DeliveryOutcome = RecipientOutcome & { readonly code?: string };

/** Delivers a job for a destination other than the local mailboxes. */
export type DestinationHandler = (job: LeasedJob) => Promise<DeliveryOutcome[]>;

/** Failure codes that mean the destination itself could not be reached. */
const UNREACHABLE = new Set([
  'ERR_RELAY_DNS',
  'ERR_RELAY_UNAVAILABLE',
  'ERR_QUIC_HANDSHAKE_TIMEOUT',
  'ERR_QUIC_CONNECTION_REFUSED',
  'ERR_QUIC_TIMEOUT',
  'ERR_SMTP_UNREACHABLE',
  'ERR_SMTP_DNS',
  'ERR_ANCHOR_UNAVAILABLE',
  'ERR_WITNESS_UNAVAILABLE',
]);

export interface DeliveryWorkerOptions {
  readonly queue: DeliveryQueue;
  readonly mailbox: MailboxWriter;
  readonly ledger: LedgerView;
  readonly gateway: SecretKeySet;
  readonly domain: string;
  readonly maxEnvelopeBytes: number;
  readonly log: DeliveryLogger;
  readonly metrics?: MessagingMetrics;
  /** Another AMP domain (the QUIC relay); absent: a temporary failure. */
  readonly remote?: DestinationHandler;
  /** An ordinary address (the off-ramp); absent: a temporary failure. */
  readonly offramp?: DestinationHandler;
  /**
   * Destinations of other schemes, by scheme with its colon: `anchor:` (checkpoints anchored on a
   * chain), `witness:` (checkpoints sent to a witness), `webhook:` (MailScript's webhook calls). Jobs of a scheme with no handler wait.
   */
  readonly handlers?: Readonly<Record<string, DestinationHandler>>;
  /** Jobs in progress at once (default 64). */
  readonly concurrency?: number;
  /** Jobs in progress at once for one AMP peer gateway (`amp:<domain>`; default 32). */
  readonly perPeer?: number;
  /** Jobs in progress at once for one other remote destination (the off-ramp's; default 16). */
  readonly perDestination?: number;
  /** Bytes of job bodies in hand at once (default 1 GiB); see the memory note above. */
  readonly maxHeldBytes?: number;
  /** How long a job may wait in hand for its busy destination (default 60 s). */
  readonly maxWaitMs?: number;
  /** The longest an unreachable destination is left alone (default 60 s; the first time 5 s). */
  readonly deadDestinationMs?: number;
  readonly now?: () => number;
}

export const DEFAULT_MAX_HELD_BYTES = 1024 * 1024 * 1024;

/** How long a destination is left alone after its first unreachable attempt. */
const FIRST_DEAD_PAUSE_MS = 5_000;

function reasonOf(err: unknown): string {
  return err instanceof AfterSmtpError ? `${err.code}: ${err.message}` : 'internal error';
}

export class DeliveryWorker {
  readonly #o: DeliveryWorkerOptions;
  readonly #metrics: MessagingMetrics;
  readonly #now: () => number;
  readonly #concurrency: number;
  readonly #perPeer: number;
  readonly #perDestination: number;
  readonly #maxHeldBytes: number;
  /** Our own batch signatures already verified (a queued job is checked before it is stored). */
  readonly #batches = new VerifiedBatches();
  /** Bytes of the bodies of the jobs in hand (running or waiting). */
  #heldBytes = 0;
  readonly #deadMs: number;
  readonly #maxWaitMs: number;
  readonly #local: string;
  /** Jobs in progress, and per destination how many run and which wait their turn. */
  readonly #running = new Set<Promise<void>>();
  readonly #active = new Map<string, number>();
  readonly #waiting = new Map<string, { lease: Lease; since: number }[]>();
  #waitingCount = 0;
  /** Destinations found unreachable: until when they are left alone, and failures in a row. */
  readonly #dead = new Map<string, { until: number; failures: number }>();
  #stopping = false;
  #loop: Promise<void> | undefined;

  constructor(opts: DeliveryWorkerOptions) {
    this.#o = opts;
    this.#metrics = opts.metrics ?? NO_METRICS;
    this.#now = opts.now ?? Date.now;
    this.#concurrency = opts.concurrency ?? 64;
    this.#perPeer = Math.min(opts.perPeer ?? 32, this.#concurrency);
    this.#perDestination = Math.min(opts.perDestination ?? 16, this.#concurrency);
    this.#maxHeldBytes = opts.maxHeldBytes ?? DEFAULT_MAX_HELD_BYTES;
    this.#deadMs = opts.deadDestinationMs ?? 60_000;
    this.#maxWaitMs = opts.maxWaitMs ?? 60_000;
    this.#local = ampDestination(opts.domain);
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** Stops leasing and waits for the jobs in hand to be settled. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopping) {
      this.#expireWaiting();
      const free = Math.min(
        this.#concurrency - this.#running.size,
        this.#concurrency * 4 - this.#running.size - this.#waitingCount,
        this.#leasableByBytes(),
      );
      if (free <= 0) {
        await Promise.race([...this.#running, sleep(1000)]);
        continue;
      }
      let leases: Lease[];
      try {
        leases = await this.#o.queue.lease(free, 500);
      } catch (err) {
        if (this.#stopping) break;
        this.#o.log[isRoutine(err) ? 'warn' : 'error'](
          { err },
          'delivery: lease failed; retrying in 1 s',
        );
        await sleep(1000);
        continue;
      }
      for (const l of leases) {
        this.#heldBytes += l.job.body.byteLength;
        this.#admit(l);
      }
    }
    while (this.#running.size > 0) await Promise.race(this.#running);
  }

  /** How many jobs a lease may bring now without the bodies in hand passing `maxHeldBytes`. */
  #leasableByBytes(): number {
    const fit = Math.floor((this.#maxHeldBytes - this.#heldBytes) / this.#o.maxEnvelopeBytes);
    return this.#heldBytes === 0 ? Math.max(1, fit) : fit;
  }

  /** Starts a leased job now, queues it behind its destination's, or puts it back. */
  #admit(lease: Lease): void {
    const dest = lease.job.destination;
    const dead = this.#dead.get(dest);
    if (dead !== undefined && dead.until > this.#now()) {
      this.#track(lease, () =>
        this.#putBack(
          lease,
          'ERR_DESTINATION_DOWN: not attempted, the destination was unreachable moments ago',
        ),
      );
      return;
    }
    const cap =
      dest === this.#local
        ? this.#concurrency
        : dest.startsWith('amp:')
          ? this.#perPeer
          : this.#perDestination;
    if ((this.#active.get(dest) ?? 0) < cap) {
      this.#launch(lease);
      return;
    }
    const waiting = this.#waiting.get(dest) ?? [];
    waiting.push({ lease, since: this.#now() });
    this.#waiting.set(dest, waiting);
    this.#waitingCount++;
  }

  /** Puts back the jobs that waited too long for their busy destination. */
  #expireWaiting(): void {
    const limit = this.#now() - this.#maxWaitMs;
    for (const [dest, list] of this.#waiting) {
      while (list.length > 0 && (list[0] as { since: number }).since <= limit) {
        const { lease } = list.shift() as { lease: Lease };
        this.#waitingCount--;
        this.#track(lease, () =>
          this.#putBack(lease, 'ERR_DESTINATION_BUSY: waited too long for a delivery slot'),
        );
      }
      if (list.length === 0) this.#waiting.delete(dest);
    }
  }

  /**
   * Runs a job in one of its destination's slots. The slot is given back once the destination
   * has answered: keeping the receipts and settling are this gateway's own commits, which load
   * no destination (the job still counts towards `concurrency` until it is settled).
   */
  #launch(lease: Lease): void {
    const dest = lease.job.destination;
    this.#active.set(dest, (this.#active.get(dest) ?? 0) + 1);
    let slotHeld = true;
    const releaseSlot = (): void => {
      if (!slotHeld) return;
      slotHeld = false;
      const n = (this.#active.get(dest) ?? 1) - 1;
      if (n === 0) this.#active.delete(dest);
      else this.#active.set(dest, n);
      const list = this.#waiting.get(dest);
      const next = list?.shift();
      if (list?.length === 0) this.#waiting.delete(dest);
      if (next !== undefined) {
        this.#waitingCount--;
        this.#admit(next.lease);
      }
    };
    this.#track(lease, () => this.#handle(lease, releaseSlot).finally(releaseSlot));
  }

  /**
   * Starts the last step of a leased job (its delivery, or putting it back) and follows it: then
   * the job is out of hand. Until then it counts as a message in flight (src/workload.ts).
   */
  #track(lease: Lease, start: () => Promise<void>): void {
    const done = beginWork();
    const tracked = start().finally(() => {
      done();
      this.#running.delete(tracked);
      this.#heldBytes -= lease.job.body.byteLength;
    });
    this.#running.add(tracked);
  }

  /** Settles every recipient of a job as a temporary failure, without an attempt. */
  async #putBack(lease: Lease, reason: string): Promise<void> {
    await this.#settle(
      lease,
      lease.job.recipients.map((recipient) => ({ recipient, status: 'temporary', reason })),
    );
  }

  async #handle(lease: Lease, answered: () => void): Promise<void> {
    const job = lease.job;
    let outcomes: DeliveryOutcome[];
    try {
      outcomes = await this.#deliver(job);
    } catch (err) {
      this.#o.log.error(
        { messageId: job.messageId, entry: job.entryId, job: job.jobId, err },
        'delivery: unexpected failure; will retry',
      );
      outcomes = this.#all(job, 'temporary', 'internal error');
    }
    if (
      outcomes.length > 0 &&
      outcomes.every(
        (o) => o.status === 'temporary' && o.code !== undefined && UNREACHABLE.has(o.code),
      )
    ) {
      const failures = (this.#dead.get(job.destination)?.failures ?? 0) + 1;
      const pause = Math.min(this.#deadMs, FIRST_DEAD_PAUSE_MS * 2 ** Math.min(failures - 1, 16));
      this.#dead.set(job.destination, { until: this.#now() + pause, failures });
    } else if (outcomes.some((o) => o.status === 'delivered')) {
      this.#dead.delete(job.destination);
    }
    answered();
    for (const o of outcomes) this.#metrics.messageOut(o.status);
    await this.#keepReceipts(job, outcomes);
    await this.#settle(lease, outcomes);
  }

  /**
   * Keeps the receipts a peer gateway signed (relay outcomes carry them, verified) so that the
   * sender can read them. A receipt that cannot be kept is logged; the delivery still counts.
   */
  async #keepReceipts(job: LeasedJob, outcomes: readonly DeliveryOutcome[]): Promise<void> {
    for (const o of outcomes) {
      if (!('receipt' in o) || !('expiresAt' in o)) continue;
      const { receipt, expiresAt } = o as { receipt: DeliveryReceipt; expiresAt: number };
      try {
        await this.#o.mailbox.keepReceipt(receipt, expiresAt);
      } catch (err) {
        this.#o.log.warn(
          { messageId: job.messageId, job: job.jobId, recipient: o.recipient, err },
          'delivery: the receipt of a relayed message could not be kept',
        );
      }
    }
  }

  #deliver(job: LeasedJob): Promise<DeliveryOutcome[]> {
    if (job.destination === this.#local) {
      return job.bounce ? this.#deliverNotice(job) : this.#deliverEnvelope(job);
    }
    const scheme = job.destination.slice(0, job.destination.indexOf(':') + 1);
    const handler =
      scheme === 'smtp:'
        ? this.#o.offramp
        : scheme === 'amp:'
          ? this.#o.remote
          : this.#o.handlers?.[scheme];
    if (handler === undefined) {
      return Promise.resolve(
        this.#all(job, 'temporary', `ERR_NO_ROUTE: nothing here delivers to ${job.destination}`),
      );
    }
    return handler(job);
  }

  async #settle(lease: Lease, outcomes: readonly DeliveryOutcome[]): Promise<void> {
    const job = lease.job;
    const ids = { messageId: job.messageId, entry: job.entryId, job: job.jobId };
    try {
      const r = await lease.settle(outcomes);
      const failures = outcomes.filter((o) => o.status !== 'delivered');
      const line = {
        ...ids,
        destination: job.destination,
        delivered: r.delivered,
        retried: r.retried,
        dead: r.dead,
        ...(r.bounceEntryId !== undefined ? { bounce: r.bounceEntryId } : {}),
        ...(failures.length > 0 ? { failures } : {}),
      };
      if (r.dead > 0) this.#o.log.warn(line, 'delivery settled');
      else this.#o.log.info(line, 'delivery settled');
    } catch (err) {
      // The lease will expire and the job will be handed out again (at least once).
      this.#o.log[isRoutine(err) ? 'warn' : 'error']({ ...ids, err }, 'delivery: settle failed');
    }
  }

  #all(job: LeasedJob, status: 'permanent' | 'temporary', reason: string): DeliveryOutcome[] {
    return job.recipients.map((recipient) => ({ recipient, status, reason }));
  }

  /** Whether `recipient` is a DID of this domain that is active now; the failure otherwise. */
  #checkLocal(recipient: string): string | undefined {
    try {
      if (parseDid(recipient).domain !== this.#o.domain) return 'ERR_NOT_OUR_DOMAIN';
    } catch (err) {
      return reasonOf(err);
    }
    const s = localState(recipient, this.#o.ledger);
    return s.state === 'current' ? undefined : `${s.refusal.code}: ${s.refusal.text}`;
  }

  async #deliverEnvelope(job: LeasedJob): Promise<DeliveryOutcome[]> {
    let env: Envelope;
    try {
      env = decodeEnvelope(job.body, { maxBytes: this.#o.maxEnvelopeBytes });
      const gatewayDid = formatDid({ domain: this.#o.domain, localpart: 'gateway' });
      const gw = this.#o.ledger.current(gatewayDid);
      if (gw.state !== 'current') throw new Error(`${gatewayDid} is not active in the ledger`);
      verifyGatewaySignature(env, gw.record, { batches: this.#batches });
    } catch (err) {
      return this.#all(job, 'permanent', reasonOf(err));
    }
    if (this.#now() >= env.expiresAt) {
      return this.#all(job, 'permanent', 'ERR_ENVELOPE_EXPIRED: the message expired in the queue');
    }
    const hash = ciphertextHash(env);
    const out: DeliveryOutcome[] = [];
    for (const recipient of job.recipients) {
      if (!env.wraps.some((w) => w.recipient === recipient)) {
        out.push({ recipient, status: 'permanent', reason: 'ERR_ENVELOPE_NO_WRAP' });
        continue;
      }
      const problem = this.#checkLocal(recipient);
      if (problem !== undefined) {
        out.push({ recipient, status: 'permanent', reason: problem });
        continue;
      }
      out.push(
        await this.#store(recipient, job, {
          messageId: env.messageId,
          sender: env.sender,
          expiresAt: env.expiresAt,
          ciphertextHash: hash,
          envelope: job.body,
        }),
      );
    }
    return out;
  }

  async #store(
    recipient: string,
    job: LeasedJob,
    what: {
      messageId: Buffer;
      sender: string;
      expiresAt: number;
      ciphertextHash: Buffer;
      envelope: Uint8Array;
      storeId?: string;
      /** A notice sealed again on a retry: its ciphertext differs from the stored one's. */
      resealed?: boolean;
    },
  ): Promise<DeliveryOutcome> {
    try {
      const { resealed, ...delivery } = what;
      const r = await this.#o.mailbox.deliver({
        recipient,
        receivedAt: job.enqueuedAt,
        ...delivery,
      });
      if (r.kind === 'conflict' && resealed !== true) {
        return {
          recipient,
          status: 'permanent',
          reason: 'ERR_DUPLICATE_CONFLICT: this message id was delivered before with other content',
        };
      }
      return { recipient, status: 'delivered' };
    } catch (err) {
      return { recipient, status: 'temporary', reason: reasonOf(err) };
    }
  }

  /** A failure notice from the queue, sealed by the gateway to the original sender. */
  async #deliverNotice(job: LeasedJob): Promise<DeliveryOutcome[]> {
    let notice;
    try {
      notice = decodeAmpNotice(job.body);
    } catch (err) {
      return this.#all(job, 'permanent', reasonOf(err));
    }
    const out: DeliveryOutcome[] = [];
    for (const recipient of job.recipients) {
      const s = localState(recipient, this.#o.ledger);
      if (s.state !== 'current') {
        out.push({
          recipient,
          status: 'permanent',
          reason: `${s.refusal.code}: ${s.refusal.text}`,
        });
        continue;
      }
      const now = this.#now();
      let signed: Envelope;
      try {
        const sealed = sealEnvelope({
          author: this.#o.gateway,
          signedRecipients: [s.record],
          body: {
            subject: `Undeliverable: ${notice.failures.map((f) => f.recipient).join(', ')}`.slice(
              0,
              1024,
            ),
            contentType: FAILURE_NOTICE_CONTENT_TYPE,
            content: Buffer.from(JSON.stringify(notice, null, 2)),
          },
          createdAt: now,
          expiresAt: now + NOTICE_TTL_MS,
        });
        signed = addGatewaySignature(sealed, this.#o.gateway);
      } catch (err) {
        out.push({ recipient, status: 'temporary', reason: reasonOf(err) });
        continue;
      }
      out.push(
        await this.#store(recipient, job, {
          messageId: signed.messageId,
          sender: signed.sender,
          expiresAt: signed.expiresAt,
          ciphertextHash: ciphertextHash(signed),
          envelope: encodeEnvelope(signed, { maxBytes: this.#o.maxEnvelopeBytes }),
          // A retried bounce is stored once: its id is the notice's queue message id.
          storeId: job.messageId,
          resealed: true,
        }),
      );
    }
    return out;
  }
}
