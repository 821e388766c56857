/**
 * Passphrase-encrypted private key files (docs/PROTOCOL.md §5).
 *
 *   header = "ASMTPKEY" || u16be(version = 1) || lp(did) || lp(suite) || u64be(createdAt)
 *            || lp("scrypt") || u8(log2 N) || u32be(r) || u32be(p) || lp(salt) || lp(nonce)
 *   file   = header || lp(ChaCha20-Poly1305(key, nonce, aad = header, seeds))
 *   key    = scrypt(NFC UTF-8 passphrase, salt, N, r, p, 32 bytes)   (RFC 7914)
 *   seeds  = kem secret (32) || Ed25519 seed (32) [|| ML-DSA-65 seed ξ (32) for hybrid-v1]
 *
 * Guarantees: reading never allocates more than MAX_KEYFILE_BYTES for the file nor more than
 * MAX_SCRYPT_MEMORY for the KDF, whatever a hostile file says (the KDF parameters are bounded
 * before scrypt runs); every field of the header is authenticated as AEAD aad, so any change to
 * it reads as a wrong passphrase; decrypted seeds and the derived key are zero-filled as soon as
 * the native key objects hold them. Every failure is a typed InputError/CryptoError with a code:
 * ERR_KEYFILE_FORMAT, ERR_KEYFILE_TOO_LARGE, ERR_KEYFILE_VERSION, ERR_KEYFILE_KDF,
 * ERR_KEYFILE_PASSPHRASE, ERR_KEYFILE_IO, ERR_KEYFILE_IO_EXISTS.
 */
import { scrypt as scryptCb, type ScryptOptions } from 'node:crypto';
import { AfterSmtpError, CryptoError, InputError } from '../errors.js';
import { aeadOpen, aeadSeal, randomBytes } from '../native/index.js';
import { MAX_DID_LENGTH } from './did.js';
import { readBoundedFile, writeFileAtomic } from './files.js';
import { SecretKeySet, type SecretSeeds } from './keys.js';
import { lp, u32be, u64be } from './lp.js';
import { SEED_LENGTH, SUITES, isSuiteId } from './suites.js';

export const KEYFILE_MAGIC = Buffer.from('ASMTPKEY', 'ascii');
export const KEYFILE_VERSION = 1;
export const MAX_KEYFILE_BYTES = 4096;
export const SCRYPT_KDF_NAME = 'scrypt';

export interface ScryptParams {
  /** log2 of the CPU/memory cost N. */
  log2N: number;
  r: number;
  p: number;
}

/** The parameters written by default: N = 2^17, r = 8, p = 1 (128 MiB, about 0.3 s). */
export const DEFAULT_SCRYPT: Readonly<ScryptParams> = { log2N: 17, r: 8, p: 1 };
/** Bounds enforced on read and on write. */
export const SCRYPT_BOUNDS = {
  minLog2N: 14,
  maxLog2N: 20,
  maxR: 16,
  maxP: 16,
  /** 128 * N * r, the memory scrypt needs. */
  maxMemory: 256 * 1024 * 1024,
  /** N * r * p, proportional to CPU time; 8x the default. */
  maxWork: 2 ** 23,
} as const;

const SALT_MIN = 16;
const SALT_MAX = 64;
const SALT_LENGTH = 32;
const NONCE_LENGTH = 12;

function format(message: string): never {
  throw new InputError('ERR_KEYFILE_FORMAT', `key file: ${message}`);
}

/** Throws InputError(ERR_KEYFILE_KDF) unless the parameters are within SCRYPT_BOUNDS. */
export function checkScryptParams(params: ScryptParams): ScryptParams {
  const { log2N, r, p } = params;
  const ok =
    Number.isInteger(log2N) &&
    Number.isInteger(r) &&
    Number.isInteger(p) &&
    log2N >= SCRYPT_BOUNDS.minLog2N &&
    log2N <= SCRYPT_BOUNDS.maxLog2N &&
    r >= 1 &&
    r <= SCRYPT_BOUNDS.maxR &&
    p >= 1 &&
    p <= SCRYPT_BOUNDS.maxP &&
    128 * 2 ** log2N * r <= SCRYPT_BOUNDS.maxMemory &&
    2 ** log2N * r * p <= SCRYPT_BOUNDS.maxWork;
  if (!ok) {
    throw new InputError(
      'ERR_KEYFILE_KDF',
      `key file: scrypt parameters log2N=${log2N} r=${r} p=${p} are outside the accepted bounds`,
    );
  }
  return params;
}

