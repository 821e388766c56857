// The postgres backend against the shared contract suite, on a real PostgreSQL server with
// pgcrypto (scripts/services/postgres.sh; AFTERSMTP_POSTGRES_URL), a fresh database per test.
// The raw dump is every column of every store table as the server holds it (a database dump).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pg from 'pg';
import { StoreUnavailableError } from '../../src/store/errors.js';
import { generateKey, Keyring, subkey } from '../../src/store/keys.js';
import { MIGRATIONS, PostgresMailboxStore } from '../../src/store/postgres.js';
import type { StoreLimits } from '../../src/store/types.js';
import { ALICE, envelope, storeContract, type Harness } from './contract.js';
import { freshDatabase, postgresService } from './services.js';

const service = await postgresService();

async function postgresHarness(keyring: Keyring, limits?: Partial<StoreLimits>): Promise<Harness> {
  const db = await freshDatabase(service.url);
  let ring = keyring;
  let store: PostgresMailboxStore | undefined = await PostgresMailboxStore.open({
    url: db.url,
    keyring,
    limits,
    poolSize: 4,
  });
  const current = (): PostgresMailboxStore => {
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
      store = await PostgresMailboxStore.open({ url: db.url, keyring: ring, limits, poolSize: 4 });
    },
    async rawDump() {
      const pool = current().pool;
      const tables = await pool.query<{ t: string }>(
        "SELECT tablename AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
      );
      const parts: Buffer[] = [];
      for (const { t } of tables.rows) {
        const { rows } = await pool.query<Record<string, unknown>>(`SELECT * FROM ${t}`);
        for (const row of rows) {
          for (const v of Object.values(row))
            parts.push(Buffer.isBuffer(v) ? v : Buffer.from(String(v)));
        }
      }
      return Buffer.concat(parts);
    },
    async corruptEnvelopes() {
      await current().pool.query(
        'UPDATE store_envelopes SET sealed = set_byte(sealed, length(sealed) - 10, get_byte(sealed, length(sealed) - 10) # 255)',
      );
    },
    async close() {
      await store?.close();
      await db.drop();
    },
  };
}

if (service.skip !== undefined) {
  describe('mailbox store contract: postgres', () => {
    it('needs a PostgreSQL server', { skip: service.skip }, () => undefined);
  });
} else {
  storeContract('postgres', postgresHarness);

  describe('postgres mailbox store', () => {
    it('runs its migrations once, versioned in store_schema, also when gateways start at once', async () => {
      const db = await freshDatabase(service.url);
      try {
        const keyring = new Keyring([generateKey()]);
        const stores = await Promise.all(
          [1, 2, 3].map(() => PostgresMailboxStore.open({ url: db.url, keyring, poolSize: 2 })),
        );
        const { rows } = await stores[0]!.pool.query<{ version: number }>(
          'SELECT version FROM store_schema',
        );
        assert.deepEqual(
          rows.map((r) => r.version),
          MIGRATIONS.map((m) => m.version),
        );
        // Every process sees the same index key: one delivery, found through another.
        const e = envelope(ALICE);
        await stores[0]!.deliver(e);
        assert.ok(await stores[2]!.fetch(ALICE, e.messageId));
        const ext = await stores[0]!.pool.query(
          "SELECT 1 FROM pg_extension WHERE extname = 'pgcrypto'",
        );
        assert.equal(ext.rowCount, 1);
        await Promise.all(stores.map((s) => s.close()));
      } finally {
        await db.drop();
      }
    });

    it('passes the key as a bound parameter: it never appears in the server statistics', async () => {
      const db = await freshDatabase(service.url);
      try {
        const key = generateKey();
        const store = await PostgresMailboxStore.open({
          url: db.url,
          keyring: new Keyring([key]),
          poolSize: 2,
        });
        await store.deliver(envelope(ALICE));
        const c = new pg.Client({ connectionString: db.url });
        await c.connect();
        const { rows } = await c.query<{ q: string }>('SELECT query AS q FROM pg_stat_activity');
        await c.end();
        for (const r of rows) {
          assert.ok(!r.q.includes(key.key.toString('base64')));
          assert.ok(!r.q.includes(subkey(key, 'pgcrypto').toString('base64')));
        }
        await store.close();
      } finally {
        await db.drop();
      }
    });
  });
}

describe('postgres mailbox store start-up', () => {
  it('reports an unreachable server as a clear error naming the variable, without the password', async () => {
    await assert.rejects(
      PostgresMailboxStore.open({
        url: 'postgres://u:secret-pw@127.0.0.1:1/x',
        keyring: new Keyring([generateKey()]),
        connectTimeoutMs: 1000,
      }),
      (err: unknown) =>
        err instanceof StoreUnavailableError &&
        /AFTERSMTP_POSTGRES_URL/.test(err.message) &&
        !err.message.includes('secret-pw'),
    );
  });
});
