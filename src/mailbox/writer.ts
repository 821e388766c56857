/**
 * The one writer of the mailbox store (DESIGN.md §1b): every path that puts an envelope into a
 * mailbox of this gateway (the pipeline's commit for mail a peer gateway relays, the delivery
 * worker for queued local mail and bounces) goes through `deliver`. It signs the delivery
 * receipt (docs/PROTOCOL.md §12.4) with the gateway key, stores envelope, receipt and the
 * receipt's transit-log commitment (§12.7) in ONE store transaction, hands the commitment to the
 * transit outbox (which appends it to the log within milliseconds, transit-outbox.ts), and then
 * wakes the recipient's followers.
 *
 * Guarantees: when `deliver` resolves with `stored` or `duplicate`, the envelope and a receipt
 * for it are durable together; a redelivery of (recipient, message id) stores nothing new and
 * answers the first receipt; a redelivery whose ciphertext differs from the first one's is
 * `conflict` (nothing written; the caller refuses it). With a transit log, the receipt's
 * commitment is durable when `deliver` resolves, in the log or in the store's outbox (a
 * redelivery appends the first receipt's commitment at once: the log keeps one leaf per
 * commitment), so every receipt an ACK carries can be proven. Whether the recipient may receive mail is
 * not checked here: the pipeline and the worker ask the ledger before they call. The folder
 * (inbox, junk) is the one given, else the one the envelope's signed spam part names.
 */
import type { SecretKeySet } from '../identity/keys.js';
import {
  decodeStoredReceipt,
  encodeStoredReceipt,
  ReceiptSigner,
  type DeliveryReceipt,
} from '../envelope/receipt.js';
import { decodeEnvelope, type Envelope } from '../envelope/codec.js';
import type { MailboxFolder, MailboxStore } from '../store/types.js';
import { transitCommitment } from '../transit/index.js';
import { NO_METRICS, type MessagingMetrics } from './metrics.js';
import type { MailboxSignal } from './signal.js';
import type { TransitOutbox } from './transit-outbox.js';

export interface MailboxDelivery {
  /** The recipient DID: whose mailbox. */
  readonly recipient: string;
  /** The AMP message id (16 bytes), as the receipt names it. */
  readonly messageId: Buffer;
  /** The sender DID of the envelope's routing header. */
  readonly sender: string;
  readonly receivedAt: number;
  readonly expiresAt: number;
  /** SHA-256 of the envelope's ciphertext. */
  readonly ciphertextHash: Buffer;
  /** The encoded envelope. */
  readonly envelope: Uint8Array;
  /** The store's id for the message when it is not the hex of `messageId` (bounces). */
  readonly storeId?: string;
  /**
   * The folder; absent: read from the envelope's signed spam part (docs/PROTOCOL.md §6.9), so a
   * copy the delivery worker takes from the queue is filed where the pipeline decided.
   */
  readonly folder?: MailboxFolder;
}

/** Junk when the envelope's signed spam part says so, else the inbox. */
export function envelopeFolder(envelope: Pick<Envelope, 'spam'>): MailboxFolder {
  return envelope.spam?.verdict === 'junk' ? 'junk' : 'inbox';
}

/** The folder of encoded envelope bytes (the inbox for bytes that do not decode). */
export function folderOf(envelope: Uint8Array): MailboxFolder {
  try {
    return envelopeFolder(decodeEnvelope(envelope));
  } catch {
    return 'inbox';
  }
}

/** What a receipt names of a delivery. */
export type ReceiptFor = Pick<
  MailboxDelivery,
  'recipient' | 'messageId' | 'sender' | 'ciphertextHash'
>;

export type MailboxResult =
  | { readonly kind: 'stored' | 'duplicate'; readonly receipt: DeliveryReceipt }
  | { readonly kind: 'conflict' };

export interface MailboxWriterOptions {
  readonly store: Pick<MailboxStore, 'deliver' | 'keepReceipt' | 'keepShare'>;
  /** The gateway key that signs receipts. */
  readonly gatewayKeys: SecretKeySet;
  readonly signal?: MailboxSignal;
  readonly metrics?: MessagingMetrics;
  /** The way into the gateway's transit log: every receipt signed here is committed to it. */
  readonly transit?: Pick<TransitOutbox, 'add' | 'flush'>;
  readonly now?: () => number;
}

