/**
 * The log's own signing key (Ed25519, signs checkpoints) persisted as a key file in the data
 * directory, `<dataDir>/ledger.key`, encrypted with a passphrase (DESIGN.md §2: private keys at
 * rest are encrypted): scrypt (RFC 7914) derives a 256-bit key that seals the 32-byte seed with
 * ChaCha20-Poly1305 (RFC 8439); the AAD binds the file format, the key name and the verifier key,
 * so a file whose public part was edited does not open.
 *
 * Why a key file and not a row in the log database: the database is what gets copied, backed up
 * and (later) replicated to serve lookups; the signing key must not travel with it. The database
 * records the verifier key on first use and the ledger refuses to open with another key
 * (ledger.ts), so a log is never signed by two keys by accident.
 *
 * Guarantees: reading is bounded (MAX_LOG_KEY_FILE_BYTES) and strict (exact members, canonical
 * base64, scrypt cost within bounds so a hostile file cannot exhaust memory); a wrong passphrase
 * or an edited file is CryptoError(ERR_LOG_KEY_DECRYPT); creation never overwrites a key.
 */
import { createCipheriv, createDecipheriv, randomBytes, scryptSync } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { CryptoError, InputError } from '../errors.js';
import { readBoundedFile, writeFileAtomic } from '../identity/files.js';
import { NoteSigner, parseVerifierKey } from './note.js';

export const LOG_KEY_FORMAT = 'aftersmtp-ledger-key/v1';
export const LOG_KEY_FILE = 'ledger.key';
export const MAX_LOG_KEY_FILE_BYTES = 4096;
const MAX_SCRYPT_N = 2 ** 20;

export interface ScryptParams {
  readonly N: number;
  readonly r: number;
  readonly p: number;
}

/** OWASP-style interactive cost: 32 MiB, about 0.1 s here. */
export const DEFAULT_SCRYPT: ScryptParams = { N: 2 ** 15, r: 8, p: 1 };

function aad(name: string, verifierKey: string): Buffer {
  return Buffer.from(`${LOG_KEY_FORMAT}\n${name}\n${verifierKey}\n`, 'utf8');
}

function deriveKey(passphrase: string, salt: Buffer, params: ScryptParams): Buffer {
  if (typeof passphrase !== 'string' || passphrase.length === 0) {
    throw new InputError('ERR_LOG_KEY', 'the log key passphrase must be a non-empty string');
  }
  return scryptSync(passphrase, salt, 32, {
    N: params.N,
    r: params.r,
    p: params.p,
    maxmem: 256 * params.N * params.r + 1024 * 1024,
  });
}

/** Serialises `seed` under `name` into the key file format. */
export function encryptLogKey(
  name: string,
  seed: Buffer,
  passphrase: string,
  params: ScryptParams = DEFAULT_SCRYPT,
): string {
  const signer = new NoteSigner(name, seed);
  const salt = randomBytes(16);
  const nonce = randomBytes(12);
  const key = deriveKey(passphrase, salt, params);
  const cipher = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  cipher.setAAD(aad(name, signer.verifierKey), { plaintextLength: seed.length });
  const ciphertext = Buffer.concat([cipher.update(seed), cipher.final(), cipher.getAuthTag()]);
  key.fill(0);
  const file = {
    format: LOG_KEY_FORMAT,
    name,
    verifierKey: signer.verifierKey,
    kdf: { alg: 'scrypt', N: params.N, r: params.r, p: params.p, salt: salt.toString('base64') },
    aead: 'chacha20-poly1305',
    nonce: nonce.toString('base64'),
    ciphertext: ciphertext.toString('base64'),
  };
  return `${JSON.stringify(file, null, 2)}\n`;
}

function b64(value: unknown, length: number, field: string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'base64') : Buffer.alloc(0);
  if (typeof value !== 'string' || bytes.toString('base64') !== value || bytes.length !== length) {
    throw new InputError('ERR_LOG_KEY', `log key file: ${field} must be base64 of ${length} bytes`);
  }
  return bytes;
}

function exact(o: unknown, keys: string[], where: string): Record<string, unknown> {
  if (typeof o !== 'object' || o === null || Array.isArray(o)) {
    throw new InputError('ERR_LOG_KEY', `log key file: ${where} must be an object`);
  }
  const present = Object.keys(o).sort();
  if (present.join(',') !== [...keys].sort().join(',')) {
    throw new InputError(
      'ERR_LOG_KEY',
      `log key file: ${where} must have exactly ${keys.join(', ')}`,
    );
  }
  return o as Record<string, unknown>;
}

