/**
 * Signatures over transcripts, per suite (docs/PROTOCOL.md §3.2). A signature is made for a
 * *purpose* (a context label such as `aftersmtp/amp/v1/author`); each algorithm gets its own
 * context string derived from it, so a signature for one purpose or one algorithm can never be
 * replayed as another:
 *
 * - Ed25519 (pure, RFC 8032 §5.1, which has no context input) signs
 *   u32be(len(ctx)) || ctx || transcript with ctx = purpose + "/ed25519".
 * - ML-DSA-65 (FIPS 204 §5.2) signs the transcript with its native context string
 *   ctx = purpose + "/ml-dsa-65" (at most 255 octets).
 *
 * Composite (hybrid-v1): both halves are present and both must verify. Guarantees:
 * verifySignature returns normally only when every half required by the suite verifies; any
 * length error is a CryptoError, never a thrown native error.
 */
import { CryptoError } from '../errors.js';
import { ed25519Verify, mlDsa65Verify } from '../native/index.js';
import { lp } from './lp.js';
import {
  ED25519_PUBLIC_KEY_LENGTH,
  ED25519_SIGNATURE_LENGTH,
  MLDSA65_PUBLIC_KEY_LENGTH,
  MLDSA65_SIGNATURE_LENGTH,
  SUITES,
  type SuiteId,
} from './suites.js';

/** A (possibly composite) signature. `mldsa65` is present exactly for hybrid-v1. */
export interface Signature {
  readonly ed25519: Buffer;
  readonly mldsa65?: Buffer;
}

export interface SigningPublicKeys {
  readonly ed25519: Buffer;
  readonly mldsa65?: Buffer;
}

export function ed25519Context(purpose: string): Buffer {
  return Buffer.from(`${purpose}/ed25519`, 'utf8');
}

export function mlDsa65Context(purpose: string): Buffer {
  const ctx = Buffer.from(`${purpose}/ml-dsa-65`, 'utf8');
  if (ctx.length > 255) throw new RangeError('ML-DSA context longer than 255 octets');
  return ctx;
}

/** The exact bytes Ed25519 signs for `purpose`. */
export function ed25519Message(purpose: string, transcript: Uint8Array): Buffer {
  return Buffer.concat([lp(ed25519Context(purpose)), transcript]);
}

/** Checks the shape of `sig` for `suite` (exact lengths, halves present or absent). */
export function checkSignatureShape(suite: SuiteId, sig: Signature, code: string): void {
  if (sig.ed25519.length !== ED25519_SIGNATURE_LENGTH) {
    throw new CryptoError(code, `Ed25519 signature must be ${ED25519_SIGNATURE_LENGTH} bytes`);
  }
  if (SUITES[suite].hybridSignature) {
    if (sig.mldsa65 === undefined || sig.mldsa65.length !== MLDSA65_SIGNATURE_LENGTH) {
      throw new CryptoError(code, `ML-DSA-65 signature must be ${MLDSA65_SIGNATURE_LENGTH} bytes`);
    }
  } else if (sig.mldsa65 !== undefined && sig.mldsa65.length !== 0) {
    throw new CryptoError(code, `${suite} signatures have no ML-DSA-65 half`);
  }
}

/**
 * Verifies `sig` over `transcript` for `purpose` with the keys of a `suite` record. Throws
 * CryptoError(code) naming the half that failed; returns normally only if all halves verify.
 */
export function verifySignature(
  suite: SuiteId,
  keys: SigningPublicKeys,
  transcript: Uint8Array,
  purpose: string,
  sig: Signature,
  code: string,
): void {
  checkSignatureShape(suite, sig, code);
  const t = Buffer.from(transcript.buffer, transcript.byteOffset, transcript.byteLength);
  if (keys.ed25519.length !== ED25519_PUBLIC_KEY_LENGTH) {
    throw new CryptoError(code, 'Ed25519 public key has the wrong length');
  }
  if (!safeVerify(() => ed25519Verify(keys.ed25519, ed25519Message(purpose, t), sig.ed25519))) {
    throw new CryptoError(code, `Ed25519 signature (${purpose}) does not verify`);
  }
  if (SUITES[suite].hybridSignature) {
    const pk = keys.mldsa65;
    if (pk === undefined || pk.length !== MLDSA65_PUBLIC_KEY_LENGTH) {
      throw new CryptoError(code, 'ML-DSA-65 public key missing or of the wrong length');
    }
    const mldsaSig = sig.mldsa65 as Buffer;
    if (!safeVerify(() => mlDsa65Verify(pk, t, mldsaSig, mlDsa65Context(purpose)))) {
      throw new CryptoError(code, `ML-DSA-65 signature (${purpose}) does not verify`);
    }
  }
}

/** A native verify that throws (malformed key, say) counts as "does not verify". */
function safeVerify(fn: () => boolean): boolean {
  try {
    return fn() === true;
  } catch {
    return false;
  }
}
