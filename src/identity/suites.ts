/**
 * The cryptographic suites (docs/PROTOCOL.md §3). A suite id is part of every key record, key
 * file and envelope; this module is the one table that says what each id means. Guarantees:
 * only the listed ids are accepted (InputError ERR_SUITE otherwise) and every length a decoder
 * checks comes from here.
 *
 * - classic-v1: HPKE (RFC 9180) DHKEM(X25519, HKDF-SHA256) (KEM 0x0020), HKDF-SHA256 (0x0001),
 *   ChaCha20-Poly1305 (0x0003); signature Ed25519 (RFC 8032 §5.1, pure).
 * - hybrid-v1: HPKE with X-Wing (draft-connolly-cfrg-xwing-kem, KEM 0x647a), HKDF-SHA256,
 *   ChaCha20-Poly1305; composite signature Ed25519 AND ML-DSA-65 (FIPS 204): both must verify.
 */
import { InputError } from '../errors.js';

export const SUITE_IDS = ['classic-v1', 'hybrid-v1'] as const;
export type SuiteId = (typeof SUITE_IDS)[number];

export type KemName = 'dhkem-x25519-hkdf-sha256' | 'x-wing';

export interface SuiteSpec {
  readonly id: SuiteId;
  /** KEM name as the native hpkeSeal takes it. */
  readonly kem: KemName;
  /** RFC 9180 §7.1 KEM identifier. */
  readonly hpkeKemId: number;
  readonly kemPublicKeyLength: number;
  /** Length of the HPKE encapsulated key `enc`. */
  readonly encLength: number;
  /** Whether signatures are composite Ed25519 + ML-DSA-65. */
  readonly hybridSignature: boolean;
}

export const ED25519_PUBLIC_KEY_LENGTH = 32;
export const ED25519_SIGNATURE_LENGTH = 64;
export const MLDSA65_PUBLIC_KEY_LENGTH = 1952;
export const MLDSA65_SIGNATURE_LENGTH = 3309;
export const SEED_LENGTH = 32;
/** HPKE KDF and AEAD ids used by both suites (RFC 9180 §7.2, §7.3). */
export const HPKE_KDF_ID = 0x0001;
export const HPKE_AEAD_ID = 0x0003;

export const SUITES: Readonly<Record<SuiteId, SuiteSpec>> = {
  'classic-v1': {
    id: 'classic-v1',
    kem: 'dhkem-x25519-hkdf-sha256',
    hpkeKemId: 0x0020,
    kemPublicKeyLength: 32,
    encLength: 32,
    hybridSignature: false,
  },
  'hybrid-v1': {
    id: 'hybrid-v1',
    kem: 'x-wing',
    hpkeKemId: 0x647a,
    kemPublicKeyLength: 1216,
    encLength: 1120,
    hybridSignature: true,
  },
};

export function isSuiteId(value: unknown): value is SuiteId {
  return typeof value === 'string' && (SUITE_IDS as readonly string[]).includes(value);
}

/** Returns the suite spec for `value`, or throws InputError(code) naming the bad value. */
export function suiteSpec(value: unknown, code = 'ERR_SUITE'): SuiteSpec {
  if (!isSuiteId(value)) {
    const shown = typeof value === 'string' ? JSON.stringify(value.slice(0, 40)) : typeof value;
    throw new InputError(code, `unknown suite ${shown}; expected one of ${SUITE_IDS.join(', ')}`);
  }
  return SUITES[value];
}
