/**
 * The MailScript store: scripts per scope (`global`, or a domain) in the maps database
 * (`<data dir>/maps.sqlite`, tables of their own beside the maps'), versioned and reloaded by a
 * running gateway the way the MappingEngine reloads maps (routing/engine.ts).
 *
 * Storage: one row per scope (its source, its version, when it was set); a `version` counter in
 * `script_meta` that every change increments in the same transaction (WAL, synchronous=FULL:
 * when set/del returns the change is on disk). A scope's version is the store counter at its
 * last set, so versions only grow and a new version is a new cache key in the sandbox pool.
 *
 * With AFTERSMTP_MAPS=postgres the scripts are shared by every node on the server
 * (script/shared.ts): this store is then the node's copy, written only by PgScriptsFollower.
 *
 * Reload: every `pollMs` the store reads the counter; when it moved it reads every script in one
 * read transaction and swaps an immutable snapshot. The poll timer is unref'd and never throws;
 * a failure is told to onError listeners and the previous snapshot keeps serving.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { AfterSmtpError } from '../errors.js';

/** The largest script source, in bytes. */
export const MAX_SCRIPT_BYTES = 64 * 1024;
export const GLOBAL_SCOPE = 'global';

export interface StoredScript {
  /** `global` or a domain (lower case). */
  readonly scope: string;
  readonly version: number;
  readonly source: string;
  /** When it was set (ms since the epoch). */
  readonly updatedAt: number;
}

export interface ScriptSnapshot {
  /** The store counter this snapshot was read at. */
  readonly version: number;
  readonly global?: StoredScript;
  readonly byDomain: ReadonlyMap<string, StoredScript>;
}

export class ScriptInputError extends AfterSmtpError {
  constructor(message: string) {
    super('ERR_SCRIPT_INPUT', message);
  }
}

const DOMAIN =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Checks a script's source against the store's limits; throws ScriptInputError. */
export function checkSource(source: string): void {
  if (Buffer.byteLength(source) > MAX_SCRIPT_BYTES) {
    throw new ScriptInputError(`a script is at most ${MAX_SCRIPT_BYTES} bytes`);
  }
  if (source.includes('\0')) throw new ScriptInputError('a script may not contain NUL');
}

