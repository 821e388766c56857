/**
 * Every AFTERSMTP_* environment variable, in one table: its name, default, parser and the line of
 * documentation that docs/OPERATIONS.md shows. Adding a setting means adding one entry here; the
 * loader validates it at start-up and the docs table is generated from this list (and checked for
 * being current by a test).
 */
import { isAbsolute } from 'node:path';
import { checkDomain } from '../identity/did.js';
import { SUITE_IDS, type SuiteId } from '../identity/suites.js';

export interface Setting<T, D extends string | undefined = string | undefined> {
  /** The environment variable, always AFTERSMTP_*. */
  readonly env: string;
  /** The default as written in the environment (undefined: unset means "none"). */
  readonly default: D;
  /** One sentence for docs/OPERATIONS.md. */
  readonly doc: string;
  /** Turns the raw string into a value or throws an Error whose message says what is expected. */
  readonly parse: (raw: string) => T;
}

function setting<T, D extends string | undefined>(s: Setting<T, D>): Setting<T, D> {
  return s;
}

function integer(min: number, max: number) {
  return (raw: string): number => {
    if (!/^[0-9]+$/.test(raw))
      throw new Error(`expected a whole number, got ${JSON.stringify(raw)}`);
    const n = Number(raw);
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      throw new Error(`expected a number from ${min} to ${max}, got ${raw}`);
    }
    return n;
  };
}

function oneOf<T extends string>(values: readonly T[]) {
  return (raw: string): T => {
    if (!(values as readonly string[]).includes(raw)) {
      throw new Error(`expected one of ${values.join(', ')}, got ${JSON.stringify(raw)}`);
    }
    return raw as T;
  };
}

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** `host:port` or `[v6]:port`; port 0 asks the system for a free port. */
export function parseListenAddress(raw: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(raw);
  if (!m) throw new Error(`expected host:port, got ${JSON.stringify(raw)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port ${port} is out of range`);
  return { host: (m[1] ?? m[2]) as string, port };
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const SETTINGS = {
  dataDir: setting({
    env: 'AFTERSMTP_DATA_DIR',
    default: './data',
    doc: 'Directory for the embedded stores (LMDB, SQLite), key files and generated certificates.',
    parse: (raw) => {
      if (raw.length === 0 || raw.includes('\0')) throw new Error('expected a directory path');
      return raw;
    },
  }),
  domain: setting({
    env: 'AFTERSMTP_DOMAIN',
    default: 'aftersmtp.localhost',
    doc: 'The mail domain this gateway serves; its gateway identity is did:aftersmtp:<domain>:gateway.',
    parse: (raw) => checkDomain(raw),
  }),
  suite: setting({
    env: 'AFTERSMTP_SUITE',
    default: 'hybrid-v1',
    doc: 'Key suite for keys this gateway generates: hybrid-v1 (X-Wing + Ed25519/ML-DSA-65) or classic-v1 (X25519 + Ed25519).',
    parse: oneOf<SuiteId>(SUITE_IDS),
  }),
  passphraseFile: setting({
    env: 'AFTERSMTP_PASSPHRASE_FILE',
    default: undefined,
    doc: 'File holding the passphrase of the gateway key file. Unset: AFTERSMTP_PASSPHRASE, else a random one generated into <data dir>/gateway.pass (mode 0600) on first start.',
    parse: (raw) => {
      if (!isAbsolute(raw)) throw new Error('expected an absolute path');
      return raw;
    },
  }),
  adminListen: setting({
    env: 'AFTERSMTP_ADMIN_LISTEN',
    default: '127.0.0.1:9464',
    doc: 'Admin HTTP listener (GET /healthz, GET /metrics in Prometheus format). Keep it on loopback.',
    parse: parseListenAddress,
  }),
  maxEnvelopeBytes: setting({
    env: 'AFTERSMTP_MAX_ENVELOPE_BYTES',
    default: String(32 * 1024 * 1024),
    doc: 'Largest encoded AMP envelope accepted or produced, in bytes; larger input is refused before it is decoded.',
    parse: integer(4096, 1024 * 1024 * 1024),
  }),
  logLevel: setting({
    env: 'AFTERSMTP_LOG_LEVEL',
    default: 'info',
    doc: 'Log level of the structured (JSON) log on standard output.',
    parse: oneOf(LOG_LEVELS),
  }),
} as const;

type Settings = typeof SETTINGS;

/** The validated configuration: one typed field per setting (undefined where unset and no default). */
export type Config = {
  readonly [K in keyof Settings]: Settings[K] extends Setting<infer T, infer D>
    ? D extends string
      ? T
      : T | undefined
    : never;
};
