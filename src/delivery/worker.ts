/**
 * The local delivery worker: takes jobs for this gateway's own domain (`amp:<domain>`) from the
 * delivery queue and puts each recipient's copy into the mailbox store (DESIGN.md §3, §5;
 * docs/PROTOCOL.md §12.4). It is the only writer of the store.
 *
 * For each leased job:
 * - a message: the envelope must decode within bounds, carry a gateway signature that verifies
 *   with this gateway's own record from the ledger, and not be expired; then, per recipient (who
 *   must be named by a wrap and still be active in the ledger), store.deliver (durable,
 *   idempotent by recipient + message id) preceded by a receipt signed by the gateway key
 *   (message id, ciphertext hash, recipient, sender, time; kept if one exists), and a wake-up
 *   for followers;
 * - a bounce (an AMP failure notice the queue produced for dead recipients): sealed by the
 *   gateway as an AMP envelope to the original sender and delivered into the sender's mailbox
 *   (message id = the notice's id, so a retried bounce is stored once);
 * - another destination (a remote domain): temporary failure ERR_RELAY_UNAVAILABLE unless a
 *   remote handler is given (the QUIC relay plugs in there).
 *
 * Outcomes go back to the queue per recipient (settle): envelope-level faults (undecodable,
 * forged or missing gateway signature, expired) and recipient faults (unknown, revoked, no wrap)
 * are permanent and bounce; store trouble (quota, unavailable) is temporary and retried.
 * stop() stops leasing and waits for the jobs in hand; an unsettled lease simply expires.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { createHash, randomBytes } from 'node:crypto';
import { AfterSmtpError } from '../errors.js';
import { formatDid, parseDid } from '../identity/did.js';
import type { SecretKeySet } from '../identity/keys.js';
import type { IdentityLedger } from '../ledger/index.js';
import { decodeAmpNotice } from '../queue/amp-notice.js';
import type { DeliveryQueue, Lease, LeasedJob, RecipientOutcome } from '../queue/types.js';
import type { MailboxStore } from '../store/types.js';
import { currentRecord } from '../amp/client-api/auth.js';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../envelope/codec.js';
import { sealEnvelope } from '../envelope/envelope.js';
import { addGatewaySignature, verifyGatewaySignature } from '../envelope/gateway.js';
import { NO_METRICS, type MessagingMetrics } from '../mailbox/metrics.js';
import { encodeStoredReceipt, signReceipt } from '../envelope/receipt.js';
import type { MailboxSignal } from '../mailbox/signal.js';

export const FAILURE_NOTICE_CONTENT_TYPE = 'application/vnd.aftersmtp.failure-notice+json';
const NOTICE_TTL_MS = 7 * 24 * 3_600_000;

/** The queue destination of mail for the DIDs of `domain` (bounces route here by default). */
export function ampDestination(domain: string): string {
  return `amp:${domain.toLowerCase()}`;
}

export interface DeliveryLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Delivers a job for another domain (the QUIC relay); absent: ERR_RELAY_UNAVAILABLE. */
export type RemoteHandler = (job: LeasedJob) => Promise<RecipientOutcome[]>;

export interface LocalDeliveryOptions {
  readonly queue: DeliveryQueue;
  readonly store: MailboxStore;
  readonly ledger: IdentityLedger;
  readonly gateway: SecretKeySet;
  readonly domain: string;
  readonly maxEnvelopeBytes: number;
  readonly log: DeliveryLogger;
  readonly metrics?: MessagingMetrics;
  readonly signal?: MailboxSignal;
  readonly remote?: RemoteHandler;
  /** Jobs leased at once (default 16). */
  readonly batch?: number;
  readonly now?: () => number;
}

function reasonOf(err: unknown): string {
  return err instanceof AfterSmtpError ? `${err.code}: ${err.message}` : 'internal error';
}

export class LocalDeliveryWorker {
  readonly #o: LocalDeliveryOptions;
  readonly #metrics: MessagingMetrics;
  readonly #now: () => number;
  #stopping = false;
  #loop: Promise<void> | undefined;

  constructor(opts: LocalDeliveryOptions) {
    this.#o = opts;
    this.#metrics = opts.metrics ?? NO_METRICS;
    this.#now = opts.now ?? Date.now;
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
      let leases: Lease[];
      try {
        leases = await this.#o.queue.lease(this.#o.batch ?? 16, 500);
      } catch (err) {
        if (this.#stopping) break;
        this.#o.log.error({ err }, 'delivery: lease failed; retrying in 1 s');
        await sleep(1000);
        continue;
      }
      await Promise.all(leases.map((l) => this.#handle(l)));
    }
  }

  async #handle(lease: Lease): Promise<void> {
    const job = lease.job;
    const tx = { transaction: job.entryId, messageId: job.messageId, job: job.jobId };
    let outcomes: RecipientOutcome[];
    try {
      if (job.destination !== ampDestination(this.#o.domain)) {
        outcomes =
          this.#o.remote !== undefined
            ? await this.#o.remote(job)
            : job.recipients.map((recipient) => ({
                recipient,
                status: 'temporary' as const,
                reason: `ERR_RELAY_UNAVAILABLE: no relay to ${job.destination} yet`,
              }));
      } else if (job.bounce) {
        outcomes = await this.#deliverNotice(job);
      } else {
        outcomes = await this.#deliverEnvelope(job);
      }
    } catch (err) {
      this.#o.log.error({ ...tx, err }, 'delivery: unexpected failure; will retry');
      outcomes = job.recipients.map((recipient) => ({
        recipient,
        status: 'temporary' as const,
        reason: 'internal error',
      }));
    }
    for (const o of outcomes) this.#metrics.messageOut(o.status);
    try {
      const r = await lease.settle(outcomes);
      this.#o.log.info(
        {
          ...tx,
          destination: job.destination,
          delivered: r.delivered,
          retried: r.retried,
          dead: r.dead,
          bounce: r.bounceEntryId,
          failures: outcomes.filter((o) => o.status !== 'delivered'),
        },
        'delivery settled',
      );
    } catch (err) {
      // The lease will expire and the job will be handed out again (at least once).
      this.#o.log.error({ ...tx, err }, 'delivery: settle failed');
    }
  }

  #all(job: LeasedJob, status: 'permanent' | 'temporary', reason: string): RecipientOutcome[] {
    return job.recipients.map((recipient) => ({ recipient, status, reason }));
  }

