// `aftersmtp store-key`: the mailbox store's keyring, through the real CLI, with and without a
// running `serve`. A key that records may still be sealed with is never retired; a running
// gateway re-seals its records under a new write key (at start, and live after `rotate`); the
// mail opens with the new key alone afterwards; keys from the environment are refused.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadKeyring } from '../../src/store/keys.js';
import { LmdbMailboxStore } from '../../src/store/lmdb.js';
import { lmdbStorePath } from '../../src/store/open.js';
import { ALICE, envelope } from '../store/contract.js';
import { localServeEnv, runCli, startServe, stopChild, tempDir } from '../helpers/cli.js';

interface Listed {
  file: string | null;
  writeKeyId: string;
  keys: { id: string; write: boolean; inUse: boolean }[];
}

async function list(env: Record<string, string>): Promise<Listed> {
  const r = await runCli(['store-key', 'list', '--json'], { env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Listed;
}

/** Lists until `ok` holds (a running gateway checks the file each second), for up to 20 s. */
async function listUntil(
  env: Record<string, string>,
  ok: (l: Listed) => boolean,
  what: string,
): Promise<Listed> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const l = await list(env);
    if (ok(l)) return l;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}: ${JSON.stringify(l)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const onlyWriteKeyInUse = (l: Listed): boolean =>
  l.keys.every((k) => k.inUse === k.write) && l.keys.some((k) => k.write);

test('store-key: rotate, re-sealed by serve at start and live, retire only what no record needs', async (t) => {
  const dataDir = join(tempDir('store-key'), 'data');
  const env = localServeEnv(dataDir);
  // Mail in the store under the first key (the store as serve opens it).
  const keyFile = join(dataDir, 'store.key');
  const stored = envelope(ALICE);
  const path = lmdbStorePath(dataDir);
  const first = await LmdbMailboxStore.open({
    path,
    keyring: loadKeyring({ keyFile, dataDir }),
  });
  await first.deliver(stored);
  await first.close();

  const initial = await list(env);
  assert.equal(initial.file, keyFile);
  assert.equal(initial.keys.length, 1);
  const k1 = initial.writeKeyId;
  assert.deepEqual(initial.keys, [{ id: k1, write: true, inUse: true }]);

  // Rotated while no gateway runs: k1 still seals the stored mail, so it cannot go yet.
  let r = await runCli(['store-key', 'rotate', '--json'], { env });
  assert.equal(r.code, 0, r.stderr);
  const k2 = (JSON.parse(r.stdout) as { writeKeyId: string }).writeKeyId;
  assert.notEqual(k2, k1);
  const rotated = await list(env);
  assert.equal(rotated.writeKeyId, k2);
  assert.deepEqual(rotated.keys.find((k) => k.id === k1)?.inUse, true);
  r = await runCli(['store-key', 'retire', '--key', k1], { env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /records may still be sealed with key/);
  r = await runCli(['store-key', 'retire', '--key', k2], { env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is the write key/);

  // serve re-seals at start; then k1 may be retired.
  const served = await startServe(env);
  t.after(() => served.child.kill('SIGKILL'));
  await listUntil(env, onlyWriteKeyInUse, 'k1 no longer in use');
  r = await runCli(['store-key', 'retire', '--key', k1], { env });
  assert.equal(r.code, 0, r.stderr);

  // Rotated while serving: taken within a second and re-sealed live.
  r = await runCli(['store-key', 'rotate', '--json'], { env });
  assert.equal(r.code, 0, r.stderr);
  const k3 = (JSON.parse(r.stdout) as { writeKeyId: string }).writeKeyId;
  await listUntil(env, (l) => l.writeKeyId === k3 && onlyWriteKeyInUse(l), 'k3 alone in use');
  const logged = served.log.filter((l) => 'rewrapped' in l);
  assert.deepEqual(
    logged.map((l) => [l.writeKey, l.rewrapped]),
    [
      [k2, 2],
      [k3, 2],
    ],
    'serve re-sealed the envelope and its receipt twice',
  );
  r = await runCli(['store-key', 'retire', '--key', k2], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await stopChild(served.child), 0);

  // The mail opens with the newest key alone.
  const ring = loadKeyring({ keyFile, dataDir });
  assert.deepEqual(ring.ids(), [k3]);
  const after = await LmdbMailboxStore.open({ path, keyring: ring });
  try {
    assert.ok(await after.fetch(ALICE, stored.messageId));
  } finally {
    await after.close();
  }

  // Keys in the environment are listed, but not the command's to change.
  const fromEnv = { ...env, AFTERSMTP_STORE_KEY: ring.write.key.toString('base64') };
  const listed = await list(fromEnv);
  assert.equal(listed.file, null);
  assert.deepEqual(listed.keys, [{ id: k3, write: true, inUse: true }]);
  r = await runCli(['store-key', 'rotate'], { env: fromEnv });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /AFTERSMTP_STORE_KEY/);
});
