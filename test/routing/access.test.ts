// access_map: the actions as Postfix's access(5) writes them, and every lookup order: client
// networks (IPv4, IPv6, longest prefix), sender and recipient addresses with +ext, parent
// domains on and off, the null sender <>, DUNNO, regexp entries and entry classes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatAccessAction, parseAccessAction } from '../../src/routing/access.js';
import { MapInputError } from '../../src/routing/index.js';
import { engineWith, snapshotWith } from './helpers.js';

describe('access actions', () => {
  it('parses every action and normalizes the keyword', () => {
    assert.deepEqual(parseAccessAction('ok'), { action: 'OK' });
    assert.deepEqual(parseAccessAction('DUNNO'), { action: 'DUNNO' });
    assert.deepEqual(parseAccessAction('reject'), { action: 'REJECT' });
    assert.deepEqual(parseAccessAction('REJECT 5.7.1 go away'), {
      action: 'REJECT',
      text: '5.7.1 go away',
    });
    assert.deepEqual(parseAccessAction('DEFER  try later '), {
      action: 'DEFER',
      text: 'try later',
    });
    assert.deepEqual(parseAccessAction('DISCARD spam trap'), {
      action: 'DISCARD',
      text: 'spam trap',
    });
    assert.deepEqual(parseAccessAction('HOLD'), { action: 'HOLD' });
    assert.deepEqual(parseAccessAction('PREPEND X-Checked: yes'), {
      action: 'PREPEND',
      text: 'X-Checked: yes',
    });
    assert.equal(formatAccessAction(parseAccessAction('reject   no')), 'REJECT no');
  });

  it('maps Postfix numeric forms to REJECT and DEFER with their code', () => {
    assert.deepEqual(parseAccessAction('550 5.7.1 no'), {
      action: 'REJECT',
      code: 550,
      text: '5.7.1 no',
    });
    assert.deepEqual(parseAccessAction('450 4.7.1 later'), {
      action: 'DEFER',
      code: 450,
      text: '4.7.1 later',
    });
    assert.equal(formatAccessAction(parseAccessAction('554  5.7.1  x')), '554 5.7.1  x');
  });

  it('refuses what Postfix would misread or what cannot go into a reply', () => {
    for (const [value, why] of [
      ['', /empty/],
      ['550', /all-numeric value .* means OK/],
      ['250 fine', /not 4NN or 5NN/],
      ['FILTER smtp:x', /unknown action "FILTER"/],
      ['OK thanks', /OK takes no text/],
      ['PREPEND no header', /header line/],
      ['REJECT 4.7.1 wrong class', /does not go with REJECT/],
      ['450 5.7.1 wrong class', /does not go with 450/],
      ['REJECT caf\u00e9', /printable ASCII/],
      [`REJECT ${'x'.repeat(401)}`, /longer than 400/],
    ] as const) {
      assert.throws(
        () => parseAccessAction(value),
        (err: unknown) => err instanceof MapInputError && why.test(err.message),
        value,
      );
    }
  });
});

describe('client lookups', () => {
  const s = snapshotWith([
    ['access_map', '192.0.2.0/24', 'REJECT network'],
    ['access_map', '192.0.2.7', 'OK'],
    ['access_map', '192.0.2.128/25', 'DUNNO'],
    ['access_map', '198.51', 'DEFER partial'],
    ['access_map', '2001:db8::/32', '550 5.7.1 v6 network'],
    ['access_map', '2001:db8:1::/48', 'OK'],
    ['access_map', '[2001:DB8:2::]/48', 'HOLD'],
  ]);

  it('finds the longest prefix, whatever the order of the entries', () => {
    assert.equal(s.accessClient('192.0.2.9')?.key, '192.0.2.0/24');
    assert.equal(s.accessClient('192.0.2.7')?.action, 'OK');
    assert.equal(s.accessClient('192.0.2.200')?.action, 'DUNNO');
    assert.equal(s.accessClient('10.0.0.1'), undefined);
  });

  it('treats a partial IPv4 key as Postfix does (198.51 = 198.51.0.0/16)', () => {
    assert.deepEqual(s.accessClient('198.51.100.1'), {
      action: 'DEFER',
      text: 'partial',
      key: '198.51.0.0/16',
    });
  });

  it('matches IPv6 networks, in any textual form of the address', () => {
    assert.deepEqual(s.accessClient('2001:db8:ffff::1'), {
      action: 'REJECT',
      code: 550,
      text: '5.7.1 v6 network',
      key: '2001:db8::/32',
    });
    assert.equal(s.accessClient('2001:0DB8:0001:0000::0005')?.action, 'OK');
    assert.equal(s.accessClient('[2001:db8:2::9]')?.action, 'HOLD');
    assert.equal(s.accessClient('fe80::1%eth0'), undefined);
  });

  it('matches IPv4-mapped IPv6 client addresses against IPv4 keys', () => {
    assert.equal(s.accessClient('::ffff:192.0.2.7')?.action, 'OK');
  });

  it('does not answer client checks from address keys, nor address checks from networks', () => {
    const t = snapshotWith([
      ['access_map', 'example.org', 'REJECT'],
      ['access_map', '192.0.2.1', 'REJECT'],
    ]);
    assert.equal(t.accessClient('example.org'), undefined);
    assert.equal(t.accessSender('192.0.2.1'), undefined);
    assert.equal(t.accessClient('not an ip'), undefined);
  });

  it('stores networks in one canonical form, and refuses host bits', () => {
    const engine = engineWith([
      ['access_map', '2001:0db8:0000::/32', 'OK'],
      ['access_map', '::ffff:192.0.2.0/120', 'OK'],
      ['access_map', '203.0.113.5/32', 'OK'],
    ]);
    assert.deepEqual(
      engine.list('access_map').map((e) => e.key),
      ['2001:db8::/32', '192.0.2.0/24', '203.0.113.5'],
    );
    assert.throws(
      () => engine.set('access_map', '192.0.2.1/24', 'OK'),
      /host bits .* the network is 192\.0\.2\.0\/24/,
    );
    assert.throws(() => engine.set('access_map', '192.0.2.0/33', 'OK'), /prefix length/);
    assert.throws(
      () => engine.set('access_map', '192.0.2.0/24', 'OK', { class: 'sender' }),
      /class is both/,
    );
    engine.close();
  });
});

