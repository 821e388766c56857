// `aftersmtp queue ...` run as an operator runs it (the real CLI in a child process) on an lmdb
// queue in AFTERSMTP_DATA_DIR: list, show, hold, release, retry, drop, dead, stats, --json and
// the exit codes (0 ok, 1 unknown id, 2 usage).
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { LmdbQueue } from '../../src/queue/lmdb.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { enqueue, leaseAll, rcpt } from './contract.js';

describe('aftersmtp queue', () => {
  it('lists, shows, holds, releases, retries, drops and reports dead letters', async () => {
    const dataDir = tempDir('queue-cli');
    const env = { AFTERSMTP_DATA_DIR: dataDir };
    try {
      const queue = new LmdbQueue({
        path: join(dataDir, 'queue'),
        bounce: { reportingMta: 'mx.test' },
      });
      const keep = await enqueue(
        queue,
        [rcpt('a@x.example', 'smtp:x.example'), rcpt('b@y.example', 'smtp:y.example')],
        { messageId: 'keep-me' },
      );
      const gone = await enqueue(queue, [rcpt('c@z.example', 'smtp:z.example')], {
        messageId: 'drop-me',
      });
      const dead = await enqueue(queue, [rcpt('d@w.example', 'smtp:w.example')], {
        messageId: 'kill-me',
      });
      const leases = await leaseAll(queue, 4);
      const d = leases.find((l) => l.job.entryId === dead);
      await d?.settle([
        { recipient: 'd@w.example', status: 'permanent', reason: '550 5.1.1 unknown' },
      ]);
      for (const l of leases) if (l !== d) await l.settle([]); // all temporary
      await queue.close();

      const list = await runCli(['queue', 'list', '--json'], { env });
      assert.equal(list.code, 0, list.stderr);
      const entries = JSON.parse(list.stdout) as { entryId: string; messageId: string }[];
      assert.deepEqual(entries.map((e) => e.messageId).slice(0, 2), ['keep-me', 'drop-me']);

      const show = await runCli(['queue', 'show', keep, '--json'], { env });
      assert.equal(show.code, 0, show.stderr);
      const shown = JSON.parse(show.stdout) as {
        jobs: { state: string; recipients: { attempts: number }[] }[];
      };
      assert.equal(shown.jobs.length, 2);
      assert.equal(shown.jobs[0]?.recipients[0]?.attempts, 1);

      assert.equal((await runCli(['queue', 'hold', keep], { env })).code, 0);
      const held = JSON.parse(
        (await runCli(['queue', 'show', keep, '--json'], { env })).stdout,
      ) as { jobs: { state: string }[] };
      assert.deepEqual(
        held.jobs.map((j) => j.state),
        ['held', 'held'],
      );
      assert.equal((await runCli(['queue', 'release', `${keep}.1`], { env })).code, 0);
      const released = JSON.parse(
        (await runCli(['queue', 'show', keep, '--json'], { env })).stdout,
      ) as { jobs: { state: string }[] };
      assert.deepEqual(
        released.jobs.map((j) => j.state),
        ['held', 'queued'],
      );

      const retry = await runCli(['queue', 'retry', '--all', '--json'], { env });
      assert.equal(retry.code, 0, retry.stderr);
      // Both jobs of keep-me, drop-me, and the DSN bounced for kill-me.
      assert.equal((JSON.parse(retry.stdout) as { jobs: number }).jobs, 4);

      assert.equal((await runCli(['queue', 'drop', gone], { env })).code, 0);
      const after = JSON.parse((await runCli(['queue', 'list', '--json'], { env })).stdout) as {
        entryId: string;
      }[];
      assert.ok(!after.some((e) => e.entryId === gone));

      const deadList = await runCli(['queue', 'dead', '--json'], { env });
      const deadRecs = JSON.parse(deadList.stdout) as { recipient: string; kind: string }[];
      assert.deepEqual(
        deadRecs.map((r) => [r.recipient, r.kind]),
        [['d@w.example', 'permanent']],
      );

      const stats = JSON.parse(
        (await runCli(['queue', 'stats', '--json'], { env })).stdout,
      ) as Record<string, number>;
      assert.equal(stats.deadLetters, 1);
      assert.equal(stats.retries, 3);

      const text = await runCli(['queue', 'show', keep], { env });
      assert.match(text.stdout, /job +[0-9a-f]{32}\.0 -> smtp:x\.example: held/);

      assert.equal((await runCli(['queue', 'show', 'f'.repeat(32)], { env })).code, 1);
      assert.equal((await runCli(['queue', 'show'], { env })).code, 2);
      assert.equal((await runCli(['queue', 'retry', keep, '--all'], { env })).code, 2);
      const other = await runCli(['queue', 'list'], { env: { ...env, AFTERSMTP_QUEUE: 'nats' } });
      assert.equal(other.code, 1);
      assert.match(other.stderr, /ERR_QUEUE_UNSUPPORTED/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
