/**
 * Submission users (ports 587 and 465): a login (the address the user types, e.g.
 * `alice@example.org`) bound to a DID, with a password stored as an scrypt hash (memory-hard,
 * RFC 7914; N=2^15, r=8, p=1: 32 MiB and tens of ms per check, on the libuv pool). Kept in SQLite
 * (`<data dir>/users.sqlite`, synchronous=FULL); read on each AUTH, so `aftersmtp users` changes
 * are live at once in a running gateway.
 *
 * Guarantees: a password is never stored or logged in clear; `verify` takes about the same time
 * for an unknown login as for a wrong password (a dummy hash is checked), and compares hashes in
 * constant time; logins are compared lower-cased; inputs are bounded (login 256 bytes, password
 * 1024 bytes).
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { InputError } from '../errors.js';
import { checkDid } from '../identity/did.js';

const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
const MAX_LOGIN = 256;
const MAX_PASSWORD = 1024;

export const USERS_FILE = 'users.sqlite';

export interface SubmissionUser {
  readonly login: string;
  readonly did: string;
  readonly createdAt: number;
}

function derive(password: string, salt: Buffer, n = N, r = R, p = P): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, KEY_LENGTH, { N: n, r, p, maxmem: 256 * n * r }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

/** `scrypt$N$r$p$salt$hash` (base64 parts). */
async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

async function checkHash(stored: string, password: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || salt === undefined || hash === undefined) return false;
  const expected = Buffer.from(hash, 'base64');
  const got = await derive(password, Buffer.from(salt, 'base64'), Number(n), Number(r), Number(p));
  return got.length === expected.length && timingSafeEqual(got, expected);
}

function checkLogin(login: string): string {
  if (typeof login !== 'string' || login.length === 0 || Buffer.byteLength(login) > MAX_LOGIN) {
    throw new InputError('ERR_USER_LOGIN', `a login must be 1 to ${MAX_LOGIN} bytes`);
  }
  // eslint-disable-next-line no-control-regex -- control characters are what is refused
  if (/[\s\0-\x1f\x7f]/.test(login)) {
    throw new InputError('ERR_USER_LOGIN', 'a login cannot contain spaces or control characters');
  }
  return login.toLowerCase();
}

function checkPassword(password: string): string {
  if (password.length < 8 || Buffer.byteLength(password) > MAX_PASSWORD) {
    throw new InputError('ERR_USER_PASSWORD', `a password must be 8 to ${MAX_PASSWORD} bytes long`);
  }
  return password;
}

export class SubmissionUsers {
  readonly #db: Database.Database;
  /** A hash of nothing, checked for unknown logins so they cost what a wrong password costs. */
  #dummy: Promise<string> | undefined;

  private constructor(db: Database.Database) {
    this.#db = db;
  }

  static open(dataDir: string): SubmissionUsers {
    const db = new Database(join(dataDir, USERS_FILE));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(`CREATE TABLE IF NOT EXISTS users (
      login TEXT PRIMARY KEY, did TEXT NOT NULL, hash TEXT NOT NULL, created_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
    return new SubmissionUsers(db);
  }

  async add(login: string, did: string, password: string): Promise<SubmissionUser> {
    const l = checkLogin(login);
    checkDid(did);
    const hash = await hashPassword(checkPassword(password));
    const createdAt = Date.now();
    const r = this.#db
      .prepare('INSERT OR IGNORE INTO users (login, did, hash, created_at) VALUES (?, ?, ?, ?)')
      .run(l, did, hash, createdAt);
    if (r.changes === 0) throw new InputError('ERR_USER_EXISTS', `${l} already exists`);
    return { login: l, did, createdAt };
  }

  async passwd(login: string, password: string): Promise<void> {
    const hash = await hashPassword(checkPassword(password));
    const r = this.#db
      .prepare('UPDATE users SET hash = ? WHERE login = ?')
      .run(hash, checkLogin(login));
    if (r.changes === 0) throw new InputError('ERR_USER_UNKNOWN', `no user ${login}`);
  }

  del(login: string): boolean {
    return this.#db.prepare('DELETE FROM users WHERE login = ?').run(checkLogin(login)).changes > 0;
  }

  list(): SubmissionUser[] {
    return (
      this.#db.prepare('SELECT login, did, created_at FROM users ORDER BY login').all() as {
        login: string;
        did: string;
        created_at: number;
      }[]
    ).map((r) => ({ login: r.login, did: r.did, createdAt: r.created_at }));
  }

  /** The user when the password is right; undefined otherwise (unknown login or wrong password). */
  async verify(login: string, password: string): Promise<SubmissionUser | undefined> {
    let l: string;
    try {
      l = checkLogin(login);
    } catch {
      return undefined;
    }
    if (Buffer.byteLength(password) > MAX_PASSWORD) return undefined;
    const row = this.#db
      .prepare('SELECT login, did, hash, created_at FROM users WHERE login = ?')
      .get(l) as { login: string; did: string; hash: string; created_at: number } | undefined;
    if (row === undefined) {
      this.#dummy ??= hashPassword(randomBytes(16).toString('hex'));
      await checkHash(await this.#dummy, password);
      return undefined;
    }
    return (await checkHash(row.hash, password))
      ? { login: row.login, did: row.did, createdAt: row.created_at }
      : undefined;
  }

  close(): void {
    this.#db.close();
  }
}
