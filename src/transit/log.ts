/**
 * A gateway's transit log (docs/PROTOCOL.md §12.7): an RFC 9162 Merkle log, on the ledger's own
 * machinery (LogStore in its own SQLite file, signed C2SP checkpoints), of the commitments of the
 * receipts this gateway signs. Its origin is `<domain>/aftersmtp-transit/v1`; its key is published
 * in the gateway's ledger record (extension `transit-log-key`), so a client checks its checkpoints
 * with a key it resolved with proofs.
 *
 * Guarantees:
 * - Appends are idempotent per commitment: a receipt committed twice (a redelivery) has one leaf.
 * - `append` writes a group of commitments in one transaction and resolves once the leaves are
 *   on disk. The disk is not waited for on the event loop: the transaction commits without a
 *   flush (WAL, synchronous=NORMAL), then the write-ahead file is flushed (fdatasync) on libuv's
 *   thread pool. A slow disk delays the group, not every message the gateway is handling.
 * - A checkpoint, a proof and `size` cover only leaves whose flush has completed (the durable
 *   size), so no signed checkpoint covers a leaf that a crash could take back. A failed flush
 *   stops the log: every later append fails (the commitments stay in the mailbox store's transit
 *   outbox) until the gateway is restarted, because after a failed fdatasync the kernel may have
 *   dropped the pages that SQLite counts as written.
 * - The mailbox's transit outbox (src/mailbox/transit-outbox.ts) groups the receipts'
 *   commitments into it.
 * - The database records its origin and verifier key on creation and refuses another
 *   (ERR_TRANSIT_KEY_MISMATCH), as the ledger does: one key never signs two logs' roots here.
 * - Checkpoints are signed once per size (Ed25519 is deterministic).
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fdatasync,
  fdatasyncSync,
  fsyncSync,
  openSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { promisify } from 'node:util';
import { dirname, join } from 'node:path';
import { AfterSmtpError } from '../errors.js';
import { LogStore, NoteSigner, signCheckpoint } from '../ledger/index.js';
import { transitLeaf, transitOrigin } from './commitment.js';

export const TRANSIT_DB_FILE = 'transit.sqlite';
export const TRANSIT_SEED_FILE = 'transit.seed';

export class TransitLogError extends AfterSmtpError {}

/** An inclusion proof of one commitment against a signed checkpoint of the log. */
export interface TransitProof {
  readonly leafIndex: number;
  readonly treeSize: number;
  readonly proof: Buffer[];
  /** The signed checkpoint note of size treeSize. */
  readonly checkpoint: string;
}

/** Flushes the log's write-ahead file to disk; the default runs fdatasync on libuv's pool. */
export type WalFlush = () => Promise<void>;

export class TransitLog {
  readonly origin: string;
  readonly #store: LogStore;
  readonly #signer: NoteSigner;
  readonly #find: Database.Statement<[Buffer], { idx: number }>;
  readonly #index: Database.Statement<[Buffer, number]>;
  readonly #flushWal: WalFlush;
  /** The write-ahead file, open for its flushes (none for ':memory:'). */
  #walFd: number | undefined;
  #signed: { size: number; root: Buffer; note: string } | undefined;
  /** Leaves on disk: what checkpoints and proofs may cover. */
  #durableSize: number;
  /** The first flush failure; the log takes no more appends once it is set. */
  #failed: unknown;
  /** Flushes of the write-ahead file not yet returned: `close` leaves the file open for them. */
  #flushing = 0;
  #closed = false;

  /**
   * Opens (creating) the log at `path`; the signer's name must be the domain's transit origin.
   * `flushWal` replaces the flush of the write-ahead file (tests).
   */
  constructor(path: string, domain: string, signer: NoteSigner, flushWal?: WalFlush) {
    this.origin = transitOrigin(domain);
    if (signer.name !== this.origin) {
      throw new TransitLogError(
        'ERR_TRANSIT_KEY_MISMATCH',
        `the transit log key is named ${signer.name}, not ${this.origin}`,
      );
    }
    this.#signer = signer;
    this.#store = new LogStore(path);
    const db = this.#store.db;
    try {
      db.exec(
        'CREATE TABLE IF NOT EXISTS commitments (hash BLOB PRIMARY KEY, idx INTEGER NOT NULL) WITHOUT ROWID',
      );
      this.#find = db.prepare('SELECT idx FROM commitments WHERE hash = ?');
      this.#index = db.prepare('INSERT INTO commitments (hash, idx) VALUES (?, ?)');
      this.#checkIdentity();
      // Commits write the WAL without a flush; `append` flushes it off the event loop. What an
      // earlier process left in the page cache is put on disk now, before it counts as durable.
      db.pragma('synchronous = NORMAL');
      if (path !== ':memory:') this.#walFd = openFlushed(`${path}-wal`);
    } catch (err) {
      this.#store.close();
      throw err;
    }
    const fd = this.#walFd;
    this.#flushWal = flushWal ?? (fd === undefined ? async () => {} : () => datasync(fd));
    this.#durableSize = this.#store.size();
  }

  #checkIdentity(): void {
    for (const [key, want] of [
      ['origin', this.origin],
      ['verifier_key', this.#signer.verifierKey],
    ] as const) {
      const have = this.#store.meta(key)?.toString();
      if (have === undefined) this.#store.setMeta(key, Buffer.from(want));
      else if (have !== want) {
        throw new TransitLogError(
          'ERR_TRANSIT_KEY_MISMATCH',
          `this transit log was created with ${key} ${have}, not ${want}`,
        );
      }
    }
  }

