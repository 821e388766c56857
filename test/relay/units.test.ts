// The relay's small parts: the AFTERSMTP_RELAY_ROUTES syntax, the ACK body codec (examples and
// a fast-check property: arbitrary bytes decode or fail with ERR_RELAY_RECEIPT, nothing else),
// the LRU/TTL cache, the temporary/permanent classification, and peer discovery through a real
// DNS server (route first, then p=/k=/c=, c= defaulting to p's host on port 4433), and the
// gateway's reader of the operator's log-key pins.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import {
  LruTtlCache,
  PeerDirectory,
  RELAY_REFUSALS,
  RelayError,
  classify,
  decodeRelayAck,
  encodeRelayAck,
  parseRelayRoutes,
  type RelayResult,
} from '../../src/amp/relay/index.js';
import { LogPinFile, writeLogPin } from '../../src/amp/relay/pins.js';
import { QuicError } from '../../src/quic/index.js';
import { startUnbound, unboundMissing, type DnsServer } from '../client-api/helpers.js';

const KEY = 'example.org/aftersmtp-ledger/v1+67538a6a+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs';

describe('AFTERSMTP_RELAY_ROUTES', () => {
  test('domain=quic[/api], the API defaulting to port 4433 on the QUIC host', () => {
    const r = parseRelayRoutes(
      'Example.NET=127.0.0.1:4434/127.0.0.1:4433, b.org=[::1]:9, c.org=relay.c.org:4434',
    );
    assert.deepEqual(r.get('example.net'), {
      quic: [{ host: '127.0.0.1', port: 4434 }],
      api: { host: '127.0.0.1', port: 4433 },
    });
    assert.deepEqual(r.get('b.org'), {
      quic: [{ host: '::1', port: 9 }],
      api: { host: '::1', port: 4433 },
    });
    // The nodes of one gateway: quic+quic.
    assert.deepEqual(parseRelayRoutes('d.org=10.0.0.1:1+10.0.0.2:1/10.0.0.9:2').get('d.org'), {
      quic: [
        { host: '10.0.0.1', port: 1 },
        { host: '10.0.0.2', port: 1 },
      ],
      api: { host: '10.0.0.9', port: 2 },
    });
    assert.deepEqual(r.get('c.org')?.api, { host: 'relay.c.org', port: 4433 });
  });

  for (const bad of [
    '',
    'example.net',
    'example.net=',
    'example.net=host',
    'example.net=h:0',
    'example.net=h:1/h:2/h:3',
    'bad_domain!=h:1',
    'a.org=h:1,a.org=h:2',
  ]) {
    test(`refuses ${JSON.stringify(bad)}`, () => {
      assert.throws(() => parseRelayRoutes(bad), Error);
    });
  }
});

describe('relay ACK body', () => {
  const receipt = {
    gateway: 'did:aftersmtp:b.org:gateway',
    gatewayKeyId: Buffer.alloc(16, 1),
    messageId: Buffer.alloc(16, 2),
    ciphertextHash: Buffer.alloc(32, 3),
    recipient: 'did:aftersmtp:b.org:bob',
    sender: 'did:aftersmtp:a.org:alice',
    deliveredAt: 1_700_000_000_000,
    signature: { ed25519: Buffer.alloc(64, 4) },
  };

  test('round trip of delivered and refused results', () => {
    const results: RelayResult[] = [
      { kind: 'delivered', receipt },
      {
        kind: 'delivered',
        receipt: {
          ...receipt,
          signature: { ed25519: Buffer.alloc(64), mldsa65: Buffer.alloc(3309, 5) },
        },
      },
      {
        kind: 'refused',
        recipient: 'did:aftersmtp:b.org:ghost',
        wireCode: 0x1011,
        reason: 'not registered',
      },
      {
        kind: 'delivered',
        receipt: {
          ...receipt,
          batch: { index: 2, size: 3, path: [Buffer.alloc(32, 6)] },
        },
      },
    ];
    assert.deepEqual(decodeRelayAck(encodeRelayAck(results)), results);
  });

  test('a receipt of a batch whose place cannot be is ERR_RELAY_RECEIPT', () => {
    const h = Buffer.alloc(32, 6);
    for (const batch of [
      { index: 0, size: 1, path: [] },
      { index: 3, size: 3, path: [h] },
      { index: 0, size: 4, path: [h] },
      { index: 0, size: 300, path: Array<Buffer>(9).fill(h) },
      { index: 0, size: 2, path: [h.subarray(0, 31)] },
    ]) {
      const body = encodeRelayAck([{ kind: 'delivered', receipt: { ...receipt, batch } }]);
      assert.throws(() => decodeRelayAck(body), { code: 'ERR_RELAY_RECEIPT' });
    }
  });

  test('twelve hybrid receipts fit the 64 KiB ACK', () => {
    const long = `did:aftersmtp:${'d'.repeat(60)}.org:${'u'.repeat(64)}`;
    const big = {
      ...receipt,
      recipient: long,
      sender: long,
      gateway: long,
      signature: { ed25519: Buffer.alloc(64), mldsa65: Buffer.alloc(3309) },
    };
    const body = encodeRelayAck(
      Array.from({ length: 12 }, () => ({ kind: 'delivered' as const, receipt: big })),
    );
    assert.ok(body.length <= 65_536, `${body.length}`);
  });

  test('truncated, trailing or unknown bytes are ERR_RELAY_RECEIPT', () => {
    const good = encodeRelayAck([{ kind: 'delivered', receipt }]);
    for (const bad of [
      good.subarray(0, good.length - 1),
      Buffer.concat([good, Buffer.of(0)]),
      Buffer.alloc(0),
    ]) {
      assert.throws(() => decodeRelayAck(bad), { code: 'ERR_RELAY_RECEIPT' });
    }
  });

  test('property: arbitrary bytes decode or fail with ERR_RELAY_RECEIPT only', () => {
    const good = encodeRelayAck([{ kind: 'delivered', receipt }]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.nat(good.length), (noise, at) => {
        for (const input of [Buffer.from(noise), Buffer.concat([good.subarray(0, at), noise])]) {
          try {
            decodeRelayAck(input);
          } catch (err) {
            assert.ok(err instanceof RelayError && err.code === 'ERR_RELAY_RECEIPT', String(err));
          }
        }
      }),
      { numRuns: 500 },
    );
  });
});

