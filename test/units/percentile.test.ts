// The benches' one percentile (bench/lib/measure.ts): nearest rank, so a figure is always a
// sample that was measured, and p of the samples are at or below it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { median, percentile } from '../../bench/lib/measure.js';

test('a percentile is the smallest sample with at least p of the samples at or below it', () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i); // 100 .. 1, unsorted
  assert.equal(percentile(xs, 0.5), 50);
  assert.equal(percentile(xs, 0.9), 90);
  assert.equal(percentile(xs, 0.99), 99);
  assert.equal(percentile(xs, 1), 100);
  assert.equal(percentile([7, 3, 5], 0.01), 3);
  assert.equal(percentile([7, 3, 5], 0.5), 5);
  assert.equal(percentile([7, 3, 5], 0.9), 7);
});

test('a percentile leaves its input as it was and is NaN for no samples', () => {
  const xs = [3, 1, 2];
  assert.equal(percentile(xs, 0.9), 3);
  assert.deepEqual(xs, [3, 1, 2]);
  assert.ok(Number.isNaN(percentile([], 0.5)));
});

test('the median of an even count is the mean of the middle two', () => {
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([2, 9, 4]), 4);
});
