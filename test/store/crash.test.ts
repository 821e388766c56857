// Crash safety of the lmdb store: a child process delivers a burst (64 concurrent writers) and is
// killed with SIGKILL at a random point, twice; after reopening, every envelope whose deliver()
// had resolved (the child printed `ack`) is in its mailbox, intact.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { generateKey, Keyring } from '../../src/store/keys.js';
import { LmdbMailboxStore } from '../../src/store/lmdb.js';
import { commitmentOf } from './crash-child.js';

const CHILD = fileURLToPath(new URL('./crash-child.js', import.meta.url));

function runChild(
  path: string,
  key: string,
  run: string,
  killAfterAcks: number,
): Promise<string[]> {
  const child = spawn(process.execPath, [CHILD, path, key, run], {
    env: { ...process.env, AFTERSMTP_STORE_CRASH_CHILD: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked: string[] = [];
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      const [word, id] = line.split(' ');
      if (word === 'ack' && id) {
        acked.push(id);
        if (acked.length === killAfterAcks) child.kill('SIGKILL');
      }
    });
    child.on('error', reject);
    child.on('exit', () => {
      clearTimeout(timer);
      resolve(acked);
    });
  });
}

it('lmdb store: every acknowledged delivery and its transit commitment survive SIGKILL', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-store-crash-'));
  const key = generateKey();
  try {
    const acked: string[] = [];
    for (const run of ['a', 'b']) {
      const killAt = 200 + Math.floor(Math.random() * 800);
      const got = await runChild(dir, key.key.toString('base64'), run, killAt);
      assert.ok(got.length >= killAt, `run ${run}: ${got.length} acks before the kill`);
      acked.push(...got);
    }
    const store = await LmdbMailboxStore.open({ path: dir, keyring: new Keyring([key]) });
    try {
      const lost: string[] = [];
      for (const id of acked) {
        const w = Number(id.split('-')[1]);
        const e = await store.fetch(`did:aftersmtp:crash.example:user${w % 8}`, id);
        if (e === undefined || e.envelope.length !== 4096) lost.push(id);
      }
      assert.deepEqual(
        lost,
        [],
        `${lost.length} of ${acked.length} acknowledged deliveries were lost`,
      );
      // Each acknowledged delivery's transit commitment is in the outbox with it.
      const outbox = new Set((await store.transitOutbox(10_000)).map((c) => c.toString('hex')));
      const unlogged = acked.filter((id) => !outbox.has(commitmentOf(id).toString('hex')));
      assert.deepEqual(unlogged, [], `${unlogged.length} acknowledged commitments were lost`);
      assert.equal(await store.quarantined(), 0);
    } finally {
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
