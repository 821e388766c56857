// Crash safety: a child process enqueues a burst while delivering, and is killed with SIGKILL at
// a random point, twice; a last run drains the queue. Every message whose enqueue had returned
// (the child printed `ack` after commit) must have been delivered at least once. For nats and
// rabbitmq the server stays up while the gateway process dies.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { AmqpQueue } from '../../src/queue/amqp.js';
import { NatsQueue } from '../../src/queue/nats.js';
import { service } from './services.js';

const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url));

interface RunResult {
  acked: string[];
  delivered: string[];
  drained: boolean;
}

function runChild(args: string[], killAfterAcks: number | undefined): Promise<RunResult> {
  const child = spawn(process.execPath, [CHILD, ...args], {
    env: { ...process.env, AFTERSMTP_QUEUE_CRASH_CHILD: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const result: RunResult = { acked: [], delivered: [], drained: false };
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [word, id] = line.split(' ');
      if (word === 'ack' && id) {
        result.acked.push(id);
        if (killAfterAcks !== undefined && result.acked.length === killAfterAcks)
          child.kill('SIGKILL');
      } else if (word === 'delivered' && id) result.delivered.push(id);
      else if (word === 'drained') result.drained = true;
    });
    child.on('error', reject);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(result);
    });
  });
}

async function crashAndRecover(backend: string, where: string, name: string): Promise<void> {
  const acked = new Set<string>();
  const delivered = new Set<string>();
  for (const run of ['a', 'b']) {
    const killAt = 50 + Math.floor(Math.random() * 250);
    const r = await runChild([backend, where, name, 'burst', run, '400'], killAt);
    assert.ok(r.acked.length >= killAt, `run ${run}: ${r.acked.length} acks before the kill`);
    r.acked.forEach((id) => acked.add(id));
    r.delivered.forEach((id) => delivered.add(id));
  }
  const last = await runChild([backend, where, name, 'drain'], undefined);
  assert.ok(last.drained, 'the last run drained the queue');
  last.delivered.forEach((id) => delivered.add(id));
  const lost = [...acked].filter((id) => !delivered.has(id));
  assert.deepEqual(
    lost,
    [],
    `${lost.length} of ${acked.size} acknowledged entries were never delivered`,
  );
}

describe('crash safety: SIGKILL during enqueue and delivery', () => {
  it('lmdb: every acknowledged entry is delivered after restarts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-queue-crash-'));
    try {
      await crashAndRecover('lmdb', dir, '');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('nats: every acknowledged entry is delivered after restarts', async (t) => {
    const nats = await service('AFTERSMTP_NATS_URL', 'nats://127.0.0.1:4222', 'nats.sh');
    if (nats.skip !== undefined) return t.skip(nats.skip);
    const name = `CRASH${randomBytes(4).toString('hex').toUpperCase()}`;
    try {
      await crashAndRecover('nats', nats.url, name);
    } finally {
      const q = await NatsQueue.open({ url: nats.url, name, bounce: { reportingMta: 'x' } });
      await q.destroy();
      await q.close();
    }
  });

  it('rabbitmq: every acknowledged entry is delivered after restarts', async (t) => {
    const rabbit = await service('AFTERSMTP_AMQP_URL', 'amqp://127.0.0.1:5672', 'rabbitmq.sh');
    if (rabbit.skip !== undefined) return t.skip(rabbit.skip);
    const name = `crash-${randomBytes(4).toString('hex')}`;
    try {
      await crashAndRecover('rabbitmq', rabbit.url, name);
    } finally {
      const q = await AmqpQueue.open({ url: rabbit.url, name, bounce: { reportingMta: 'x' } });
      await q.destroy();
      await q.close();
    }
  });
});
