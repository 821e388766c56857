// MailScript shared on PostgreSQL (AFTERSMTP_MAPS=postgres), against the real server: a script set
// with the CLI is served by two other nodes' stores within a second, with the same version on
// both, and its deletion too; a node's own scripts from before are replaced by the shared ones;
// with the server away a node keeps serving its copy and `script set` fails writing nothing; sets
// made at once by several writers are serialised (none lost, every version distinct).
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { mapsDatabasePath } from '../../src/routing/index.js';
import {
  PgScriptsFollower,
  SharedScripts,
  sharedScriptDocuments,
} from '../../src/script/shared.js';
import { ScriptStore } from '../../src/script/store.js';
import { runCli, tempDir } from '../helpers/cli.js';
import { freshDatabase, postgresService } from '../store/services.js';
import { until } from '../helpers/wait.js';

/** A change is live on every node within a second (the scripts' promise), looked for every 10 ms. */
const LIVE = { ms: 1000, everyMs: 10 };

const svc = await postgresService();

if (svc.skip !== undefined) {
  test('MailScript on PostgreSQL', { skip: svc.skip }, () => undefined);
} else {
  const db = await freshDatabase(svc.url);
  after(() => db.drop());

  test('postgres scripts: a CLI set and del are live on every node within a second', async () => {
    const nodes = [ScriptStore.open({ path: ':memory:' }), ScriptStore.open({ path: ':memory:' })];
    // This node had a script of its own before the scripts were shared: the shared ones win.
    nodes[1]!.set('example.org', "reject(550, 'local')");
    const docs = nodes.map(() => sharedScriptDocuments(db.url));
    const followers = nodes.map((s, i) => new PgScriptsFollower(s, docs[i]!, 100));
    try {
      for (const f of followers) {
        await f.syncOnce();
        f.start();
      }
      assert.equal(nodes[1]!.snapshot().byDomain.size, 0);
      const dir = tempDir('script-pg');
      const env = {
        AFTERSMTP_DATA_DIR: dir,
        AFTERSMTP_MAPS: 'postgres',
        AFTERSMTP_POSTGRES_URL: db.url,
      };
      const set = await runCli(['script', 'set', 'global', '-'], {
        env,
        input: "if (headers.contains('urgent')) defer('later')",
      });
      assert.equal(set.code, 0, set.stderr);
      const version = Number(/version (\d+) stored/.exec(set.stdout)?.[1]);
      assert.ok(version > 0, set.stdout);
      for (const n of nodes) {
        await until('the script on a node', () => n.snapshot().global?.version === version, LIVE);
        assert.match(n.snapshot().global?.source ?? '', /urgent/);
      }
      // Written to the server, not to this data directory's maps database.
      const local = ScriptStore.open({ path: mapsDatabasePath(dir) });
      try {
        assert.equal(local.list().length, 0);
      } finally {
        local.close();
      }
      const list = await runCli(['script', 'list', '--json'], { env });
      assert.deepEqual(
        (JSON.parse(list.stdout) as { scope: string; version: number }[]).map((s) => [
          s.scope,
          s.version,
        ]),
        [['global', version]],
      );
      const tried = await runCli(
        ['script', 'test', 'global', '--from', 'a@example.net', '--to', 'b@example.org'],
        { env, input: '' },
      );
      assert.equal(tried.code, 0, tried.stderr);
      assert.match(tried.stdout, new RegExp(`global v${version}`));

      const del = await runCli(['script', 'del', 'global'], { env });
      assert.equal(del.code, 0, del.stderr);
      for (const n of nodes) {
        await until('the deletion on a node', () => n.snapshot().global === undefined, LIVE);
        assert.ok(n.snapshot().version > version);
      }
      const again = await runCli(['script', 'del', 'global'], { env });
      assert.equal(again.code, 1);
      assert.match(again.stderr, /no script for global/);
    } finally {
      for (const f of followers) f.stop();
      for (const d of docs) await d.close();
      for (const n of nodes) n.close();
    }
  });

  test('postgres scripts: with the server away a node keeps its scripts and set writes nothing', async () => {
    const store = ScriptStore.open({ path: ':memory:' });
    const good = sharedScriptDocuments(db.url);
    // Nothing listens on port 9: every query fails, as with the server down.
    const away = sharedScriptDocuments('postgres://aftersmtp:x@127.0.0.1:9/aftersmtp');
    try {
      const stored = await new SharedScripts(good).set('away.test', 'accept()');
      await new PgScriptsFollower(store, good, 100).syncOnce();
      assert.equal(store.snapshot().byDomain.get('away.test')?.version, stored.version);
      const follower = new PgScriptsFollower(store, away, 100);
      await assert.rejects(follower.syncOnce(), /ECONNREFUSED|connect/);
      assert.ok(follower.lastError !== undefined);
      assert.equal(store.snapshot().byDomain.get('away.test')?.source, 'accept()');
      const set = await runCli(['script', 'set', 'global', '-'], {
        env: {
          AFTERSMTP_DATA_DIR: tempDir('script-pg-away'),
          AFTERSMTP_MAPS: 'postgres',
          AFTERSMTP_POSTGRES_URL: 'postgres://aftersmtp:x@127.0.0.1:9/aftersmtp',
        },
        input: 'accept()',
      });
      assert.equal(set.code, 1, set.stdout);
      assert.equal((await new SharedScripts(good).get('global'))?.source, undefined);
    } finally {
      await good.close();
      await away.close();
      store.close();
    }
  });

  test('postgres scripts: sets at once are serialised, every version distinct', async () => {
    const writers = Array.from({ length: 4 }, () => sharedScriptDocuments(db.url));
    try {
      const stored = await Promise.all(
        writers.flatMap((d, i) =>
          Array.from({ length: 5 }, (_, j) =>
            new SharedScripts(d).set(`d${i}-${j}.example`, `accept() // ${i} ${j}`),
          ),
        ),
      );
      const versions = new Set(stored.map((s) => s.version));
      assert.equal(versions.size, 20);
      const list = await new SharedScripts(writers[0]!).list();
      assert.equal(list.filter((s) => s.scope.endsWith('.example')).length, 20);
      const { version } = await writers[0]!.read('scripts');
      assert.equal(version, Math.max(...versions));
    } finally {
      for (const d of writers) await d.close();
    }
  });
}
