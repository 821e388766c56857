// DNS discovery: the strict `_aftersmtp._tcp` TXT parser (examples and a fast-check property:
// arbitrary input is parsed or refused with an ERR_DISCOVERY_* InputError, nothing else), and,
// against a real DNS server (unbound on 127.0.0.1), the log key pinned from DNS on first use by
// `aftersmtp resolve` and a later different key in DNS refused loudly.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import {
  DiscoveryResolver,
  parseDiscoveryRecord,
  parseDnsServers,
  selectDiscoveryRecord,
} from '../../src/amp/discovery.js';
import { InputError } from '../../src/errors.js';
import { runCli, tempDir } from '../helpers/cli.js';
import {
  DOMAIN,
  startGateway,
  startUnbound,
  unboundMissing,
  type DnsServer,
  type Gateway,
} from './helpers.js';

const KEY = 'example.org/aftersmtp-ledger/v1+67538a6a+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs';

test('parses the record of DESIGN.md §4', () => {
  const r = parseDiscoveryRecord(`v=aftersmtp1; p=relay.example.org:4434; k=${KEY}`);
  assert.deepEqual(r, { relays: [{ host: 'relay.example.org', port: 4434 }], logKey: KEY });
  assert.deepEqual(parseDiscoveryRecord('v=aftersmtp1;p=[2001:db8::1]:4434;x=future;').relays, [
    { host: '2001:db8::1', port: 4434 },
  ]);
  // Several nodes of one gateway, in the published order.
  assert.deepEqual(
    parseDiscoveryRecord('v=aftersmtp1; p=n1.example.org:4434,n2.example.org:4434,[::1]:9').relays,
    [
      { host: 'n1.example.org', port: 4434 },
      { host: 'n2.example.org', port: 4434 },
      { host: '::1', port: 9 },
    ],
  );
  assert.equal(parseDiscoveryRecord('v=aftersmtp1; p=192.0.2.1:4434').logKey, undefined);
});

test('refuses malformed records with ERR_DISCOVERY_SYNTAX', () => {
  for (const bad of [
    '',
    'p=a.example:1; v=aftersmtp1',
    'v=aftersmtp2; p=a.example:1',
    'v=aftersmtp1',
    'v=aftersmtp1; p=a.example',
    'v=aftersmtp1; p=a.example:0',
    'v=aftersmtp1; p=a.example:1,a.example:1',
    'v=aftersmtp1; p=a.example:1,',
    `v=aftersmtp1; p=${Array.from({ length: 9 }, (_, i) => `n${i}.example:1`).join(',')}`,
    'v=aftersmtp1; p=a.example:70000',
    'v=aftersmtp1; p=-bad-.example:1',
    'v=aftersmtp1; p=[::zz]:1',
    'v=aftersmtp1; p=a.example:1; p=b.example:1',
    'v=aftersmtp1; p=a.example:1; k=not-a-key',
    'v=aftersmtp1; p=a.example:1; k=a b',
    'v=aftersmtp1; p=a.example:1;; ',
    `v=aftersmtp1; p=a.example:1; k=${KEY}\u00e9`,
    `v=aftersmtp1; p=a.example:1; x=${'a'.repeat(1100)}`,
  ]) {
    assert.throws(() => parseDiscoveryRecord(bad), { code: 'ERR_DISCOVERY_SYNTAX' }, bad);
  }
});

test('one aftersmtp1 record per name: none and two are errors', () => {
  assert.equal(
    selectDiscoveryRecord(DOMAIN, [['v=spf1 -all'], ['v=aftersmtp1; ', 'p=a.example:1']]),
    'v=aftersmtp1; p=a.example:1',
  );
  assert.throws(() => selectDiscoveryRecord(DOMAIN, [['v=spf1 -all']]), {
    code: 'ERR_DISCOVERY_NONE',
  });
  assert.throws(
    () =>
      selectDiscoveryRecord(DOMAIN, [
        ['v=aftersmtp1; p=a.example:1'],
        ['v=aftersmtp1; p=b.example:1'],
      ]),
    { code: 'ERR_DISCOVERY_AMBIGUOUS' },
  );
});

