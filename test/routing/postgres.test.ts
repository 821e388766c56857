// Maps shared on PostgreSQL (AFTERSMTP_MAPS=postgres), against the real server: a change made
// with the CLI on one node is served by two other nodes' engines within a second; changes to one
// map made at once by several writers are serialised (none is lost); a change the map's checks
// refuse writes nothing.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { MappingEngine } from '../../src/routing/engine.js';
import { PgMapsFollower, sharedMaps, updateSharedMap } from '../../src/routing/postgres.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { freshDatabase, postgresService } from '../store/services.js';
import { until } from '../helpers/wait.js';

/** A change is live on every node within a second (the maps' promise), looked for every 10 ms. */
const LIVE = { ms: 1000, everyMs: 10 };

const svc = await postgresService();

function engine(): MappingEngine {
  return MappingEngine.open({ path: ':memory:', pollMs: 0 });
}

if (svc.skip !== undefined) {
  test('maps on PostgreSQL', { skip: svc.skip }, () => undefined);
} else {
  const db = await freshDatabase(svc.url);
  after(() => db.drop());

  test('postgres maps: a CLI change is live on every node within a second', async () => {
    const nodes = [engine(), engine()];
    const docs = nodes.map(() => sharedMaps(db.url));
    const followers = nodes.map((e, i) => new PgMapsFollower(e, docs[i]!, 100));
    try {
      for (const f of followers) {
        await f.syncOnce();
        f.start();
      }
      const env = {
        AFTERSMTP_DATA_DIR: tempDir('maps-pg'),
        AFTERSMTP_MAPS: 'postgres',
        AFTERSMTP_POSTGRES_URL: db.url,
      };
      const set = await runCli(['maps', 'set', 'relay_domains', 'Example.NET'], { env });
      assert.equal(set.code, 0, set.stderr);
      const alias = await runCli(
        ['maps', 'set', 'virtual_alias_maps', 'info@example.org', 'did:aftersmtp:example.org:bob'],
        { env },
      );
      assert.equal(alias.code, 0, alias.stderr);
      for (const e of nodes) {
        await until(
          'the alias on a node',
          () => e.get('virtual_alias_maps', 'info@example.org') !== undefined,
          LIVE,
        );
        assert.ok(e.snapshot().isRelayDomain('example.net'));
      }
      const list = await runCli(['maps', 'list', 'relay_domains', '--json'], { env });
      assert.match(list.stdout, /example\.net/);
      const del = await runCli(['maps', 'del', 'relay_domains', 'example.net'], { env });
      assert.equal(del.code, 0, del.stderr);
      for (const e of nodes) {
        await until(
          'the deletion on a node',
          () => !e.snapshot().isRelayDomain('example.net'),
          LIVE,
        );
      }
    } finally {
      for (const f of followers) f.stop();
      for (const d of docs) await d.close();
      for (const e of nodes) e.close();
    }
  });

  test('postgres maps: changes to one map at once are serialised, none is lost', async () => {
    const writers = Array.from({ length: 4 }, () => ({ docs: sharedMaps(db.url), e: engine() }));
    try {
      await Promise.all(
        writers.flatMap((w, i) =>
          Array.from({ length: 5 }, (_, j) =>
            updateSharedMap(w.docs, w.e, 'relay_domains', (e) =>
              e.set('relay_domains', `d${i}-${j}.example`, 'OK'),
            ),
          ),
        ),
      );
      const { rows, version } = await writers[0]!.docs.read('relay_domains');
      assert.equal(rows.filter((r) => r.key.endsWith('.example')).length, 20);
      assert.ok(version >= 20);
    } finally {
      for (const w of writers) {
        await w.docs.close();
        w.e.close();
      }
    }
  });

  test('postgres maps: a change the checks refuse writes nothing', async () => {
    const docs = sharedMaps(db.url);
    const e = engine();
    try {
      await assert.rejects(
        updateSharedMap(docs, e, 'access_map', (x) => x.set('access_map', '192.0.2.0/24', 'BOGUS')),
        /access_map|value|action/i,
      );
      assert.equal((await docs.read('access_map')).rows.length, 0);
    } finally {
      await docs.close();
      e.close();
    }
  });
}
