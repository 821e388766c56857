// Start-up of the configured store (src/store/open.ts): AFTERSMTP_STORE chooses the backend, the
// key file is generated on first start, and every bad setting is a clear error naming it.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { it } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { StoreKeyError, StoreUnavailableError } from '../../src/store/errors.js';
import { generateKey } from '../../src/store/keys.js';
import { openStore } from '../../src/store/open.js';
import { ALICE, envelope } from './contract.js';

it('opens the lmdb store by default, generating <data dir>/store.key (0600) on first start', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-store-open-'));
  try {
    const config = loadConfig({ AFTERSMTP_DATA_DIR: dir });
    const store = await openStore(config);
    assert.equal(store.backend, 'lmdb');
    const e = envelope(ALICE);
    await store.deliver(e);
    await store.close();
    assert.equal(statSync(join(dir, 'store.key')).mode & 0o777, 0o600);
    assert.ok(existsSync(join(dir, 'mailboxes')));
    const again = await openStore(config);
    assert.ok(await again.fetch(ALICE, e.messageId));
    await again.close();
    // Another key (from the environment) is refused, naming the missing key.
    const other = loadConfig({
      AFTERSMTP_DATA_DIR: dir,
      AFTERSMTP_STORE_KEY: generateKey().key.toString('base64'),
    });
    await assert.rejects(openStore(other), StoreKeyError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

it('refuses a bad AFTERSMTP_STORE, AFTERSMTP_STORE_KEY or AFTERSMTP_POSTGRES_URL by name', async () => {
  for (const [name, value] of [
    ['AFTERSMTP_STORE', 'mysql'],
    ['AFTERSMTP_STORE_KEY', 'short'],
    ['AFTERSMTP_POSTGRES_URL', 'http://127.0.0.1/x'],
    ['AFTERSMTP_STORE_KEY_FILE', 'relative/path'],
  ] as const) {
    assert.throws(
      () => loadConfig({ [name]: value }),
      (err: unknown) => (err as Error).message.includes(name),
    );
  }
  const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-store-open-'));
  try {
    const config = loadConfig({
      AFTERSMTP_DATA_DIR: dir,
      AFTERSMTP_STORE: 'postgres',
      AFTERSMTP_POSTGRES_URL: 'postgres://u:pw@127.0.0.1:1/none',
    });
    await assert.rejects(openStore(config), StoreUnavailableError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
