/**
 * The embedded mailbox store (the default backend): one LMDB environment in <data dir>/mailboxes,
 * every record sealed in this layer (ChaCha20-Poly1305 from the native core, record.ts) with the
 * node key. Layout (keys are raw bytes; rh = HMAC of the recipient DID, ih = HMAC of rh and the
 * message id, both under the index key; nothing in a key or a cleartext value names a DID):
 *
 *   meta        'index-keys' -> msgpack { [key id]: sealed index key }   (which keys are in use)
 *               'quarantined' -> count
 *   mailboxes   rh                   -> lastSeq u64 | count u64 | bytes u64
 *   envelopes   rh | seq u64         -> frame(header = ih | size u32), the sealed envelope record
 *   ids         rh | ih              -> seq u64 | expiresAt u64 | live u8 (live 0: acked tombstone)
 *   receipts    rh | ih              -> frame(header = expiresAt u64), the sealed receipt record
 *   shares      rh | ih              -> frame(header = expiresAt u64), the sealed key share record
 *   expiry      expiresAt u64 | kind u8 | rh | ih -> ''  (kind 0: ids entry, 1: receipt, 2: share)
 *   quarantine  at u64 | random u64  -> msgpack { source, reason, raw, at }
 *   transit     commitment (32 bytes) -> ''  (the transit outbox: receipts not yet in the log)
 *
 * Durability: every write runs in one LMDB write transaction and the call resolves after
 * `flushed` (NOTES-DEPENDENCIES: await put() means committed, not on disk). Concurrent calls share
 * a commit and its fsync (group commit). Mailbox rows are never deleted, so a sequence number is
 * never reused. In cleartext remain: how many mailboxes exist and each one's count, bytes and
 * sizes, expiry times, and key ids (docs/STORE.md).
 */
import { open, type Database, type RootDatabase } from 'lmdb';
import { Packr } from 'msgpackr';
import { randomBytes } from '../native/index.js';
import { LmdbWriter, type StorageSpace } from '../storage/space.js';
import { StoreClosedError, StoreCorruptError, StoreKeyError, StoreQuotaError } from './errors.js';
import { missingKeysError, type Keyring, type NodeKey } from './keys.js';
import { Serial } from '../serial.js';
import {
  checkAck,
  checkCommitments,
  checkDeliver,
  checkKept,
  checkShare,
  checkLimit,
  checkList,
  checkMessageId,
  checkRecipient,
  decodeEnvelopeRecord,
  decodeReceiptRecord,
  encodeEnvelopeRecord,
  encodeReceiptRecord,
  messageIdHash,
  openFrame,
  peekFrame,
  RecipientHashes,
  sealFrame,
} from './record.js';
import {
  DEFAULT_LIMITS,
  type DeliverWithReceipt,
  type KeptReceipt,
  type KeptShare,
  type DeliverResult,
  type KeyStatus,
  type ListOptions,
  type MailboxStore,
  type MailboxUsage,
  type Page,
  type RewrapResult,
  type StoreLimits,
  type StoredEnvelope,
} from './types.js';

export interface LmdbStoreOptions {
  readonly path: string;
  readonly keyring: Keyring;
  readonly limits?: Partial<StoreLimits>;
  /**
   * The room on the store's file system: deliveries are refused below its reserve, and writes
   * that fail for lack of room become StorageFullError (temporary).
   */
  readonly space?: StorageSpace;
}

const EMPTY = Buffer.alloc(0);
const INDEX_KEY_ID = Buffer.from('index-key');
const MAX_SEQ = Number.MAX_SAFE_INTEGER;
const BATCH = 512;
const meta = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}
const readU64 = (b: Buffer, at: number): number => Number(b.readBigUInt64BE(at));

interface MailboxRow {
  lastSeq: number;
  count: number;
  bytes: number;
}
interface IdRow {
  seq: number;
  expiresAt: number;
  live: boolean;
}

