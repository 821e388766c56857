/**
 * Identity keys: the public key record, its key id, and the secret key set.
 *
 * Public key record (docs/PROTOCOL.md §4): { did, suite, keyId, kemPublicKey, signingPublicKeys,
 * createdAt }. keyId = SHA-256(lp("aftersmtp/identity/v1/key-id", suite, kemPublicKey,
 * ed25519PublicKey[, mlDsa65PublicKey]))[0..16]: it commits to the suite and every public key,
 * not to the DID or the time (the ledger binds a DID to key ids).
 *
 * Secret key set: wraps the native key objects, so secret keys live in Rust memory; JS only ever
 * sees them while reading or writing a key file (keyfile.ts), and zero-fills those buffers.
 * Guarantees: checkPublicRecord accepts a record only if every field has the exact shape its
 * suite demands and the key id recomputes; a SecretKeySet always matches its public record.
 */
import { AfterSmtpError, InputError } from '../errors.js';
import { Ed25519Key, MlDsa65Key, X25519Key, XWingKey, sha256 } from '../native/index.js';
import { checkDid } from './did.js';
import { lp } from './lp.js';
import { workAlone } from '../workload.js';
import {
  ed25519Message,
  mlDsa65Context,
  type Signature,
  type SigningPublicKeys,
} from './signature.js';
import {
  ED25519_PUBLIC_KEY_LENGTH,
  MLDSA65_PUBLIC_KEY_LENGTH,
  SEED_LENGTH,
  SUITES,
  suiteSpec,
  type SuiteId,
} from './suites.js';

export const KEY_ID_LABEL = 'aftersmtp/identity/v1/key-id';
export const KEY_ID_LENGTH = 16;

export interface PublicKeyRecord {
  readonly did: string;
  readonly suite: SuiteId;
  /** 16 bytes, see computeKeyId. */
  readonly keyId: Buffer;
  readonly kemPublicKey: Buffer;
  readonly signingPublicKeys: SigningPublicKeys;
  /** Milliseconds since the Unix epoch. */
  readonly createdAt: number;
}

/** keyId = first 16 bytes of SHA-256 over lp(label, suite, kem key, ed25519 key[, ml-dsa key]). */
export function computeKeyId(
  suite: SuiteId,
  kemPublicKey: Uint8Array,
  signing: SigningPublicKeys,
): Buffer {
  const items: Uint8Array[] = [
    Buffer.from(KEY_ID_LABEL),
    Buffer.from(suite),
    kemPublicKey,
    signing.ed25519,
  ];
  if (SUITES[suite].hybridSignature) items.push(signing.mldsa65 ?? Buffer.alloc(0));
  return sha256(lp(...items)).subarray(0, KEY_ID_LENGTH);
}

function fail(code: string, message: string): never {
  throw new InputError(code, message);
}

/**
 * Validates a record's shape for its suite and recomputes its key id. Returns the record. Throws
 * InputError(code) naming the first bad field.
 */
export function checkPublicRecord(
  record: PublicKeyRecord,
  code = 'ERR_KEY_RECORD',
): PublicKeyRecord {
  try {
    checkDid(record.did);
  } catch (err) {
    fail(code, `key record: ${(err as Error).message}`);
  }
  const spec = suiteSpec(record.suite, code);
  if (!Number.isSafeInteger(record.createdAt) || record.createdAt < 0) {
    fail(code, 'key record: createdAt must be a non-negative integer (ms since the epoch)');
  }
  if (record.kemPublicKey.length !== spec.kemPublicKeyLength) {
    fail(code, `key record: ${spec.id} KEM public key must be ${spec.kemPublicKeyLength} bytes`);
  }
  if (record.signingPublicKeys.ed25519.length !== ED25519_PUBLIC_KEY_LENGTH) {
    fail(code, `key record: Ed25519 public key must be ${ED25519_PUBLIC_KEY_LENGTH} bytes`);
  }
  const mldsa = record.signingPublicKeys.mldsa65;
  if (spec.hybridSignature) {
    if (mldsa === undefined || mldsa.length !== MLDSA65_PUBLIC_KEY_LENGTH) {
      fail(code, `key record: ML-DSA-65 public key must be ${MLDSA65_PUBLIC_KEY_LENGTH} bytes`);
    }
  } else if (mldsa !== undefined && mldsa.length > 0) {
    fail(code, `key record: ${spec.id} has no ML-DSA-65 key`);
  }
  if (record.keyId.length !== KEY_ID_LENGTH)
    fail(code, `key record: keyId must be ${KEY_ID_LENGTH} bytes`);
  const expected = computeKeyId(spec.id, record.kemPublicKey, record.signingPublicKeys);
  if (!expected.equals(record.keyId)) fail(code, 'key record: keyId does not match the keys');
  return record;
}

