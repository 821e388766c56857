/**
 * The MappingEngine: the maps kept in SQLite (`<data dir>/maps.sqlite`, better-sqlite3), served
 * from memory as immutable snapshots (snapshot.ts), and reloaded without a restart when another
 * process (the `aftersmtp maps` CLI) changes them.
 *
 * Storage: one row per entry (map, key, value, class, kind, seq), and in the meta table a
 * `version` counter and one `version:<map>` counter per map, which every write transaction
 * increments with its change. WAL journal with `synchronous=FULL`: when set/del/import returns,
 * the change is on disk. Writes take the write lock first (BEGIN IMMEDIATE, waiting up to 5 s for
 * another writer) and check the per-map entry limit inside the transaction, so two CLIs cannot
 * together overfill a map. `import --replace` deletes and inserts in one transaction: a reader
 * sees the old map or the new one, never a mix.
 *
 * Reload: every `pollMs` (250 ms) the engine reads the version counter row, and when it differs
 * from its snapshot's, reads in one read transaction the versions and the entries of each map
 * whose own version moved, compiles those maps, builds a new snapshot that shares the compiled
 * tables of the others, and swaps the reference. Why the counter row and not
 * `PRAGMA data_version`: both cost one read of the WAL index, but the counter is written in the
 * same transaction as the change, so it names the snapshot (the same number in every process:
 * logs, onReload and `maps test` agree on which version answered), it also changes for this
 * connection's own writes, which data_version does not report, and the per-map counters say
 * what to recompile. A change committed by another process is live here within one poll
 * interval plus the rebuild of the changed map (a few microseconds per entry of that map; a
 * change to a small map costs nothing more when another map is large).
 *
 * Guarantees: snapshot() is a field read; a snapshot is never mutated, so a message that holds one
 * sees exactly one version of every map; a new version whose entries do not all load (edited by
 * hand, say) is not swapped in: the previous snapshot keeps serving and onError listeners are told
 * once per bad version; the poll timer is unref'd and never throws.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { AccessTable } from './access.js';
import { checkRecipientDelimiter } from './addresses.js';
import {
  checkEntry,
  MAP_FORMATS,
  normalizeKey,
  type ImportFormat,
  type NormalEntry,
} from './entries.js';
import { MapInputError, MapLimitError, MapStoreError } from './errors.js';
import { parsePostfixTable } from './postfix-format.js';
import { CanonicalTable } from './canonical.js';
import { compileMap, Snapshot, type MapTables } from './snapshot.js';
import {
  DEFAULT_LOOKUP_OPTIONS,
  ENTRY_CLASSES,
  LIMITS,
  MAP_NAMES,
  isMapName,
  type EntryClass,
  type EntryKind,
  type LookupOptions,
  type MapEntry,
  type MapName,
  type MapSnapshot,
  type MapTestResult,
  type TestAs,
} from './types.js';

export const SCHEMA_VERSION = 1;

/** Where the maps live: `<data dir>/maps.sqlite` (the CLI and `serve` both use this). */
export function mapsDatabasePath(dataDir: string): string {
  return join(dataDir, 'maps.sqlite');
}
export const DEFAULT_POLL_MS = 250;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS entries (
  map TEXT NOT NULL,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  class TEXT NOT NULL,
  kind TEXT NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (map, key)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS entries_order ON entries (map, seq);
INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', ${SCHEMA_VERSION}), ('version', 0),
  ${MAP_NAMES.map((m) => `('version:${m}', 0)`).join(', ')};
`;

export interface MappingEngineOptions {
  /** The SQLite file, normally `<AFTERSMTP_DATA_DIR>/maps.sqlite`; ':memory:' for tests. */
  readonly path: string;
  /** Entries per map (AFTERSMTP_MAPS_MAX_ENTRIES). */
  readonly maxEntriesPerMap?: number;
  /** How often to look for changes made by another process, in ms; 0: never (a CLI). */
  readonly pollMs?: number;
  /**
   * Build the snapshot when opening (default: true, what `serve` wants: a map that does not load
   * stops the start). false: on first use, so that a CLI can still list, fix or delete entries
   * of a database whose other entries do not load.
   */
  readonly loadSnapshot?: boolean;
  /** access_map: a bare domain key also matches subdomains (AFTERSMTP_MAPS_PARENT_DOMAIN_MATCHES). */
  readonly parentDomainMatches?: boolean;
  /** Characters that start an address extension (AFTERSMTP_RECIPIENT_DELIMITER); '' for none. */
  readonly recipientDelimiter?: string;
}

export interface SetOptions {
  readonly class?: EntryClass;
}

export interface ImportOptions {
  readonly format: ImportFormat;
  /** Replace the whole map (atomically) instead of adding to it. */
  readonly replace?: boolean;
  /** The class of every imported entry (canonical_maps, access_map). */
  readonly class?: EntryClass;
}

export interface WriteResult {
  /** The version the change created. */
  readonly version: number;
  /** Things worth telling the operator (shadowed entries, duplicate lines). */
  readonly warnings: readonly string[];
}

export interface ImportResult extends WriteResult {
  /** Entries written (duplicate lines counted once). */
  readonly imported: number;
}

interface Row {
  map: string;
  key: string;
  value: string;
  class: string;
  kind: string;
  seq: number;
}

function toEntry(row: Row): MapEntry {
  if (!isMapName(row.map))
    throw new MapStoreError(`unknown map ${JSON.stringify(row.map)} in the maps database`);
  if (!(ENTRY_CLASSES as readonly string[]).includes(row.class)) {
    throw new MapStoreError(
      `${row.map}: entry ${JSON.stringify(row.key)} has an unknown class ${JSON.stringify(row.class)}`,
    );
  }
  if (!['exact', 'cidr', 'regexp'].includes(row.kind)) {
    throw new MapStoreError(
      `${row.map}: entry ${JSON.stringify(row.key)} has an unknown kind ${JSON.stringify(row.kind)}`,
    );
  }
  return Object.freeze({
    map: row.map,
    key: row.key,
    value: row.value,
    class: row.class as EntryClass,
    kind: row.kind as EntryKind,
    seq: row.seq,
  });
}

function checkOptions(
  o: MappingEngineOptions,
): LookupOptions & { maxEntries: number; pollMs: number } {
  const maxEntries = o.maxEntriesPerMap ?? LIMITS.defaultMaxEntries;
  const pollMs = o.pollMs ?? DEFAULT_POLL_MS;
  const delimiter = o.recipientDelimiter ?? DEFAULT_LOOKUP_OPTIONS.recipientDelimiter;
  if (!Number.isSafeInteger(maxEntries) || maxEntries < 1)
    throw new RangeError('maxEntriesPerMap must be a positive integer');
  if (!Number.isSafeInteger(pollMs) || pollMs < 0)
    throw new RangeError('pollMs must be a non-negative integer');
  checkRecipientDelimiter(delimiter);
  return {
    maxEntries,
    pollMs,
    recipientDelimiter: delimiter,
    parentDomainMatches: o.parentDomainMatches ?? DEFAULT_LOOKUP_OPTIONS.parentDomainMatches,
  };
}

export class MappingEngine {
  readonly #db: Database.Database;
  readonly #options: ReturnType<typeof checkOptions>;
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #reloadListeners = new Set<(version: number) => void>();
  readonly #errorListeners = new Set<(err: Error) => void>();
  readonly #stmt: {
    version: Database.Statement<[], { value: number }>;
    bump: Database.Statement<[string]>;
    mapVersion: Database.Statement<[string], { value: number }>;
    list: Database.Statement<[string], Row>;
    scan: Database.Statement<[string], Row>;
    get: Database.Statement<[string, string], Row>;
    count: Database.Statement<[string], { n: number }>;
    nextSeq: Database.Statement<[string], { seq: number }>;
    insert: Database.Statement<[string, string, string, string, string, number]>;
    update: Database.Statement<[string, string, string, string, string]>;
    del: Database.Statement<[string, string]>;
    clear: Database.Statement<[string]>;
  };
  #snapshot: Snapshot | undefined;
  /** The last version that failed to load, so a bad version is reported once, not every poll. */
  #failedVersion: number | undefined;

  private constructor(options: MappingEngineOptions) {
    this.#options = checkOptions(options);
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.#db = new Database(options.path);
    try {
      this.#db.pragma('journal_mode = WAL');
      // better-sqlite3 builds default WAL to synchronous=NORMAL: a commit must be on disk.
      this.#db.pragma('synchronous = FULL');
      this.#db.pragma('busy_timeout = 5000');
      this.#db.exec(SCHEMA);
      const schema = this.#db
        .prepare<[], { value: number }>("SELECT value FROM meta WHERE key = 'schema'")
        .get();
      if (schema?.value !== SCHEMA_VERSION) {
        throw new MapStoreError(
          `maps database schema ${String(schema?.value)} is not ${SCHEMA_VERSION} (${options.path})`,
        );
      }
      const cols = 'map, key, value, class, kind, seq';
      this.#stmt = {
        version: this.#db.prepare("SELECT value FROM meta WHERE key = 'version'"),
        bump: this.#db.prepare(
          "UPDATE meta SET value = value + 1 WHERE key IN ('version', 'version:' || ?)",
        ),
        mapVersion: this.#db.prepare("SELECT value FROM meta WHERE key = 'version:' || ?"),
        list: this.#db.prepare(`SELECT ${cols} FROM entries WHERE map = ? ORDER BY seq`),
        // In primary-key order, the table's own (WITHOUT ROWID) order: no index lookup per row.
        scan: this.#db.prepare(`SELECT ${cols} FROM entries WHERE map = ?`),
        get: this.#db.prepare(`SELECT ${cols} FROM entries WHERE map = ? AND key = ?`),
        count: this.#db.prepare('SELECT count(*) AS n FROM entries WHERE map = ?'),
        nextSeq: this.#db.prepare(
          'SELECT coalesce(max(seq), 0) + 1 AS seq FROM entries WHERE map = ?',
        ),
        insert: this.#db.prepare(`INSERT INTO entries (${cols}) VALUES (?, ?, ?, ?, ?, ?)`),
        update: this.#db.prepare(
          'UPDATE entries SET value = ?, class = ?, kind = ? WHERE map = ? AND key = ?',
        ),
        del: this.#db.prepare('DELETE FROM entries WHERE map = ? AND key = ?'),
        clear: this.#db.prepare('DELETE FROM entries WHERE map = ?'),
      };
      if (options.loadSnapshot ?? true) this.#snapshot = this.#read();
    } catch (err) {
      this.#db.close();
      throw err;
    }
    if (this.#options.pollMs > 0) {
      this.#timer = setInterval(() => this.#poll(), this.#options.pollMs);
      this.#timer.unref();
    }
  }

  /** Opens (creating if needed) the maps database and loads the current version. */
  static open(options: MappingEngineOptions): MappingEngine {
    return new MappingEngine(options);
  }

  /** The current snapshot: cheap, and immutable; hold it for the length of one message. */
  snapshot(): MapSnapshot {
    return this.#current();
  }

  #current(): Snapshot {
    this.#snapshot ??= this.#read();
    return this.#snapshot;
  }

  /** The entries of `map`, in map order, as stored now. */
  list(map: MapName): MapEntry[] {
    return this.#stmt.list.all(map).map(toEntry);
  }

  /** The entry with `key` (written in any form that normalizes to the stored key). */
  get(map: MapName, key: string): MapEntry | undefined {
    const row = this.#stmt.get.get(map, normalizeKey(key));
    return row === undefined ? undefined : toEntry(row);
  }

  /** Adds or replaces one entry (a replaced entry keeps its place in the map order). */
  set(map: MapName, key: string, value: string, opts: SetOptions = {}): WriteResult {
    const entry = checkEntry(map, key, value, opts.class ?? 'both');
    const version = this.#write(map, () => {
      this.#upsert(map, entry);
      this.#checkCount(map);
    });
    return { version, warnings: this.#warnings(map).filter((w) => w.includes(entry.key)) };
  }

  /** Deletes one entry; false if there was none. */
  del(map: MapName, key: string): boolean {
    let deleted = false;
    this.#write(map, () => {
      deleted = this.#stmt.del.run(map, normalizeKey(key)).changes > 0;
      return deleted;
    });
    return deleted;
  }

  /**
   * Imports Postfix table text (postfix-format.ts) into `map`: all of it or none of it (an error
   * names the line). Keys already in the map get the new value; with `replace`, the map becomes
   * exactly the input. Duplicate keys in the input: the first wins, with a warning (as postmap).
   */
  import(map: MapName, text: string, opts: ImportOptions): ImportResult {
    if (!MAP_FORMATS[map].includes(opts.format)) {
      throw new MapInputError(
        `${map} cannot be imported as ${opts.format} (formats: ${MAP_FORMATS[map].join(', ')})`,
      );
    }
    const warnings: string[] = [];
    const entries = new Map<string, NormalEntry & { line: number }>();
    for (const line of parsePostfixTable(text, opts.format, {
      bareKeys: map === 'relay_domains',
    })) {
      let entry: NormalEntry;
      try {
        entry = checkEntry(map, line.key, line.value, opts.class ?? 'both');
      } catch (err) {
        if (err instanceof MapInputError || err instanceof MapLimitError) {
          throw new MapInputError(`line ${line.line}: ${err.message}`, 'ERR_MAP_IMPORT');
        }
        throw err;
      }
      if (opts.format === 'cidr' && entry.kind !== 'cidr') {
        throw new MapInputError(
          `line ${line.line}: ${JSON.stringify(line.key)} is not an IP network`,
          'ERR_MAP_IMPORT',
        );
      }
      const first = entries.get(entry.key);
      if (first) {
        warnings.push(`line ${line.line}: duplicate key ${entry.key} (line ${first.line} wins)`);
        continue;
      }
      entries.set(entry.key, { ...entry, line: line.line });
    }
    if (entries.size > this.#options.maxEntries) {
      throw new MapLimitError(
        `${map}: ${entries.size} entries is more than the limit of ${this.#options.maxEntries}`,
      );
    }
    if (opts.format === 'cidr') {
      const asEntries = [...entries.values()].map((e) => ({ ...e, map, seq: e.line }));
      warnings.push(...new AccessTable(asEntries, this.#options).shadowedNetworks());
    }
    const version = this.#write(map, () => {
      if (opts.replace) this.#stmt.clear.run(map);
      for (const entry of entries.values()) this.#upsert(map, entry);
      this.#checkCount(map);
    });
    warnings.push(...this.#warnings(map));
    return { imported: entries.size, version, warnings };
  }

  /**
   * Makes `map` exactly `entries`, in their order, in one transaction (each entry checked again
   * as `set` would): how a node takes a map it shares with others (postgres.ts) into its own
   * database. Returns the version the change created.
   */
  replaceMap(map: MapName, entries: readonly MapEntry[]): number {
    const checked = entries.map((e) => checkEntry(map, e.key, e.value, e.class));
    return this.#write(map, () => {
      this.#stmt.clear.run(map);
      for (const entry of checked) this.#upsert(map, entry);
      this.#checkCount(map);
    });
  }

  /**
   * Looks `key` up in `map` against the newest version and says how: the keys tried in order,
   * the entry that matched, the answer (snapshot.ts explain).
   */
  test(map: MapName, key: string, opts: { as?: TestAs } = {}): MapTestResult {
    this.refresh();
    return this.#current().explain(map, key, opts.as);
  }

  /** Calls `listener` with the new version after each reload; returns a function that stops it. */
  onReload(listener: (version: number) => void): () => void {
    this.#reloadListeners.add(listener);
    return () => this.#reloadListeners.delete(listener);
  }

  /** Calls `listener` when a new version cannot be loaded (the old snapshot keeps serving). */
  onError(listener: (err: Error) => void): () => void {
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  /**
   * Loads the stored version now if it differs from the snapshot's (what the poll timer does);
   * true if a new snapshot was swapped in. Throws MapStoreError if it does not load.
   */
  refresh(): boolean {
    if (this.#snapshot === undefined) return false; // built on first use, from the newest version
    const version = this.#stmt.version.get()?.value ?? 0;
    if (version === this.#snapshot.version) return false;
    const next = this.#read(this.#snapshot);
    this.#snapshot = next;
    this.#failedVersion = undefined;
    for (const listener of this.#reloadListeners) {
      try {
        listener(next.version);
      } catch (err) {
        this.#report(err);
      }
    }
    return true;
  }

  /** Stops polling and closes the database (idempotent). */
  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    if (this.#db.open) this.#db.close();
  }

  #poll(): void {
    try {
      const version = this.#stmt.version.get()?.value ?? 0;
      if (this.#snapshot === undefined) return;
      if (version === this.#snapshot.version || version === this.#failedVersion) return;
      try {
        this.refresh();
      } catch (err) {
        this.#failedVersion = version;
        throw err;
      }
    } catch (err) {
      this.#report(err);
    }
  }

  #report(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    for (const listener of this.#errorListeners) {
      try {
        listener(error);
      } catch {
        // An error listener that throws has nobody left to tell; the poll goes on.
      }
    }
  }

  /**
   * One read transaction: the version, each map's version, and the entries of every map whose
   * version differs from `previous` (all of them without one); those maps are compiled again,
   * the others keep their compiled tables.
   */
  #read(previous?: Snapshot): Snapshot {
    const { version, mapVersions, changed } = this.#db.transaction(() => {
      const mapVersions = {} as Record<MapName, number>;
      const changed = new Map<MapName, MapEntry[]>();
      for (const map of MAP_NAMES) {
        mapVersions[map] = this.#stmt.mapVersion.get(map)?.value ?? 0;
        if (previous?.mapVersions[map] !== mapVersions[map]) {
          const entries = this.#stmt.scan.all(map).map(toEntry);
          changed.set(
            map,
            entries.sort((a, b) => a.seq - b.seq),
          );
        }
      }
      return { version: this.#stmt.version.get()?.value ?? 0, mapVersions, changed };
    })();
    const table = <M extends MapName>(map: M): MapTables[M] => {
      const entries = changed.get(map);
      if (entries !== undefined) return compileMap(map, entries, this.#options);
      return (previous as Snapshot).table(map);
    };
    const tables: MapTables = {
      access_map: table('access_map'),
      relay_domains: table('relay_domains'),
      mx_record_map: table('mx_record_map'),
      canonical_maps: table('canonical_maps'),
      virtual_alias_maps: table('virtual_alias_maps'),
      spam_policy: table('spam_policy'),
    };
    return new Snapshot(version, mapVersions, tables);
  }

  /**
   * Runs `change` in a write transaction that bumps the version if it changed anything, then
   * loads the new version here; returns the version the transaction left.
   */
  #write(map: MapName, change: () => boolean | void): number {
    const version = this.#db
      .transaction(() => {
        if (change() !== false) this.#stmt.bump.run(map);
        return this.#stmt.version.get()?.value ?? 0;
      })
      .immediate();
    this.refresh();
    return version;
  }

  /** What an operator should know about `map` as stored (shadowed canonical entries). */
  #warnings(map: MapName): readonly string[] {
    if (map !== 'canonical_maps') return [];
    try {
      return new CanonicalTable(this.list(map), this.#options).warnings;
    } catch (err) {
      return [`${map} has an entry that does not load: ${(err as Error).message}`];
    }
  }

  #upsert(map: MapName, entry: NormalEntry): void {
    if (this.#stmt.get.get(map, entry.key)) {
      this.#stmt.update.run(entry.value, entry.class, entry.kind, map, entry.key);
    } else {
      const seq = this.#stmt.nextSeq.get(map)?.seq ?? 1;
      this.#stmt.insert.run(map, entry.key, entry.value, entry.class, entry.kind, seq);
    }
  }

  /** Inside a write transaction: throws (rolling it back) if `map` is now over its limit. */
  #checkCount(map: MapName): void {
    const count = this.#stmt.count.get(map)?.n ?? 0;
    if (count > this.#options.maxEntries) {
      throw new MapLimitError(
        `${map} would have ${count} entries, more than AFTERSMTP_MAPS_MAX_ENTRIES (${this.#options.maxEntries})`,
      );
    }
  }
}
