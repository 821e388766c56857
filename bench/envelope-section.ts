/**
 * The "envelope seal+open" section of the crypto benchmark: the cost of one AMP message from the
 * author's seal (content AEAD, one HPKE wrap per recipient, author signature, protobuf encoding)
 * to one recipient's open (decode, HPKE unwrap, AEAD open, signature verification), for
 * classic-v1 and hybrid-v1, 1 and 10 recipients, 4 KiB and 1 MiB bodies.
 *
 * Target (DESIGN.md §8 via issue 2): a hybrid-v1 seal+open of a 4 KiB body to one recipient costs
 * no more than 1.5x the sum of the primitive operations it performs, measured in the same run
 * through the same native calls: X-Wing HPKE seal and open, ML-DSA-65 sign and verify, Ed25519
 * sign and verify, and ChaCha20-Poly1305 seal and open of the body. Everything above that sum is
 * the envelope's own overhead (encodings, transcripts, hashing, copies).
 */
import { openEnvelope, sealEnvelope, encodeEnvelope } from '../src/envelope/index.js';
import { generateIdentity, type SecretKeySet, type SuiteId } from '../src/identity/index.js';
import * as native from '../src/native/index.js';
import { formatOps, measure, type Section, type SectionResult } from './lib/measure.js';

const SUITES: readonly SuiteId[] = ['classic-v1', 'hybrid-v1'];
const RECIPIENTS = [1, 10] as const;
const BODIES = [
  { label: '4 KiB', bytes: 4 * 1024 },
  { label: '1 MiB', bytes: 1024 * 1024 },
] as const;
const TARGET_MAX_RATIO = 1.5;

interface Case {
  suite: SuiteId;
  recipients: number;
  bodyLabel: string;
  bodyBytes: number;
}

function identities(suite: SuiteId, count: number, domain: string): SecretKeySet[] {
  return Array.from({ length: count }, (_, i) =>
    generateIdentity(`did:aftersmtp:${domain}:user${i}`, suite),
  );
}

/** Seconds per operation of the primitives a hybrid-v1 1-recipient seal+open performs. */
function hybridPrimitiveSeconds(bodyBytes: number): Record<string, number> {
  const xwing = native.XWingKey.generate();
  const xwingPublic = xwing.publicKey();
  const info = Buffer.alloc(120, 7);
  const empty = Buffer.alloc(0);
  const contentKey = native.randomBytes(32);
  const wrap = native.hpkeSeal('x-wing', xwingPublic, info, empty, contentKey);
  const mldsa = native.MlDsa65Key.generate();
  const mldsaPublic = mldsa.publicKey();
  const ed = native.Ed25519Key.generate();
  const edPublic = ed.publicKey();
  const transcript = Buffer.alloc(400, 3);
  const ctx = Buffer.from('aftersmtp/amp/v1/author/ml-dsa-65');
  const mldsaSig = mldsa.sign(transcript, ctx);
  const edSig = ed.sign(transcript);
  // The sealed content holds the author record and signatures besides the body.
  const plaintext = native.randomBytes(bodyBytes + 8 * 1024);
  const key = native.randomBytes(32);
  const nonce = native.randomBytes(12);
  const sealed = native.aeadSeal('chacha20-poly1305', key, nonce, empty, plaintext);
  const ops: Record<string, () => unknown> = {
    'x-wing hpke seal': () => native.hpkeSeal('x-wing', xwingPublic, info, empty, contentKey),
    'x-wing hpke open': () => xwing.hpkeOpen(wrap.enc, info, empty, wrap.ciphertext),
    'ml-dsa-65 sign': () => mldsa.sign(transcript, ctx),
    'ml-dsa-65 verify': () => native.mlDsa65Verify(mldsaPublic, transcript, mldsaSig, ctx),
    'ed25519 sign': () => ed.sign(transcript),
    'ed25519 verify': () => native.ed25519Verify(edPublic, transcript, edSig),
    'chacha20-poly1305 seal': () =>
      native.aeadSeal('chacha20-poly1305', key, nonce, empty, plaintext),
    'chacha20-poly1305 open': () => native.aeadOpen('chacha20-poly1305', key, nonce, empty, sealed),
  };
  const out: Record<string, number> = {};
  for (const [name, fn] of Object.entries(ops)) out[name] = 1 / measure(fn);
  return out;
}

