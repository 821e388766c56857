/**
 * The log's durable storage in SQLite (better-sqlite3): the leaves, the hashes of every completed
 * (perfect) subtree, and a small metadata table. Everything else in the ledger (the DID index,
 * the spent-stamp set, issued checkpoints) lives in the same database so that one append is one
 * transaction.
 *
 * Guarantees:
 * - WAL journal with `synchronous=FULL`: when a write transaction returns, it is on disk (the WAL
 *   is fsynced at every commit), so an acknowledged append survives a crash or SIGKILL.
 * - Leaves are only ever inserted at index = current size (append-only; the leaf table has no
 *   UPDATE or DELETE path); the subtree hashes are written in the same transaction as the leaf.
 * - Tree heads and proofs at any size read O(log n) rows (merkle.ts rangeHash), never the leaves.
 * - verifyFromScratch() recomputes every leaf hash and the root from the leaves alone and
 *   compares them with what is stored: the restart check.
 */
import Database from 'better-sqlite3';
import { AfterSmtpError } from '../errors.js';
import {
  consistencyProof,
  inclusionProof,
  leafHash,
  nodeHash,
  rootAt,
  type NodeSource,
} from '../identity/merkle.js';

export const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leaves (idx INTEGER PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
  level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)
) WITHOUT ROWID;
`;

/** A perfect subtree on the right edge of the tree: the compact range of RFC 9162 appends. */
interface FrontierNode {
  level: number;
  hash: Buffer;
}

/** Thrown when the stored log does not match its own leaves. */
export class LedgerCorruptError extends AfterSmtpError {}

export class LogStore implements NodeSource {
  readonly db: Database.Database;
  readonly #getNode: Database.Statement<[number, number], { hash: Buffer }>;
  readonly #getLeaf: Database.Statement<[number], { data: Buffer }>;
  readonly #maxIdx: Database.Statement<[], { n: number | null }>;
  readonly #putLeaf: Database.Statement<[number, Buffer]>;
  readonly #putNode: Database.Statement<[number, number, Buffer]>;
  readonly #getMeta: Database.Statement<[string], { value: Buffer }>;
  readonly #putMeta: Database.Statement<[string, Buffer]>;

  /** Opens (creating if needed) the log database at `path` (':memory:' for tests). */
  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.pragma('foreign_keys = ON');
    // Another process holding the write lock (a CLI next to `serve`) is waited for, not an error.
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
    this.#getNode = this.db.prepare('SELECT hash FROM nodes WHERE level = ? AND idx = ?');
    this.#getLeaf = this.db.prepare('SELECT data FROM leaves WHERE idx = ?');
    this.#maxIdx = this.db.prepare('SELECT max(idx) AS n FROM leaves');
    this.#putLeaf = this.db.prepare('INSERT INTO leaves (idx, data) VALUES (?, ?)');
    this.#putNode = this.db.prepare('INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)');
    this.#getMeta = this.db.prepare('SELECT value FROM meta WHERE key = ?');
    this.#putMeta = this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)');
    const version = this.meta('schema');
    if (version === undefined) {
      this.setMeta('schema', Buffer.from(String(SCHEMA_VERSION)));
    } else if (version.toString() !== String(SCHEMA_VERSION)) {
      throw new LedgerCorruptError(
        'ERR_LEDGER_SCHEMA',
        `ledger database schema ${version.toString()} is not ${SCHEMA_VERSION}`,
      );
    }
  }

  /** Closes the database (idempotent). */
  close(): void {
    if (this.db.open) this.db.close();
  }

  meta(key: string): Buffer | undefined {
    return this.#getMeta.get(key)?.value;
  }

  setMeta(key: string, value: Buffer): void {
    this.#putMeta.run(key, value);
  }

  /** Number of leaves (one indexed read). */
  size(): number {
    const n = this.#maxIdx.get()?.n;
    return n === null || n === undefined ? 0 : n + 1;
  }

  node(level: number, index: number): Buffer {
    const row = this.#getNode.get(level, index);
    if (row === undefined) {
      throw new LedgerCorruptError(
        'ERR_LEDGER_CORRUPT',
        `missing subtree hash (${level}, ${index})`,
      );
    }
    return row.hash;
  }

  leaf(index: number): Buffer {
    const row = this.#getLeaf.get(index);
    if (row === undefined)
      throw new LedgerCorruptError('ERR_LEDGER_CORRUPT', `missing leaf ${index}`);
    return row.data;
  }

  root(size = this.size()): Buffer {
    return rootAt(this, size);
  }

  inclusionProof(index: number, size: number): Buffer[] {
    return inclusionProof(this, index, size);
  }

  consistencyProof(first: number, second: number): Buffer[] {
    return consistencyProof(this, first, second);
  }

  /** The perfect subtrees on the right edge of a tree of `size` leaves, largest first. */
  #frontier(size: number): FrontierNode[] {
    const out: FrontierNode[] = [];
    let offset = 0;
    for (let level = 52; level >= 0; level--) {
      const width = 2 ** level;
      if (size - offset >= width) {
        out.push({ level, hash: this.node(level, offset / width) });
        offset += width;
      }
    }
    return out;
  }

  /**
   * Appends `leaves` at the end of the log and returns the index of the first one. Runs in one
   * transaction (nested in the caller's, if any): every leaf and every subtree hash it completes
   * is written, or nothing is.
   */
  append(leaves: readonly Buffer[]): number {
    return this.db
      .transaction(() => {
        const first = this.size();
        const frontier = this.#frontier(first);
        let index = first;
        for (const data of leaves) {
          this.#putLeaf.run(index, data);
          const h = leafHash(data);
          this.#putNode.run(0, index, h);
          let top: FrontierNode = { level: 0, hash: h };
          let pos = index;
          while (frontier.length > 0 && frontier[frontier.length - 1]?.level === top.level) {
            const left = frontier.pop() as FrontierNode;
            pos = Math.floor(pos / 2);
            top = { level: top.level + 1, hash: nodeHash(left.hash, top.hash) };
            this.#putNode.run(top.level, pos, top.hash);
          }
          frontier.push(top);
          index++;
        }
        return first;
      })
      .immediate();
  }

  /**
   * Recomputes every leaf hash and the root from the leaves alone (a streaming pass with O(log n)
   * memory) and checks them against the stored subtree hashes. Returns the size and root.
   * Throws LedgerCorruptError(ERR_LEDGER_CORRUPT) on the first mismatch.
   */
  verifyFromScratch(): { size: number; root: Buffer } {
    const size = this.size();
    const frontier: FrontierNode[] = [];
    let expected = 0;
    const leaves = this.db.prepare('SELECT idx, data FROM leaves ORDER BY idx');
    for (const row of leaves.iterate() as Iterable<{ idx: number; data: Buffer }>) {
      if (row.idx !== expected) {
        throw new LedgerCorruptError('ERR_LEDGER_CORRUPT', `leaf ${expected} is missing`);
      }
      const h = leafHash(row.data);
      if (!h.equals(this.node(0, row.idx))) {
        throw new LedgerCorruptError('ERR_LEDGER_CORRUPT', `leaf ${row.idx} hash mismatch`);
      }
      let top: FrontierNode = { level: 0, hash: h };
      while (frontier.length > 0 && frontier[frontier.length - 1]?.level === top.level) {
        const left = frontier.pop() as FrontierNode;
        top = { level: top.level + 1, hash: nodeHash(left.hash, top.hash) };
      }
      frontier.push(top);
      expected++;
    }
    let root: Buffer | undefined;
    for (let i = frontier.length - 1; i >= 0; i--) {
      const h = (frontier[i] as FrontierNode).hash;
      root = root === undefined ? h : nodeHash(h, root);
    }
    const recomputed = root ?? this.root(0);
    const stored = this.root(size);
    if (!recomputed.equals(stored)) {
      throw new LedgerCorruptError(
        'ERR_LEDGER_CORRUPT',
        'stored subtree hashes do not match leaves',
      );
    }
    return { size, root: stored };
  }
}