test('LRU with TTL: evicts the least recently used and expires old entries', () => {
  let now = 0;
  const c = new LruTtlCache<string, number>(2, 100, () => now);
  c.set('a', 1);
  c.set('b', 2);
  assert.equal(c.get('a'), 1); // a is now the most recent
  c.set('c', 3);
  assert.equal(c.get('b'), undefined);
  assert.equal(c.get('a'), 1);
  now = 100;
  assert.equal(c.get('a'), undefined);
  assert.equal(c.size, 1);
});

test('log-key pins: the file is looked at once per recheck interval, a failed look is not kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pins-'));
  try {
    const path = join(dir, 'log-pins.json');
    let now = 1_000;
    const pins = new LogPinFile(path, { recheckMs: 500, now: () => now });
    assert.equal(await pins.get('example.org'), undefined); // no file: no pins
    await writeLogPin(path, 'example.org', KEY);
    now += 499;
    assert.equal(await pins.get('example.org'), undefined, 'the last look is still trusted');
    now += 1;
    assert.equal(await pins.get('example.org'), KEY, 'looked again: the new pin');
    // A clock set back does not keep the last look for longer.
    await writeLogPin(path, 'example.org', undefined);
    now -= 10_000;
    assert.equal(await pins.get('example.org'), undefined, 'the clock went back: looked again');
    now += 10_000;
    // A malformed file: every lookup fails with its error (nothing stale is answered).
    now += 500;
    writeFileSync(path, 'not json');
    const both = await Promise.allSettled([pins.get('example.org'), pins.get('example.org')]);
    assert.deepEqual(
      both.map((r) => (r.status === 'rejected' ? (r.reason as { code?: string }).code : r.value)),
      ['ERR_LOG_PIN', 'ERR_LOG_PIN'],
    );
    // A failed look is not kept: the next lookup, in the same interval, reads the mended file.
    writeFileSync(path, JSON.stringify({ format: 'aftersmtp-log-pins/1', pins: {} }));
    assert.equal(await pins.get('example.org'), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('classification: refusal codes, transport codes, and unknown errors', () => {
  for (const [code, v] of Object.entries(RELAY_REFUSALS)) {
    assert.deepEqual(
      { ...classify(new QuicError(v.wire, 'x')), reason: undefined },
      { temporary: v.temporary, code, reason: undefined },
    );
  }
  assert.equal(classify(new QuicError(0x0001, 'busy')).temporary, true);
  assert.equal(classify(new QuicError(0x0006, 'timeout')).code, 'ERR_QUIC_TIMEOUT');
  assert.equal(classify(new QuicError(0x0002, 'too large')).temporary, false);
  assert.equal(classify(new QuicError(0x1fff, 'who knows')).temporary, false);
  assert.deepEqual(classify(new Error('secret internal text')), {
    temporary: true,
    code: 'ERR_INTERNAL',
    reason: 'internal error',
  });
});

describe('peer discovery through DNS', { skip: unboundMissing() }, () => {
  let dns: DnsServer;
  before(async () => {
    dns = await startUnbound(
      'example',
      {
        '_aftersmtp._tcp.a.example': [`v=aftersmtp1; p=relay.a.example:4434; k=${KEY}`],
        '_aftersmtp._tcp.b.example': [`v=aftersmtp1; p=127.0.0.2:5000; c=127.0.0.3:5001`],
        '_aftersmtp._tcp.c.example': ['v=aftersmtp1; p=1.2.3.4:1', 'v=aftersmtp1; p=1.2.3.5:1'],
        '_aftersmtp._tcp.d.example': ['v=aftersmtp1; p=1.2.3.4:1; c=nope'],
        '_aftersmtp._tcp.e.example': ['v=spf1 -all'],
        '_aftersmtp._tcp.f.example': ['v=aftersmtp1; p=gone.f.example:4434'],
        '_aftersmtp._tcp.g.example': ['v=aftersmtp1; p=v6.g.example:4434; c=relay.a.example:4433'],
      },
      { 'relay.a.example': ['127.0.0.7'], 'v6.g.example': ['2001:db8::7'] },
    );
  });
  after(() => dns?.close());

  test('p= and k= from DNS; c= defaults to p host on port 4433', async () => {
    const d = new PeerDirectory({ dnsServers: [dns.server] });
    assert.deepEqual(await d.find('a.example'), {
      domain: 'a.example',
      relays: [{ host: 'relay.a.example', port: 4434, address: '127.0.0.7' }],
      api: { host: 'relay.a.example', port: 4433 },
      apiAddress: '127.0.0.7',
      logKey: KEY,
      source: 'dns',
      logKeySource: 'dns',
    });
    assert.deepEqual((await d.find('b.example')).api, { host: '127.0.0.3', port: 5001 });
  });

  test('host names in p= and c= are resolved at the configured DNS servers (A, else AAAA)', async () => {
    const d = new PeerDirectory({ dnsServers: [dns.server] });
    const g = await d.find('g.example');
    assert.deepEqual([g.relays[0]?.address, g.apiAddress], ['2001:db8::7', '127.0.0.7']);
    // A name the servers do not know: temporary, naming the host and the servers.
    await assert.rejects(d.find('f.example'), (err: unknown) => {
      assert.ok(err instanceof RelayError);
      assert.equal(err.code, 'ERR_RELAY_DNS');
      assert.equal(err.temporary, true);
      assert.match(
        err.message,
        /cannot resolve gone\.f\.example at 127\.0\.0\.1:\d+ \(AFTERSMTP_DNS_SERVERS\)/,
      );
      return true;
    });
  });

  test('a route wins over DNS but the log key still comes from DNS', async () => {
    const d = new PeerDirectory({
      dnsServers: [dns.server],
      routes: parseRelayRoutes('a.example=10.0.0.1:1/10.0.0.1:2,z.example=10.0.0.9:1'),
    });
    const a = await d.find('a.example');
    assert.deepEqual(
      [a.source, a.relays[0]?.host, a.api.port, a.logKey],
      ['route', '10.0.0.1', 2, KEY],
    );
    const z = await d.find('z.example');
    assert.deepEqual([z.source, z.logKey], ['route', undefined]);
  });

  test('no record: ERR_RELAY_UNREACHABLE_DOMAIN (permanent); bad records: ERR_RELAY_DISCOVERY', async () => {
    const d = new PeerDirectory({ dnsServers: [dns.server] });
    for (const domain of ['nothing.example', 'e.example']) {
      await assert.rejects(d.find(domain), (err: unknown) => {
        assert.ok(err instanceof RelayError);
        assert.equal(err.code, 'ERR_RELAY_UNREACHABLE_DOMAIN');
        assert.equal(err.temporary, false);
        return true;
      });
    }
    for (const domain of ['c.example', 'd.example']) {
      await assert.rejects(d.find(domain), { code: 'ERR_RELAY_DISCOVERY' });
    }
  });

  test('a DNS server that does not answer: ERR_RELAY_DNS (temporary)', async () => {
    const d = new PeerDirectory({ dnsServers: ['127.0.0.1:9'], dnsTimeoutMs: 200 });
    await assert.rejects(d.find('a.example'), (err: unknown) => {
      assert.ok(err instanceof RelayError);
      assert.deepEqual([err.code, err.temporary], ['ERR_RELAY_DNS', true]);
      return true;
    });
  });
});