function decodeMailbox(raw: Buffer | undefined): MailboxRow {
  if (raw === undefined || raw.length !== 24) return { lastSeq: 0, count: 0, bytes: 0 };
  return { lastSeq: readU64(raw, 0), count: readU64(raw, 8), bytes: readU64(raw, 16) };
}
const encodeMailbox = (m: MailboxRow): Buffer =>
  Buffer.concat([u64(m.lastSeq), u64(Math.max(0, m.count)), u64(Math.max(0, m.bytes))]);

function decodeId(raw: Buffer | undefined): IdRow | undefined {
  if (raw === undefined || raw.length !== 17) return undefined;
  return { seq: readU64(raw, 0), expiresAt: readU64(raw, 8), live: raw[16] === 1 };
}
const encodeId = (r: IdRow): Buffer =>
  Buffer.concat([u64(r.seq), u64(r.expiresAt), Buffer.from([r.live ? 1 : 0])]);

/** The header of a sealed envelope: ih and size; undefined when the frame is unreadable. */
function envelopeHeader(value: Buffer): { ih: Buffer; size: number } | undefined {
  try {
    const { header } = peekFrame(value);
    if (header.length !== 36) return undefined;
    return { ih: header.subarray(0, 32), size: header.readUInt32BE(32) };
  } catch {
    return undefined;
  }
}

export class LmdbMailboxStore implements MailboxStore {
  readonly backend = 'lmdb' as const;
  readonly limits: StoreLimits;
  readonly root: RootDatabase;
  readonly meta: Database<Buffer, string>;
  readonly mailboxes: Database<Buffer, Buffer>;
  readonly envelopes: Database<Buffer, Buffer>;
  readonly ids: Database<Buffer, Buffer>;
  readonly receipts: Database<Buffer, Buffer>;
  readonly expiry: Database<Buffer, Buffer>;
  readonly shares: Database<Buffer, Buffer>;
  readonly quarantine: Database<Buffer, Buffer>;
  readonly transit: Database<Buffer, Buffer>;
  private keyring: Keyring;
  /** The directory it was opened at, for messages. */
  private readonly path: string;
  private readonly space: StorageSpace | undefined;
  /** Transactions and flushes that survive a full disk (src/storage/space.ts). */
  private readonly writer: LmdbWriter;
  private indexKey: Buffer = EMPTY;
  private closed = false;
  /** A keyring change or a rewrap: one at a time (src/serial.ts). */
  private readonly keyWork = new Serial();

  private constructor(options: LmdbStoreOptions) {
    this.limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.keyring = options.keyring;
    this.path = options.path;
    this.space = options.space;
    // Never noSync: durability comes from awaiting `flushed` after each commit.
    this.root = open({ path: options.path, maxDbs: 12, compression: false });
    this.writer = new LmdbWriter(this.root, options.space);
    const bin = { keyEncoding: 'binary' as const, encoding: 'binary' as const, compression: false };
    this.meta = this.root.openDB<Buffer, string>('meta', {
      encoding: 'binary',
      compression: false,
    });
    this.mailboxes = this.root.openDB<Buffer, Buffer>('mailboxes', bin);
    this.envelopes = this.root.openDB<Buffer, Buffer>('envelopes', bin);
    this.ids = this.root.openDB<Buffer, Buffer>('ids', bin);
    this.receipts = this.root.openDB<Buffer, Buffer>('receipts', bin);
    this.expiry = this.root.openDB<Buffer, Buffer>('expiry', bin);
    this.shares = this.root.openDB<Buffer, Buffer>('shares', bin);
    this.quarantine = this.root.openDB<Buffer, Buffer>('quarantine', bin);
    this.transit = this.root.openDB<Buffer, Buffer>('transit', bin);
  }

  /**
   * Opens (or creates) the store at `path`. StoreKeyError when records are sealed with a key the
   * keyring does not hold (a wrong key, or an old key retired before `rewrap`).
   */
  static async open(options: LmdbStoreOptions): Promise<LmdbMailboxStore> {
    const store = new LmdbMailboxStore(options);
    try {
      await store.loadIndexKey();
    } catch (err) {
      await store.root.close();
      throw err;
    }
    return store;
  }

