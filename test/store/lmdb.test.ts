// The lmdb backend against the shared contract suite. The raw dump is the LMDB data file as it
// lies on disk (what a stolen disk shows); corruption flips bytes of sealed values in place.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LmdbMailboxStore } from '../../src/store/lmdb.js';
import type { Keyring } from '../../src/store/keys.js';
import type { StoreLimits } from '../../src/store/types.js';
import { storeContract, type Harness } from './contract.js';

export function tempStoreDir(): string {
  return mkdtempSync(join(tmpdir(), 'aftersmtp-store-'));
}

export async function lmdbHarness(
  keyring: Keyring,
  limits?: Partial<StoreLimits>,
): Promise<Harness> {
  const dir = tempStoreDir();
  let ring = keyring;
  let store: LmdbMailboxStore | undefined = await LmdbMailboxStore.open({
    path: dir,
    keyring,
    limits,
  });
  const current = (): LmdbMailboxStore => {
    if (store === undefined) throw new Error('the store is not open (a reopen failed)');
    return store;
  };
  return {
    get store() {
      return current();
    },
    async reopen(next?: Keyring) {
      await store?.close();
      store = undefined;
      ring = next ?? ring;
      store = await LmdbMailboxStore.open({ path: dir, keyring: ring, limits });
    },
    async rawDump() {
      await current().root.flushed;
      return Buffer.concat(readdirSync(dir).map((f) => readFileSync(join(dir, f))));
    },
    async corruptEnvelopes() {
      const s = current();
      await s.root.transaction(() => {
        for (const { key, value } of s.envelopes.getRange({})) {
          const v = Buffer.from(value);
          v[v.length - 20] = (v[v.length - 20] as number) ^ 0xff;
          void s.envelopes.put(Buffer.from(key), v);
        }
      });
    },
    async close() {
      await store?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

storeContract('lmdb', lmdbHarness);