test('property: any input is a record or an ERR_DISCOVERY_SYNTAX InputError', () => {
  const tag = fc.constantFrom('v', 'p', 'k', 'x', 'V', '1', '');
  const value = fc.oneof(
    fc.constantFrom('aftersmtp1', 'a.example:4434', '[::1]:1', KEY, '127.0.0.1:65535', ''),
    fc.string({ maxLength: 40 }),
  );
  const structured = fc
    .tuple(
      fc.array(fc.tuple(tag, fc.constantFrom('=', ' = ', ''), value), { maxLength: 6 }),
      fc.constantFrom(';', '; ', ' ;'),
    )
    .map(([parts, sep]) => parts.map(([t, eq, v]) => `${t}${eq}${v}`).join(sep));
  fc.assert(
    fc.property(
      fc.oneof(
        fc.string({ maxLength: 300 }),
        fc.string({ unit: 'binary', maxLength: 100 }),
        structured,
      ),
      (s) => {
        try {
          const r = parseDiscoveryRecord(s);
          assert.ok(r.relays.every((e) => e.port >= 1 && e.port <= 65535));
        } catch (err) {
          assert.ok(err instanceof InputError, String(err));
          assert.equal(err.code, 'ERR_DISCOVERY_SYNTAX');
        }
      },
    ),
    { numRuns: 3000 },
  );
});

test('AFTERSMTP_DNS_SERVERS syntax', () => {
  assert.deepEqual(parseDnsServers('127.0.0.1:5353, ::1,[::1]:53'), [
    '127.0.0.1:5353',
    '::1',
    '[::1]:53',
  ]);
  for (const bad of ['', 'dns.example', '127.0.0.1:0', '1.2.3.4:99999', '1.2.3.4:53,']) {
    assert.throws(() => parseDnsServers(bad), Error, bad);
  }
});

const missing = unboundMissing();

describe('log key pinned from DNS (unbound)', { skip: missing }, () => {
  let gw: Gateway;
  let other: Gateway;
  let dns: DnsServer | undefined;
  const work = tempDir('dns');
  const state = join(work, 'state.json');
  const name = `_aftersmtp._tcp.${DOMAIN}`;

  before(async () => {
    [gw, other] = await Promise.all([startGateway(), startGateway()]);
  });

  after(async () => {
    await dns?.close();
    await Promise.all([gw?.stop(), other?.stop()]);
  });

  const resolve = () =>
    runCli(
      [
        'resolve',
        `did:aftersmtp:${DOMAIN}:gateway`,
        '--gateway',
        gw.grpc,
        '--gateway-spki',
        gw.spki,
        '--state',
        state,
        '--json',
      ],
      { env: { AFTERSMTP_DNS_SERVERS: (dns as DnsServer).server } },
    );

  test('the resolver reads k= from the real DNS server', async () => {
    dns = await startUnbound(DOMAIN, {
      [name]: ['v=spf1 -all', `v=aftersmtp1; p=127.0.0.1:4434; k=${gw.logKey}`],
    });
    const r = await new DiscoveryResolver({ servers: [dns.server] }).lookup(DOMAIN);
    assert.equal(r.logKey, gw.logKey);
    await assert.rejects(
      new DiscoveryResolver({ servers: [dns.server] }).lookup('nothing.example.org'),
      { code: 'ERR_DISCOVERY_NONE' },
    );
  });

  test('resolve pins the DNS key on first use and refuses a later different one', async () => {
    let r = await resolve();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).logKeySource, 'dns');
    r = await resolve();
    assert.equal(r.code, 0, r.stderr);

    await dns?.close();
    dns = await startUnbound(DOMAIN, {
      [name]: [`v=aftersmtp1; p=127.0.0.1:4434; k=${other.logKey}`],
    });
    r = await resolve();
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_LEDGER_KEY_CHANGED/);
  });

  test('without a pin, a gateway whose log key is not the one in DNS is refused', async () => {
    const r = await runCli(
      [
        'resolve',
        `did:aftersmtp:${DOMAIN}:gateway`,
        '--gateway',
        gw.grpc,
        '--gateway-spki',
        gw.spki,
        '--state',
        join(work, 'fresh.json'),
      ],
      { env: { AFTERSMTP_DNS_SERVERS: (dns as DnsServer).server } },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_NOTE_SIGNATURE|ERR_CHECKPOINT/);
  });
});
