/**
 * The cryptography one relayed message needs at its two gateways together: the floor that
 * bench/relay sets the gateways' CPU per message against (issue 17: within 4x of it). Each part
 * is timed here, in the bench process, with the calls the gateways make (the project's signing
 * and verification, the native core's SHA-256 and AEAD), on the message's own sizes:
 *
 *   - two signatures: A's gateway signature and B's receipt (a transcript of a few hundred bytes);
 *   - two verifications: B checks A's gateway signature, A checks B's receipt;
 *   - two SHA-256 passes over the content ciphertext: A's and B's gateway transcript;
 *   - three AEAD passes over the envelope for the transport: the client's TLS into A, QUIC out
 *     of A and into B (AES-256-GCM here; OpenSSL and BoringSSL do them somewhat faster, so this
 *     part is if anything too large);
 *   - one AEAD pass over the envelope at rest: B's mailbox store (ChaCha20-Poly1305, as it seals).
 *
 * Every message is counted as signed and verified alone. The gateways sign and verify in
 * batches under load (docs/PROTOCOL.md §3.3), which divides the signature parts by the batch's
 * size, so the floor they work against is lower than this one. Left out as too small to
 * matter: the receipt's and the transit log's hashes of a few hundred bytes, the stored
 * receipt's seal at A, the TLS answer to the client and the QUIC acknowledgement.
 */
import { aeadSeal, sha256 } from '../../src/native/index.js';
import { SecretKeySet, verifySignature, type SuiteId } from '../../src/identity/index.js';
import { measure } from './measure.js';

export interface CryptoPart {
  readonly name: string;
  /** How many a relayed message needs, A and B together. */
  readonly count: number;
  /** µs of one core for one. */
  readonly eachUs: number;
}

export interface CryptoFloor {
  readonly suite: SuiteId;
  /** µs of one core per relayed message, A and B together: the sum of count x each. */
  readonly totalUs: number;
  readonly parts: readonly CryptoPart[];
}

/** Sizes of the message whose cryptography is timed. */
export interface RelayedSizes {
  /** The content ciphertext (body and AEAD tag). */
  readonly ciphertextBytes: number;
  /** The whole encoded envelope, as it crosses TLS and QUIC and is sealed at rest. */
  readonly envelopeBytes: number;
}

const TRANSCRIPT_BYTES = 320;
const PURPOSE = 'aftersmtp/bench/crypto-floor';

function microseconds(fn: () => unknown, seconds: number): number {
  return 1e6 / measure(fn, { seconds });
}

/** Times each part for `suite` (about `seconds` per part) and sums the floor. */
export function relayCryptoFloor(suite: SuiteId, sizes: RelayedSizes, seconds = 0.3): CryptoFloor {
  const keys = SecretKeySet.generate('did:aftersmtp:floor.test:gateway', suite);
  const transcript = Buffer.alloc(TRANSCRIPT_BYTES, 0x5a);
  const signature = keys.sign(transcript, PURPOSE);
  const { signingPublicKeys } = keys.record;
  const ciphertext = Buffer.alloc(sizes.ciphertextBytes, 0x3c);
  const envelope = Buffer.alloc(sizes.envelopeBytes, 0xa5);
  const key = Buffer.alloc(32, 7);
  const nonce = Buffer.alloc(12, 9);
  const aad = Buffer.alloc(32, 1);
  const parts: CryptoPart[] = [
    {
      name: 'signature',
      count: 2,
      eachUs: microseconds(() => keys.sign(transcript, PURPOSE), seconds),
    },
    {
      name: 'verification',
      count: 2,
      eachUs: microseconds(
        () =>
          verifySignature(suite, signingPublicKeys, transcript, PURPOSE, signature, 'ERR_BENCH'),
        seconds,
      ),
    },
    {
      name: 'SHA-256 of the ciphertext',
      count: 2,
      eachUs: microseconds(() => sha256(ciphertext), seconds),
    },
    {
      name: 'AES-256-GCM of the envelope (transport)',
      count: 3,
      eachUs: microseconds(() => aeadSeal('aes-256-gcm', key, nonce, aad, envelope), seconds),
    },
    {
      name: 'ChaCha20-Poly1305 of the envelope (at rest)',
      count: 1,
      eachUs: microseconds(() => aeadSeal('chacha20-poly1305', key, nonce, aad, envelope), seconds),
    },
  ];
  const totalUs = parts.reduce((sum, p) => sum + p.count * p.eachUs, 0);
  return { suite, totalUs, parts };
}

/** One line for a report: the total and each part as count x µs. */
export function describeFloor(f: CryptoFloor): string {
  const parts = f.parts.map((p) => `${p.count} x ${p.name} ${p.eachUs.toFixed(1)} µs`).join(', ');
  return `${f.suite} ${f.totalUs.toFixed(0)} µs (${parts})`;
}
