/**
 * Maps shared by several gateway nodes on PostgreSQL (AFTERSMTP_MAPS=postgres). The server holds
 * each map as a versioned document: a row in `shared_versions` (namespace, name, version) and its
 * entries, in order, in `shared_entries`. Each node's MappingEngine keeps serving from its own
 * SQLite database (`maps.sqlite`), which in this mode is a cache written only by PgMapsFollower;
 * the `aftersmtp maps` CLI writes to the server (PgSharedDocuments.update).
 *
 * The store is not specific to maps: a namespace holds any named, ordered list of JSON rows with
 * one version per name, which is what MailScript's script store (scripts stored like maps, with a
 * version row) needs too (namespace `scripts`).
 *
 * Guarantees:
 * - An update is one transaction that locks the document's version row (SELECT ... FOR UPDATE),
 *   reads the rows, applies the change, rewrites the rows and bumps the version: two nodes
 *   changing one map at once are serialised, neither change is lost, and a reader sees the old
 *   list or the new one, never a mix.
 * - Followers poll one small query (the versions of the namespace) every `pollMs` (250 ms) and
 *   load only the documents whose version moved, so a change on one node is served by every node
 *   within pollMs plus the engine's own reload (docs/MAPS.md says why polling and not
 *   LISTEN/NOTIFY). A follow pass that fails leaves the last good maps serving and is retried.
 */
import pg from 'pg';
import type { MappingEngine } from './engine.js';
import { MAP_NAMES, type MapEntry, type MapName } from './types.js';

/** Serialises table creation between nodes starting at once. */
const SCHEMA_LOCK = 0x41534d50; // 'ASMP'

const SCHEMA = `
CREATE TABLE IF NOT EXISTS shared_versions (
  ns text NOT NULL, name text NOT NULL, version bigint NOT NULL, PRIMARY KEY (ns, name));
CREATE TABLE IF NOT EXISTS shared_entries (
  ns text NOT NULL, name text NOT NULL, pos integer NOT NULL, doc jsonb NOT NULL,
  PRIMARY KEY (ns, name, pos));
`;

export const MAPS_NAMESPACE = 'maps';

/** Named, versioned, ordered lists of JSON rows in one namespace on PostgreSQL. */
export class PgSharedDocuments<Row> {
  readonly #pool: pg.Pool;
  readonly #ns: string;
  #migrated: Promise<void> | undefined;

