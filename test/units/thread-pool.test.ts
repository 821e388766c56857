// libuv's pool in the background scheduling class (src/native/pool.ts): after start-up every
// pool thread is SCHED_BATCH and the main thread is not; Node.js's own pool work still runs.
import assert from 'node:assert/strict';
import { generateKeyPairSync, sign, verify } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { backgroundThreadPool, threadPoolSize } from '../../src/native/pool.js';

const SCHED_BATCH = 3;

/** The scheduling policy of each thread of this process (proc(5): field 41 of stat). */
function policies(): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.set(Number(tid), Number(fields[41 - 3]));
  }
  return out;
}

test(
  'every pool thread, and only they, take SCHED_BATCH',
  { skip: process.platform !== 'linux' },
  async () => {
    assert.equal(await backgroundThreadPool(), true);
    const batch = [...policies()].filter(([, p]) => p === SCHED_BATCH);
    assert.equal(batch.length, threadPoolSize());
    assert.notEqual(policies().get(process.pid), SCHED_BATCH, 'the main thread keeps its class');
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const data = Buffer.from('pool work after the meeting');
    const signature = await promisify(sign)(null, data, privateKey);
    assert.ok(verify(null, data, publicKey, signature));
  },
);

test('the pool size is libuv’s: UV_THREADPOOL_SIZE, else 4, at most 1,024', () => {
  assert.equal(threadPoolSize({}), 4);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '8' }), 8);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '5000' }), 1024);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: 'x' }), 4);
  assert.equal(threadPoolSize({ UV_THREADPOOL_SIZE: '0' }), 4);
});