  /** The verifier key string of the log (`<origin>+<key id>+<key>`). */
  get verifierKey(): string {
    return this.#signer.verifierKey;
  }

  /** The log key's raw Ed25519 public key (what the gateway record publishes). */
  get publicKey(): Buffer {
    return this.#signer.publicKey;
  }

  /**
   * Appends the commitments not yet in the log, in one transaction, and resolves with their leaf
   * indices once they are on disk (a commitment already logged: once its leaf is).
   */
  async append(commitments: readonly Buffer[]): Promise<number[]> {
    if (this.#failed !== undefined) throw this.#stopped();
    const indices = this.#store.db
      .transaction(() => {
        const out: number[] = [];
        const fresh = new Map<string, number>();
        let next = this.#store.size();
        const leaves: Buffer[] = [];
        for (const c of commitments) {
          const known = this.#find.get(c)?.idx ?? fresh.get(c.toString('hex'));
          if (known !== undefined) {
            out.push(known);
            continue;
          }
          leaves.push(transitLeaf(c));
          this.#index.run(c, next);
          fresh.set(c.toString('hex'), next);
          out.push(next++);
        }
        if (leaves.length > 0) this.#store.append(leaves);
        return out;
      })
      .immediate();
    await this.#flushTo(this.#store.size());
    return indices;
  }

  /** Flushes the write-ahead file; leaves below `size` count as durable once it succeeds. */
  async #flushTo(size: number): Promise<void> {
    if (size <= this.#durableSize) return;
    this.#flushing++;
    try {
      await this.#flushWal();
    } catch (err) {
      this.#failed ??= err;
      throw this.#stopped();
    } finally {
      this.#flushing--;
      if (this.#closed) this.#closeWal();
    }
    if (this.#failed !== undefined) throw this.#stopped();
    this.#durableSize = Math.max(this.#durableSize, size);
  }

  #stopped(): TransitLogError {
    return new TransitLogError(
      'ERR_TRANSIT_FLUSH',
      `the transit log could not be flushed to disk and takes no appends until the gateway restarts: ${String(this.#failed)}`,
    );
  }

  /** Leaves on disk (a checkpoint's size). */
  size(): number {
    return this.#durableSize;
  }

  /** The signed checkpoint of the current tree (the anchorer's CheckpointSource). */
  checkpoint(): { size: number; root: Buffer; note: string } {
    const size = this.#durableSize;
    if (this.#signed?.size !== size) {
      const root = this.#store.root(size);
      this.#signed = {
        size,
        root,
        note: signCheckpoint({ origin: this.origin, size, root, extensions: [] }, this.#signer),
      };
    }
    return this.#signed;
  }

  /** The leaf index of a commitment, if the log holds it. */
  indexOf(commitment: Buffer): number | undefined {
    return this.#find.get(commitment)?.idx;
  }

  /**
   * The inclusion proof of `commitment` in the current checkpoint; undefined if not logged. A
   * leaf whose append is still being flushed is flushed first.
   */
  async prove(commitment: Buffer): Promise<TransitProof | undefined> {
    const leafIndex = this.indexOf(commitment);
    if (leafIndex === undefined) return undefined;
    if (leafIndex >= this.#durableSize) await this.#flushTo(this.#store.size());
    const cp = this.checkpoint();
    return {
      leafIndex,
      treeSize: cp.size,
      proof: this.#store.inclusionProof(leafIndex, cp.size),
      checkpoint: cp.note,
    };
  }

  /** The inclusion proof of leaf `index` in the tree of `size` leaves (for anchored checkpoints). */
  inclusionProof(index: number, size: number): Buffer[] {
    return this.#store.inclusionProof(index, size);
  }

  /** Closes the log; the write-ahead file stays open until the flushes in flight have returned. */
  close(): void {
    this.#closed = true;
    this.#store.close();
    this.#closeWal();
  }

  #closeWal(): void {
    if (this.#flushing > 0 || this.#walFd === undefined) return;
    closeSync(this.#walFd);
    this.#walFd = undefined;
  }
}

/** fdatasync on libuv's thread pool. */
const datasync = promisify(fdatasync);

/**
 * At open, a blocking flush: the write-ahead file's data and its directory entry on disk (what
 * an earlier process left in the page cache counts only once it is there). Returns the file,
 * open for the flushes of later appends (SQLite keeps it while the database is open).
 */
function openFlushed(wal: string): number {
  const dir = openSync(dirname(wal), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
  const fd = openSync(wal, 'r');
  try {
    fdatasyncSync(fd);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/** The seed of the transit log key in the data directory, made on first use (mode 0600). */
function transitSeed(path: string): Buffer {
  try {
    const seed = readFileSync(path);
    if (seed.length !== 32) {
      throw new TransitLogError('ERR_TRANSIT_KEY_MISMATCH', `${path} is not a 32-byte seed`);
    }
    return seed;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
    const seed = randomBytes(32);
    writeFileSync(path, seed, { mode: 0o600, flag: 'wx' });
    return seed;
  }
}

/** Opens the gateway's transit log in its data directory (transit.sqlite, key transit.seed). */
export function openTransitLog(dataDir: string, domain: string): TransitLog {
  const signer = new NoteSigner(
    transitOrigin(domain),
    transitSeed(join(dataDir, TRANSIT_SEED_FILE)),
  );
  return new TransitLog(join(dataDir, TRANSIT_DB_FILE), domain, signer);
}
