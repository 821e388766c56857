// LmdbWriter (src/storage/space.ts) on a real LMDB environment: a write for a message alone in
// the process commits on the event loop (transactionSync), a write while other messages are in
// flight (src/workload.ts) or while another of the writer's transactions is on lmdb-js's write
// thread or waiting for its flush, or after event-loop commits that took too long (a slow
// disk), goes there (transaction); both are flushed before `flush`
// resolves and read back the same, and a callback that throws (before it writes, as the
// writer's callers do) commits nothing either way.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { open } from 'lmdb';
import { LmdbWriter, type LmdbRoot } from '../../src/storage/space.js';
import { beginWork, workAlone } from '../../src/workload.js';
import { tempDir } from '../helpers/cli.js';

const dir = tempDir('writer');
after(() => rmSync(dir, { recursive: true, force: true }));

const root = open({ path: join(dir, 'db'), compression: false });
const db = root.openDB<string, string>('t', { encoding: 'string' });
after(() => root.close());

/** The environment, counting which way each transaction went. */
const calls = { onLoop: 0, onWriteThread: 0 };
const counted: LmdbRoot = {
  transaction: <T>(fn: () => T): Promise<T> => {
    calls.onWriteThread++;
    return root.transaction(fn);
  },
  transactionSync: <T>(fn: () => T): T => {
    calls.onLoop++;
    return root.transactionSync(fn);
  },
  get flushed() {
    return root.flushed;
  },
};
const writer = new LmdbWriter(counted);

/** Runs `fn` with `n` other messages in flight. */
async function withOthers<T>(n: number, fn: () => Promise<T>): Promise<T> {
  const others = Array.from({ length: n }, () => beginWork());
  try {
    return await fn();
  } finally {
    for (const done of others) done();
  }
}

test('alone: the transaction commits on the event loop, flushed, read back', async () => {
  assert.ok(workAlone());
  const before = { ...calls };
  const written = writer.write(() => {
    db.putSync('alone', 'one');
    return 7;
  });
  // Committed in the call: visible before anything is awaited.
  assert.equal(db.get('alone'), 'one');
  assert.equal(await written, 7);
  await writer.flush();
  assert.deepEqual(calls, { ...before, onLoop: before.onLoop + 1 });
});

test('with another message in flight: on the write thread, grouped, flushed, read back', async () => {
  const before = { ...calls };
  await withOthers(2, async () => {
    assert.ok(!workAlone());
    const results = await Promise.all(
      ['a', 'b', 'c'].map((k) => writer.write(() => db.putSync(`busy-${k}`, k))),
    );
    assert.equal(results.length, 3);
    await writer.flush();
  });
  assert.deepEqual(calls, { ...before, onWriteThread: before.onWriteThread + 3 });
  for (const k of ['a', 'b', 'c']) assert.equal(db.get(`busy-${k}`), k);
});

test('alone, while a transaction of the writer is on the write thread or unflushed: that way too', async () => {
  const before = { ...calls };
  const others = [beginWork(), beginWork()];
  const first = writer.write(() => db.putSync('first', '1'));
  for (const done of others) done();
  // The other messages are done; the first transaction is still on the write thread.
  assert.ok(workAlone());
  const second = writer.write(() => db.putSync('second', '2'));
  await Promise.all([first, second]);
  await writer.flush();
  assert.deepEqual(calls, { ...before, onWriteThread: before.onWriteThread + 2 });
  assert.equal(db.get('second'), '2');
});

test('a callback that throws commits nothing, either way, and its error comes back', async () => {
  for (const busy of [0, 2]) {
    await withOthers(busy, async () => {
      const key = `thrown-${busy}`;
      await assert.rejects(
        writer.write(() => {
          if (db.get(key) === undefined) throw new Error(`the callback failed (${busy})`);
          db.putSync(key, 'x');
        }),
        new RegExp(`the callback failed \\(${busy}\\)`),
      );
      await writer.flush();
      assert.equal(db.get(key), undefined);
    });
  }
  // The writer goes on writing.
  await writer.write(() => db.putSync('after', 'ok'));
  await writer.flush();
  assert.equal(db.get('after'), 'ok');
});

test('commits on the event loop that take too long (a slow disk) send the next ones away', async () => {
  // A writer whose event-loop commits take 10 ms, as behind a slow disk's flush.
  const slow: LmdbRoot = {
    transaction: counted.transaction,
    transactionSync: <T>(fn: () => T): T => {
      const result = counted.transactionSync(fn);
      const until = performance.now() + 10;
      while (performance.now() < until); // the flush's wait
      return result;
    },
    get flushed() {
      return root.flushed;
    },
  };
  const slowWriter = new LmdbWriter(slow);
  const ways: string[] = [];
  for (let i = 0; i < 8; i++) {
    const onLoop = calls.onLoop;
    await slowWriter.write(() => db.putSync(`slow-${i}`, String(i)));
    await slowWriter.flush();
    ways.push(calls.onLoop > onLoop ? 'loop' : 'thread');
  }
  // The average of 10 ms commits (or more, on a busy machine) passes 4 ms at the fourth or
  // sooner (at the first, past 32 ms); then the write thread, for ten seconds.
  const loops = ways.indexOf('thread');
  assert.ok(loops >= 1 && loops <= 4, ways.join(' '));
  assert.ok(
    ways.slice(loops).every((w) => w === 'thread'),
    ways.join(' '),
  );
  assert.equal(db.get('slow-7'), '7');
});
