// `aftersmtp maps ...` run as an operator runs it (the real CLI in a child process) on
// <AFTERSMTP_DATA_DIR>/maps.sqlite: list, get, set, del, import (file and stdin), test, --json,
// --help, the settings, and the exit codes (0 ok, 1 failure, 2 usage).
import assert from 'node:assert/strict';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { MappingEngine, mapsDatabasePath } from '../../src/routing/index.js';
import { runCli, tempDir } from '../helpers/cli.js';

const dirs: string[] = [];
function dataDir(): string {
  const dir = tempDir('maps-cli');
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('aftersmtp maps', () => {
  it('sets, gets, lists and deletes entries, in text and JSON', async () => {
    const dir = dataDir();
    const env = { AFTERSMTP_DATA_DIR: dir };
    const set = await runCli(
      ['maps', 'set', 'access_map', '192.0.2.0/24', 'REJECT', '5.7.1', 'no', 'thanks'],
      { env },
    );
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, 'access_map: 192.0.2.0/24\tREJECT 5.7.1 no thanks\n');
    assert.ok(existsSync(join(dir, 'maps.sqlite')));

    const setJson = await runCli(
      [
        'maps',
        'set',
        'canonical_maps',
        'HelpDesk@msgs.global',
        'did:aftersmtp:msgs.global:support-team',
        '--class',
        'recipient',
        '--json',
      ],
      { env },
    );
    assert.equal(setJson.code, 0, setJson.stderr);
    assert.deepEqual(JSON.parse(setJson.stdout), {
      map: 'canonical_maps',
      key: 'helpdesk@msgs.global',
      value: 'did:aftersmtp:msgs.global:support-team',
      class: 'recipient',
      kind: 'exact',
      seq: 1,
      version: 2,
      warnings: [],
    });

    assert.equal((await runCli(['maps', 'set', 'relay_domains', 'Example.NET'], { env })).code, 0);
    const list = await runCli(['maps', 'list', 'relay_domains'], { env });
    assert.equal(list.stdout, 'example.net\tOK\n');
    const listed = JSON.parse(
      (await runCli(['maps', 'list', 'canonical_maps', '--json'], { env })).stdout,
    ) as { key: string }[];
    assert.deepEqual(
      listed.map((e) => e.key),
      ['helpdesk@msgs.global'],
    );
    assert.equal(
      (await runCli(['maps', 'list', 'mx_record_map'], { env })).stdout,
      'mx_record_map is empty\n',
    );

    const get = await runCli(['maps', 'get', 'access_map', '192.0.2.0/24'], { env });
    assert.equal(get.stdout, 'REJECT 5.7.1 no thanks\n');
    const missing = await runCli(['maps', 'get', 'access_map', '198.51.100.0/24'], { env });
    assert.equal(missing.code, 1);
    assert.match(
      missing.stderr,
      /access_map has no entry "198\.51\.100\.0\/24" \(ERR_MAP_NOT_FOUND\)/,
    );

    const del = await runCli(['maps', 'del', 'access_map', '192.0.2.0/24', '--json'], { env });
    assert.deepEqual(JSON.parse(del.stdout), {
      map: 'access_map',
      key: '192.0.2.0/24',
      deleted: true,
    });
    assert.equal((await runCli(['maps', 'del', 'access_map', '192.0.2.0/24'], { env })).code, 1);
  });

  it('refuses bad input with exit 1 and a message naming it; bad calls exit 2', async () => {
    const env = { AFTERSMTP_DATA_DIR: dataDir() };
    const bad = await runCli(['maps', 'set', 'access_map', 'example.org', 'FILTER', 'x'], { env });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /access_map "example\.org": unknown action "FILTER"/);
    const route = await runCli(['maps', 'set', 'mx_record_map', 'example.org', 'smtp:192.0.2.1'], {
      env,
    });
    assert.equal(route.code, 1);
    assert.match(route.stderr, /write smtp:\[192\.0\.2\.1\]/);
    const calls = [
      ['maps', 'list'],
      ['maps', 'list', 'no_such_map'],
      ['maps', 'get', 'access_map'],
      ['maps', 'set', 'access_map', 'example.org'],
      ['maps', 'set', 'access_map', 'example.org', 'OK', '--class', 'everyone'],
      ['maps', 'import', 'access_map', '-', '--format', 'pcre'],
      ['maps', 'import', 'relay_domains', '-', '--format', 'cidr'],
      ['maps', 'test', 'access_map', '192.0.2.1', '--as', 'relay'],
      ['maps', 'test', 'mx_record_map', 'example.org', '--as', 'sender'],
      ['maps', 'del', 'access_map', 'a', 'b'],
      ['maps'],
    ];
    // Independent calls: run them side by side (each CLI start costs about a second).
    const results = await Promise.all(calls.map((args) => runCli(args, { env })));
    results.forEach((r, i) => assert.equal(r.code, 2, `${calls[i]?.join(' ')}: ${r.stderr}`));
  });

  it('imports Postfix tables from a file or standard input, with warnings and errors naming the line', async () => {
    const dir = dataDir();
    const env = { AFTERSMTP_DATA_DIR: dir };
    const file = join(dir, 'client_access.cidr');
    writeFileSync(
      file,
      '# clients\n192.0.2.0/24  REJECT\n192.0.2.7     OK\n2001:db8::/32 DEFER 4.7.1 later\n',
    );
    const r = await runCli(['maps', 'import', 'access_map', file, '--format', 'cidr'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^access_map: imported 3 entries, version 1\n$/);
    assert.match(r.stderr, /^warning: 192\.0\.2\.7 is inside 192\.0\.2\.0\/24/);

    const stdin = await runCli(['maps', 'import', 'virtual_alias_maps', '-', '--json'], {
      env,
      input: 'team@example.org  a@example.org,\n    b@example.org\n',
    });
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.deepEqual(JSON.parse(stdin.stdout), {
      map: 'virtual_alias_maps',
      imported: 1,
      version: 2,
      warnings: [],
    });

    const broken = await runCli(['maps', 'import', 'virtual_alias_maps', '-', '--replace'], {
      env,
      input: 'x@example.org y@example.org\n# fine so far\nz@example.org not-an-address\n',
    });
    assert.equal(broken.code, 1);
    assert.match(
      broken.stderr,
      /line 3: virtual_alias_maps "z@example\.org": expected local@domain, got "not-an-address"/,
    );
    const kept = JSON.parse(
      (await runCli(['maps', 'list', 'virtual_alias_maps', '--json'], { env })).stdout,
    ) as unknown[];
    assert.equal(kept.length, 1, 'a failed import changes nothing');

    const replaced = await runCli(['maps', 'import', 'virtual_alias_maps', '-', '--replace'], {
      env,
      input: 'x@example.org y@example.org\n',
    });
    assert.equal(replaced.code, 0, replaced.stderr);
    assert.match(replaced.stdout, /\(map replaced\)/);

    const missing = await runCli(['maps', 'import', 'access_map', join(dir, 'nope.txt')], { env });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /cannot open .*nope\.txt/);
    const binary = await runCli(['maps', 'import', 'access_map', '-'], {
      env,
      input: Buffer.from([0x61, 0x20, 0xff, 0xfe, 0x0a]),
    });
    assert.equal(binary.code, 2);
    assert.match(binary.stderr, /not UTF-8/);
  });

  it('tests a lookup: the keys tried in order, the entry that matched, the answer', async () => {
    const dir = dataDir();
    const env = { AFTERSMTP_DATA_DIR: dir };
    const engine = MappingEngine.open({ path: mapsDatabasePath(dir), pollMs: 0 });
    engine.set('access_map', 'example.org', 'REJECT');
    engine.set('access_map', 'friend@example.org', 'DUNNO');
    engine.set('mx_record_map', '*', 'smtp:[smarthost.example]:587');
    engine.close();

    const text = await runCli(['maps', 'test', 'access_map', 'friend+x@example.org'], { env });
    assert.equal(text.code, 0, text.stderr);
    assert.equal(
      text.stdout,
      [
        'map      access_map (as recipient), version 3',
        'input    friend+x@example.org',
        'tried    friend+x@example.org, friend@example.org',
        'matched  friend@example.org  DUNNO',
        'result   DUNNO',
        '',
      ].join('\n'),
    );
    const sender = JSON.parse(
      (
        await runCli(['maps', 'test', 'access_map', 'x@example.org', '--as', 'sender', '--json'], {
          env,
        })
      ).stdout,
    ) as {
      as: string;
      tried: string[];
      result: { action: string; key: string };
    };
    assert.equal(sender.as, 'sender');
    assert.deepEqual(sender.tried, ['x@example.org', 'example.org']);
    assert.deepEqual(sender.result, { action: 'REJECT', key: 'example.org' });

    const route = await runCli(['maps', 'test', 'mx_record_map', 'a@b.example'], { env });
    assert.match(route.stdout, /tried {4}a@b\.example, b\.example, \.example, \*\n/);
    assert.match(route.stdout, /result {3}smtp smarthost\.example port 587 \(no MX lookup\)\n/);

    const none = await runCli(['maps', 'test', 'virtual_alias_maps', 'a@b.example'], { env });
    assert.match(none.stdout, /matched {2}\(nothing\)\nresult {3}none/);
  });

  it('follows the settings: entry limit, recipient delimiter, parent domain matching', async () => {
    const dir = dataDir();
    const limited = { AFTERSMTP_DATA_DIR: dir, AFTERSMTP_MAPS_MAX_ENTRIES: '1' };
    assert.equal(
      (await runCli(['maps', 'set', 'access_map', 'a.example', 'OK'], { env: limited })).code,
      0,
    );
    const full = await runCli(['maps', 'set', 'access_map', 'b.example', 'OK'], { env: limited });
    assert.equal(full.code, 1);
    assert.match(full.stderr, /AFTERSMTP_MAPS_MAX_ENTRIES \(1\)/);

    const env = {
      AFTERSMTP_DATA_DIR: dir,
      AFTERSMTP_RECIPIENT_DELIMITER: '-',
      AFTERSMTP_MAPS_PARENT_DOMAIN_MATCHES: 'yes',
    };
    const t = JSON.parse(
      (await runCli(['maps', 'test', 'access_map', 'joe-x@mail.a.example', '--json'], { env }))
        .stdout,
    ) as { tried: string[] };
    assert.deepEqual(t.tried, [
      'joe-x@mail.a.example',
      'joe@mail.a.example',
      'mail.a.example',
      'a.example',
    ]);

    const wrong = await runCli(['maps', 'list', 'access_map'], {
      env: { AFTERSMTP_DATA_DIR: dir, AFTERSMTP_MAPS_PARENT_DOMAIN_MATCHES: 'maybe' },
    });
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /AFTERSMTP_MAPS_PARENT_DOMAIN_MATCHES: expected yes or no/);
  });

  it('every subcommand answers --help with exit 0', async () => {
    const subs = ['list', 'get', 'set', 'del', 'import', 'test'];
    const results = await Promise.all(subs.map((sub) => runCli(['maps', sub, '--help'])));
    results.forEach((r, i) => {
      assert.equal(r.code, 0, subs[i]);
      assert.match(r.stdout, new RegExp(`^usage: aftersmtp maps ${subs[i]} <map>`));
    });
  });
});
