/**
 * The off-ramp's SMTP AUTH credentials for relay hosts (AFTERSMTP_OFFRAMP_CREDENTIALS_FILE), as
 * Postfix's smtp_sasl_password_maps: one line per server, `[host]:port user:password` (or `host
 * user:password` for every port of that host), `#` comments and blank lines ignored. A session
 * to a server with credentials authenticates after STARTTLS, and only over TLS whose certificate
 * verifies for the host name (session.ts, `verified`): the password never goes out in clear nor
 * to a server that cannot prove its name.
 *
 * The file must not be readable by group or others (mode 0600, as the store's key file). Lines
 * are checked whole: a malformed line is a start-up error naming its line number, never a
 * silently ignored entry. While the gateway runs, the file is watched (CredentialsFile): a
 * change is live within about two seconds; a changed file that fails the same checks is
 * refused whole, and the credentials read before stay in force.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import { isIP } from 'node:net';
import { ConfigError } from '../../errors.js';
import { fileStatus, sameFileStatus } from '../../file-status.js';

export interface Credentials {
  readonly user: string;
  readonly pass: string;
}

/** The credentials for the server named `host` (any case, a final dot ignored) at `port`, if any. */
export type CredentialLookup = (host: string, port: number) => Credentials | undefined;

const MAX_FILE_BYTES = 1024 * 1024;
const HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/;
/** What SMTP AUTH can carry (RFC 4616 PLAIN: UTF-8 without NUL), without spaces or controls. */
function printable(s: string): boolean {
  if (s.length === 0 || s.length > 255) return false;
  for (const ch of s) {
    const c = ch.codePointAt(0) as number;
    if (c <= 0x20 || c === 0x7f) return false;
  }
  return true;
}

/** Parses the file's text; throws ConfigError naming the first bad line. */
export function parseCredentials(text: string, source: string): CredentialLookup {
  const byKey = new Map<string, Credentials>();
  const lines = text.split('\n');
  lines.forEach((raw, at) => {
    const line = raw.replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#')) return;
    const bad = (why: string): never => {
      throw new ConfigError('ERR_CONFIG', `${source} line ${at + 1}: ${why}`);
    };
    const fields = line.split(/\s+/);
    if (fields.length !== 2) bad('expected "[host]:port user:password" or "host user:password"');
    const [where, login] = fields as [string, string];
    const key =
      serverKey(where) ??
      bad(`"${where}" is not [host]:port or a host name (no addresses: TLS checks the name)`);
    const colon = login.indexOf(':');
    if (colon <= 0) bad('expected user:password after the server');
    const user = login.slice(0, colon);
    const pass = login.slice(colon + 1);
    if (!printable(user) || !printable(pass)) {
      bad('the user and the password must be 1-255 printable characters, no spaces');
    }
    if (byKey.has(key)) bad(`${where} is listed twice`);
    byKey.set(key, { user, pass });
  });
  return (host, port) => {
    const name = host.toLowerCase().replace(/\.$/, '');
    return byKey.get(`[${name}]:${port}`) ?? byKey.get(name);
  };
}

/** `[host]:port` kept as written (host in lower case), a bare host name as itself; else undefined. */
function serverKey(where: string): string | undefined {
  const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(where);
  if (bracketed !== null) {
    const host = (bracketed[1] as string).toLowerCase();
    const port = Number(bracketed[2]);
    if (!isHostName(host) || port < 1 || port > 65535) return undefined;
    return `[${host}]:${port}`;
  }
  const host = where.toLowerCase();
  return isHostName(host) ? host : undefined;
}

/** A host name, not an address: the certificate is checked against it. */
function isHostName(host: string): boolean {
  return HOST.test(host) && isIP(host) === 0;
}

/** Reads and checks the credentials file (mode 0600 or stricter, at most 1 MiB). */
export function readCredentialsFile(path: string): CredentialLookup {
  const st = readable(path, () => statSync(path));
  if ((st.mode & 0o077) !== 0) {
    throw new ConfigError(
      'ERR_CONFIG',
      `${path} (AFTERSMTP_OFFRAMP_CREDENTIALS_FILE) may be read by group or others (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
  if (st.size > MAX_FILE_BYTES) {
    throw new ConfigError('ERR_CONFIG', `${path} is larger than ${MAX_FILE_BYTES} bytes`);
  }
  return parseCredentials(
    readable(path, () => readFileSync(path, 'utf8')),
    path,
  );
}

/** `read()`, with a file system error worded as the setting's. */
function readable<T>(path: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(
      'ERR_CONFIG',
      `cannot read ${path} (AFTERSMTP_OFFRAMP_CREDENTIALS_FILE): ${code}`,
    );
  }
}

/** How often the watched file's status is read, ms. */
const WATCH_INTERVAL_MS = 1_000;

/**
 * The credentials file, read now (a ConfigError stops the start) and again whenever its status
 * changes (modified, replaced, its mode changed). `onReload` hears of each reading after the
 * first: no error, the new credentials are in force; a ConfigError, the previous ones stay. The
 * status is compared with the one taken just before the last reading (a stat each second on the
 * event loop, a few µs), so a change made right after the start is not missed, as it could be
 * by fs.watchFile, whose first status is taken later on the thread pool.
 */
export class CredentialsFile {
  readonly #path: string;
  readonly #onReload: (err?: ConfigError) => void;
  #current: CredentialLookup;
  /** The status the last reading saw; undefined while the file cannot be stat'ed. */
  #seen: Stats | undefined;
  readonly #timer: NodeJS.Timeout;

  constructor(path: string, onReload: (err?: ConfigError) => void) {
    this.#path = path;
    this.#onReload = onReload;
    this.#seen = fileStatus(path);
    this.#current = readCredentialsFile(path);
    // Unref'd: the check holds no process alive.
    this.#timer = setInterval(() => this.#check(), WATCH_INTERVAL_MS).unref();
  }

  #check(): void {
    const now = fileStatus(this.#path);
    if (sameFileStatus(now, this.#seen)) return;
    this.#seen = now;
    try {
      this.#current = readCredentialsFile(this.#path);
      this.#onReload();
    } catch (err) {
      this.#onReload(err instanceof ConfigError ? err : new ConfigError('ERR_CONFIG', String(err)));
    }
  }

  /** The lookup in force now (for the off-ramp's `credentials`). */
  readonly lookup: CredentialLookup = (host, port) => this.#current(host, port);

  close(): void {
    clearInterval(this.#timer);
  }
}
