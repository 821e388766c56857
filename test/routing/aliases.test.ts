// virtual_alias_maps: one to many, recursive expansion with Postfix's rules and limits:
// self-mapping ends recursion for that address, at most 1000 results and nesting 100, loops
// end in a limit (4.6.0), duplicates removed in order.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LIMITS } from '../../src/routing/index.js';
import { engineWith, snapshotWith, type Row } from './helpers.js';

const alias = (key: string, value: string): Row => ['virtual_alias_maps', key, value];

describe('virtual_alias_maps expansion', () => {
  it('no entry: none (deliver to the address itself)', () => {
    assert.deepEqual(snapshotWith([]).expandAlias('a@example.org'), { kind: 'none' });
  });

  it('expands recursively, comma or whitespace separated, DIDs and addresses, in order', () => {
    const s = snapshotWith([
      alias('team@example.org', 'ann@example.org, bob@example.org did:aftersmtp:example.org:carol'),
      alias('bob@example.org', 'bob@home.example\tbob@work.example'),
    ]);
    assert.deepEqual(s.expandAlias('team@example.org'), {
      kind: 'expanded',
      targets: [
        'ann@example.org',
        'bob@home.example',
        'did:aftersmtp:example.org:carol',
        'bob@work.example',
      ],
    });
  });

  it('an address that maps to itself among others keeps a copy and is not expanded again', () => {
    const s = snapshotWith([
      alias('ann@example.org', 'ann@example.org, ann@archive.example'),
      alias('list@example.org', 'ann@example.org, bob@example.org'),
      alias('bob@example.org', 'ann@example.org'),
    ]);
    assert.deepEqual(s.expandAlias('ann@example.org'), {
      kind: 'expanded',
      targets: ['ann@example.org', 'ann@archive.example'],
    });
    assert.deepEqual(s.expandAlias('list@example.org'), {
      kind: 'expanded',
      targets: ['ann@example.org', 'ann@archive.example'],
    });
  });

  it('self-mapping compares without regard to case', () => {
    const s = snapshotWith([alias('Ann@Example.org', 'ANN@example.org, copy@example.org')]);
    assert.deepEqual(s.expandAlias('ann@example.org'), {
      kind: 'expanded',
      targets: ['ANN@example.org', 'copy@example.org'],
    });
  });

  it('removes duplicates and keeps the first occurrence', () => {
    const s = snapshotWith([
      alias('all@example.org', 'a@example.org, b@example.org, a@example.org, sub@example.org'),
      alias('sub@example.org', 'b@example.org, c@example.org'),
    ]);
    assert.deepEqual(s.expandAlias('all@example.org'), {
      kind: 'expanded',
      targets: ['a@example.org', 'b@example.org', 'c@example.org'],
    });
  });

  it('a loop ends in the nesting limit, not in an endless expansion', () => {
    const s = snapshotWith([
      alias('a@example.org', 'b@example.org'),
      alias('b@example.org', 'a@example.org'),
    ]);
    const r = s.expandAlias('a@example.org');
    assert.equal(r.kind, 'limit');
    assert.match((r as { reason: string }).reason, /nesting .* exceeds 100/);
  });

  it('a chain of 100 rewrites is fine, 101 is over the nesting limit', () => {
    const chain = (n: number): Row[] =>
      Array.from({ length: n }, (_, i) => alias(`c${i}@example.org`, `c${i + 1}@example.org`));
    assert.equal(LIMITS.maxAliasDepth, 100);
    assert.deepEqual(snapshotWith(chain(100)).expandAlias('c0@example.org'), {
      kind: 'expanded',
      targets: ['c100@example.org'],
    });
    assert.equal(snapshotWith(chain(101)).expandAlias('c0@example.org').kind, 'limit');
  });

  it('1000 addresses are fine, 1001 are over the expansion limit', () => {
    const targets = (n: number): string =>
      Array.from({ length: n }, (_, i) => `u${i}@example.org`).join(', ');
    const ok = snapshotWith([alias('big@example.org', targets(1000))]).expandAlias(
      'big@example.org',
    );
    assert.equal(ok.kind, 'expanded');
    assert.equal((ok as { targets: readonly string[] }).targets.length, 1000);
    const over = snapshotWith([alias('big@example.org', targets(1001))]).expandAlias(
      'big@example.org',
    );
    assert.equal(over.kind, 'limit');
    assert.match((over as { reason: string }).reason, /exceeds 1000 addresses/);
  });

  it('the expansion limit counts across levels (a fan-out of fan-outs)', () => {
    const rows: Row[] = [
      alias('top@example.org', Array.from({ length: 40 }, (_, i) => `l${i}@example.org`).join(' ')),
    ];
    for (let i = 0; i < 40; i++) {
      rows.push(
        alias(
          `l${i}@example.org`,
          Array.from({ length: 30 }, (_, j) => `m${i}-${j}@example.org`).join(' '),
        ),
      );
    }
    const r = snapshotWith(rows).expandAlias('top@example.org');
    assert.equal(r.kind, 'limit');
  });

  it('keys: user+ext@domain, user@domain (the extension carried over), @domain catch-all', () => {
    const s = snapshotWith([
      alias('joe@example.org', 'joseph@example.net, did:aftersmtp:example.org:joe'),
      alias('joe+exact@example.org', 'exact@example.net'),
      alias('@example.org', 'catchall@example.net'),
      alias('@forward.example', '@example.net'),
    ]);
    assert.deepEqual(s.expandAlias('joe+x@example.org'), {
      kind: 'expanded',
      targets: ['joseph+x@example.net', 'did:aftersmtp:example.org:joe'],
    });
    assert.deepEqual(s.expandAlias('joe+exact@example.org'), {
      kind: 'expanded',
      targets: ['exact@example.net'],
    });
    assert.deepEqual(s.expandAlias('nobody@example.org'), {
      kind: 'expanded',
      targets: ['catchall@example.net'],
    });
    assert.deepEqual(s.expandAlias('Ann@forward.example'), {
      kind: 'expanded',
      targets: ['Ann@example.net'],
    });
  });

  it('DID keys expand too (exactly, case kept)', () => {
    const s = snapshotWith([
      alias('did:aftersmtp:example.org:Team', 'did:aftersmtp:example.org:a, b@example.net'),
    ]);
    assert.deepEqual(s.expandAlias('did:aftersmtp:example.org:Team'), {
      kind: 'expanded',
      targets: ['did:aftersmtp:example.org:a', 'b@example.net'],
    });
    assert.deepEqual(s.expandAlias('did:aftersmtp:example.org:team'), { kind: 'none' });
  });

  it('regexp entries expand into their substituted targets', () => {
    const s = snapshotWith([
      alias('/^(.+)-all@example\\.org$/', '$1-a@example.org, $1-b@example.org'),
    ]);
    assert.deepEqual(s.expandAlias('ops-all@example.org'), {
      kind: 'expanded',
      targets: ['ops-a@example.org', 'ops-b@example.org'],
    });
  });

  it('stores targets in one form and refuses bad ones, naming them', () => {
    const engine = engineWith([]);
    engine.set(
      'virtual_alias_maps',
      'Team@Example.ORG',
      'A@Example.ORG,b@example.org   c@BÜCHER.example',
    );
    assert.deepEqual(
      engine.get('virtual_alias_maps', 'team@example.org')?.value,
      'A@example.org, b@example.org, c@xn--bcher-kva.example',
    );
    assert.throws(
      () => engine.set('virtual_alias_maps', 'x@example.org', 'a@example.org, local'),
      /"local"/,
    );
    assert.throws(
      () => engine.set('virtual_alias_maps', 'x@example.org', ' , '),
      /no value|at least one target/,
    );
    assert.throws(
      () => engine.set('virtual_alias_maps', 'x@example.org', 'a@example.org', { class: 'sender' }),
      /no sender\/recipient class/,
    );
    engine.close();
  });
});
