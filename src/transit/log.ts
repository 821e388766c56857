/**
 * A gateway's transit log (docs/PROTOCOL.md §12.7): an RFC 9162 Merkle log, on the ledger's own
 * machinery (LogStore in its own SQLite file, signed C2SP checkpoints), of the commitments of the
 * receipts this gateway signs. Its origin is `<domain>/aftersmtp-transit/v1`; its key is published
 * in the gateway's ledger record (extension `transit-log-key`), so a client checks its checkpoints
 * with a key it resolved with proofs.
 *
 * Guarantees:
 * - Appends are idempotent per commitment: a receipt committed twice (a redelivery) has one leaf.
 * - `append` writes a group of commitments in one transaction (synchronous=FULL, as the
 *   ledger): when it returns, the leaves are on disk, so a checkpoint never covers a leaf that a
 *   crash could take back. The mailbox's transit outbox (src/mailbox/transit-outbox.ts) groups
 *   the receipts' commitments into it.
 * - The database records its origin and verifier key on creation and refuses another
 *   (ERR_TRANSIT_KEY_MISMATCH), as the ledger does: one key never signs two logs' roots here.
 * - Checkpoints are signed once per size (Ed25519 is deterministic).
 */
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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

export class TransitLog {
  readonly origin: string;
  readonly #store: LogStore;
  readonly #signer: NoteSigner;
  readonly #find: Database.Statement<[Buffer], { idx: number }>;
  readonly #index: Database.Statement<[Buffer, number]>;
  #signed: { size: number; root: Buffer; note: string } | undefined;

  /** Opens (creating) the log at `path`; the signer's name must be the domain's transit origin. */
  constructor(path: string, domain: string, signer: NoteSigner) {
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
    } catch (err) {
      this.#store.close();
      throw err;
    }
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

  /** Appends the commitments not yet in the log, in one transaction; returns their leaf indices. */
  append(commitments: readonly Buffer[]): number[] {
    return this.#store.db
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
  }

  size(): number {
    return this.#store.size();
  }

  /** The signed checkpoint of the current tree (the anchorer's CheckpointSource). */
  checkpoint(): { size: number; root: Buffer; note: string } {
    const size = this.#store.size();
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

  /** The inclusion proof of `commitment` in the current checkpoint; undefined if not logged. */
  prove(commitment: Buffer): TransitProof | undefined {
    const leafIndex = this.indexOf(commitment);
    if (leafIndex === undefined) return undefined;
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

  close(): void {
    this.#store.close();
  }
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
