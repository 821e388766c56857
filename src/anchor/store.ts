/**
 * The anchor records of a gateway's logs, kept beside the log (its own SQLite file in the data
 * directory, so that the log's storage is untouched): for each anchored checkpoint, where its
 * commitment landed. The signed checkpoint note is kept with it, so that it can be served with
 * the record.
 *
 * Guarantees: a record is written in one transaction with synchronous=FULL; one record per
 * (origin, size) (a re-anchor replaces it); `latest` is the record of the largest anchored size;
 * `drop` forgets a record that the chain no longer holds (a reset or restarted chain).
 */
import Database from 'better-sqlite3';
import type { AnchorRecord } from './chain.js';

export const ANCHOR_DB_FILE = 'anchors.sqlite';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS anchors (
  origin TEXT NOT NULL, size INTEGER NOT NULL, root BLOB NOT NULL, note TEXT NOT NULL,
  commitment BLOB NOT NULL, genesis_hash TEXT NOT NULL, block_hash TEXT NOT NULL,
  block_number INTEGER NOT NULL, extrinsic_index INTEGER NOT NULL, event_index INTEGER NOT NULL,
  account TEXT NOT NULL, block_time INTEGER NOT NULL, recorded_at INTEGER NOT NULL,
  PRIMARY KEY (origin, size)
) WITHOUT ROWID;
`;

interface Row {
  origin: string;
  size: number;
  root: Buffer;
  note: string;
  commitment: Buffer;
  genesis_hash: string;
  block_hash: string;
  block_number: number;
  extrinsic_index: number;
  event_index: number;
  account: string;
  block_time: number;
}

/** An anchor record with the signed checkpoint it anchors. */
export interface StoredAnchor {
  readonly record: AnchorRecord;
  /** The log's signed checkpoint note of this size. */
  readonly note: string;
}

function fromRow(r: Row): StoredAnchor {
  return {
    note: r.note,
    record: {
      origin: r.origin,
      size: r.size,
      root: r.root,
      commitment: r.commitment,
      genesisHash: r.genesis_hash,
      blockHash: r.block_hash,
      blockNumber: r.block_number,
      extrinsicIndex: r.extrinsic_index,
      eventIndex: r.event_index,
      account: r.account,
      blockTime: r.block_time,
    },
  };
}

export class AnchorStore {
  readonly #db: Database.Database;

  constructor(path: string) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(SCHEMA);
  }

  put(record: AnchorRecord, note: string, now = Date.now()): void {
    this.#db
      .prepare(
        `INSERT OR REPLACE INTO anchors (origin, size, root, note, commitment, genesis_hash,
           block_hash, block_number, extrinsic_index, event_index, account, block_time, recorded_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        record.origin,
        record.size,
        record.root,
        note,
        record.commitment,
        record.genesisHash,
        record.blockHash,
        record.blockNumber,
        record.extrinsicIndex,
        record.eventIndex,
        record.account,
        record.blockTime,
        now,
      );
  }

  /** The anchor of the largest anchored size of `origin`. */
  latest(origin: string): StoredAnchor | undefined {
    const row = this.#db
      .prepare('SELECT * FROM anchors WHERE origin = ? ORDER BY size DESC LIMIT 1')
      .get(origin) as Row | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  get(origin: string, size: number): StoredAnchor | undefined {
    const row = this.#db
      .prepare('SELECT * FROM anchors WHERE origin = ? AND size = ?')
      .get(origin, size) as Row | undefined;
    return row === undefined ? undefined : fromRow(row);
  }

  drop(origin: string, size: number): void {
    this.#db.prepare('DELETE FROM anchors WHERE origin = ? AND size = ?').run(origin, size);
  }

  close(): void {
    this.#db.close();
  }
}
