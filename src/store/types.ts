/**
 * The mailbox store's contract: where envelopes addressed to this gateway's users wait until the
 * user's client fetches and acknowledges them. One interface, implemented by every backend
 * (lmdb, the embedded default; postgres, for several gateways sharing one database), and checked
 * by one contract suite (test/store/contract.ts).
 *
 *   const { seq, receipt } = await store.deliver({ recipient, messageId, sender, receivedAt,
 *                                                  expiresAt, ciphertextHash, envelope, receipt });
 *   // resolved => envelope and receipt durable, together: only now may an acknowledgement go.
 *   const page = await store.list(recipient, { after: cursor, limit: 100 });
 *   for (const e of page.envelopes) show(e);          // seq order, oldest first
 *   cursor = page.cursor;                              // resume from here (also after a restart)
 *   await store.ack(recipient, page.envelopes.map((e) => e.messageId));
 *
 * Guarantees:
 * - `deliver` writes the envelope and its receipt in one transaction (never one without the other)
 *   and resolves only once both are durable (LMDB: committed and fsynced, group
 *   commit; PostgreSQL: a committed transaction on a server with fsync and synchronous_commit on).
 *   If it rejects, nothing may be acknowledged.
 * - Idempotent by (recipient, messageId): delivering the same message to the same recipient again
 *   (an at-least-once relay retrying after a lost acknowledgement) stores nothing and resolves with
 *   the first delivery's sequence number, its receipt and `duplicate: true` — also after the envelope was acked,
 *   until its expiry (the store keeps a tombstone of acked ids until then).
 * - Every recipient has a monotonic sequence: each new envelope gets a larger `seq` than every
 *   envelope delivered to that recipient before. `list` returns envelopes with `seq > after` in seq
 *   order; a cursor stays valid across restarts and acks. Sequence numbers are never reused.
 * - `ack` and `fetch` take the recipient: a message id of another recipient's mailbox is simply
 *   not found (no cross-mailbox access by guessing ids). The caller (the client API) has already
 *   checked that the authenticated DID is that recipient.
 * - Expiry: an envelope whose `expiresAt` has passed is never returned (even before the purge has
 *   run) and is deleted by `purgeExpired`, together with its tombstone, expired receipts and key
 *   shares (docs/EXPIRY.md): after the purge the store holds nothing of it.
 * - Encryption at rest (DESIGN.md §5): metadata and bodies are sealed with the node key; lookups
 *   use a keyed hash (HMAC) of the recipient DID and of the message id, never the cleartext. See
 *   docs/STORE.md for what this does and does not protect against.
 * - A stored record that cannot be opened (corrupt bytes, failed authentication) is quarantined
 *   with the reason: `fetch` rejects with StoreCorruptError, `list` skips it and counts it in
 *   `page.quarantined`. A record sealed with a key that is not in the keyring is a StoreKeyError
 *   (at open, naming the missing key ids) and is never quarantined: the operator fixes the keyring.
 * - Every input is bounded (see StoreLimits); out of bounds is a StoreInputError, before any write.
 */
import type { Keyring } from './keys.js';

export type StoreBackendName = 'lmdb' | 'postgres';
export const STORE_BACKENDS: readonly StoreBackendName[] = ['lmdb', 'postgres'];

/** A mailbox's folders: every envelope is in exactly one (stored sealed with it). */
export type MailboxFolder = 'inbox' | 'junk';
export const MAILBOX_FOLDERS: readonly MailboxFolder[] = ['inbox', 'junk'];

/** What the relay hands to `deliver`: one envelope for one recipient. */
export interface DeliverInput {
  /** The recipient DID (did:aftersmtp:<domain>:<localpart>), whose mailbox this is. */
  readonly recipient: string;
  /** The AMP message id (printable ASCII, no spaces): duplicates share it. */
  readonly messageId: string;
  /** The sender DID as the verified routing header names it. */
  readonly sender: string;
  /** When this gateway accepted it (ms since the epoch). */
  readonly receivedAt: number;
  /** After this time (ms since the epoch) it is never returned and is purged. */
  readonly expiresAt: number;
  /** SHA-256 of the envelope's ciphertext (32 bytes), as signed in the receipt. */
  readonly ciphertextHash: Uint8Array;
  /** The encoded AMP envelope (already end-to-end ciphertext). */
  readonly envelope: Uint8Array;
  /** The mailbox folder (absent: inbox). Junk is where the spam policy files a copy. */
  readonly folder?: MailboxFolder;
}