describe('sender and recipient lookups', () => {
  const rows = [
    ['access_map', 'example.org', 'REJECT domain'],
    ['access_map', 'good@example.org', 'DUNNO'],
    ['access_map', 'joe+list@example.org', 'OK'],
    ['access_map', '.example.net', 'DEFER subdomain'],
    ['access_map', 'example.com', 'DISCARD parent style'],
    ['access_map', 'abuse@', 'OK'],
    ['access_map', '<>', 'REJECT no bounces here'],
  ] as const;

  it('the full address with +ext first, then user@domain', () => {
    const s = snapshotWith(rows);
    assert.equal(s.accessSender('joe+list@example.org')?.action, 'OK');
    assert.equal(s.accessSender('joe+other@example.org')?.key, 'example.org');
  });

  it('DUNNO stops the search: less specific keys are not tried (access(5))', () => {
    const s = snapshotWith(rows);
    assert.deepEqual(s.accessRecipient('good@example.org'), {
      action: 'DUNNO',
      key: 'good@example.org',
    });
    assert.deepEqual(s.accessRecipient('good+x@example.org'), {
      action: 'DUNNO',
      key: 'good@example.org',
    });
    assert.equal(s.accessRecipient('bad@example.org')?.action, 'REJECT');
  });

  it('.domain keys match subdomains only, with parent matching off (the default)', () => {
    const s = snapshotWith(rows);
    assert.equal(s.accessSender('a@mail.example.net')?.key, '.example.net');
    assert.equal(s.accessSender('a@example.net'), undefined);
    assert.equal(
      s.accessSender('a@mail.example.com'),
      undefined,
      'a bare key does not cover subdomains',
    );
  });

  it('with parent matching on, a bare domain key covers subdomains and .domain keys are not tried', () => {
    const s = snapshotWith(rows, { parentDomainMatches: true });
    assert.equal(s.accessSender('a@mail.example.com')?.key, 'example.com');
    assert.equal(s.accessSender('a@deep.mail.example.org')?.key, 'example.org');
    assert.equal(s.accessSender('a@mail.example.net'), undefined);
  });

  it('user@ keys match any domain, after the domain keys', () => {
    const s = snapshotWith(rows);
    assert.equal(s.accessRecipient('abuse@anywhere.test')?.key, 'abuse@');
    assert.equal(s.accessRecipient('abuse@example.org')?.key, 'example.org');
    assert.equal(s.accessRecipient('abuse+x@anywhere.test')?.key, 'abuse@');
  });

  it('the null sender is the key <>', () => {
    const s = snapshotWith(rows);
    assert.deepEqual(s.accessSender(''), { action: 'REJECT', text: 'no bounces here', key: '<>' });
    assert.equal(s.accessSender('<>')?.key, '<>');
  });

  it('the recipient delimiter is configurable, and can be off', () => {
    const minus = snapshotWith([['access_map', 'joe@example.org', 'OK']], {
      recipientDelimiter: '-',
    });
    assert.equal(minus.accessSender('joe-x@example.org')?.action, 'OK');
    assert.equal(minus.accessSender('joe+x@example.org'), undefined);
    const none = snapshotWith([['access_map', 'joe@example.org', 'OK']], {
      recipientDelimiter: '',
    });
    assert.equal(none.accessSender('joe+x@example.org'), undefined);
  });

  it('keys are case-insensitive and IDNA-normalized on both sides', () => {
    const s = snapshotWith([['access_map', 'Bücher.Example', 'REJECT']]);
    assert.equal(s.accessSender('x@BÜCHER.example')?.key, 'xn--bcher-kva.example');
  });

  it('an entry class limits an entry to sender or recipient checks', () => {
    const s = snapshotWith([
      ['access_map', 'spoofed@example.org', 'REJECT not from outside', 'sender'],
      ['access_map', 'example.org', 'OK', 'recipient'],
    ]);
    assert.equal(s.accessSender('spoofed@example.org')?.action, 'REJECT');
    assert.equal(s.accessRecipient('spoofed@example.org')?.action, 'OK');
    assert.equal(s.accessSender('other@example.org'), undefined);
  });

  it('refuses keys that are not addresses, domains or networks', () => {
    const engine = engineWith([]);
    assert.throws(
      () => engine.set('access_map', '@example.org', 'OK'),
      /write the domain without @/,
    );
    assert.throws(() => engine.set('access_map', 'a b', 'OK'), /whitespace/);
    assert.throws(() => engine.set('access_map', 'exa_mple.org', 'OK'), /invalid domain/);
    engine.close();
  });
});

