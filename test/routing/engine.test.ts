// The MappingEngine's storage and reload: durable SQLite, bounds, all-or-nothing imports, and
// the contract with the pipeline: a change made through another engine on the same file (as the
// CLI makes it) is live within a second, while a reader that holds an older snapshot keeps
// seeing exactly that version.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import {
  LIMITS,
  MapInputError,
  MapLimitError,
  MapStoreError,
  MappingEngine,
  mapsDatabasePath,
} from '../../src/routing/index.js';
import type { Snapshot } from '../../src/routing/snapshot.js';
import { tempDir } from '../helpers/cli.js';

const dirs: string[] = [];
function dbPath(): string {
  const dir = tempDir('maps');
  dirs.push(dir);
  return mapsDatabasePath(dir);
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function waitForReload(engine: MappingEngine, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      stop();
      reject(new Error(`no reload within ${timeoutMs} ms`));
    }, timeoutMs);
    const stop = engine.onReload((version) => {
      clearTimeout(timer);
      stop();
      resolve(version);
    });
  });
}

describe('MappingEngine storage', () => {
  it('keeps entries in <data dir>/maps.sqlite, WAL, across reopening', () => {
    const path = dbPath();
    assert.match(path, /maps\.sqlite$/);
    const a = MappingEngine.open({ path, pollMs: 0 });
    a.set('relay_domains', 'example.net', '');
    a.set('access_map', '192.0.2.0/24', 'REJECT');
    a.close();
    const raw = new Database(path, { readonly: true });
    assert.equal(raw.pragma('journal_mode', { simple: true }), 'wal');
    raw.close();
    const b = MappingEngine.open({ path, pollMs: 0 });
    assert.equal(b.snapshot().isRelayDomain('Example.NET'), true);
    assert.equal(b.snapshot().accessClient('192.0.2.9')?.action, 'REJECT');
    assert.equal(b.snapshot().version, 2);
    b.close();
  });

  it('gets and deletes by any form of a key; a replaced entry keeps its place', () => {
    const e = MappingEngine.open({ path: ':memory:', pollMs: 0 });
    e.set('access_map', '2001:DB8::/32', 'REJECT');
    e.set('access_map', 'Joe@Example.ORG', 'OK');
    e.set('access_map', '2001:db8:0::/32', 'DEFER');
    assert.deepEqual(
      e.list('access_map').map((x) => [x.key, x.value, x.seq]),
      [
        ['2001:db8::/32', 'DEFER', 1],
        ['joe@example.org', 'OK', 2],
      ],
    );
    assert.equal(e.get('access_map', 'JOE@example.org')?.value, 'OK');
    const before = e.snapshot().version;
    assert.equal(e.del('access_map', 'nobody@example.org'), false);
    assert.equal(e.snapshot().version, before, 'nothing deleted, no new version');
    assert.equal(e.del('access_map', 'joe@EXAMPLE.org'), true);
    assert.equal(e.get('access_map', 'joe@example.org'), undefined);
    assert.equal(e.snapshot().version, before + 1);
    e.close();
  });

  it('bounds the entries of a map (AFTERSMTP_MAPS_MAX_ENTRIES), keys and values', () => {
    const e = MappingEngine.open({ path: ':memory:', pollMs: 0, maxEntriesPerMap: 3 });
    for (const d of ['a.example', 'b.example', 'c.example']) e.set('relay_domains', d, '');
    assert.throws(() => e.set('relay_domains', 'd.example', ''), MapLimitError);
    e.set('relay_domains', 'c.example', 'OK'); // replacing is not adding
    e.set('access_map', 'x.example', 'OK'); // the limit is per map
    assert.throws(
      () =>
        e.import('access_map', 'a.example OK\nb.example OK\nc.example OK\n', { format: 'hash' }),
      /would have 4 entries/,
    );
    assert.equal(e.list('access_map').length, 1, 'a refused import writes nothing');
    assert.throws(
      () => e.set('access_map', `${'a'.repeat(64)}@${'b'.repeat(300)}.example`, 'OK'),
      /longer than 320/,
    );
    assert.throws(
      () =>
        e.set(
          'virtual_alias_maps',
          'a@example.org',
          `b@example.org,${'c'.repeat(LIMITS.maxValueLength)}`,
        ),
      /longer than 65536/,
    );
    e.close();
  });

  it('imports all or nothing: a bad line leaves the map as it was', () => {
    const e = MappingEngine.open({ path: ':memory:', pollMs: 0 });
    e.import('access_map', 'a.example OK\nb.example REJECT\n', { format: 'hash' });
    assert.throws(
      () =>
        e.import('access_map', 'c.example OK\nd.example BOGUS\n', {
          format: 'hash',
          replace: true,
        }),
      (err: unknown) => err instanceof MapInputError && /^line 2: /.test(err.message),
    );
    assert.deepEqual(
      e.list('access_map').map((x) => x.key),
      ['a.example', 'b.example'],
    );
    e.close();
  });

  it('--replace makes the map exactly the input; without it entries are added or updated', () => {
    const e = MappingEngine.open({ path: ':memory:', pollMs: 0 });
    e.import('access_map', 'a.example OK\nb.example REJECT\n', { format: 'hash' });
    e.import('access_map', 'b.example DEFER\nc.example OK\n', { format: 'hash' });
    assert.deepEqual(
      e.list('access_map').map((x) => `${x.key} ${x.value}`),
      ['a.example OK', 'b.example DEFER', 'c.example OK'],
    );
    const r = e.import('access_map', 'z.example OK\n', { format: 'hash', replace: true });
    assert.equal(r.imported, 1);
    assert.deepEqual(
      e.list('access_map').map((x) => x.key),
      ['z.example'],
    );
    assert.throws(
      () => e.import('relay_domains', '10.0.0.0/8 x', { format: 'cidr' }),
      /cannot be imported as cidr/,
    );
    e.close();
  });

  it('refuses a database of another schema version', () => {
    const path = dbPath();
    MappingEngine.open({ path, pollMs: 0 }).close();
    const raw = new Database(path);
    raw.prepare("UPDATE meta SET value = 99 WHERE key = 'schema'").run();
    raw.close();
    assert.throws(
      () => MappingEngine.open({ path, pollMs: 0 }),
      (err: unknown) => err instanceof MapStoreError && /schema 99/.test(err.message),
    );
  });

  it('a snapshot is frozen and explains itself', () => {
    const e = MappingEngine.open({ path: ':memory:', pollMs: 0 });
    e.set('relay_domains', '.example.net', '');
    assert.ok(Object.isFrozen(e.snapshot()));
    const t = e.test('relay_domains', 'mail.example.net');
    assert.deepEqual(t.tried, ['mail.example.net', '.example.net']);
    assert.equal(t.matched?.key, '.example.net');
    assert.equal(t.result, true);
    assert.equal(e.test('relay_domains', 'example.net').result, false);
    e.close();
  });
});