function passphraseBytes(passphrase: string | Uint8Array): Buffer {
  return typeof passphrase === 'string'
    ? Buffer.from(passphrase.normalize('NFC'), 'utf8')
    : Buffer.from(passphrase);
}

async function deriveKey(
  passphrase: string | Uint8Array,
  salt: Buffer,
  params: ScryptParams,
): Promise<Buffer> {
  const N = 2 ** params.log2N;
  const options: ScryptOptions = {
    N,
    r: params.r,
    p: params.p,
    maxmem: 128 * N * params.r + 16 * 1024 * 1024,
  };
  const pw = passphraseBytes(passphrase);
  try {
    return await new Promise<Buffer>((resolve, reject) =>
      scryptCb(pw, salt, 32, options, (err, key) => (err ? reject(err) : resolve(key))),
    );
  } catch (err) {
    throw new InputError('ERR_KEYFILE_KDF', `key file: scrypt failed: ${(err as Error).message}`, {
      cause: err,
    });
  } finally {
    pw.fill(0);
  }
}

interface Header {
  bytes: Buffer;
  did: string;
  suite: 'classic-v1' | 'hybrid-v1';
  createdAt: number;
  kdf: ScryptParams;
  salt: Buffer;
  nonce: Buffer;
}

function encodeHeader(h: Omit<Header, 'bytes'>): Buffer {
  const version = Buffer.alloc(2);
  version.writeUInt16BE(KEYFILE_VERSION, 0);
  return Buffer.concat([
    KEYFILE_MAGIC,
    version,
    lp(h.did, h.suite),
    u64be(h.createdAt),
    lp(SCRYPT_KDF_NAME),
    Buffer.from([h.kdf.log2N]),
    u32be(h.kdf.r),
    u32be(h.kdf.p),
    lp(h.salt, h.nonce),
  ]);
}

