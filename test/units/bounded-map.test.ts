// BoundedMap (src/bounded-map.ts), the one bound of the gateway's caches: never more than `max`
// entries; the entry set longest ago goes first; setting a present key makes it the newest.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BoundedMap } from '../../src/bounded-map.js';

test('a bounded map holds at most max entries and drops the one set longest ago', () => {
  const m = new BoundedMap<string, number>(3);
  for (const [i, k] of ['a', 'b', 'c', 'd', 'e'].entries()) {
    m.set(k, i);
    assert.ok(m.size <= 3);
  }
  assert.deepEqual(
    ['a', 'b', 'c', 'd', 'e'].map((k) => m.get(k)),
    [undefined, undefined, 2, 3, 4],
  );
});

test('setting a present key makes it the newest and does not drop another', () => {
  const m = new BoundedMap<string, number>(2);
  m.set('a', 1).set('b', 2);
  m.set('a', 10); // a is now newer than b
  assert.equal(m.size, 2);
  m.set('c', 3); // drops b, the oldest
  assert.equal(m.get('b'), undefined);
  assert.equal(m.get('a'), 10);
  assert.equal(m.get('c'), 3);
  assert.ok(m.has('a') && !m.has('b'));
  assert.equal(m.delete('a'), true);
  assert.equal(m.delete('a'), false);
  m.clear();
  assert.equal(m.size, 0);
});

test('a bounded map refuses a maximum that bounds nothing', () => {
  for (const max of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => new BoundedMap(max), RangeError, String(max));
  }
});