describe('MappingEngine reload across processes', () => {
  it('a change through a second engine on the same file is live within a second; an old snapshot does not change', async () => {
    const path = dbPath();
    const server = MappingEngine.open({ path }); // polls every 250 ms, like `serve`
    const cli = MappingEngine.open({ path, pollMs: 0 }); // like `aftersmtp maps set`
    try {
      const held = server.snapshot(); // a message in flight holds this one
      assert.equal(held.accessClient('192.0.2.1'), undefined);
      const reloaded = waitForReload(server, 1000);
      const started = Date.now();
      cli.set('access_map', '192.0.2.0/24', 'REJECT 5.7.1 blocked');
      cli.set('virtual_alias_maps', 'team@example.org', 'a@example.org, b@example.org');
      const version = await reloaded;
      const latency = Date.now() - started;
      assert.ok(latency < 1000, `live after ${latency} ms`);
      // The poll may have seen the first write alone; the second is live within the next poll.
      if (version < 2) await waitForReload(server, 1000);
      const now = server.snapshot();
      assert.equal(now.version, 2);
      assert.equal(now.accessClient('192.0.2.1')?.action, 'REJECT');
      assert.deepEqual(now.expandAlias('team@example.org'), {
        kind: 'expanded',
        targets: ['a@example.org', 'b@example.org'],
      });
      // The held snapshot still answers as version 0 did.
      assert.equal(held.version, 0);
      assert.equal(held.accessClient('192.0.2.1'), undefined);
      assert.deepEqual(held.expandAlias('team@example.org'), { kind: 'none' });
    } finally {
      cli.close();
      server.close();
    }
  });

  it('a reload compiles again only the maps that changed', () => {
    const path = dbPath();
    const server = MappingEngine.open({ path, pollMs: 0 });
    const cli = MappingEngine.open({ path, pollMs: 0, loadSnapshot: false });
    try {
      cli.set('access_map', '192.0.2.0/24', 'REJECT');
      server.refresh();
      const before = server.snapshot() as Snapshot;
      cli.set('relay_domains', 'example.net', '');
      assert.equal(server.refresh(), true);
      const after = server.snapshot() as Snapshot;
      assert.equal(after.version, 2);
      assert.deepEqual(after.mapVersions, { ...before.mapVersions, relay_domains: 1 });
      assert.equal(after.table('access_map'), before.table('access_map'), 'shared, not rebuilt');
      assert.notEqual(after.table('relay_domains'), before.table('relay_domains'));
      assert.equal(after.isRelayDomain('example.net'), true);
      assert.equal(before.isRelayDomain('example.net'), false);
    } finally {
      cli.close();
      server.close();
    }
  });

  it('a reader never sees half of a replaced map while another engine rewrites it', async () => {
    const path = dbPath();
    const server = MappingEngine.open({ path, pollMs: 5 });
    const cli = MappingEngine.open({ path, pollMs: 0 });
    const table = (tag: string): string =>
      Array.from({ length: 200 }, (_, i) => `${tag}${i}@example.org REJECT ${tag}`).join('\n');
    const seen = new Set<string>();
    const mixes: number[] = [];
    const check = (): void => {
      const s = server.snapshot();
      const a = s.accessRecipient('a0@example.org') !== undefined;
      const b = s.accessRecipient('b0@example.org') !== undefined;
      // Version 0 is empty; every later version is all of one table and none of the other.
      const whole =
        s.version === 0 ||
        (a && !b && s.accessRecipient('a199@example.org')?.text === 'a') ||
        (b && !a && s.accessRecipient('b199@example.org')?.text === 'b');
      if (!whole) mixes.push(s.version); // a listener's throw would go to onError, not here
      seen.add(a ? 'a' : b ? 'b' : 'empty');
    };
    const stop = server.onReload(check);
    try {
      for (let round = 0; round < 20; round++) {
        cli.import('access_map', table(round % 2 === 0 ? 'a' : 'b'), {
          format: 'hash',
          replace: true,
        });
        check();
        await new Promise((r) => setTimeout(r, 8));
      }
      await waitForReload(server, 1000).catch(() => undefined);
      check();
      assert.deepEqual(mixes, [], 'versions that mixed two tables');
      assert.ok(seen.has('a') && seen.has('b'), 'the reader saw both tables');
    } finally {
      stop();
      cli.close();
      server.close();
    }
  });

  it('a stored entry that does not load keeps the old snapshot serving and is reported once', async () => {
    const path = dbPath();
    const server = MappingEngine.open({ path, pollMs: 20 });
    const cli = MappingEngine.open({ path, pollMs: 0 });
    try {
      cli.set('access_map', 'example.org', 'REJECT');
      await waitForReload(server, 1000);
      const errors: Error[] = [];
      server.onError((err) => errors.push(err));
      // A hand edit that bypasses the checks: a value that is no action.
      const raw = new Database(path);
      raw.prepare("UPDATE entries SET value = 'FROBNICATE' WHERE key = 'example.org'").run();
      raw
        .prepare("UPDATE meta SET value = value + 1 WHERE key IN ('version', 'version:access_map')")
        .run();
      raw.close();
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(errors.length, 1, 'reported once, not at every poll');
      assert.ok(errors[0] instanceof MapStoreError);
      assert.match(
        errors[0].message,
        /access_map: stored entry "example\.org" does not load: .*FROBNICATE/,
      );
      assert.equal(server.snapshot().version, 1);
      assert.equal(server.snapshot().accessSender('a@example.org')?.action, 'REJECT');
      // Fixing it through the engine is picked up as usual.
      cli.set('access_map', 'example.org', 'DEFER');
      await waitForReload(server, 1000);
      assert.equal(server.snapshot().accessSender('a@example.org')?.action, 'DEFER');
      // Opening a database in the bad state fails with the same message.
      const raw2 = new Database(path);
      raw2.prepare("UPDATE entries SET value = 'FROBNICATE' WHERE key = 'example.org'").run();
      raw2.close();
      assert.throws(
        () => MappingEngine.open({ path, pollMs: 0 }),
        /stored entry "example\.org" does not load/,
      );
      // The CLI opens without loading, so the operator can still see and repair the map.
      const repair = MappingEngine.open({ path, pollMs: 0, loadSnapshot: false });
      assert.equal(repair.get('access_map', 'example.org')?.value, 'FROBNICATE');
      assert.throws(() => repair.test('access_map', 'a@example.org'), MapStoreError);
      repair.set('access_map', 'example.org', 'OK');
      assert.equal(repair.test('access_map', 'a@example.org').matched?.value, 'OK');
      repair.close();
    } finally {
      cli.close();
      server.close();
    }
  });
});
