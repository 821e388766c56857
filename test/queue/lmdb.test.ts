// The lmdb backend against the shared contract suite, plus what only the embedded store has:
// a stale lease cannot settle, entries survive a reopen, and the leases of a holder that is gone
// (killed, or closed with leases out) are due at once for the next queue to open.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { HAND_OFF_MAX_JOBS, LmdbQueue, decodeStoredJob } from '../../src/queue/lmdb.js';
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

/** Every job in the store, as stored. */
function storedJobs(queue: LmdbQueue) {
  return [...queue.store.jobs.getRange()].map(({ value }) => decodeStoredJob(value));
}

/** Counts the write transactions `queue` starts while `fn` runs. */
async function transactionsDuring(queue: LmdbQueue, fn: () => Promise<unknown>): Promise<number> {
  const root = queue.store.root;
  const original = root.transaction;
  let count = 0;
  root.transaction = ((cb: () => unknown) => {
    count++;
    return original.call(root, cb);
  }) as typeof root.transaction;
  try {
    await fn();
  } finally {
    root.transaction = original;
  }
  return count;
}

describe('lmdb queue', () => {
  it('leases a new entry to itself as it commits, and hands it out with no lease transaction', async () => {
    const dir = tempQueueDir();
    const open = () =>
      new LmdbQueue({ path: dir, leaseMs: 600_000, bounce: { reportingMta: 'mx.test' } });
    const a = open();
    const b = open();
    try {
      const before = Date.now();
      await enqueue(a, [rcpt('x@rcpt.example'), rcpt('y@rcpt.example')], { messageId: 'hot' });
      const [stored] = storedJobs(a);
      assert.ok(stored);
      assert.notEqual(stored.leaseToken, '', 'leased in the committing transaction');
      assert.ok(stored.scheduledAt >= before + 600_000, 'its schedule key is the lease expiry');
      assert.equal(stored.deliveries, 1);
      assert.deepEqual(await b.lease(1, 0), [], 'another live holder does not take it');
      let leases: Awaited<ReturnType<LmdbQueue['lease']>> = [];
      const transactions = await transactionsDuring(a, async () => {
        leases = await a.lease(4, 0);
      });
      assert.equal(transactions, 0);
      const [l] = leases;
      assert.equal(leases.length, 1);
      assert.equal(l?.job.messageId, 'hot');
      assert.equal(l?.job.deliveries, 0, 'no earlier delivery');
      assert.deepEqual([...(l?.job.recipients ?? [])].sort(), ['x@rcpt.example', 'y@rcpt.example']);
      assert.equal(Buffer.from(l?.job.body ?? []).toString(), 'Subject: hi\r\n\r\nhello\r\n');
      await l?.settle([
        { recipient: 'x@rcpt.example', status: 'delivered' },
        { recipient: 'y@rcpt.example', status: 'delivered' },
      ]);
      assert.deepEqual(storedJobs(a), []);
      assert.deepEqual(await a.lease(1, 0), []);
    } finally {
      await a.close();
      await b.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('commits entries due when the hand-off is full, and drops a hand-off with half its lease gone', async () => {
    const dir = tempQueueDir();
    let now = 1_700_000_000_000;
    const queue = new LmdbQueue({
      path: dir,
      leaseMs: 1000,
      clock: () => now,
      bounce: { reportingMta: 'mx.test' },
    });
    try {
      await Promise.all(
        Array.from({ length: HAND_OFF_MAX_JOBS + 1 }, (_, i) =>
          enqueue(queue, [rcpt('x@rcpt.example')], { messageId: `full-${i}` }),
        ),
      );
      const due = storedJobs(queue).filter((j) => j.leaseToken === '');
      assert.equal(due.length, 1, 'one past the bound is committed due');
      const leases = await queue.lease(HAND_OFF_MAX_JOBS + 10, 0);
      assert.equal(leases.length, HAND_OFF_MAX_JOBS + 1, 'the hand-offs and the due one');
      assert.ok(leases.some((l) => l.job.messageId === due[0]?.messageId));
      await Promise.all(
        leases.map((l) => l.settle([{ recipient: 'x@rcpt.example', status: 'delivered' }])),
      );

      await enqueue(queue, [rcpt('x@rcpt.example')], { messageId: 'late' });
      now += 600; // 400 ms of the 1,000 ms lease left
      assert.deepEqual(await queue.lease(1, 0), [], 'not handed out, and not due yet');
      now += 400;
      const [back] = await queue.lease(1, 0);
      assert.equal(back?.job.messageId, 'late', 'due when its lease expires');
      assert.equal(back?.job.deliveries, 1, 'the lease at commit counts');
      await back?.settle([{ recipient: 'x@rcpt.example', status: 'delivered' }]);
    } finally {
      await queue.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

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

  it('leaves the leases of a live holder alone and frees those of a closed one', async () => {
    const dir = tempQueueDir();
    const open = () =>
      new LmdbQueue({ path: dir, leaseMs: 600_000, bounce: { reportingMta: 'mx.test' } });
    const a = open();
    const b = open();
    let c: LmdbQueue | undefined;
    try {
      await enqueue(a, [rcpt('x@rcpt.example')], { messageId: 'held-by-a' });
      assert.equal((await leaseAll(a, 1)).length, 1);
      assert.deepEqual(await b.lease(1, 0), [], 'a is alive: its lease stands');
      await a.close(); // with the lease still out
      c = open();
      const [again] = await c.lease(1, 0);
      assert.equal(again?.job.messageId, 'held-by-a', 'due at once, not in ten minutes');
      await again?.settle([{ recipient: 'x@rcpt.example', status: 'delivered' }]);
    } finally {
      await b.close();
      await c?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('makes the leases of a killed process due at once on the next open', async () => {
    const dir = tempQueueDir();
    const lmdb = new URL('../../src/queue/lmdb.js', import.meta.url).href;
    // The child enqueues and leases one job with a ten-minute lease, says so, and waits.
    const script = `
      const { LmdbQueue } = await import(${JSON.stringify(lmdb)});
      const q = new LmdbQueue({ path: ${JSON.stringify(dir)}, leaseMs: 600000, bounce: { reportingMta: 'mx.test' } });
      const tx = q.begin({ messageId: 'held-by-child', sender: 'a@sender.example', senderKind: 'legacy' });
      tx.addRecipient({ address: 'x@rcpt.example', destination: 'smtp:rcpt.example' });
      tx.body(Buffer.from('Subject: hi\\r\\n\\r\\nhello\\r\\n'));
      await tx.commit();
      const leases = await q.lease(1, 1000);
      process.stdout.write('leased ' + leases.length + '\\n');
      setInterval(() => {}, 1000);
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let queue: LmdbQueue | undefined;
    try {
      // The first line, or nothing if the child died first.
      const line = await Promise.race([
        once(child.stdout, 'data').then(([d]) => String(d).trim()),
        once(child, 'exit').then(() => 'exited'),
      ]);
      assert.equal(line, 'leased 1');
      child.kill('SIGKILL');
      await once(child, 'exit');
      queue = new LmdbQueue({ path: dir, bounce: { reportingMta: 'mx.test' } });
      const [l] = await queue.lease(1, 0);
      assert.equal(l?.job.messageId, 'held-by-child');
      assert.equal(l?.job.deliveries, 1, 'the killed attempt counts');
      await l?.settle([{ recipient: 'x@rcpt.example', status: 'delivered' }]);
    } finally {
      child.kill('SIGKILL');
      await queue?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