/** A bounds-checked cursor over untrusted bytes; every overrun is ERR_KEYFILE_FORMAT. */
class Cursor {
  offset = 0;
  constructor(readonly buf: Buffer) {}
  take(n: number, what: string): Buffer {
    if (n > this.buf.length - this.offset) format(`truncated in ${what}`);
    const out = this.buf.subarray(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }
  u8(what: string): number {
    return this.take(1, what).readUInt8(0);
  }
  u32(what: string): number {
    return this.take(4, what).readUInt32BE(0);
  }
  lp(what: string, min: number, max: number): Buffer {
    const n = this.u32(what);
    if (n < min || n > max) format(`${what} length ${n} is outside ${min}..${max}`);
    return this.take(n, what);
  }
}

function decodeHeader(c: Cursor): Header {
  if (!c.take(KEYFILE_MAGIC.length, 'magic').equals(KEYFILE_MAGIC))
    format('not an AfterSMTP key file (bad magic)');
  const version = c.take(2, 'version').readUInt16BE(0);
  if (version !== KEYFILE_VERSION) {
    throw new InputError(
      'ERR_KEYFILE_VERSION',
      `key file: version ${version} is not supported (expected ${KEYFILE_VERSION})`,
    );
  }
  const did = c.lp('did', 1, MAX_DID_LENGTH).toString('utf8');
  const suite = c.lp('suite', 1, 32).toString('utf8');
  if (!isSuiteId(suite)) format(`unknown suite ${JSON.stringify(suite)}`);
  const created = c.take(8, 'createdAt').readBigUInt64BE(0);
  if (created > BigInt(Number.MAX_SAFE_INTEGER)) format('createdAt out of range');
  const kdfName = c.lp('kdf', 1, 16).toString('utf8');
  if (kdfName !== SCRYPT_KDF_NAME) {
    throw new InputError('ERR_KEYFILE_KDF', `key file: unsupported KDF ${JSON.stringify(kdfName)}`);
  }
  const kdf = checkScryptParams({ log2N: c.u8('log2N'), r: c.u32('r'), p: c.u32('p') });
  const salt = c.lp('salt', SALT_MIN, SALT_MAX);
  const nonce = c.lp('nonce', NONCE_LENGTH, NONCE_LENGTH);
  return {
    bytes: c.buf.subarray(0, c.offset),
    did,
    suite,
    createdAt: Number(created),
    kdf,
    salt,
    nonce,
  };
}

function seedsLength(suite: 'classic-v1' | 'hybrid-v1'): number {
  return SEED_LENGTH * (SUITES[suite].hybridSignature ? 3 : 2);
}

/** Encrypts `keys` under `passphrase` into key file bytes. */
export async function encodeKeyFile(
  keys: SecretKeySet,
  passphrase: string | Uint8Array,
  options: { kdf?: ScryptParams } = {},
): Promise<Buffer> {
  if (passphraseBytes(passphrase).length === 0) {
    throw new InputError('ERR_KEYFILE_PASSPHRASE', 'key file: the passphrase must not be empty');
  }
  const kdf = checkScryptParams(options.kdf ?? DEFAULT_SCRYPT);
  const record = keys.record;
  const salt = randomBytes(SALT_LENGTH);
  const nonce = randomBytes(NONCE_LENGTH);
  const header = encodeHeader({
    did: record.did,
    suite: record.suite,
    createdAt: record.createdAt,
    kdf,
    salt,
    nonce,
  });
  const key = await deriveKey(passphrase, salt, kdf);
  const seeds = keys.exportSeeds();
  const plaintext = Buffer.concat([
    seeds.kem,
    seeds.ed25519,
    ...(seeds.mldsa65 ? [seeds.mldsa65] : []),
  ]);
  try {
    const ciphertext = aeadSeal('chacha20-poly1305', key, nonce, header, plaintext);
    return Buffer.concat([header, lp(ciphertext)]);
  } finally {
    key.fill(0);
    plaintext.fill(0);
    seeds.kem.fill(0);
    seeds.ed25519.fill(0);
    seeds.mldsa65?.fill(0);
  }
}

/** Decrypts key file bytes. The public record is rebuilt from the seeds and the header. */
export async function decodeKeyFile(
  bytes: Uint8Array,
  passphrase: string | Uint8Array,
): Promise<SecretKeySet> {
  if (bytes.length > MAX_KEYFILE_BYTES) {
    throw new InputError(
      'ERR_KEYFILE_TOO_LARGE',
      `key file: larger than ${MAX_KEYFILE_BYTES} bytes`,
    );
  }
  const c = new Cursor(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const header = decodeHeader(c);
  const expected = seedsLength(header.suite) + 16;
  const ciphertext = c.lp('ciphertext', expected, expected);
  if (c.offset !== c.buf.length) format('trailing bytes after the ciphertext');
  const key = await deriveKey(passphrase, header.salt, header.kdf);
  let plaintext: Buffer;
  try {
    plaintext = aeadOpen('chacha20-poly1305', key, header.nonce, header.bytes, ciphertext);
  } catch (err) {
    throw new CryptoError(
      'ERR_KEYFILE_PASSPHRASE',
      'key file: wrong passphrase, or the file is corrupted',
      {
        cause: err,
      },
    );
  } finally {
    key.fill(0);
  }
  try {
    const seeds: SecretSeeds = {
      kem: Buffer.from(plaintext.subarray(0, 32)),
      ed25519: Buffer.from(plaintext.subarray(32, 64)),
    };
    if (plaintext.length === 96) seeds.mldsa65 = Buffer.from(plaintext.subarray(64, 96));
    return SecretKeySet.fromSeeds(
      header.did,
      header.suite,
      header.createdAt,
      seeds,
      'ERR_KEYFILE_FORMAT',
    );
  } catch (err) {
    if (err instanceof AfterSmtpError) {
      throw new InputError('ERR_KEYFILE_FORMAT', `key file: ${err.message}`, { cause: err });
    }
    throw err;
  } finally {
    plaintext.fill(0);
  }
}

/** Writes an encrypted key file (mode 0600, atomic; refuses to overwrite unless asked). */
export async function writeKeyFile(
  path: string,
  keys: SecretKeySet,
  passphrase: string | Uint8Array,
  options: { kdf?: ScryptParams; overwrite?: boolean } = {},
): Promise<void> {
  const bytes = await encodeKeyFile(keys, passphrase, options);
  await writeFileAtomic(path, bytes, {
    mode: 0o600,
    overwrite: options.overwrite ?? false,
    code: 'ERR_KEYFILE_IO',
  });
}

/** Reads and decrypts a key file; the key set carries its public record (`.record`). */
export async function readKeyFile(
  path: string,
  passphrase: string | Uint8Array,
): Promise<SecretKeySet> {
  const bytes = await readBoundedFile(
    path,
    MAX_KEYFILE_BYTES,
    'ERR_KEYFILE_IO',
    'ERR_KEYFILE_TOO_LARGE',
  );
  return decodeKeyFile(bytes, passphrase);
}