/** `global` or a domain name, lower-cased; throws ScriptInputError. */
export function checkScope(raw: string): string {
  const s = raw.toLowerCase();
  if (s === GLOBAL_SCOPE || DOMAIN.test(s)) return s;
  throw new ScriptInputError(`${JSON.stringify(raw)} is neither "global" nor a domain name`);
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS script_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS scripts (
  scope TEXT PRIMARY KEY,
  version INTEGER NOT NULL,
  source TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT OR IGNORE INTO script_meta (key, value) VALUES ('version', 0);
`;

interface Row {
  scope: string;
  version: number;
  source: string;
  updated_at: number;
}

export interface ScriptStoreOptions {
  /** The maps database (mapsDatabasePath); ':memory:' for tests. */
  readonly path: string;
  /** How often to look for changes by another process, in ms; 0: never (a CLI). */
  readonly pollMs?: number;
}

export class ScriptStore {
  readonly #db: Database.Database;
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #reload = new Set<(s: ScriptSnapshot) => void>();
  readonly #errors = new Set<(err: Error) => void>();
  #snapshot: ScriptSnapshot;

  private constructor(db: Database.Database, pollMs: number) {
    this.#db = db;
    this.#snapshot = this.#read();
    if (pollMs > 0) {
      this.#timer = setInterval(() => this.#poll(), pollMs);
      this.#timer.unref();
    }
  }

  static open(o: ScriptStoreOptions): ScriptStore {
    if (o.path !== ':memory:') mkdirSync(dirname(o.path), { recursive: true });
    const db = new Database(o.path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 5000');
      db.exec(SCHEMA);
    } catch (err) {
      db.close();
      throw err;
    }
    return new ScriptStore(db, o.pollMs ?? 0);
  }

  snapshot(): ScriptSnapshot {
    return this.#snapshot;
  }

  onReload(fn: (s: ScriptSnapshot) => void): void {
    this.#reload.add(fn);
  }

  onError(fn: (err: Error) => void): void {
    this.#errors.add(fn);
  }

  list(): StoredScript[] {
    const rows = this.#db.prepare('SELECT * FROM scripts ORDER BY scope').all() as Row[];
    return rows.map(toScript);
  }

  get(scope: string): StoredScript | undefined {
    const row = this.#db.prepare('SELECT * FROM scripts WHERE scope = ?').get(checkScope(scope)) as
      Row | undefined;
    return row === undefined ? undefined : toScript(row);
  }

  /** Stores a new version of the scope's script; returns it. The caller checked it compiles. */
  set(scope: string, source: string, now = Date.now()): StoredScript {
    const s = checkScope(scope);
    checkSource(source);
    const write = this.#db.transaction((): StoredScript => {
      const version = this.#bump();
      this.#db
        .prepare(
          'INSERT INTO scripts (scope, version, source, updated_at) VALUES (?, ?, ?, ?) ' +
            'ON CONFLICT (scope) DO UPDATE SET version = excluded.version, ' +
            'source = excluded.source, updated_at = excluded.updated_at',
        )
        .run(s, version, source, now);
      return { scope: s, version, source, updatedAt: now };
    });
    const stored = write.immediate();
    this.#refresh();
    return stored;
  }

  /** Deletes the scope's script; false if it had none. */
  del(scope: string): boolean {
    const s = checkScope(scope);
    const write = this.#db.transaction((): boolean => {
      const r = this.#db.prepare('DELETE FROM scripts WHERE scope = ?').run(s);
      if (r.changes === 0) return false;
      this.#bump();
      return true;
    });
    const deleted = write.immediate();
    this.#refresh();
    return deleted;
  }

  /**
   * Makes the store hold exactly `scripts`, with the counter at `version`, in one transaction:
   * a node's copy of the scripts shared on PostgreSQL (script/shared.ts), whose versions are the
   * server's. Reloads when anything changed.
   */
  replaceAll(scripts: readonly StoredScript[], version: number): void {
    const write = this.#db.transaction((): void => {
      this.#db.prepare('DELETE FROM scripts').run();
      const insert = this.#db.prepare(
        'INSERT INTO scripts (scope, version, source, updated_at) VALUES (?, ?, ?, ?)',
      );
      for (const x of scripts) insert.run(checkScope(x.scope), x.version, x.source, x.updatedAt);
      this.#db.prepare("UPDATE script_meta SET value = ? WHERE key = 'version'").run(version);
    });
    write.immediate();
    this.#refresh();
  }

  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#db.close();
  }

  #bump(): number {
    this.#db.prepare("UPDATE script_meta SET value = value + 1 WHERE key = 'version'").run();
    return this.#version();
  }

  #version(): number {
    const row = this.#db.prepare("SELECT value FROM script_meta WHERE key = 'version'").get() as {
      value: number;
    };
    return row.value;
  }

  #read(): ScriptSnapshot {
    return this.#db.transaction((): ScriptSnapshot => {
      const version = this.#version();
      const rows = (this.#db.prepare('SELECT * FROM scripts').all() as Row[]).map(toScript);
      const byDomain = new Map<string, StoredScript>();
      let global: StoredScript | undefined;
      for (const r of rows) {
        if (r.scope === GLOBAL_SCOPE) global = r;
        else byDomain.set(r.scope, r);
      }
      return Object.freeze({ version, ...(global !== undefined ? { global } : {}), byDomain });
    })();
  }

  #refresh(): void {
    const next = this.#read();
    this.#snapshot = next;
    for (const fn of this.#reload) fn(next);
  }

  #poll(): void {
    try {
      if (this.#version() !== this.#snapshot.version) this.#refresh();
    } catch (err) {
      for (const fn of this.#errors) fn(err as Error);
    }
  }
}

function toScript(r: Row): StoredScript {
  return Object.freeze({
    scope: r.scope,
    version: r.version,
    source: r.source,
    updatedAt: r.updated_at,
  });
}
