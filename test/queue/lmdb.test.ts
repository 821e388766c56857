// The lmdb backend against the shared contract suite, plus what only the embedded store has:
// a stale lease cannot settle, and entries survive a reopen.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LmdbQueue } from '../../src/queue/lmdb.js';
import { QueueStateError } from '../../src/queue/errors.js';
import { FAST_RETRY, enqueue, leaseAll, queueContract, rcpt, type Harness } from './contract.js';

export function tempQueueDir(): string {
  return mkdtempSync(join(tmpdir(), 'aftersmtp-queue-'));
}

queueContract('lmdb', async ({ retry, leaseMs }): Promise<Harness> => {
  const dir = tempQueueDir();
  const queue = new LmdbQueue({ path: dir, retry, leaseMs, bounce: { reportingMta: 'mx.test' } });
  return {
    queue,
    async injectGarbage(bytes) {
      await queue.store.root.transaction(() => {
        void queue.store.jobs.put('ffffffffffffffffffffffffffffffff.0', Buffer.from(bytes));
        void queue.store.schedule.put([0, 'ffffffffffffffffffffffffffffffff.0'], Buffer.alloc(0));
      });
    },
    async close() {
      await queue.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

describe('lmdb queue', () => {
  it('refuses to settle a lease that expired and was handed out again', async () => {
    const dir = tempQueueDir();
    const queue = new LmdbQueue({
      path: dir,
      retry: FAST_RETRY,
      leaseMs: 100,
      bounce: { reportingMta: 'mx.test' },
    });
    try {
      await enqueue(queue, [rcpt('x@rcpt.example')]);
      const [stale] = await leaseAll(queue, 1);
      const [fresh] = await leaseAll(queue, 1, 3000);
      assert.ok(stale && fresh);
      await assert.rejects(
        stale.settle([{ recipient: 'x@rcpt.example', status: 'delivered' }]),
        QueueStateError,
      );
      await fresh.settle([{ recipient: 'x@rcpt.example', status: 'delivered' }]);
    } finally {
      await queue.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('keeps committed entries across a close and reopen', async () => {
    const dir = tempQueueDir();
    try {
      const a = new LmdbQueue({ path: dir, bounce: { reportingMta: 'mx.test' } });
      await enqueue(a, [rcpt('x@rcpt.example')], { messageId: 'persist-1' });
      await a.close();
      const b = new LmdbQueue({ path: dir, bounce: { reportingMta: 'mx.test' } });
      const [l] = await leaseAll(b, 1);
      assert.equal(l?.job.messageId, 'persist-1');
      await l?.settle([{ recipient: 'x@rcpt.example', status: 'delivered' }]);
      await b.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
