// Bursts: 50,000 small entries enqueued at once are drained with bounded memory. The test reads
// this process's RSS while draining: after the queue is full, draining it must not keep growing
// memory (each lease holds at most a batch; settled jobs leave nothing behind in the process).
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { LmdbQueue } from '../../src/queue/lmdb.js';
import { collectGarbage } from '../helpers/gc.js';

const N = 50_000;

// A full collection before each sample (collectGarbage), so the samples measure what the process
// retains rather than when V8 chose to collect (a lazy heap read as 100 MB of growth).
const MB = 1024 * 1024;

/**
 * Resident memory that is the process's own (RssAnon): the LMDB file's pages that the drain
 * reads are mapped into the process and counted in RSS, but they are the file's, reclaimable, and
 * not a leak (on Node.js 24 the drain's RSS grew 67 MB: 58 MB of it file pages, 15 MB its own).
 */
function anonymousRss(): number {
  const kb = /^RssAnon:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  return kb === undefined ? process.memoryUsage.rss() : Number(kb) * 1024;
}

it('lmdb: 50,000 entries enqueued at once drain without unbounded RSS growth', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-queue-burst-'));
  const queue = new LmdbQueue({ path: dir, bounce: { reportingMta: 'mx.test' } });
  try {
    const body = Buffer.alloc(200, 'x');
    // "At once": every producer is started before any commit resolves, in waves of 5,000 so that
    // the test's own bookkeeping (promises) does not dominate the measurement.
    for (let wave = 0; wave < N; wave += 5000) {
      await Promise.all(
        Array.from({ length: 5000 }, (_, i) => {
          const tx = queue.begin({
            messageId: `b-${wave + i}`,
            sender: 'a@b.example',
            senderKind: 'legacy',
          });
          tx.addRecipient({
            address: `r${i}@rcpt.example`,
            destination: `smtp:d${i % 50}.example`,
          });
          tx.body(body);
          return tx.commit();
        }),
      );
    }
    assert.equal((await queue.stats()).depth, N);
    collectGarbage();
    const samples: number[] = [];
    let drained = 0;
    while (drained < N) {
      const leases = await queue.lease(512, 100);
      if (leases.length === 0 && (await queue.stats()).depth === 0) break;
      await Promise.all(
        leases.map((l) =>
          l.settle([{ recipient: l.job.recipients[0] ?? '', status: 'delivered' }]),
        ),
      );
      drained += leases.length;
      collectGarbage();
      samples.push(anonymousRss());
    }
    assert.equal(drained, N);
    assert.equal((await queue.stats()).depth, 0);
    const tenth = Math.max(1, Math.floor(samples.length / 10));
    const early = Math.max(...samples.slice(0, tenth));
    const late = Math.max(...samples.slice(-tenth));
    const peak = Math.max(...samples);
    // Growth from the first tenth of the drain to its last tenth, and the overall peak above the
    // start, are bounded; a leak of even 2 KiB per entry would add ~100 MB.
    assert.ok(
      late - early < 64 * MB,
      `RSS grew ${((late - early) / MB).toFixed(1)} MB while draining`,
    );
    assert.ok(
      peak - early < 128 * MB,
      `RSS peaked ${((peak - early) / MB).toFixed(1)} MB above the start`,
    );
  } finally {
    await queue.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