/** What the mailbox writer hands to `deliver`: the envelope and its signed delivery receipt. */
export interface DeliverWithReceipt extends DeliverInput {
  /** The encoded receipt the gateway signed for this delivery; kept until `expiresAt`. */
  readonly receipt: Uint8Array;
  /**
   * The receipt's commitment for the gateway's transit log (32 bytes, docs/PROTOCOL.md §12.7):
   * put in the store's transit outbox in the same transaction, so it is durable with the receipt
   * and needs no commit of its own before the acknowledgement. Not written for a duplicate.
   */
  readonly transitCommitment?: Uint8Array;
}

/** A receipt of another gateway, for `keepReceipt`. */
export interface KeptReceipt {
  readonly recipient: string;
  readonly messageId: string;
  /** The encoded receipt (encodeStoredReceipt), verified by the caller. */
  readonly receipt: Uint8Array;
  readonly expiresAt: number;
}

/**
 * The gateway's key share of an ephemeral message (docs/PROTOCOL.md §6.10), for `keepShare`:
 * released to `recipient` only before `expiresAt`, and erased by `purgeExpired` at it.
 */
export interface KeptShare {
  readonly recipient: string;
  readonly messageId: string;
  /** The 32-byte share. */
  readonly share: Uint8Array;
  readonly expiresAt: number;
}

export const KEY_SHARE_LENGTH = 32;

/** A stored envelope as `list` and `fetch` return it. */
export interface StoredEnvelope extends DeliverInput {
  /** Position in the recipient's mailbox; strictly increasing per recipient. */
  readonly seq: number;
  /** `envelope.length`. */
  readonly size: number;
}

export interface DeliverResult {
  readonly seq: number;
  /** True when (recipient, messageId) was delivered before; no envelope was written. */
  readonly duplicate: boolean;
  /** The receipt stored for this delivery: the one given, or the first delivery's. */
  readonly receipt: Uint8Array;
}

export interface ListOptions {
  /** Return envelopes with `seq > after` (default 0: from the start). */
  readonly after?: number;
  /** At most this many envelopes (default and maximum: StoreLimits.maxPageSize). */
  readonly limit?: number;
  /**
   * Only envelopes of this folder (default: every folder). The folder is inside the sealed
   * record, so a page is chosen as without a filter and the others are left out: a page may hold
   * fewer than `limit` envelopes (even none) while `more` is true.
   */
  readonly folder?: MailboxFolder;
}

export interface Page {
  readonly envelopes: readonly StoredEnvelope[];
  /** The cursor to pass as `after` next: the largest seq looked at (>= the `after` given). */
  readonly cursor: number;
  /** True when the page stopped at a limit and more envelopes may follow. */
  readonly more: boolean;
  /** Records found corrupt on this page, quarantined and skipped. */
  readonly quarantined: number;
}

export interface MailboxUsage {
  /** Envelopes waiting (delivered, not acked, not purged). */
  readonly count: number;
  /** Sum of their sizes in bytes. */
  readonly bytes: number;
  /** The largest seq ever given in this mailbox (0 when none). */
  readonly lastSeq: number;
}

/** Hard limits on every input; a backend is constructed with these (defaults below). */
export interface StoreLimits {
  /** Largest envelope accepted, in bytes (AFTERSMTP_MAX_ENVELOPE_BYTES). */
  readonly maxEnvelopeBytes: number;
  /** Most envelopes `list` returns at once. */
  readonly maxPageSize: number;
  /** A page stops once it holds this many envelope bytes (it always holds at least one). */
  readonly maxPageBytes: number;
  /** Most message ids one `ack` call takes. */
  readonly maxAckIds: number;
  /** Largest receipt blob, in bytes. */
  readonly maxReceiptBytes: number;
  /** Envelopes one mailbox may hold; beyond it `deliver` is a StoreQuotaError (temporary). */
  readonly maxMailboxCount: number;
  /** Bytes one mailbox may hold. */
  readonly maxMailboxBytes: number;
}

export const DEFAULT_LIMITS: StoreLimits = {
  maxEnvelopeBytes: 32 * 1024 * 1024,
  maxPageSize: 256,
  maxPageBytes: 16 * 1024 * 1024,
  maxAckIds: 1024,
  maxReceiptBytes: 64 * 1024,
  maxMailboxCount: 1_000_000,
  maxMailboxBytes: 64 * 1024 * 1024 * 1024,
};