describe('regexp entries', () => {
  it('apply to the whole address after the exact keys, with $n in the text', () => {
    const s = snapshotWith([
      ['access_map', '/^(.*)@spam\\.example$/', 'REJECT $1 is not welcome'],
      ['access_map', 'boss@spam.example', 'OK'],
    ]);
    assert.equal(s.accessSender('boss@spam.example')?.action, 'OK');
    assert.deepEqual(s.accessSender('Joe@SPAM.example'), {
      action: 'REJECT',
      text: 'Joe is not welcome',
      key: '/^(.*)@spam\\.example$/',
    });
  });

  it('are case-insensitive unless the i flag toggles it (regexp_table(5))', () => {
    const s = snapshotWith([['access_map', '/^CAPS@/i', 'REJECT']]);
    assert.equal(s.accessSender('CAPS@x.example')?.action, 'REJECT');
    assert.equal(s.accessSender('caps@x.example'), undefined);
  });

  it('negated patterns match when the expression does not', () => {
    const s = snapshotWith([['access_map', '!/@example\\.org$/', 'REJECT outsiders']]);
    assert.equal(s.accessSender('a@example.org'), undefined);
    assert.equal(s.accessSender('a@example.net')?.action, 'REJECT');
  });

  it('a DUNNO from an exact key ends the search before the patterns', () => {
    const s = snapshotWith([
      ['access_map', 'friend@example.org', 'DUNNO'],
      ['access_map', '/example\\.org$/', 'REJECT'],
    ]);
    assert.equal(s.accessSender('friend@example.org')?.action, 'DUNNO');
    assert.equal(s.accessSender('other@example.org')?.action, 'REJECT');
  });

  it('client checks see patterns of class both, applied to the canonical IP text', () => {
    const s = snapshotWith([['access_map', '/^203\\.0\\.113\\./', 'REJECT']]);
    assert.equal(s.accessClient('::ffff:203.0.113.9')?.action, 'REJECT');
  });

  it('substituted text that cannot go into a reply is made safe, never a way around the rule', () => {
    const s = snapshotWith([['access_map', '/^(.*)@x\\.example$/', 'REJECT $1 blocked']]);
    assert.deepEqual(s.accessSender('caf\u00e9@x.example'), {
      action: 'REJECT',
      text: 'caf? blocked',
      key: '/^(.*)@x\\.example$/',
    });
  });

  it('refuses an action taken from a substitution, bad references and bad patterns', () => {
    const engine = engineWith([]);
    assert.throws(() => engine.set('access_map', '/^(.*)$/', '$1'), /action itself/);
    assert.throws(
      () => engine.set('access_map', '/^(.*)$/', 'REJECT $2'),
      /uses \$2 but .* has 1 group/,
    );
    assert.throws(() => engine.set('access_map', '/(/', 'REJECT'), /does not compile/);
    assert.throws(() => engine.set('access_map', '/[[:alpha:]]/', 'REJECT'), /POSIX class/);
    assert.throws(() => engine.set('access_map', '/a/x', 'REJECT'), /x flag/);
    assert.throws(() => engine.set('access_map', '/a/q', 'REJECT'), /unknown flag/);
    assert.throws(() => engine.set('access_map', '!/(a)/', 'REJECT $1'), /negated/);
    assert.throws(
      () => engine.set('access_map', `/${'a'.repeat(1100)}/`, 'REJECT'),
      /longer than 1024/,
    );
    engine.close();
  });
});
