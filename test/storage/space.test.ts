// The free-space reserve and the classification of failed writes (src/storage/space.ts), with
// the free space under the test's control: below the reserve new mail is a temporary
// StorageFullError, once full it waits for a margin above the reserve, each change is reported
// once, a reserve of 0 still leaves the floor, and only failures for lack of room become
// StorageFullError.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StorageFullError } from '../../src/errors.js';
import { REARM_BYTES, StorageSpace, storageFloor } from '../../src/storage/space.js';

const MiB = 1024 * 1024;

test('the reserve refuses new mail, with a margin before taking it again', () => {
  let free = 100 * MiB;
  let now = 0;
  const changes: boolean[] = [];
  const space = new StorageSpace({
    path: '/data',
    minFreeBytes: 10 * MiB,
    freeBytes: () => free,
    now: () => now,
    onChange: (full) => changes.push(full),
  });
  space.admit('a queue entry');
  free = 9 * MiB;
  now += 1000;
  assert.throws(
    () => space.admit('a queue entry'),
    (err: unknown) =>
      err instanceof StorageFullError &&
      err.code === 'ERR_STORAGE_FULL' &&
      err.temporary &&
      /a queue entry refused: 9437184 bytes free/.test(err.message),
  );
  free = 10 * MiB + REARM_BYTES - 1; // at the reserve, but not past the margin
  now += 1000;
  assert.throws(() => space.admit('x'), StorageFullError);
  free = 10 * MiB + REARM_BYTES;
  now += 1000;
  space.admit('x');
  assert.deepEqual(changes, [true, false], 'each change reported once');
  assert.deepEqual(space.stats(), {
    freeBytes: 10 * MiB + REARM_BYTES,
    full: 0,
    refused: 2,
    writeFailures: 0,
  });
});

test('no setting removes the floor: room for the largest envelope twice, and 4 MiB', () => {
  assert.equal(storageFloor(1 * MiB), 6 * MiB);
  assert.equal(storageFloor(32 * MiB), 68 * MiB);
  let free = 7 * MiB;
  let now = 0;
  const space = new StorageSpace({
    path: '/data',
    minFreeBytes: 0,
    floorBytes: storageFloor(1 * MiB),
    freeBytes: () => free,
    now: () => now,
  });
  assert.equal(space.reserveBytes, 6 * MiB);
  space.admit('a mailbox delivery');
  free = 6 * MiB - 1;
  now += 1000;
  assert.throws(() => space.admit('a mailbox delivery'), StorageFullError);
  // A reserve above the floor is the reserve.
  assert.equal(
    new StorageSpace({ path: '/data', minFreeBytes: 128 * MiB, floorBytes: 6 * MiB }).reserveBytes,
    128 * MiB,
  );
});

test('failed writes: lack of room becomes StorageFullError, anything else stays itself', () => {
  let free = 1 * MiB;
  const space = new StorageSpace({ path: '/data', minFreeBytes: 0, freeBytes: () => free });
  const boom = new Error('Commit failed');
  for (const code of [28, 122, -30792, 5]) {
    const e = space.classify(boom, code);
    assert.ok(e instanceof StorageFullError, `code ${code}`);
    assert.equal(e.cause, boom);
  }
  assert.ok(
    space.classify(Object.assign(new Error('x'), { code: 'ENOSPC' })) instanceof StorageFullError,
  );
  // Full after a failed write: new mail waits for the margin even with no reserve.
  assert.throws(() => space.admit('x'), StorageFullError);
  free = 500 * MiB;
  assert.equal(space.classify(boom, 5), boom, 'an I/O error with room to spare is not "full"');
  assert.equal(space.classify(boom, 13), boom);
  space.admit('x');
  assert.equal(space.stats().writeFailures, 5);
});