export class MailboxWriter {
  readonly #o: MailboxWriterOptions;
  readonly #receipts: ReceiptSigner;
  readonly #metrics: MessagingMetrics;
  readonly #now: () => number;

  constructor(options: MailboxWriterOptions) {
    this.#o = options;
    this.#receipts = new ReceiptSigner(options.gatewayKeys);
    this.#metrics = options.metrics ?? NO_METRICS;
    this.#now = options.now ?? Date.now;
  }

  /**
   * The receipt `deliver` would sign for `d`, signed now: a caller that knows the envelope's
   * ciphertext before it can store it (the on-ramp, while the gateway signature is being made)
   * passes it to `deliver`, so the two signatures are made side by side on the thread pool.
   */
  signReceipt(d: ReceiptFor): Promise<DeliveryReceipt> {
    // Receipts asked for together share a signature (a batch, docs/PROTOCOL.md §3.3); the
    // ML-DSA half (hybrid-v1) is signed on the thread pool, not the event loop.
    return this.#receipts.sign({
      messageId: d.messageId,
      ciphertextHash: d.ciphertextHash,
      recipient: d.recipient,
      sender: d.sender,
      deliveredAt: this.#now(),
    });
  }

  /** Stores `d` with `signed` (from `signReceipt` for the same delivery) or a receipt signed now. */
  async deliver(d: MailboxDelivery, signed?: Promise<DeliveryReceipt>): Promise<MailboxResult> {
    const receipt = await (signed ?? this.signReceipt(d));
    if (
      receipt.gateway !== this.#o.gatewayKeys.record.did ||
      receipt.recipient !== d.recipient ||
      receipt.sender !== d.sender ||
      !receipt.messageId.equals(d.messageId) ||
      !receipt.ciphertextHash.equals(d.ciphertextHash)
    ) {
      throw new Error('deliver: the receipt signed ahead is for another delivery');
    }
    const transit = this.#o.transit;
    const commitment = transit === undefined ? undefined : transitCommitment(receipt);
    const result = await this.#metrics.storeOp('deliver', () =>
      this.#o.store.deliver({
        recipient: d.recipient,
        messageId: d.storeId ?? d.messageId.toString('hex'),
        sender: d.sender,
        receivedAt: d.receivedAt,
        expiresAt: d.expiresAt,
        ciphertextHash: d.ciphertextHash,
        envelope: d.envelope,
        receipt: encodeStoredReceipt(receipt),
        folder: d.folder ?? folderOf(d.envelope),
        ...(commitment === undefined ? {} : { transitCommitment: commitment }),
      }),
    );
    if (!result.duplicate) {
      if (commitment !== undefined) transit?.add(commitment);
      this.#o.signal?.notify(d.recipient);
      return { kind: 'stored', receipt };
    }
    const first = decodeStoredReceipt(result.receipt);
    if (!first.ciphertextHash.equals(d.ciphertextHash)) return { kind: 'conflict' };
    if (transit !== undefined && first.gateway === this.#o.gatewayKeys.record.did) {
      // The first delivery's commitment is in the log or the outbox, unless it was stored before
      // there was an outbox: appended now, durably, before the answer.
      transit.add(transitCommitment(first));
      await transit.flush();
    }
    return { kind: 'duplicate', receipt: first };
  }

  /**
   * Keeps the verified receipt of another gateway for a message relayed there, so that its
   * sender reads it with GetReceipt (PROTOCOL.md §12.5) as for local deliveries.
   */
  async keepReceipt(receipt: DeliveryReceipt, expiresAt: number): Promise<void> {
    await this.#metrics.storeOp('putReceipt', () =>
      this.#o.store.keepReceipt({
        recipient: receipt.recipient,
        messageId: receipt.messageId.toString('hex'),
        receipt: encodeStoredReceipt(receipt),
        expiresAt,
      }),
    );
  }

  /**
   * Keeps the key share of an ephemeral message for one local recipient (PROTOCOL.md §6.10), until
   * the message's expiry, when the purge erases it.
   */
  async keepShare(
    recipient: string,
    messageId: string,
    share: Uint8Array,
    expiresAt: number,
  ): Promise<void> {
    await this.#metrics.storeOp('keepShare', () =>
      this.#o.store.keepShare({ recipient, messageId, share, expiresAt }),
    );
  }
}