  private wraps(): Record<string, Buffer> {
    const raw = this.meta.get('index-keys');
    if (raw === undefined) return {};
    const v = meta.unpack(raw) as unknown;
    if (typeof v !== 'object' || v === null)
      throw new StoreCorruptError('meta index-keys: not a map');
    return v as Record<string, Buffer>;
  }

  private async loadIndexKey(): Promise<void> {
    const write = this.keyring.write;
    let wraps = this.wraps();
    const ids = Object.keys(wraps);
    if (ids.length === 0) {
      this.indexKey = randomBytes(32);
    } else {
      const missing = ids.filter((id) => this.keyring.get(id) === undefined);
      if (missing.length > 0) {
        throw missingKeysError(`the mailbox store at ${this.path}`, missing, this.keyring);
      }
      const id = ids[0] as string;
      const wrapped = wraps[id] as Uint8Array;
      try {
        this.indexKey = openFrame(this.keyring, 'index-key', INDEX_KEY_ID, wrapped).plaintext;
      } catch (err) {
        throw new StoreKeyError(`the store's index key does not open with store key ${id}`, err);
      }
      if (this.indexKey.length !== 32) throw new StoreKeyError('the store index key is malformed');
      if (wraps[write.id] !== undefined) return;
    }
    wraps = {
      ...wraps,
      [write.id]: sealFrame(write, 'index-key', INDEX_KEY_ID, EMPTY, this.indexKey),
    };
    await this.meta.put('index-keys', meta.pack(wraps));
    await this.flush();
  }

  /** One write transaction; a failed commit is classified (src/storage/space.ts). */
  private txn<T>(fn: () => T): Promise<T> {
    return this.writer.write(fn);
  }

  /** Every earlier commit on disk. */
  private flush(): Promise<void> {
    return this.writer.flush();
  }

  private live(): void {
    if (this.closed) throw new StoreClosedError();
  }

  private readonly recipientHashes = new RecipientHashes();

  private rh(recipient: string): Buffer {
    return this.recipientHashes.of(this.indexKey, checkRecipient(recipient));
  }

  async deliver(input: DeliverWithReceipt): Promise<DeliverResult> {
    this.live();
    checkDeliver(input, this.limits, Date.now());
    this.space?.admit('a mailbox delivery');
    const rh = this.rh(input.recipient);
    const ih = messageIdHash(this.indexKey, rh, input.messageId);
    const idKey = Buffer.concat([rh, ih]);
    const plain = encodeEnvelopeRecord(input);
    const size = input.envelope.length;
    const write = this.keyring.write;
    const result = await this.txn((): { seq: number; duplicate: boolean } => {
      const prior = decodeId(this.ids.get(idKey));
      if (prior !== undefined) {
        // A delivery stored before receipts were written with it keeps the one given now.
        if (this.receipts.get(idKey) === undefined) this.putReceiptRecord(idKey, input, write);
        return { seq: prior.seq, duplicate: true };
      }
      const mb = decodeMailbox(this.mailboxes.get(rh));
      if (
        mb.count + 1 > this.limits.maxMailboxCount ||
        mb.bytes + size > this.limits.maxMailboxBytes
      ) {
        throw new StoreQuotaError(`the mailbox of ${input.recipient} is full`);
      }
      const seq = mb.lastSeq + 1;
      const slot = Buffer.concat([rh, u64(seq)]);
      const header = Buffer.alloc(36);
      ih.copy(header, 0);
      header.writeUInt32BE(size, 32);
      this.envelopes.putSync(slot, sealFrame(write, 'envelope', slot, header, plain));
      this.ids.putSync(idKey, encodeId({ seq, expiresAt: input.expiresAt, live: true }));
      this.expiry.putSync(Buffer.concat([u64(input.expiresAt), Buffer.from([0]), rh, ih]), EMPTY);
      this.mailboxes.putSync(
        rh,
        encodeMailbox({ lastSeq: seq, count: mb.count + 1, bytes: mb.bytes + size }),
      );
      this.putReceiptRecord(idKey, input, write);
      if (input.transitCommitment !== undefined) {
        this.transit.putSync(Buffer.from(input.transitCommitment), EMPTY);
      }
      return { seq, duplicate: false };
    });
    // Also for a duplicate: the first delivery may be committed and not yet flushed.
    await this.flush();
    if (!result.duplicate) return { ...result, receipt: input.receipt };
    const first = await this.getReceipt(input.recipient, input.messageId);
    return { ...result, receipt: first ?? input.receipt };
  }