/** Parses and decrypts a key file's contents. */
export function decryptLogKey(contents: string, passphrase: string): NoteSigner {
  let json: unknown;
  try {
    json = JSON.parse(contents);
  } catch {
    throw new InputError('ERR_LOG_KEY', 'log key file is not JSON');
  }
  const f = exact(
    json,
    ['format', 'name', 'verifierKey', 'kdf', 'aead', 'nonce', 'ciphertext'],
    'the file',
  );
  if (f.format !== LOG_KEY_FORMAT) throw new InputError('ERR_LOG_KEY', 'unknown log key format');
  if (f.aead !== 'chacha20-poly1305') throw new InputError('ERR_LOG_KEY', 'unknown AEAD');
  if (typeof f.name !== 'string' || typeof f.verifierKey !== 'string') {
    throw new InputError('ERR_LOG_KEY', 'log key file: name and verifierKey must be strings');
  }
  const kdf = exact(f.kdf, ['alg', 'N', 'r', 'p', 'salt'], 'kdf');
  const { N, r, p } = kdf;
  const okInt = (v: unknown, max: number): v is number =>
    Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= max;
  if (
    kdf.alg !== 'scrypt' ||
    !okInt(N, MAX_SCRYPT_N) ||
    (N & (N - 1)) !== 0 ||
    N < 2 ||
    !okInt(r, 32) ||
    !okInt(p, 4)
  ) {
    throw new InputError('ERR_LOG_KEY', 'log key file: scrypt parameters out of bounds');
  }
  const salt = b64(kdf.salt, 16, 'salt');
  const nonce = b64(f.nonce, 12, 'nonce');
  const ciphertext = b64(f.ciphertext, 48, 'ciphertext');
  const key = deriveKey(passphrase, salt, { N, r, p });
  let seed: Buffer;
  try {
    const d = createDecipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
    d.setAAD(aad(f.name, f.verifierKey), { plaintextLength: 32 });
    d.setAuthTag(ciphertext.subarray(32));
    seed = Buffer.concat([d.update(ciphertext.subarray(0, 32)), d.final()]);
  } catch {
    throw new CryptoError(
      'ERR_LOG_KEY_DECRYPT',
      'wrong passphrase or the log key file was altered',
    );
  } finally {
    key.fill(0);
  }
  try {
    const signer = new NoteSigner(f.name, seed);
    if (signer.verifierKey !== f.verifierKey) {
      throw new CryptoError('ERR_LOG_KEY_DECRYPT', 'log key does not match its verifier key');
    }
    return signer;
  } finally {
    seed.fill(0);
  }
}

/** Reads the log key file at `path`. */
export async function readLogKey(path: string, passphrase: string): Promise<NoteSigner> {
  const bytes = await readBoundedFile(path, MAX_LOG_KEY_FILE_BYTES, 'ERR_LOG_KEY');
  return decryptLogKey(bytes.toString('utf8'), passphrase);
}

/** Creates a new log key under `name` and writes it to `path` (never overwriting). */
export async function createLogKey(
  path: string,
  name: string,
  passphrase: string,
  params: ScryptParams = DEFAULT_SCRYPT,
): Promise<NoteSigner> {
  const seed = randomBytes(32);
  try {
    const contents = encryptLogKey(name, seed, passphrase, params);
    await writeFileAtomic(path, Buffer.from(contents), {
      mode: 0o600,
      overwrite: false,
      code: 'ERR_LOG_KEY',
    });
    return new NoteSigner(name, seed);
  } finally {
    seed.fill(0);
  }
}

/** Loads the log key at `path`, creating it on first use. */
export async function loadOrCreateLogKey(
  path: string,
  name: string,
  passphrase: string,
  params: ScryptParams = DEFAULT_SCRYPT,
): Promise<{ signer: NoteSigner; created: boolean }> {
  const exists = await stat(path).then(
    () => true,
    (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return false;
      throw err;
    },
  );
  if (!exists) return { signer: await createLogKey(path, name, passphrase, params), created: true };
  const signer = await readLogKey(path, passphrase);
  if (signer.name !== name) {
    throw new InputError(
      'ERR_LOG_KEY',
      `${path} is the log key of ${signer.name}, not ${name}: this data directory serves another domain (AFTERSMTP_DOMAIN; give each domain its own AFTERSMTP_DATA_DIR)`,
    );
  }
  return { signer, created: false };
}

/**
 * The public half of a key file (name and verifier key) without the passphrase, for printing.
 * The verifier key is checked for shape; it is authenticated when the key is opened.
 */
export async function readLogKeyPublic(
  path: string,
): Promise<{ name: string; verifierKey: string }> {
  const bytes = await readBoundedFile(path, MAX_LOG_KEY_FILE_BYTES, 'ERR_LOG_KEY');
  let json: { format?: unknown; name?: unknown; verifierKey?: unknown };
  try {
    json = JSON.parse(bytes.toString('utf8')) as typeof json;
  } catch {
    throw new InputError('ERR_LOG_KEY', 'log key file is not JSON');
  }
  if (json.format !== LOG_KEY_FORMAT || typeof json.verifierKey !== 'string') {
    throw new InputError('ERR_LOG_KEY', 'not a log key file');
  }
  const v = parseVerifierKey(json.verifierKey);
  if (v.name !== json.name) throw new InputError('ERR_LOG_KEY', 'log key file names differ');
  return { name: v.name, verifierKey: json.verifierKey };
}