/** Secret seeds as they appear in a key file (classic: kem is the X25519 secret key). */
export interface SecretSeeds {
  kem: Buffer;
  ed25519: Buffer;
  mldsa65?: Buffer;
}

type KemKey = X25519Key | XWingKey;

/** `bytes` as a Buffer over the same memory (no copy), for the native calls. */
function bufferView(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Runs a native constructor, turning its throw into a typed error. */
function nativeKey<T>(code: string, what: string, make: () => T): T {
  try {
    return make();
  } catch (err) {
    if (err instanceof AfterSmtpError) throw err;
    throw new InputError(code, `${what}: ${(err as Error).message}`);
  }
}

/** The secret half of an identity. Secrets live in the native objects. */
export class SecretKeySet {
  readonly record: PublicKeyRecord;
  readonly #kem: KemKey;
  readonly #ed25519: Ed25519Key;
  readonly #mldsa65: MlDsa65Key | undefined;

  private constructor(
    did: string,
    suite: SuiteId,
    createdAt: number,
    kem: KemKey,
    ed: Ed25519Key,
    mldsa?: MlDsa65Key,
  ) {
    this.#kem = kem;
    this.#ed25519 = ed;
    this.#mldsa65 = mldsa;
    const signingPublicKeys: SigningPublicKeys = mldsa
      ? { ed25519: ed.publicKey(), mldsa65: mldsa.publicKey() }
      : { ed25519: ed.publicKey() };
    const kemPublicKey = kem.publicKey();
    this.record = checkPublicRecord({
      did,
      suite,
      keyId: computeKeyId(suite, kemPublicKey, signingPublicKeys),
      kemPublicKey,
      signingPublicKeys,
      createdAt,
    });
  }

  get did(): string {
    return this.record.did;
  }

  get suite(): SuiteId {
    return this.record.suite;
  }

  get keyId(): Buffer {
    return this.record.keyId;
  }

  /** Fresh keys from the native CSPRNG. */
  static generate(did: string, suite: SuiteId, createdAt: number = Date.now()): SecretKeySet {
    checkDid(did);
    const spec = suiteSpec(suite);
    const kem: KemKey = spec.kem === 'x-wing' ? XWingKey.generate() : X25519Key.generate();
    const mldsa = spec.hybridSignature ? MlDsa65Key.generate() : undefined;
    return new SecretKeySet(did, spec.id, createdAt, kem, Ed25519Key.generate(), mldsa);
  }

  /**
   * Builds the key set from seeds (a key file, or fixed test seeds), then zero-fills the seed
   * buffers so the secrets stay only in native memory.
   */
  static fromSeeds(
    did: string,
    suite: SuiteId,
    createdAt: number,
    seeds: SecretSeeds,
    code = 'ERR_KEY_SEED',
  ): SecretKeySet {
    try {
      checkDid(did);
      const spec = suiteSpec(suite);
      const lengthsOk =
        seeds.kem.length === SEED_LENGTH &&
        seeds.ed25519.length === SEED_LENGTH &&
        (spec.hybridSignature
          ? seeds.mldsa65?.length === SEED_LENGTH
          : seeds.mldsa65 === undefined);
      if (!lengthsOk) throw new InputError(code, `${suite} secret seeds have the wrong lengths`);
      const kem = nativeKey<KemKey>(code, 'KEM secret', () =>
        spec.kem === 'x-wing' ? XWingKey.fromSeed(seeds.kem) : X25519Key.fromSecret(seeds.kem),
      );
      const ed = nativeKey(code, 'Ed25519 seed', () => Ed25519Key.fromSeed(seeds.ed25519));
      const mldsa = spec.hybridSignature
        ? nativeKey(code, 'ML-DSA-65 seed', () => MlDsa65Key.fromSeed(seeds.mldsa65 as Buffer))
        : undefined;
      return new SecretKeySet(did, spec.id, createdAt, kem, ed, mldsa);
    } finally {
      seeds.kem.fill(0);
      seeds.ed25519.fill(0);
      seeds.mldsa65?.fill(0);
    }
  }

  /**
   * Exports the seeds for writing a key file. The caller owns the buffers and must zero-fill
   * them as soon as they are encrypted.
   */
  exportSeeds(): SecretSeeds {
    const kem = this.#kem instanceof X25519Key ? this.#kem.exportSecret() : this.#kem.exportSeed();
    const seeds: SecretSeeds = { kem, ed25519: this.#ed25519.exportSeed() };
    if (this.#mldsa65) seeds.mldsa65 = this.#mldsa65.exportSeed();
    return seeds;
  }

  /**
   * Signs `transcript` for `purpose` (see signature.ts). `mlDsaRandomness` (32 bytes) makes the
   * ML-DSA half deterministic; only test vectors pass it.
   */
  sign(transcript: Uint8Array, purpose: string, mlDsaRandomness?: Buffer): Signature {
    const t = bufferView(transcript);
    const ed25519 = this.#ed25519.sign(ed25519Message(purpose, t));
    if (!this.#mldsa65) return { ed25519 };
    return { ed25519, mldsa65: this.#mldsa65.sign(t, mlDsa65Context(purpose), mlDsaRandomness) };
  }

  /**
   * `sign` beside the event loop: the ML-DSA-65 half (hybrid-v1, about 0.1-0.2 ms of CPU) on the
   * libuv thread pool; the Ed25519 half (about 0.02 ms) there too, side by side, unless the
   * message is alone in the process (src/workload.ts), when handing it over and back would cost
   * more than signing it here.
   */
  async signAsync(
    transcript: Uint8Array,
    purpose: string,
    mlDsaRandomness?: Buffer,
  ): Promise<Signature> {
    const t = bufferView(transcript);
    const mldsa65 = this.#mldsa65?.signAsync(t, mlDsa65Context(purpose), mlDsaRandomness);
    const message = ed25519Message(purpose, t);
    const ed25519 = workAlone() ? this.#ed25519.sign(message) : this.#ed25519.signAsync(message);
    if (mldsa65 === undefined) return { ed25519: await ed25519 };
    const [ed, ml] = await Promise.all([ed25519, mldsa65]);
    return { ed25519: ed, mldsa65: ml };
  }

  /** HPKE Base-mode open (RFC 9180 §5.1.1) with this identity's KEM key. Native errors pass through. */
  hpkeOpen(enc: Buffer, info: Buffer, aad: Buffer, ciphertext: Buffer): Buffer {
    return this.#kem.hpkeOpen(enc, info, aad, ciphertext);
  }
}

/**
 * Generates a new identity from the native CSPRNG. The returned key set carries its public
 * record (`.record`), ready for writeKeyFile and writePublicRecordFile.
 */
export function generateIdentity(
  did: string,
  suite: SuiteId,
  createdAt: number = Date.now(),
): SecretKeySet {
  return SecretKeySet.generate(did, suite, createdAt);
}