  async keepReceipt(input: KeptReceipt): Promise<void> {
    this.live();
    checkKept(input, this.limits, Date.now());
    this.space?.admit('a receipt');
    const rh = this.rh(input.recipient);
    const rk = Buffer.concat([rh, messageIdHash(this.indexKey, rh, input.messageId)]);
    const write = this.keyring.write;
    await this.txn(() => {
      if (this.receipts.get(rk) === undefined) this.putReceiptRecord(rk, input, write);
    });
    await this.flush();
  }

  async transitOutbox(limit: number): Promise<Buffer[]> {
    this.live();
    return Promise.resolve(
      Array.from(this.transit.getKeys({ limit: checkLimit(limit) }), (k) => Buffer.from(k)),
    );
  }

  async transitLogged(commitments: readonly Uint8Array[]): Promise<void> {
    this.live();
    const keys = checkCommitments(commitments);
    await this.txn(() => {
      for (const k of keys) this.transit.removeSync(k);
    });
  }

  /** Writes the receipt record of (recipient, messageId) at `rk`, inside the caller's transaction. */
  private putReceiptRecord(rk: Buffer, input: KeptReceipt, write: NodeKey): void {
    const plain = encodeReceiptRecord(
      input.recipient,
      input.messageId,
      input.receipt,
      input.expiresAt,
    );
    this.receipts.putSync(rk, sealFrame(write, 'receipt', rk, u64(input.expiresAt), plain));
    this.expiry.putSync(Buffer.concat([u64(input.expiresAt), Buffer.from([1]), rk]), EMPTY);
  }

  async keepShare(input: KeptShare): Promise<void> {
    this.live();
    checkShare(input, Date.now());
    this.space?.admit('a key share');
    const rh = this.rh(input.recipient);
    const rk = Buffer.concat([rh, messageIdHash(this.indexKey, rh, input.messageId)]);
    const write = this.keyring.write;
    const plain = encodeReceiptRecord(
      input.recipient,
      input.messageId,
      input.share,
      input.expiresAt,
    );
    await this.txn(() => {
      if (this.shares.get(rk) !== undefined) return;
      this.shares.putSync(rk, sealFrame(write, 'share', rk, u64(input.expiresAt), plain));
      this.expiry.putSync(Buffer.concat([u64(input.expiresAt), Buffer.from([2]), rk]), EMPTY);
    });
    await this.flush();
  }

  async releaseShare(
    recipient: string,
    messageId: string,
    now: number,
  ): Promise<Uint8Array | undefined> {
    this.live();
    checkMessageId(messageId);
    const rh = this.rh(recipient);
    const rk = Buffer.concat([rh, messageIdHash(this.indexKey, rh, messageId)]);
    const value = this.shares.get(rk);
    if (value === undefined) return undefined;
    let rec: ReturnType<typeof decodeReceiptRecord>;
    try {
      rec = decodeReceiptRecord(openFrame(this.keyring, 'share', rk, value).plaintext);
      if (rec.recipient !== recipient || rec.messageId !== messageId) {
        throw new StoreCorruptError('share record: identity does not match its slot');
      }
    } catch (err) {
      if (err instanceof StoreCorruptError) {
        await this.putQuarantine(
          `shares/${rk.toString('hex')}`,
          err.message,
          Buffer.from(value),
          () => {
            this.shares.removeSync(rk);
          },
        );
      }
      throw err;
    }
    return rec.expiresAt > now && rec.expiresAt > Date.now() ? rec.receipt : undefined;
  }