  async #deliverEnvelope(job: LeasedJob): Promise<RecipientOutcome[]> {
    let env: Envelope;
    try {
      env = decodeEnvelope(job.body, { maxBytes: this.#o.maxEnvelopeBytes });
      const gatewayDid = formatDid({ domain: this.#o.domain, localpart: 'gateway' });
      verifyGatewaySignature(env, currentRecord(this.#o.ledger, gatewayDid));
    } catch (err) {
      return this.#all(job, 'permanent', reasonOf(err));
    }
    const now = this.#now();
    if (now >= env.expiresAt) {
      return this.#all(job, 'permanent', 'ERR_ENVELOPE_EXPIRED: the message expired in the queue');
    }
    const ciphertextHash = createHash('sha256').update(env.ciphertext).digest();
    const out: RecipientOutcome[] = [];
    for (const recipient of job.recipients) {
      if (!env.wraps.some((w) => w.recipient === recipient)) {
        out.push({ recipient, status: 'permanent', reason: 'ERR_ENVELOPE_NO_WRAP' });
        continue;
      }
      try {
        if (parseDid(recipient).domain !== this.#o.domain) throw new Error('not local');
        currentRecord(this.#o.ledger, recipient);
      } catch (err) {
        out.push({ recipient, status: 'permanent', reason: reasonOf(err) });
        continue;
      }
      try {
        await this.#store(recipient, job.messageId, env.sender, env.expiresAt, job, {
          ciphertextHash,
          envelope: job.body,
          receiptMessageId: env.messageId,
        });
        out.push({ recipient, status: 'delivered' });
      } catch (err) {
        out.push({ recipient, status: 'temporary', reason: reasonOf(err) });
      }
    }
    return out;
  }

  async #store(
    recipient: string,
    messageId: string,
    sender: string,
    expiresAt: number,
    job: LeasedJob,
    what: { ciphertextHash: Buffer; envelope: Uint8Array; receiptMessageId: Buffer },
  ): Promise<void> {
    const { store } = this.#o;
    // The receipt is stored first, so an envelope is never visible without its receipt. A crash
    // between the two leaves the job unsettled: it is leased again and the deliver happens then.
    const had =
      (await this.#metrics.storeOp('getReceipt', () => store.getReceipt(recipient, messageId))) !==
      undefined;
    if (!had) {
      const receipt = signReceipt(
        {
          messageId: what.receiptMessageId,
          ciphertextHash: what.ciphertextHash,
          recipient,
          sender,
          deliveredAt: this.#now(),
        },
        this.#o.gateway,
      );
      await this.#metrics.storeOp('putReceipt', () =>
        store.putReceipt(recipient, messageId, encodeStoredReceipt(receipt), expiresAt),
      );
    }
    await this.#metrics.storeOp('deliver', () =>
      store.deliver({
        recipient,
        messageId,
        sender,
        receivedAt: job.enqueuedAt,
        expiresAt,
        ciphertextHash: what.ciphertextHash,
        envelope: what.envelope,
      }),
    );
    this.#o.signal?.notify(recipient);
  }

  /** A failure notice from the queue, sealed by the gateway to the original sender. */
  async #deliverNotice(job: LeasedJob): Promise<RecipientOutcome[]> {
    let notice;
    try {
      notice = decodeAmpNotice(job.body);
    } catch (err) {
      return this.#all(job, 'permanent', reasonOf(err));
    }
    const out: RecipientOutcome[] = [];
    for (const recipient of job.recipients) {
      let record;
      try {
        record = currentRecord(this.#o.ledger, recipient);
      } catch (err) {
        out.push({ recipient, status: 'permanent', reason: reasonOf(err) });
        continue;
      }
      try {
        const now = this.#now();
        const sealed = sealEnvelope({
          author: this.#o.gateway,
          signedRecipients: [record],
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
        const signed = addGatewaySignature(sealed, this.#o.gateway);
        const bytes = encodeEnvelope(signed, { maxBytes: this.#o.maxEnvelopeBytes });
        await this.#store(recipient, job.messageId, signed.sender, signed.expiresAt, job, {
          ciphertextHash: createHash('sha256').update(signed.ciphertext).digest(),
          envelope: bytes,
          receiptMessageId: signed.messageId,
        });
        out.push({ recipient, status: 'delivered' });
      } catch (err) {
        out.push({ recipient, status: 'temporary', reason: reasonOf(err) });
      }
    }
    return out;
  }
}

/** A random transaction id for log lines that have no queue entry yet. */
export function transactionId(): string {
  return randomBytes(8).toString('hex');
}