function measureCase(c: Case) {
  const [author] = identities(c.suite, 1, 'example.org');
  const recipients = identities(c.suite, c.recipients, 'example.net');
  const reader = recipients[0] as SecretKeySet;
  const records = recipients.map((r) => r.record);
  const body = {
    subject: 'benchmark',
    contentType: 'message/rfc822',
    content: native.randomBytes(c.bodyBytes),
  };
  const seal = () =>
    encodeEnvelope(
      sealEnvelope({ author: author as SecretKeySet, signedRecipients: records, body }),
    );
  const bytes = seal();
  const open = () => openEnvelope(bytes, reader);
  const sealOps = measure(seal);
  const openOps = measure(open);
  const perMessageSeconds = 1 / sealOps + 1 / openOps;
  return { sealOps, openOps, perMessageSeconds, envelopeBytes: bytes.length };
}

export const envelopeSection: Section = {
  id: 'envelope',
  title: 'AMP envelope: seal (author) + open (one recipient), one thread',
  async run(): Promise<SectionResult> {
    const rows: string[][] = [];
    const json: Record<string, unknown> = {};
    let hybridSmall: number | undefined;
    for (const suite of SUITES) {
      for (const recipients of RECIPIENTS) {
        for (const body of BODIES) {
          const c: Case = { suite, recipients, bodyLabel: body.label, bodyBytes: body.bytes };
          const r = measureCase(c);
          const key = `${suite}/${recipients}rcpt/${body.label.replace(' ', '')}`;
          if (suite === 'hybrid-v1' && recipients === 1 && body.bytes === 4096) {
            hybridSmall = r.perMessageSeconds;
          }
          rows.push([
            suite,
            String(recipients),
            body.label,
            String(r.envelopeBytes),
            formatOps(r.sealOps),
            formatOps(r.openOps),
            (r.perMessageSeconds * 1000).toFixed(3),
            (body.bytes / r.perMessageSeconds / 1e6).toFixed(1),
          ]);
          json[key] = { ...c, ...r };
        }
      }
    }
    const primitives = hybridPrimitiveSeconds(4096);
    const primitiveSum = Object.values(primitives).reduce((a, b) => a + b, 0);
    const costRatio = hybridSmall === undefined ? undefined : hybridSmall / primitiveSum;
    const status =
      costRatio === undefined ? 'n/a' : costRatio <= TARGET_MAX_RATIO ? 'PASS' : 'MISS';
    const notes = [
      '',
      'seal = sealEnvelope + encodeEnvelope for all recipients; open = decode + open by one recipient.',
      `hybrid-v1, 1 recipient, 4 KiB: seal+open ${((hybridSmall ?? 0) * 1e3).toFixed(3)} ms; ` +
        `sum of its primitives ${(primitiveSum * 1e3).toFixed(3)} ms ` +
        `(${Object.entries(primitives)
          .map(([n, s]) => `${n} ${(s * 1e6).toFixed(0)} µs`)
          .join(', ')}); ` +
        `ratio ${costRatio?.toFixed(2)}x, target <= ${TARGET_MAX_RATIO}x: ${status}`,
    ];
    return {
      headers: ['suite', 'rcpts', 'body', 'envelope B', 'seal/s', 'open/s', 'ms/msg', 'MB/s'],
      rows,
      notes,
      json: {
        cases: json,
        hybridSmallVsPrimitives: {
          sealOpenSeconds: hybridSmall ?? null,
          primitiveSecondsSum: primitiveSum,
          primitives,
          ratio: costRatio ?? null,
          targetMax: TARGET_MAX_RATIO,
          status,
        },
      },
    };
  },
};