  /** Opens one stored envelope; StoreCorruptError if it fails authentication or its identity. */
  private openEnvelope(recipient: string, rh: Buffer, slot: Buffer, value: Buffer): StoredEnvelope {
    const { header, plaintext } = openFrame(this.keyring, 'envelope', slot, value);
    const rec = decodeEnvelopeRecord(plaintext);
    if (header.length !== 36) throw new StoreCorruptError('envelope record: bad header');
    if (
      rec.recipient !== recipient ||
      !messageIdHash(this.indexKey, rh, rec.messageId).equals(header.subarray(0, 32))
    ) {
      throw new StoreCorruptError('envelope record: identity does not match its slot');
    }
    return { ...rec, seq: readU64(slot, 32), size: rec.envelope.length };
  }

  async list(recipient: string, options: ListOptions = {}): Promise<Page> {
    this.live();
    const { after, limit, folder } = checkList(options, this.limits);
    const rh = this.rh(recipient);
    const now = Date.now();
    const envelopes: StoredEnvelope[] = [];
    let cursor = after;
    let bytes = 0;
    let more = false;
    const bad: { key: Buffer; value: Buffer; reason: string }[] = [];
    if (after < MAX_SEQ) {
      const range = this.envelopes.getRange({
        start: Buffer.concat([rh, u64(after + 1)]),
        end: Buffer.concat([rh, u64(MAX_SEQ)]),
      });
      for (const { key, value } of range) {
        if (envelopes.length >= limit || bytes >= this.limits.maxPageBytes) {
          more = true;
          break;
        }
        const seq = readU64(key, 32);
        try {
          const e = this.openEnvelope(recipient, rh, key, value);
          if (e.expiresAt > now && (folder === undefined || (e.folder ?? 'inbox') === folder)) {
            envelopes.push(e);
            bytes += e.size;
          }
        } catch (err) {
          if (!(err instanceof StoreCorruptError)) throw err;
          bad.push({ key: Buffer.from(key), value: Buffer.from(value), reason: err.message });
        }
        cursor = seq;
      }
    }
    for (const b of bad) await this.quarantineEnvelope(b.key, b.value, b.reason);
    return { envelopes, cursor, more, quarantined: bad.length };
  }

  async fetch(recipient: string, messageId: string): Promise<StoredEnvelope | undefined> {
    this.live();
    checkMessageId(messageId);
    const rh = this.rh(recipient);
    const row = decodeId(
      this.ids.get(Buffer.concat([rh, messageIdHash(this.indexKey, rh, messageId)])),
    );
    if (row === undefined || !row.live || row.expiresAt <= Date.now()) return undefined;
    const slot = Buffer.concat([rh, u64(row.seq)]);
    const value = this.envelopes.get(slot);
    if (value === undefined) return undefined;
    try {
      const e = this.openEnvelope(recipient, rh, slot, value);
      return e.expiresAt > Date.now() ? e : undefined;
    } catch (err) {
      if (err instanceof StoreCorruptError)
        await this.quarantineEnvelope(slot, Buffer.from(value), err.message);
      throw err;
    }
  }

  /** Inside a write transaction: deletes the envelope at `slot` and updates its mailbox row. */
  private dropEnvelope(slot: Buffer): void {
    const value = this.envelopes.get(slot);
    if (value === undefined) return;
    const h = envelopeHeader(value);
    this.envelopes.removeSync(slot);
    const rh = slot.subarray(0, 32);
    const mb = decodeMailbox(this.mailboxes.get(rh));
    this.mailboxes.putSync(
      rh,
      encodeMailbox({ ...mb, count: mb.count - 1, bytes: mb.bytes - (h?.size ?? 0) }),
    );
  }

  async ack(recipient: string, messageIds: readonly string[]): Promise<number> {
    this.live();
    const idsToAck = checkAck(messageIds, this.limits);
    const rh = this.rh(recipient);
    if (idsToAck.length === 0) return 0;
    const keys = idsToAck.map((id) => Buffer.concat([rh, messageIdHash(this.indexKey, rh, id)]));
    const n = await this.txn(() => {
      let acked = 0;
      for (const k of keys) {
        const row = decodeId(this.ids.get(k));
        if (row === undefined || !row.live) continue;
        this.dropEnvelope(Buffer.concat([rh, u64(row.seq)]));
        this.ids.putSync(k, encodeId({ ...row, live: false }));
        acked++;
      }
      return acked;
    });
    await this.flush();
    return n;
  }

