/**
 * Commit (DESIGN.md §1b, §5): the one step that makes a message durable, after which (and only
 * after which) its entrance answers. Mail for the delivery workers is a queue transaction
 * (src/queue/types.ts: begin, add recipients, body, commit); mail for our own mailboxes goes
 * straight through the one mailbox writer when it arrives whole (a peer gateway's envelope,
 * whose ACK carries the receipts of those writes; the gateway's own sealed copies of an SMTP
 * message), and through the queue otherwise.
 *
 * Guarantees: `commitToQueue` resolves only when every entry it was given is durable; if any
 * commit fails it rejects (the entrance refuses with a temporary failure; entries that did
 * commit are delivered, and a client that sends again may cause a duplicate of those, which the
 * mailbox store recognises by message id). A queue entry holds ciphertext (sealed envelopes) or
 * a legacy message bound for the off-ramp, never a message in clear that was meant for AMP.
 */
import type { Envelope } from '../envelope/codec.js';
import { ciphertextHash } from '../envelope/receipt.js';
import { envelopeFolder, type MailboxWriter } from '../mailbox/writer.js';
import type { DeliveryQueue, EnvelopeInfo, RecipientInput } from '../queue/types.js';
import { refusal } from './refusals.js';
import type { SealedCopy } from './transform.js';
import type { RecipientResult } from './types.js';

/** One queue entry to commit: its recipients (with their destinations) and its body. */
export interface QueueEntry {
  readonly recipients: readonly RecipientInput[];
  readonly body: Uint8Array;
}

/** Commits every entry (concurrently: the queue shares one sync among them); their ids. */
export async function commitToQueue(
  queue: DeliveryQueue,
  info: EnvelopeInfo,
  entries: readonly QueueEntry[],
): Promise<string[]> {
  return Promise.all(
    entries.map(async (e) => {
      const tx = queue.begin(info);
      try {
        for (const r of e.recipients) tx.addRecipient(r);
        tx.body(e.body);
      } catch (err) {
        tx.abort();
        throw err;
      }
      return tx.commit();
    }),
  );
}

/**
 * Stores a relayed envelope for each accepted local recipient, in Junk for those in `junk` (the
 * spam policy's verdict); a result (receipt) for each.
 */
export async function commitToMailboxes(
  writer: MailboxWriter,
  env: Envelope,
  bytes: Uint8Array,
  recipients: readonly string[],
  receivedAt: number,
  junk: ReadonlySet<string> = new Set(),
): Promise<RecipientResult[]> {
  const hash = ciphertextHash(env);
  const out: RecipientResult[] = [];
  for (const recipient of recipients) {
    let r;
    try {
      r = await writer.deliver({
        recipient,
        messageId: env.messageId,
        sender: env.sender,
        receivedAt,
        expiresAt: env.expiresAt,
        ciphertextHash: hash,
        envelope: bytes,
        folder: junk.has(recipient) ? 'junk' : 'inbox',
      });
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ERR_STORE_QUOTA') {
        out.push({
          recipient,
          refusal: refusal('ERR_MAILBOX_FULL', `the mailbox of ${recipient} is full`),
        });
        continue;
      }
      throw err;
    }
    out.push(
      r.kind === 'conflict'
        ? {
            recipient,
            refusal: refusal(
              'ERR_DUPLICATE_CONFLICT',
              'this message id was already delivered with other content',
            ),
          }
        : { recipient, receipt: r.receipt },
    );
  }
  return out;
}

/**
 * Stores sealed copies for local recipients straight into their mailboxes; returns the copies
 * that could not be stored now (a full mailbox, the store unavailable), which the caller queues
 * so the delivery worker tries them again.
 */
export async function storeCopies(
  writer: MailboxWriter,
  copies: readonly SealedCopy[],
  receivedAt: number,
): Promise<SealedCopy[]> {
  const failed: SealedCopy[] = [];
  await Promise.all(
    copies.map(async (c) => {
      try {
        const r = await writer.deliver(
          {
            recipient: c.recipient,
            messageId: c.envelope.messageId,
            sender: c.envelope.sender,
            receivedAt,
            expiresAt: c.envelope.expiresAt,
            ciphertextHash: c.ciphertextHash,
            envelope: c.bytes,
            folder: envelopeFolder(c.envelope),
          },
          c.receipt,
        );
        if (r.kind === 'conflict') failed.push(c);
      } catch {
        failed.push(c);
      }
    }),
  );
  return failed;
}