  constructor(options: { url: string; namespace: string; poolSize?: number }) {
    this.#pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 2,
      connectionTimeoutMillis: 5000,
    });
    this.#pool.on('error', () => undefined); // an idle client's error: the next query reconnects
    this.#ns = options.namespace;
  }

  #migrate(): Promise<void> {
    this.#migrated ??= (async () => {
      const c = await this.#pool.connect();
      try {
        await c.query('BEGIN');
        await c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
        await c.query(SCHEMA);
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => undefined);
        this.#migrated = undefined;
        throw err;
      } finally {
        c.release();
      }
    })();
    return this.#migrated;
  }

  /** The version of every document of the namespace (absent: never written, version 0). */
  async versions(): Promise<Map<string, number>> {
    await this.#migrate();
    const r = await this.#pool.query<{ name: string; version: string }>(
      'SELECT name, version FROM shared_versions WHERE ns = $1',
      [this.#ns],
    );
    return new Map(r.rows.map((x) => [x.name, Number(x.version)]));
  }

  /** A document's rows and version, read in one statement snapshot. */
  async read(name: string): Promise<{ version: number; rows: Row[] }> {
    await this.#migrate();
    const r = await this.#pool.query<{ version: string | null; doc: Row | null }>(
      `SELECT v.version, e.doc FROM (SELECT $1::text AS ns, $2::text AS name) k
         LEFT JOIN shared_versions v ON v.ns = k.ns AND v.name = k.name
         LEFT JOIN shared_entries e ON e.ns = k.ns AND e.name = k.name
       ORDER BY e.pos`,
      [this.#ns, name],
    );
    const version = Number(r.rows[0]?.version ?? 0);
    return { version, rows: r.rows.flatMap((x) => (x.doc === null ? [] : [x.doc])) };
  }

  /**
   * Changes a document under its row lock: `change` gets the current rows and the version this
   * change will have, and returns the new rows (or throws, changing nothing). Returns the new
   * version.
   */
  async update(
    name: string,
    change: (rows: Row[], version: number) => Row[] | Promise<Row[]>,
  ): Promise<number> {
    await this.#migrate();
    const c = await this.#pool.connect();
    try {
      await c.query('BEGIN');
      await c.query(
        'INSERT INTO shared_versions (ns, name, version) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING',
        [this.#ns, name],
      );
      const v = await c.query<{ version: string }>(
        'SELECT version FROM shared_versions WHERE ns = $1 AND name = $2 FOR UPDATE',
        [this.#ns, name],
      );
      const rows = await c.query<{ doc: Row }>(
        'SELECT doc FROM shared_entries WHERE ns = $1 AND name = $2 ORDER BY pos',
        [this.#ns, name],
      );
      const version = Number((v.rows[0] as { version: string }).version) + 1;
      const next = await change(
        rows.rows.map((x) => x.doc),
        version,
      );
      await c.query('DELETE FROM shared_entries WHERE ns = $1 AND name = $2', [this.#ns, name]);
      if (next.length > 0) {
        await c.query(
          `INSERT INTO shared_entries (ns, name, pos, doc)
           SELECT $1, $2, p - 1, d FROM unnest($3::jsonb[]) WITH ORDINALITY AS t(d, p)`,
          [this.#ns, name, next.map((r) => JSON.stringify(r))],
        );
      }
      await c.query('UPDATE shared_versions SET version = $3 WHERE ns = $1 AND name = $2', [
        this.#ns,
        name,
        version,
      ]);
      await c.query('COMMIT');
      return version;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      c.release();
    }
  }

  close(): Promise<void> {
    return this.#pool.end();
  }
}

/**
 * Keeps a node's copy of some documents of a namespace equal to the server's: each pass reads
 * the versions and hands every document whose version moved to `apply` (polling, not
 * LISTEN/NOTIFY: a notification sent while a node's connection is down is lost, so the poll
 * would be needed anyway).
 */
export class PgDocumentsFollower<Row> {
  readonly #docs: PgSharedDocuments<Row>;
  readonly #names: readonly string[];
  readonly #apply: (name: string, rows: Row[], version: number) => void;
  readonly #pollMs: number;
  readonly #seen = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  /** The last failure of a follow pass (undefined after a good one). */
  lastError: Error | undefined;

  constructor(
    docs: PgSharedDocuments<Row>,
    names: readonly string[],
    apply: (name: string, rows: Row[], version: number) => void,
    pollMs = 250,
  ) {
    this.#docs = docs;
    this.#names = names;
    this.#apply = apply;
    this.#pollMs = pollMs;
  }

  /** One pass: the number of documents whose version moved and that were applied. */
  async syncOnce(): Promise<number> {
    if (this.#running) return 0;
    this.#running = true;
    let loaded = 0;
    try {
      const versions = await this.#docs.versions();
      for (const name of this.#names) {
        const v = versions.get(name) ?? 0;
        if (this.#seen.get(name) === v) continue;
        const { version, rows } = await this.#docs.read(name);
        this.#apply(name, rows, version);
        this.#seen.set(name, version);
        loaded++;
      }
      this.lastError = undefined;
      return loaded;
    } catch (err) {
      this.lastError = err as Error;
      throw err;
    } finally {
      this.#running = false;
    }
  }

  /** Follows the server every pollMs until stop(); errors go to onError and lastError. */
  start(onError: (err: Error) => void = () => undefined): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      this.syncOnce().catch((err: unknown) => onError(err as Error));
    }, this.#pollMs);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** Keeps a node's MappingEngine equal to the maps on the server. */
export class PgMapsFollower extends PgDocumentsFollower<MapEntry> {
  constructor(engine: MappingEngine, docs: PgSharedDocuments<MapEntry>, pollMs = 250) {
    super(docs, MAP_NAMES, (map, rows) => engine.replaceMap(map as MapName, rows), pollMs);
  }
}

/** The maps namespace on the server. */
export function sharedMaps(url: string): PgSharedDocuments<MapEntry> {
  return new PgSharedDocuments<MapEntry>({ url, namespace: MAPS_NAMESPACE });
}

/**
 * Applies one CLI change to a map on the server: the map is loaded into a scratch engine (the
 * same checks and limits as a local change), changed there, and written back under the lock.
 */
export async function updateSharedMap<T>(
  docs: PgSharedDocuments<MapEntry>,
  scratch: MappingEngine,
  map: MapName,
  change: (engine: MappingEngine) => T,
): Promise<{ result: T; version: number }> {
  let result: T | undefined;
  const version = await docs.update(map, (rows) => {
    scratch.replaceMap(map, rows);
    result = change(scratch);
    return scratch.list(map);
  });
  return { result: result as T, version };
}