  async usage(recipient: string): Promise<MailboxUsage> {
    this.live();
    const mb = decodeMailbox(this.mailboxes.get(this.rh(recipient)));
    return { count: mb.count, bytes: mb.bytes, lastSeq: mb.lastSeq };
  }

  async purgeExpired(now = Date.now()): Promise<number> {
    this.live();
    let total = 0;
    for (;;) {
      const n = await this.txn(() => {
        let done = 0;
        for (const key of this.expiry.getKeys({ end: u64(now + 1), limit: BATCH })) {
          const k = Buffer.from(key);
          const rh = k.subarray(9, 41);
          const idKey = k.subarray(9, 73);
          if (k.length !== 73) {
            // not one of ours: drop the index key only
          } else if (k[8] === 0) {
            const row = decodeId(this.ids.get(idKey));
            if (row !== undefined) {
              if (row.live) this.dropEnvelope(Buffer.concat([rh, u64(row.seq)]));
              this.ids.removeSync(idKey);
            }
          } else if (k[8] === 1) {
            this.receipts.removeSync(idKey);
          } else {
            this.shares.removeSync(idKey);
          }
          this.expiry.removeSync(k);
          done++;
        }
        return done;
      });
      total += n;
      if (n < BATCH) break;
    }
    await this.flush();
    return total;
  }

  async getReceipt(
    recipient: string,
    messageId: string,
    now = Date.now(),
  ): Promise<Uint8Array | undefined> {
    this.live();
    checkMessageId(messageId);
    const rh = this.rh(recipient);
    const rk = Buffer.concat([rh, messageIdHash(this.indexKey, rh, messageId)]);
    const value = this.receipts.get(rk);
    if (value === undefined) return undefined;
    try {
      const rec = decodeReceiptRecord(openFrame(this.keyring, 'receipt', rk, value).plaintext);
      if (rec.recipient !== recipient || rec.messageId !== messageId) {
        throw new StoreCorruptError('receipt record: identity does not match its slot');
      }
      return rec.expiresAt > Math.max(now, Date.now()) ? rec.receipt : undefined;
    } catch (err) {
      if (err instanceof StoreCorruptError) {
        await this.putQuarantine(
          `receipts/${rk.toString('hex')}`,
          err.message,
          Buffer.from(value),
          () => {
            this.receipts.removeSync(rk);
          },
        );
      }
      throw err;
    }
  }

  private async quarantineEnvelope(slot: Buffer, value: Buffer, reason: string): Promise<void> {
    await this.putQuarantine(`envelopes/${slot.toString('hex')}`, reason, value, () => {
      const current = this.envelopes.get(slot);
      if (current === undefined || !Buffer.from(current).equals(value)) return false;
      const h = envelopeHeader(value);
      this.dropEnvelope(slot);
      if (h !== undefined) {
        // Keep the id as a tombstone: a redelivery is still a duplicate, and ack finds nothing.
        const idKey = Buffer.concat([slot.subarray(0, 32), h.ih]);
        const row = decodeId(this.ids.get(idKey));
        if (row !== undefined) this.ids.putSync(idKey, encodeId({ ...row, live: false }));
      }
      return true;
    });
  }

  /** Moves undecodable bytes aside with the reason, in one transaction with `remove`. */
  private async putQuarantine(
    source: string,
    reason: string,
    raw: Buffer,
    remove: () => boolean | void,
  ): Promise<void> {
    await this.txn(() => {
      if (remove() === false) return;
      const at = Date.now();
      const rec = meta.pack({ v: 1, source, reason, raw, at });
      this.quarantine.putSync(Buffer.concat([u64(at), randomBytes(8)]), rec);
      const n = this.meta.get('quarantined');
      this.meta.putSync('quarantined', u64((n?.length === 8 ? readU64(n, 0) : 0) + 1));
    });
    await this.flush();
  }

