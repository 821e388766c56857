// Restart safety: a child process registers identities in a burst and is killed with SIGKILL
// mid-burst; after reopening, the log verifies from scratch (the root recomputed from the leaves
// equals the stored one) and every registration the child acknowledged is present and provable.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { IdentityLedger } from '../../src/ledger/ledger.js';
import { ClientState, verifyAnswer } from '../../src/ledger/verify.js';
import { DOMAIN, logSigner, tempDir } from './helpers.js';

const CHILD = fileURLToPath(new URL('./burst-child.js', import.meta.url));

async function burstThenKill(
  path: string,
  run: string,
  killAfter: number,
): Promise<Map<string, number>> {
  const child = spawn(process.execPath, [CHILD, path, run], {
    env: { ...process.env, AFTERSMTP_LEDGER_BURST_CHILD: '1' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked = new Map<string, number>();
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  for await (const line of createInterface({ input: child.stdout })) {
    const m = /^ack (\d+) (\S+)$/.exec(line);
    assert.ok(m, `unexpected child output ${line}`);
    acked.set(m[2] as string, Number(m[1]));
    if (acked.size === killAfter) child.kill('SIGKILL');
  }
  assert.equal(await exited, 'SIGKILL');
  return acked;
}

test('a log killed mid-burst reopens consistent, with every acknowledged registration', async () => {
  const { dir, cleanup } = tempDir();
  try {
    const path = join(dir, 'ledger.sqlite');
    const acked = new Map<string, number>();
    // Two kills: the second run appends to the log the first one left behind.
    for (const [run, killAfter] of [
      ['a', 37],
      ['b', 53],
    ] as const) {
      for (const [did, leaf] of await burstThenKill(path, run, killAfter)) acked.set(did, leaf);
    }
    const ledger = new IdentityLedger({ path, signer: logSigner(), domains: [DOMAIN] });
    try {
      const { size, root } = ledger.store.verifyFromScratch();
      assert.ok(size >= acked.size, `log has ${size} entries, ${acked.size} were acknowledged`);
      assert.deepEqual(root, ledger.checkpoint().root);
      const state = new ClientState();
      const vkey = logSigner().verifierKey;
      for (const [did, leaf] of acked) {
        const answer = ledger.lookup(did);
        assert.equal(answer.leafIndex, leaf, did);
        verifyAnswer(did, answer, state, { dnsVerifierKey: vkey });
      }
    } finally {
      ledger.close();
    }
  } finally {
    cleanup();
  }
});
