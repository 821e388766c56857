/**
 * The enqueue transaction every backend hands out: it collects recipients and the body in memory,
 * checks the contract (one body, at least one recipient, used once), groups recipients by
 * destination into jobs, and calls the backend's `persist`, whose promise resolves only when the
 * entry is durable. Nothing reaches the backend before `commit()`, so `abort()` needs no undo.
 */
import { QueueStateError } from './errors.js';
import { jobIdOf, newEntryId } from './ids.js';
import { RECORD_VERSION, type JobRecord } from './record.js';
import type { EnqueueTransaction, EnvelopeInfo, RecipientInput } from './types.js';

/** Writes a new entry durably: its jobs (one per destination) and its body. */
export type Persist = (entryId: string, jobs: JobRecord[], body: Uint8Array) => Promise<void>;

const MAX_FIELD = 2048;

function checkField(name: string, value: unknown, allowEmpty = false): void {
  if (
    typeof value !== 'string' ||
    (!allowEmpty && value.length === 0) ||
    value.length > MAX_FIELD
  ) {
    throw new QueueStateError(`${name} must be a string of 1 to ${MAX_FIELD} characters`);
  }
}

export class Transaction implements EnqueueTransaction {
  private readonly recipients = new Map<string, Set<string>>();
  private payload: Uint8Array | undefined;
  private state: 'open' | 'committing' | 'done' = 'open';

  constructor(
    private readonly info: EnvelopeInfo,
    private readonly persist: Persist,
    private readonly clock: () => number = Date.now,
  ) {
    checkField('messageId', info.messageId);
    checkField('sender', info.sender, true);
    if (info.senderKind !== 'legacy' && info.senderKind !== 'amp') {
      throw new QueueStateError('senderKind must be legacy or amp');
    }
  }

  private open(): void {
    if (this.state !== 'open') throw new QueueStateError('the transaction is already finished');
  }

  addRecipient(recipient: RecipientInput): void {
    this.open();
    checkField('recipient address', recipient.address);
    checkField('recipient destination', recipient.destination);
    let set = this.recipients.get(recipient.destination);
    if (!set) this.recipients.set(recipient.destination, (set = new Set()));
    set.add(recipient.address);
  }

  body(bytes: Uint8Array): void {
    this.open();
    if (this.payload !== undefined) throw new QueueStateError('the body was already given');
    if (!(bytes instanceof Uint8Array)) throw new QueueStateError('the body must be bytes');
    this.payload = bytes;
  }

  async commit(): Promise<string> {
    this.open();
    if (this.recipients.size === 0) throw new QueueStateError('no recipient was added');
    if (this.payload === undefined) throw new QueueStateError('no body was given');
    this.state = 'committing';
    const now = this.clock();
    const entryId = newEntryId(now);
    let index = 0;
    const jobs: JobRecord[] = [];
    for (const [destination, addresses] of this.recipients) {
      jobs.push({
        v: RECORD_VERSION,
        jobId: jobIdOf(entryId, index++),
        entryId,
        messageId: this.info.messageId,
        sender: this.info.sender,
        senderKind: this.info.senderKind,
        bounce: this.info.bounce === true || this.info.sender === '',
        destination,
        enqueuedAt: now,
        recipients: [...addresses].map((address) => ({
          address,
          attempts: 0,
          nextAt: now,
          lastError: '',
        })),
        deliveries: 0,
        held: this.info.hold === true,
        rev: 0,
      });
    }
    try {
      await this.persist(entryId, jobs, this.payload);
    } finally {
      this.state = 'done';
    }
    return entryId;
  }

  abort(): void {
    if (this.state === 'committing') throw new QueueStateError('commit is in progress');
    this.state = 'done';
  }
}