  async quarantined(): Promise<number> {
    this.live();
    const n = this.meta.get('quarantined');
    return n?.length === 8 ? readU64(n, 0) : 0;
  }

  async keyStatus(): Promise<KeyStatus> {
    this.live();
    return {
      writeKeyId: this.keyring.write.id,
      keyring: this.keyring.ids(),
      inUse: Object.keys(this.wraps()),
    };
  }

  async useKeyring(next: Keyring): Promise<void> {
    this.live();
    return this.keyWork.run(async () => {
      const wraps = this.wraps();
      const missing = Object.keys(wraps).filter((id) => next.get(id) === undefined);
      if (missing.length > 0)
        throw missingKeysError(`the mailbox store at ${this.path}`, missing, next);
      const write = next.write;
      if (wraps[write.id] === undefined) {
        const more = {
          ...wraps,
          [write.id]: sealFrame(write, 'index-key', INDEX_KEY_ID, EMPTY, this.indexKey),
        };
        await this.txn(() => this.meta.putSync('index-keys', meta.pack(more)));
        await this.flush();
      }
      this.keyring = next;
    });
  }

  /**
   * Re-seals every envelope and receipt not sealed with the write key, in batches of short write
   * transactions (deliveries go on meanwhile, sealed with the write key already), then forgets
   * the index key's other wraps: from then on the store opens with the write key alone.
   */
  async rewrap(): Promise<RewrapResult> {
    this.live();
    return this.keyWork.run(() => this.rewrapNow());
  }

  private async rewrapNow(): Promise<RewrapResult> {
    const write = this.keyring.write;
    let rewrapped = 0;
    for (const [db, kind] of [
      [this.envelopes, 'envelope'],
      [this.receipts, 'receipt'],
      [this.shares, 'share'],
    ] as const) {
      let start: Buffer | undefined;
      for (;;) {
        this.live(); // a stop during a long rewrap ends it between two batches
        const todo: Buffer[] = [];
        let last: Buffer | undefined;
        let seen = 0;
        for (const { key, value } of db.getRange(start === undefined ? {} : { start })) {
          if (last !== undefined && seen >= BATCH) break;
          last = Buffer.from(key);
          seen++;
          let keyId: string;
          try {
            keyId = peekFrame(value).keyId;
          } catch {
            continue; // unreadable: quarantined when next read
          }
          if (keyId !== write.id) todo.push(Buffer.from(key));
        }
        if (last === undefined) break;
        const bad: { key: Buffer; value: Buffer; reason: string }[] = [];
        rewrapped += await this.txn(() => {
          let n = 0;
          for (const key of todo) {
            const value = db.get(key);
            if (value === undefined) continue;
            try {
              const f = openFrame(this.keyring, kind, key, value);
              if (f.keyId === write.id) continue;
              db.putSync(key, sealFrame(write, kind, key, f.header, f.plaintext));
              n++;
            } catch (err) {
              if (!(err instanceof StoreCorruptError)) throw err;
              bad.push({ key, value: Buffer.from(value), reason: err.message });
            }
          }
          return n;
        });
        for (const b of bad) {
          if (kind === 'envelope') await this.quarantineEnvelope(b.key, b.value, b.reason);
          else
            await this.putQuarantine(`${kind}s/${b.key.toString('hex')}`, b.reason, b.value, () => {
              db.removeSync(b.key);
            });
        }
        // Continue after the last key looked at.
        start = Buffer.concat([last, Buffer.from([0])]);
        if (seen < BATCH) break;
      }
    }
    await this.flush();
    const before = Object.keys(this.wraps());
    const wraps = { [write.id]: sealFrame(write, 'index-key', INDEX_KEY_ID, EMPTY, this.indexKey) };
    await this.meta.put('index-keys', meta.pack(wraps));
    await this.flush();
    return { rewrapped, retirable: before.filter((id) => id !== write.id) };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.flush().catch(() => undefined); // a failed sync was reported to its writer
    await this.root.close();
  }
}
