/**
 * Opens the mailbox store the configuration names (AFTERSMTP_STORE): lmdb in <data dir>/mailboxes,
 * or postgres at AFTERSMTP_POSTGRES_URL (migrations run here), sealed with the keyring from
 * AFTERSMTP_STORE_KEY or AFTERSMTP_STORE_KEY_FILE (default <data dir>/store.key, generated on
 * first start). Every problem is raised here at start-up, naming the variable: a malformed or
 * wrong key (StoreKeyError), an unreachable database (StoreUnavailableError).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadKeyring, type KeySource } from './keys.js';
import { LmdbMailboxStore } from './lmdb.js';
import { PostgresMailboxStore } from './postgres.js';
import type { MailboxStore, StoreBackendName, StoreLimits } from './types.js';
import type { StorageSpace } from '../storage/space.js';

/** The settings a mailbox store is opened with (AFTERSMTP_STORE*, AFTERSMTP_POSTGRES_URL, ...). */
export interface StoreConfig {
  readonly dataDir: string;
  readonly store: StoreBackendName;
  readonly postgresUrl: string;
  readonly storeKeyFile: string | undefined;
  readonly storeKey: string | undefined;
  readonly maxEnvelopeBytes: number;
}

export function lmdbStorePath(dataDir: string): string {
  return join(dataDir, 'mailboxes');
}

/** Where the store's keys come from: AFTERSMTP_STORE_KEY, else the keyring file. */
export function storeKeySource(
  config: Pick<StoreConfig, 'dataDir' | 'storeKey' | 'storeKeyFile'>,
): KeySource {
  return { keyEnv: config.storeKey, keyFile: config.storeKeyFile, dataDir: config.dataDir };
}

/** `space`: the room on the data directory's file system (the lmdb store's reserve). */
export async function openStore(
  config: StoreConfig,
  limits: Partial<StoreLimits> = {},
  space?: StorageSpace,
): Promise<MailboxStore> {
  mkdirSync(config.dataDir, { recursive: true });
  const keyring = loadKeyring(storeKeySource(config));
  const all = { maxEnvelopeBytes: config.maxEnvelopeBytes, ...limits };
  switch (config.store) {
    case 'lmdb': {
      const path = lmdbStorePath(config.dataDir);
      mkdirSync(path, { recursive: true });
      return LmdbMailboxStore.open({ path, keyring, limits: all, space });
    }
    case 'postgres':
      return PostgresMailboxStore.open({ url: config.postgresUrl, keyring, limits: all });
  }
}