/** Longest DID and message id accepted (bytes of UTF-8 / characters of ASCII). */
export const MAX_DID_BYTES = 512;
export const MAX_MESSAGE_ID_LENGTH = 128;

export interface KeyStatus {
  /** The key id new records are sealed with. */
  readonly writeKeyId: string;
  /** Every key id the keyring holds (write key first). */
  readonly keyring: readonly string[];
  /** Key ids that stored records may still be sealed with: retire none of these yet. */
  readonly inUse: readonly string[];
}

export interface RewrapResult {
  /** Records re-sealed under the write key. */
  readonly rewrapped: number;
  /** Key ids no record is sealed with any more: they may now be removed from the keyring. */
  readonly retirable: readonly string[];
}

export interface MailboxStore {
  readonly backend: StoreBackendName;
  readonly limits: StoreLimits;
  /**
   * Stores an envelope and its receipt durably, in one transaction; idempotent by (recipient,
   * messageId). See the contract above.
   */
  deliver(input: DeliverWithReceipt): Promise<DeliverResult>;
  /** A page of the recipient's mailbox after a cursor, in seq order; expired ones left out. */
  list(recipient: string, options?: ListOptions): Promise<Page>;
  /** One envelope of the recipient's mailbox, or undefined (unknown, acked, expired). */
  fetch(recipient: string, messageId: string): Promise<StoredEnvelope | undefined>;
  /** Deletes the recipient's envelopes with these ids (durably); returns how many were deleted. */
  ack(recipient: string, messageIds: readonly string[]): Promise<number>;
  usage(recipient: string): Promise<MailboxUsage>;
  /** Deletes every envelope, tombstone, receipt and key share whose expiry is <= now; the count. */
  purgeExpired(now?: number): Promise<number>;
  /** The receipt, or undefined (unknown, or expired by the local clock or by `now` if given). */
  getReceipt(recipient: string, messageId: string, now?: number): Promise<Uint8Array | undefined>;
  /**
   * Keeps a receipt another gateway signed for mail this gateway relayed, so that the sender
   * reads it with GetReceipt as it reads the receipts of local deliveries; durable when it
   * resolves, until `expiresAt`. The first receipt kept for (recipient, messageId) stays.
   */
  keepReceipt(input: KeptReceipt): Promise<void>;
  /**
   * Keeps the key share of an ephemeral message for one recipient, sealed like every record;
   * durable when it resolves, until `expiresAt`. The first share kept for (recipient, messageId)
   * stays. An expired one is a StoreInputError.
   */
  keepShare(input: KeptShare): Promise<void>;
  /**
   * Up to `limit` commitments of the transit outbox (written by `deliver`), not yet removed by
   * `transitLogged`: what must still reach the transit log.
   */
  transitOutbox(limit: number): Promise<Buffer[]>;
  /**
   * Removes these commitments from the transit outbox: they are durable in the transit log. Not
   * necessarily durable when it resolves (a removal a crash takes back is appended again, and the
   * log keeps one leaf per commitment).
   */
  transitLogged(commitments: readonly Uint8Array[]): Promise<void>;
  /** The recipient's share of a message, or undefined (unknown, or `expiresAt <= now`). */
  releaseShare(recipient: string, messageId: string, now: number): Promise<Uint8Array | undefined>;
  /** Which keys seal what (for the rotation procedure in docs/STORE.md). */
  keyStatus(): Promise<KeyStatus>;
  /**
   * Re-seals every record under the write key; afterwards the other keys can be retired. Waits
   * for a `useKeyring` in progress, and `useKeyring` waits for it.
   */
  rewrap(): Promise<RewrapResult>;
  /**
   * Takes a changed keyring while serving (docs/STORE.md, Key rotation). Refused with a
   * StoreKeyError, the keyring in force kept, when it lacks a key that records may still be
   * sealed with (`keyStatus().inUse`); otherwise the index key is wrapped under its write key,
   * durably, before any record is sealed with that key.
   */
  useKeyring(keyring: Keyring): Promise<void>;
  /** How many records were quarantined (since the store was created). */
  quarantined(): Promise<number>;
  close(): Promise<void>;
}
