/**
 * The witnesses' cosignatures of a gateway's log, kept beside the log in their own SQLite file
 * (the log's storage is untouched): for each checkpoint a witness cosigned, its cosignature line.
 *
 * Guarantees: one line per (origin, size, witness), written with synchronous=FULL before the
 * witness job is settled; `knownSize` is the largest size a witness cosigned (the `old` size of
 * the next add-checkpoint); `latest` is the largest cosigned checkpoint with every line it has.
 */
import Database from 'better-sqlite3';

export const WITNESS_DB_FILE = 'witness.sqlite';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS cosignatures (
  origin TEXT NOT NULL, size INTEGER NOT NULL, witness TEXT NOT NULL, note TEXT NOT NULL,
  line TEXT NOT NULL, time INTEGER NOT NULL, PRIMARY KEY (origin, size, witness)
) WITHOUT ROWID;
`;

export interface CosignedCheckpoint {
  readonly size: number;
  /** The log's signed note followed by every cosignature line kept for it. */
  readonly note: string;
  readonly witnesses: readonly string[];
}

export class WitnessStore {
  readonly #db: Database.Database;

  constructor(path: string) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.exec(SCHEMA);
  }

  put(origin: string, size: number, witness: string, note: string, line: string, time: number) {
    this.#db
      .prepare(
        'INSERT OR REPLACE INTO cosignatures (origin, size, witness, note, line, time) VALUES (?, ?, ?, ?, ?, ?)',
      )
      .run(origin, size, witness, note, line, time);
  }

  knownSize(origin: string, witness: string): number {
    const row = this.#db
      .prepare('SELECT MAX(size) AS size FROM cosignatures WHERE origin = ? AND witness = ?')
      .get(origin, witness) as { size: number | null };
    return row.size ?? 0;
  }

  latest(origin: string): CosignedCheckpoint | undefined {
    const top = this.#db
      .prepare('SELECT MAX(size) AS size FROM cosignatures WHERE origin = ?')
      .get(origin) as { size: number | null };
    if (top.size === null) return undefined;
    const rows = this.#db
      .prepare(
        'SELECT witness, note, line FROM cosignatures WHERE origin = ? AND size = ? ORDER BY witness',
      )
      .all(origin, top.size) as { witness: string; note: string; line: string }[];
    const first = rows[0] as { note: string };
    return {
      size: top.size,
      note: first.note + rows.map((r) => `${r.line}\n`).join(''),
      witnesses: rows.map((r) => r.witness),
    };
  }

  close(): void {
    this.#db.close();
  }
}
