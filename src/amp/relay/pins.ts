/**
 * The operator's log-key pins (`aftersmtp ledger pin <domain> <key>`): for a peer domain whose
 * `_aftersmtp._tcp` record has no `k=` (a route-only peer, AFTERSMTP_RELAY_ROUTES, or a private
 * federation without DNS), the verifier key of its ledger, given out of band, as an
 * administrator's route is. A pin wins over DNS `k=`, like a route over discovery.
 *
 * The file, `<data dir>/log-pins.json`, is written only by the CLI (atomically) and read by the
 * running gateway when it changed (its mtime and size, looked at no more than every
 * PIN_RECHECK_MS), so a pin takes effect within half a second without a restart, and the gateway
 * never writes it (no lost update between the two).
 *
 *   { "format": "aftersmtp-log-pins/1", "pins": { "<domain>": "<verifier key>" } }
 */
import type { Stats } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError } from '../../errors.js';
import { sameFileStatus } from '../../file-status.js';
import { writeFileAtomic } from '../../identity/files.js';
import { logOrigin } from '../../ledger/checkpoint.js';
import { parseVerifierKey } from '../../ledger/note.js';

export const LOG_PINS_FILE = 'log-pins.json';
const FORMAT = 'aftersmtp-log-pins/1';
const MAX_PINS_BYTES = 1024 * 1024;
/**
 * How long the gateway trusts its last look at the file. Every relayed batch asks for a pin; a
 * stat per batch cost each gateway 30-55 µs of CPU per message (bench/relay profiles).
 */
export const PIN_RECHECK_MS = 500;

export function logPinsPath(dataDir: string): string {
  return join(dataDir, LOG_PINS_FILE);
}

/** Checks that `key` is a note verifier key of `domain`'s ledger (its name is the log origin). */
export function checkLogKey(domain: string, key: string): string {
  const v = parseVerifierKey(key);
  if (v.name !== logOrigin(domain)) {
    throw new InputError(
      'ERR_LOG_PIN',
      `the key is for the log ${JSON.stringify(v.name)}, not ${logOrigin(domain)}`,
    );
  }
  return key;
}

function parsePins(text: string, path: string): Map<string, string> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new InputError('ERR_LOG_PIN', `${path} is not JSON`);
  }
  const o = json as { format?: unknown; pins?: unknown };
  if (o === null || typeof o !== 'object' || o.format !== FORMAT) {
    throw new InputError('ERR_LOG_PIN', `${path}: unknown format`);
  }
  if (o.pins === null || typeof o.pins !== 'object' || Array.isArray(o.pins)) {
    throw new InputError('ERR_LOG_PIN', `${path}: no pins`);
  }
  const pins = new Map<string, string>();
  for (const [domain, key] of Object.entries(o.pins as Record<string, unknown>)) {
    if (typeof key !== 'string')
      throw new InputError('ERR_LOG_PIN', `${path}: bad pin for ${domain}`);
    pins.set(domain, checkLogKey(domain, key));
  }
  return pins;
}

/** The pins in `path` (an absent file: none). */
export async function readLogPins(path: string): Promise<Map<string, string>> {
  let text: string;
  try {
    const st = await stat(path);
    if (st.size > MAX_PINS_BYTES) throw new InputError('ERR_LOG_PIN', `${path} is too large`);
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
    throw err;
  }
  return parsePins(text, path);
}

/** Sets (or with `key` undefined, removes) one pin, atomically. */
export async function writeLogPin(
  path: string,
  domain: string,
  key: string | undefined,
): Promise<void> {
  const pins = await readLogPins(path);
  if (key === undefined) pins.delete(domain);
  else pins.set(domain, checkLogKey(domain, key));
  const body = {
    format: FORMAT,
    pins: Object.fromEntries([...pins].sort(([a], [b]) => (a < b ? -1 : 1))),
  };
  await writeFileAtomic(path, Buffer.from(`${JSON.stringify(body, null, 2)}\n`), {
    mode: 0o644,
    overwrite: true,
    code: 'ERR_LOG_PIN',
  });
}

/**
 * The gateway's reader: looks at the file (a stat) at most every `recheckMs`, and re-reads it only
 * when it changed (src/file-status.ts). Lookups meanwhile share the last look, or the one in
 * flight; a look that failed (an unreadable or malformed file) is not kept, so the next lookup
 * tries again and fails as loudly.
 */
export class LogPinFile {
  readonly path: string;
  readonly #recheckMs: number;
  readonly #now: () => number;
  #seen: { status: Stats; pins: Map<string, string> } | undefined;
  #look: { at: number; pins: Promise<Map<string, string>> } | undefined;

  constructor(path: string, options: { recheckMs?: number; now?: () => number } = {}) {
    this.path = path;
    this.#recheckMs = options.recheckMs ?? PIN_RECHECK_MS;
    this.#now = options.now ?? Date.now;
  }

  async get(domain: string): Promise<string | undefined> {
    const now = this.#now();
    let look = this.#look;
    // A look older than the interval, or from a clock since set back: look again.
    if (look === undefined || now < look.at || now - look.at >= this.#recheckMs) {
      const fresh = { at: now, pins: this.#read() };
      fresh.pins.catch(() => {
        if (this.#look === fresh) this.#look = undefined;
      });
      this.#look = look = fresh;
    }
    return (await look.pins).get(domain);
  }

  async #read(): Promise<Map<string, string>> {
    let st;
    try {
      st = await stat(this.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Map();
      throw err;
    }
    if (this.#seen === undefined || !sameFileStatus(this.#seen.status, st)) {
      this.#seen = { status: st, pins: await readLogPins(this.path) };
    }
    return this.#seen.pins;
  }
}
