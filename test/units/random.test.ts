// The pooled random values (src/random.ts): each byte of the CSPRNG handed out once, across the
// pool's refills, and none of the pool's wiped zeros handed out in their place.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { randomBytes, randomHex, randomInto } from '../../src/random.js';

test('no value is handed out twice, across many refills of the pool', () => {
  const seen = new Set<string>();
  // 20,000 values of 8 to 16 bytes: about 60 refills of the 4 KiB pool.
  for (let i = 0; i < 20_000; i++) {
    const n = 8 + (i % 9);
    const value = i % 2 === 0 ? randomBytes(n).toString('hex') : randomHex(n);
    assert.equal(value.length, 2 * n);
    assert.match(value, /^[0-9a-f]+$/);
    assert.ok(!seen.has(value), `value ${value} handed out twice`);
    seen.add(value);
  }
});

test('the bytes are the CSPRNG’s, not the zeros the pool is wiped with', () => {
  // 64 KiB in values of 13 bytes (so they straddle the refills): a fair source sets half the
  // bits, 262,144 of 524,288, with a standard deviation of 362; zeros, or a value copied twice,
  // would show far outside 10 deviations. No single byte value may be missing either.
  const values = Array.from({ length: 5_042 }, () => randomBytes(13));
  const all = Buffer.concat(values);
  let ones = 0;
  const counts = new Array<number>(256).fill(0);
  for (const byte of all) {
    counts[byte] = (counts[byte] ?? 0) + 1;
    for (let b = byte; b !== 0; b >>= 1) ones += b & 1;
  }
  const half = (all.length * 8) / 2;
  assert.ok(Math.abs(ones - half) < 3_620, `${ones} bits set of ${all.length * 8}`);
  assert.ok(
    counts.every((c) => c > 0),
    'some byte value never occurs in 64 KiB',
  );
});

test('randomInto fills only the bytes it is given', () => {
  const target = Buffer.alloc(32, 0xaa);
  randomInto(target, 6, 10);
  assert.deepEqual(target.subarray(0, 6), Buffer.alloc(6, 0xaa));
  assert.deepEqual(target.subarray(16), Buffer.alloc(16, 0xaa));
  assert.notDeepEqual(target.subarray(6, 16), Buffer.alloc(10, 0xaa));
});

test('a length outside 1 to 64 bytes is refused', () => {
  for (const n of [0, -1, 65, 1.5, Number.NaN]) {
    assert.throws(() => randomBytes(n), RangeError);
    assert.throws(() => randomHex(n), RangeError);
  }
  assert.equal(randomBytes(64).length, 64);
  assert.equal(randomBytes(1).length, 1);
});
