// The keyring file followed while serving (src/store/keyring-follower.ts), on a real lmdb store:
// a rotation of the file is taken and finished (every record re-sealed under the new key) without
// a restart; a file the store must refuse is logged and changes nothing; records left under an
// old key at start are re-sealed.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger } from '../../src/log.js';
import { KeyringFollower } from '../../src/store/keyring-follower.js';
import {
  addKeyFile,
  formatKeyFile,
  generateKey,
  Keyring,
  loadKeyring,
  retireKey,
  rotateKeyFile,
  useKeyFile,
} from '../../src/store/keys.js';
import { LmdbMailboxStore } from '../../src/store/lmdb.js';
import { StoreKeyError } from '../../src/store/errors.js';
import { ALICE, envelope } from './contract.js';

const tempStoreDir = (): string => mkdtempSync(join(tmpdir(), 'aftersmtp-keyring-'));

function capture() {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().trim().split('\n'))
        lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger('info', stream), lines };
}

/** Polls `ok` (the follower checks the file each second) for up to 10 s. */
async function until(ok: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await ok())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function withFollowedStore(
  fn: (t: {
    store: LmdbMailboxStore;
    file: string;
    dir: string;
    follower: () => KeyringFollower;
    lines: Record<string, unknown>[];
  }) => Promise<void>,
  before?: (file: string) => void,
): Promise<void> {
  const dir = tempStoreDir();
  const file = join(dir, 'store.key');
  const keyring = loadKeyring({ keyFile: file, dataDir: dir });
  before?.(file);
  const store = await LmdbMailboxStore.open({ path: join(dir, 'db'), keyring });
  const { log, lines } = capture();
  let follower: KeyringFollower | undefined;
  try {
    await fn({
      store,
      file,
      dir,
      follower: () => (follower ??= new KeyringFollower(file, store, log)),
      lines,
    });
  } finally {
    follower?.close();
    await follower?.settled();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('store keyring follower', () => {
  it('takes a rotated keyring file live, re-seals every record, and the old key can then be retired', async () => {
    await withFollowedStore(async ({ store, file, dir, follower, lines }) => {
      const old = (await store.keyStatus()).writeKeyId;
      const before = [envelope(ALICE), envelope(ALICE)];
      for (const e of before) await store.deliver(e);
      follower();
      const fresh = rotateKeyFile(file);
      await until(async () => {
        const s = await store.keyStatus();
        return s.writeKeyId === fresh && s.inUse.length === 1 && s.inUse[0] === fresh;
      }, 'the new write key alone in use');
      await follower().settled();
      const done = lines.find((l) => 'rewrapped' in l);
      assert.equal(done?.rewrapped, 4, 'two envelopes and their receipts re-sealed');
      assert.deepEqual(done?.retirable, [old]);
      // Mail goes on being stored; the old key retired, the store opens and reads everything.
      await store.deliver(envelope(ALICE));
      retireKey(file, old);
      assert.deepEqual(loadKeyring({ keyFile: file, dataDir: '.' }).ids(), [fresh]);
      follower().close();
      await store.close();
      const alone = await LmdbMailboxStore.open({
        path: join(dir, 'db'),
        keyring: loadKeyring({ keyFile: file, dataDir: '.' }),
      });
      try {
        assert.equal((await alone.list(ALICE)).envelopes.length, 3);
        assert.ok(await alone.fetch(ALICE, before[0]!.messageId));
      } finally {
        await alone.close();
      }
    });
  });

  it('add then use (the order for gateways sharing a database): a key added opens but seals nothing until used', async () => {
    await withFollowedStore(async ({ store, file, follower }) => {
      const first = (await store.keyStatus()).writeKeyId;
      follower();
      await follower().settled();
      const added = addKeyFile(file);
      await until(
        async () => (await store.keyStatus()).keyring.includes(added),
        'the added key in the keyring',
      );
      await store.deliver(envelope(ALICE));
      assert.deepEqual((await store.keyStatus()).inUse, [first]);
      useKeyFile(file, added);
      await until(async () => {
        const s = await store.keyStatus();
        return s.writeKeyId === added && s.inUse.join() === added;
      }, 'the used key alone in use');
    });
  });

  it('refuses a keyring file without a key records are sealed with: logged, the keyring in force stays', async () => {
    await withFollowedStore(async ({ store, file, follower, lines }) => {
      const kept = (await store.keyStatus()).writeKeyId;
      await store.deliver(envelope(ALICE));
      follower();
      await follower().settled();
      writeFileSync(file, formatKeyFile(new Keyring([generateKey()])), { mode: 0o600 });
      await until(
        async () => lines.some((l) => String(l.msg).includes('refused')),
        'the refusal logged',
      );
      const refusal = lines.find((l) => String(l.msg).includes('refused'));
      assert.equal(refusal?.level, 'error');
      assert.match(String(refusal?.err), new RegExp(kept));
      assert.equal((await store.keyStatus()).writeKeyId, kept);
      await store.deliver(envelope(ALICE));
      assert.equal((await store.list(ALICE)).envelopes.length, 2);
      // A file others may read is refused too (the same check as at start).
      chmodSync(file, 0o644);
      await until(
        async () => lines.filter((l) => String(l.msg).includes('refused')).length === 2,
        'the second refusal logged',
      );
      assert.match(String(lines.at(-1)?.err), /may be read by group or others/);
    });
  });

  it('at start, re-seals records left under an old key (a rotation made while stopped)', async () => {
    const dir = tempStoreDir();
    const file = join(dir, 'store.key');
    const path = join(dir, 'db');
    const { log, lines } = capture();
    try {
      const first = await LmdbMailboxStore.open({
        path,
        keyring: loadKeyring({ keyFile: file, dataDir: dir }),
      });
      await first.deliver(envelope(ALICE));
      const old = (await first.keyStatus()).writeKeyId;
      await first.close();
      const fresh = rotateKeyFile(file);
      const store = await LmdbMailboxStore.open({
        path,
        keyring: loadKeyring({ keyFile: file, dataDir: dir }),
      });
      assert.deepEqual([...(await store.keyStatus()).inUse].sort(), [fresh, old].sort());
      const follower = new KeyringFollower(file, store, log);
      await follower.settled();
      follower.close();
      assert.deepEqual((await store.keyStatus()).inUse, [fresh]);
      assert.equal(lines.find((l) => 'rewrapped' in l)?.rewrapped, 2);
      assert.equal((await store.list(ALICE)).envelopes.length, 1);
      await store.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('useKeyFile refuses a key the file does not hold', () => {
    const dir = tempStoreDir();
    const file = join(dir, 'store.key');
    loadKeyring({ keyFile: file, dataDir: dir });
    assert.throws(() => useKeyFile(file, '0011223344556677'), StoreKeyError);
    rmSync(dir, { recursive: true, force: true });
  });
});
