// fast-check properties for the envelope decoder and opener: truncated, bit-flipped, random and
// length-inflated inputs always end in a typed error (AfterSmtpError with a code), never another
// exception type, a hang or an oversized allocation.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { AfterSmtpError } from '../../src/errors.js';
import {
  decodeEnvelope,
  encodeEnvelope,
  openEnvelope,
  sealMessage,
  type Envelope,
} from '../../src/envelope/index.js';
import { decodeSealedContent } from '../../src/envelope/codec.js';
import { BODY, HOUR, NOW, cast } from './helpers.js';

function typedOnly(fn: () => unknown): 'ok' | 'typed' {
  try {
    fn();
    return 'ok';
  } catch (err) {
    assert.ok(
      err instanceof AfterSmtpError && typeof err.code === 'string',
      `untyped error: ${String(err)}`,
    );
    return 'typed';
  }
}

/** Writes a protobuf varint (a bigint for values past 2^53). */
function varint(value: number | bigint): Buffer {
  let n = BigInt(value);
  const out: number[] = [];
  for (; n > 0x7fn; n >>= 7n) out.push(Number(n & 0x7fn) | 0x80);
  out.push(Number(n));
  return Buffer.from(out);
}

for (const suite of ['classic-v1', 'hybrid-v1'] as const) {
  describe(`envelope decoder properties ${suite}`, () => {
    const { alice, bob, carol } = cast(suite);
    const [s] = sealMessage({
      author: alice,
      to: [bob.record, carol.record],
      body: BODY,
      createdAt: NOW,
      expiresAt: NOW + HOUR,
    });
    const valid = encodeEnvelope((s as { envelope: Envelope }).envelope);

    const single = (() => {
      const [one] = sealMessage({
        author: alice,
        to: [bob.record],
        body: BODY,
        createdAt: NOW,
        expiresAt: NOW + HOUR,
      });
      return encodeEnvelope((one as { envelope: Envelope }).envelope);
    })();
    const mutationsOf = (valid: Buffer) =>
      fc.oneof(
        fc.nat({ max: valid.length - 1 }).map((n) => valid.subarray(0, n)),
        fc
          .tuple(fc.nat({ max: valid.length - 1 }), fc.integer({ min: 0, max: 7 }))
          .map(([i, bit]) => {
            const b = Buffer.from(valid);
            b[i] = (b[i] as number) ^ (1 << bit);
            return b;
          }),
        fc
          .tuple(fc.nat({ max: valid.length - 1 }), fc.uint8Array({ minLength: 1, maxLength: 8 }))
          .map(([i, junk]) => {
            const b = Buffer.from(valid);
            b.set(junk.subarray(0, b.length - i), i);
            return b;
          }),
      );

    it('a mutated single-recipient envelope never opens: typed errors only', () => {
      fc.assert(
        fc.property(mutationsOf(single), (bytes) => {
          fc.pre(!Buffer.from(bytes).equals(single));
          assert.equal(
            typedOnly(() => openEnvelope(bytes, bob, { now: NOW })),
            'typed',
          );
        }),
        { numRuns: suite === 'hybrid-v1' ? 150 : 400 },
      );
    });

    it('a mutated multi-recipient envelope fails typed, or opens to exactly the original message', () => {
      // Another recipient's enc / wrapped key is not Bob's to authenticate (only Carol can).
      const want = openEnvelope(valid, bob, { now: NOW });
      fc.assert(
        fc.property(mutationsOf(valid), (bytes) => {
          let got;
          try {
            got = openEnvelope(bytes, bob, { now: NOW });
          } catch (err) {
            assert.ok(
              err instanceof AfterSmtpError && typeof err.code === 'string',
              `untyped error: ${String(err)}`,
            );
            return;
          }
          assert.deepEqual(got, want);
        }),
        { numRuns: suite === 'hybrid-v1' ? 150 : 400 },
      );
    });

    it('random bytes: typed errors only', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 2048 }), (bytes) => {
          typedOnly(() => decodeEnvelope(bytes));
          typedOnly(() => decodeSealedContent(bytes));
        }),
        { numRuns: 1000 },
      );
    });

    it('reads 64-bit times up to 2^53 - 1 and refuses the first one past it', () => {
      // A field given again is read as its last value (protobuf): created_at (5), expires_at (6).
      const withTimes = (created: bigint, expires: bigint) =>
        Buffer.concat([
          single,
          Buffer.from([5 << 3]),
          varint(created),
          Buffer.from([6 << 3]),
          varint(expires),
        ]);
      const max = BigInt(Number.MAX_SAFE_INTEGER);
      const edge = decodeEnvelope(withTimes(max - 1n, max));
      assert.equal(edge.createdAt, Number.MAX_SAFE_INTEGER - 1);
      assert.equal(edge.expiresAt, Number.MAX_SAFE_INTEGER);
      assert.equal(decodeEnvelope(withTimes(2n ** 32n + 7n, 2n ** 40n)).createdAt, 2 ** 32 + 7);
      for (const [created, expires] of [
        [max, max + 1n],
        [max + 1n, max + 2n],
        [2n ** 64n - 2n, 2n ** 64n - 1n],
      ] as const) {
        assert.throws(
          () => decodeEnvelope(withTimes(created, expires)),
          (err: unknown) =>
            err instanceof AfterSmtpError &&
            err.code === 'ERR_ENVELOPE_FORMAT' &&
            /out of range/.test(err.message),
        );
      }
    });

    it('inflated length prefixes are refused without allocating them', () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 15 }),
          fc.integer({ min: valid.length, max: 2 ** 31 - 1 }),
          (field, len) => {
            // field `field`, wire type 2 (length-delimited), then a length far beyond the buffer
            const bytes = Buffer.concat([
              Buffer.from([(field << 3) | 2]),
              varint(len),
              Buffer.alloc(8),
            ]);
            assert.equal(
              typedOnly(() => decodeEnvelope(bytes)),
              'typed',
            );
          },
        ),
        { numRuns: 300 },
      );
    });
  });
}

describe('envelope size cap', () => {
  it('refuses input over the cap before decoding', () => {
    assert.throws(() => decodeEnvelope(Buffer.alloc(1025), { maxBytes: 1024 }), {
      code: 'ERR_ENVELOPE_TOO_LARGE',
    });
    assert.throws(() => decodeEnvelope(Buffer.alloc(32 * 1024 * 1024 + 1)), {
      code: 'ERR_ENVELOPE_TOO_LARGE',
    });
  });
  it('deeply nested unknown groups end in a typed error, not a stack overflow', () => {
    const bytes = Buffer.alloc(200_000, 0x7b); // field 15, wire type 3 (start group), repeated
    assert.equal(
      typedOnly(() => decodeEnvelope(bytes)),
      'typed',
    );
  });
  it('refuses more than 1000 wraps', () => {
    const { alice, bob } = cast('classic-v1');
    const [s] = sealMessage({
      author: alice,
      to: [bob.record],
      body: BODY,
      createdAt: NOW,
      expiresAt: NOW + HOUR,
    });
    const env = (s as { envelope: Envelope }).envelope;
    const w = env.wraps[0] as Envelope['wraps'][number];
    const many = Array.from({ length: 1001 }, (_, i) => ({
      ...w,
      keyId: Buffer.alloc(16, 0)
        .fill(i & 0xff, 0, 1)
        .fill(i >> 8, 1, 2),
    }));
    assert.throws(() => encodeEnvelope({ ...env, wraps: many }), { code: 'ERR_ENVELOPE_FORMAT' });
  });
});
