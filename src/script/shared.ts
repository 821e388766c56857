/**
 * MailScript scripts shared by several gateway nodes on PostgreSQL (AFTERSMTP_MAPS=postgres: the
 * scripts live where the maps live). The server holds every scope's script as one versioned
 * document of the maps' store (routing/postgres.ts, namespace `scripts`, document `scripts`): one
 * row per scope, `{ scope, version, source, updatedAt }`. The document's version is the store's
 * counter: every set and del bumps it under the document's row lock, and a set gives its scope
 * that version, so versions only grow and are the same on every node (a new version is a new key
 * in each node's sandbox pool).
 *
 * `aftersmtp script set/del/list` use SharedScripts (the server); each node's ScriptStore
 * (`maps.sqlite`) is a copy written only by PgScriptsFollower, which polls the namespace's
 * versions every `pollMs` (AFTERSMTP_SCRIPT_POLL_MS, 250 ms) and, when the document moved, reads
 * it in one statement and replaces the copy in one transaction: a node serves the old scripts or
 * the new ones, never a mix, within pollMs of a change. A pass that fails leaves the last scripts
 * serving and is retried at the next tick.
 */
import { PgDocumentsFollower, PgSharedDocuments } from '../routing/postgres.js';
import { checkScope, checkSource, type ScriptStore, type StoredScript } from './store.js';

export const SCRIPTS_NAMESPACE = 'scripts';
const DOCUMENT = 'scripts';

/** A script as the server stores it (JSON). */
interface ScriptRow {
  readonly scope: string;
  readonly version: number;
  readonly source: string;
  readonly updatedAt: number;
}

/** The scripts namespace on the server. */
export function sharedScriptDocuments(url: string): PgSharedDocuments<ScriptRow> {
  return new PgSharedDocuments<ScriptRow>({ url, namespace: SCRIPTS_NAMESPACE });
}

function toScript(r: ScriptRow): StoredScript {
  return Object.freeze({
    scope: r.scope,
    version: Number(r.version),
    source: r.source,
    updatedAt: Number(r.updatedAt),
  });
}

/** A del of a scope without a script: nothing to write (the change is rolled back). */
class NoScript extends Error {}

/** The scripts on the server, as the CLI changes them. */
export class SharedScripts {
  readonly #docs: PgSharedDocuments<ScriptRow>;

  constructor(docs: PgSharedDocuments<ScriptRow>) {
    this.#docs = docs;
  }

  async list(): Promise<StoredScript[]> {
    const { rows } = await this.#docs.read(DOCUMENT);
    return rows.map(toScript).sort((a, b) => (a.scope < b.scope ? -1 : a.scope > b.scope ? 1 : 0));
  }

  async get(scope: string): Promise<StoredScript | undefined> {
    const s = checkScope(scope);
    return (await this.list()).find((x) => x.scope === s);
  }

  /** Stores a new version of the scope's script; the caller checked it compiles. */
  async set(scope: string, source: string, now = Date.now()): Promise<StoredScript> {
    const s = checkScope(scope);
    checkSource(source);
    let stored: StoredScript | undefined;
    await this.#docs.update(DOCUMENT, (rows, version) => {
      stored = toScript({ scope: s, version, source, updatedAt: now });
      return [...rows.filter((r) => r.scope !== s), stored];
    });
    return stored as StoredScript;
  }

  /** Deletes the scope's script; false if it had none (and nothing is written). */
  async del(scope: string): Promise<boolean> {
    const s = checkScope(scope);
    try {
      await this.#docs.update(DOCUMENT, (rows) => {
        if (!rows.some((r) => r.scope === s)) throw new NoScript();
        return rows.filter((r) => r.scope !== s);
      });
      return true;
    } catch (err) {
      if (err instanceof NoScript) return false;
      throw err;
    }
  }
}

/** Keeps a node's ScriptStore equal to the scripts on the server. */
export class PgScriptsFollower extends PgDocumentsFollower<ScriptRow> {
  constructor(store: ScriptStore, docs: PgSharedDocuments<ScriptRow>, pollMs = 250) {
    super(
      docs,
      [DOCUMENT],
      (_name, rows, version) => store.replaceAll(rows.map(toScript), version),
      pollMs,
    );
  }
}
