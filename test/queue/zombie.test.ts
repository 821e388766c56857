// Regression: a gateway killed with SIGKILL whose parent has not reaped it yet is a zombie, and
// `kill(pid, 0)` and /proc/<pid>/stat still find it; its lmdb queue leases used to wait for
// their expiry (300 s) instead of coming back at once. Here the holder's parent is a shell that
// never waits, so the killed holder stays a zombie while the queue is opened again, and while
// another live queue shares the directory.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { LmdbQueue } from '../../src/queue/lmdb.js';

const LMDB = new URL('../../src/queue/lmdb.js', import.meta.url).href;

function holderScript(dir: string, count: number): string {
  return `
    const { LmdbQueue } = await import(${JSON.stringify(LMDB)});
    const q = new LmdbQueue({ path: ${JSON.stringify(dir)}, leaseMs: 600000, bounce: { reportingMta: 'mx.test' } });
    for (let i = 0; i < ${count}; i++) {
      const tx = q.begin({ messageId: 'zombie-' + i, sender: 'a@sender.example', senderKind: 'legacy' });
      tx.addRecipient({ address: 'x@rcpt.example', destination: 'smtp:rcpt.example' });
      tx.body(Buffer.from('Subject: hi\\r\\n\\r\\nhello\\r\\n'));
      await tx.commit();
    }
    let leased = 0;
    while (leased < ${count}) leased += (await q.lease(${count}, 1000)).length;
    process.stdout.write('leased ' + leased + '\\n');
    setInterval(() => {}, 1000);
  `;
}

/** Starts the holder under a shell that never reaps it; resolves with its pid once it leased. */
async function zombieHolder(
  dir: string,
  count: number,
): Promise<{ pid: number; stop: () => void }> {
  const shell = spawn(
    'sh',
    ['-c', `"${process.execPath}" --input-type=module -e "$HOLDER" & echo "pid $!"; exec sleep 60`],
    {
      env: { ...process.env, HOLDER: holderScript(dir, count) },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  const lines = createInterface({ input: shell.stdout });
  let pid = 0;
  for await (const line of lines) {
    if (line.startsWith('pid ')) pid = Number(line.slice(4));
    if (line.startsWith('leased ')) break;
  }
  assert.ok(pid > 0, 'the holder started');
  return { pid, stop: () => shell.kill('SIGKILL') };
}

async function killToZombie(pid: number): Promise<void> {
  process.kill(pid, 'SIGKILL');
  for (let i = 0; i < 100; i++) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail('the killed holder did not become a zombie');
}

describe('lmdb queue: a zombie holder', { skip: process.platform !== 'linux' }, () => {
  it('gives its leases back at once when the queue is opened again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-zombie-'));
    const holder = await zombieHolder(dir, 16);
    let queue: LmdbQueue | undefined;
    try {
      await killToZombie(holder.pid);
      queue = new LmdbQueue({ path: dir, bounce: { reportingMta: 'mx.test' } });
      const leases = await queue.lease(16, 0);
      assert.equal(leases.length, 16, 'all 16 leases of the zombie are due at once');
    } finally {
      holder.stop();
      await queue?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('gives its leases back to a live queue sharing the directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-zombie-'));
    const live = new LmdbQueue({
      path: dir,
      bounce: { reportingMta: 'mx.test' },
      holdersCheckMs: 200,
    });
    const holder = await zombieHolder(dir, 4);
    try {
      await killToZombie(holder.pid);
      const t0 = Date.now();
      let got = 0;
      while (got < 4 && Date.now() - t0 < 10_000) got += (await live.lease(4, 500)).length;
      assert.equal(got, 4);
    } finally {
      holder.stop();
      await live.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
