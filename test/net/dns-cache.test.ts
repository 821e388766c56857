// The DNS cache (src/net/dns-cache.ts) in front of the real client and a real unbound, with an
// injected clock: answers kept for their TTL (capped), TTL 0 not kept, NXDOMAIN and NODATA kept
// for their SOA's negative TTL (RFC 2308 §5) or the default, identical questions in flight share
// one query, the entry and byte bounds evict the least recently used, the AD bit is kept with the
// answer (a validating unbound), and failures (silence, SERVFAIL, an unreachable server) are
// never kept. The resolver's questions are counted by a pass-through in front of the client.
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import dnsPacket from 'dns-packet';
import { DnsCache, type DnsCacheOptions } from '../../src/net/dns-cache.js';
import { DnsClient, type DnsAnswer, type DnsResolver, type DnsType } from '../../src/net/dns.js';
import {
  ldnsMissing,
  startSignedZone,
  startZone,
  unboundMissing,
  type Dns,
} from '../offramp/helpers.js';

const Z = 'cache.test';
const BARE = 'nosoa.test';

/** The client, with the questions that reached it. */
class Counted implements DnsResolver {
  readonly asked: string[] = [];
  constructor(private readonly inner: DnsResolver) {}
  query(name: string, type: DnsType): Promise<DnsAnswer> {
    this.asked.push(`${type} ${name}`);
    return this.inner.query(name, type);
  }
}

function cacheOf(
  server: string,
  o: Partial<DnsCacheOptions> = {},
): { cache: DnsCache; upstream: Counted; clock: { t: number } } {
  const clock = { t: 1_000_000 };
  const upstream = new Counted(new DnsClient({ servers: [server], timeoutMs: 1000, tries: 1 }));
  const cache = new DnsCache(upstream, { maxEntries: 100, now: () => clock.t, ...o });
  return { cache, upstream, clock };
}

describe('DNS cache against unbound', { skip: unboundMissing() }, () => {
  let zone: Dns;
  let bare: Dns;

  before(async () => {
    zone = await startZone(Z, [
      `${Z}. 3600 IN SOA ns.${Z}. hostmaster.${Z}. 1 3600 600 86400 30`,
      `a.${Z}. 120 IN A 192.0.2.1`,
      `long.${Z}. 86400 IN A 192.0.2.2`,
      `zero.${Z}. 0 IN A 192.0.2.3`,
      `alias.${Z}. 20 IN CNAME a.${Z}.`,
      ...Array.from({ length: 8 }, (_, i) => `n${i}.${Z}. 300 IN A 192.0.2.${10 + i}`),
    ]);
    bare = await startZone(BARE, [`x.${BARE}. 300 IN A 192.0.2.9`]);
  });

  after(async () => {
    await zone?.close();
    await bare?.close();
  });

  test('an answer is kept for its TTL, whatever the case of the name', async () => {
    const { cache, upstream, clock } = cacheOf(zone.server);
    const first = await cache.query(`a.${Z}`, 'A');
    assert.deepEqual(
      first.answers.map((r) => (r.type === 'A' ? r.data : r.type)),
      ['192.0.2.1'],
    );
    clock.t += 119_000;
    assert.equal(await cache.query(`A.${Z.toUpperCase()}.`, 'A'), first, 'the same answer');
    assert.equal(upstream.asked.length, 1);
    clock.t += 1_000;
    await cache.query(`a.${Z}`, 'A');
    assert.equal(upstream.asked.length, 2, 'asked again once the 120 s ran out');
    assert.deepEqual(cache.stats(), {
      hits: 1,
      misses: 2,
      shared: 0,
      evictions: 0,
      entries: 1,
      bytes: cache.stats().bytes,
    });
  });

  test('a long TTL is capped', async () => {
    const { cache, upstream, clock } = cacheOf(zone.server, { maxTtlSeconds: 600 });
    await cache.query(`long.${Z}`, 'A');
    clock.t += 599_000;
    await cache.query(`long.${Z}`, 'A');
    assert.equal(upstream.asked.length, 1);
    clock.t += 1_000;
    await cache.query(`long.${Z}`, 'A');
    assert.equal(upstream.asked.length, 2);
  });

  test('TTL 0 is not kept', async () => {
    const { cache, upstream } = cacheOf(zone.server);
    await cache.query(`zero.${Z}`, 'A');
    await cache.query(`zero.${Z}`, 'A');
    assert.equal(upstream.asked.length, 2);
    assert.equal(cache.stats().entries, 0);
  });

  test('a CNAME lives no longer than its TTL', async () => {
    // unbound's local data answers the CNAME alone (it does not follow it): a NODATA answer
    // for A, which would be kept for the SOA's 30 s but for the CNAME's 20 s.
    const { cache, upstream, clock } = cacheOf(zone.server);
    const a = await cache.query(`alias.${Z}`, 'A');
    assert.deepEqual(
      a.answers.map((r) => r.type),
      ['CNAME'],
    );
    clock.t += 19_000;
    await cache.query(`alias.${Z}`, 'A');
    assert.equal(upstream.asked.length, 1);
    clock.t += 1_000;
    await cache.query(`alias.${Z}`, 'A');
    assert.equal(upstream.asked.length, 2);
  });

  test('NXDOMAIN and NODATA are kept for the SOA minimum (RFC 2308 §5)', async () => {
    const { cache, upstream, clock } = cacheOf(zone.server);
    const nx = await cache.query(`none.${Z}`, 'A');
    const nodata = await cache.query(`a.${Z}`, 'TXT');
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.equal(nx.negativeTtl, 30);
    assert.equal(nodata.rcode, 'NOERROR');
    assert.equal(nodata.answers.length, 0);
    clock.t += 29_000;
    assert.equal(await cache.query(`none.${Z}`, 'A'), nx);
    assert.equal(await cache.query(`a.${Z}`, 'TXT'), nodata);
    assert.equal(upstream.asked.length, 2);
    clock.t += 1_000;
    await cache.query(`none.${Z}`, 'A');
    await cache.query(`a.${Z}`, 'TXT');
    assert.equal(upstream.asked.length, 4);
  });

  test('a negative answer without an SOA is kept for the default; every one is capped', async () => {
    const { cache, upstream, clock } = cacheOf(bare.server, { negativeTtlSeconds: 5 });
    const nx = await cache.query(`none.${BARE}`, 'A');
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.equal(nx.negativeTtl, undefined);
    clock.t += 4_999;
    await cache.query(`none.${BARE}`, 'A');
    assert.equal(upstream.asked.length, 1);
    clock.t += 1;
    await cache.query(`none.${BARE}`, 'A');
    assert.equal(upstream.asked.length, 2);

    const capped = cacheOf(zone.server, { maxNegativeTtlSeconds: 10 });
    await capped.cache.query(`none.${Z}`, 'A');
    capped.clock.t += 10_000;
    await capped.cache.query(`none.${Z}`, 'A');
    assert.equal(capped.upstream.asked.length, 2, 'the SOA said 30 s, the cap 10 s');
  });

  test('identical questions in flight share one query', async () => {
    const { cache, upstream } = cacheOf(zone.server);
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => cache.query(i % 2 ? `n0.${Z}` : `N0.${Z}.`, 'A')),
    );
    assert.equal(upstream.asked.length, 1);
    assert.ok(answers.every((a) => a === answers[0]));
    assert.equal(cache.stats().shared, 7);
    // Different types are different questions.
    await Promise.all([cache.query(`n1.${Z}`, 'A'), cache.query(`n1.${Z}`, 'AAAA')]);
    assert.equal(upstream.asked.length, 3);
  });

  test('the entry bound evicts the least recently used', async () => {
    const { cache, upstream } = cacheOf(zone.server, { maxEntries: 3 });
    for (const i of [0, 1, 2]) await cache.query(`n${i}.${Z}`, 'A');
    await cache.query(`n0.${Z}`, 'A'); // n0 is now the most recently used
    await cache.query(`n3.${Z}`, 'A'); // evicts n1
    assert.equal(cache.stats().entries, 3);
    assert.equal(cache.stats().evictions, 1);
    const before = upstream.asked.length;
    await cache.query(`n0.${Z}`, 'A');
    await cache.query(`n2.${Z}`, 'A');
    assert.equal(upstream.asked.length, before, 'n0 and n2 are still there');
    await cache.query(`n1.${Z}`, 'A');
    assert.equal(upstream.asked.length, before + 1, 'n1 was evicted');
  });

  test('the byte bound evicts too', async () => {
    const probe = cacheOf(zone.server);
    await probe.cache.query(`n0.${Z}`, 'A');
    const one = probe.cache.stats().bytes;
    const { cache } = cacheOf(zone.server, { maxBytes: 2 * one + one / 2 });
    for (const i of [0, 1, 2, 3, 4]) await cache.query(`n${i}.${Z}`, 'A');
    assert.equal(cache.stats().entries, 2);
    assert.ok(cache.stats().bytes <= 2 * one + one / 2);
    assert.equal(cache.stats().evictions, 3);
  });
});

describe('DNS cache keeps the AD bit', { skip: unboundMissing() || ldnsMissing() }, () => {
  const S = 'signed-cache.test';
  let signed: Dns;

  before(async () => {
    signed = await startSignedZone(S, [`mx.${S}. 300 IN A 192.0.2.25`]);
  });

  after(async () => {
    await signed?.close();
  });

  test('a validated answer is served as validated, an unsigned one as not', async () => {
    const { cache, upstream } = cacheOf(signed.server);
    const first = await cache.query(`mx.${S}`, 'A');
    assert.equal(first.secure, true);
    const again = await cache.query(`mx.${S}`, 'A');
    assert.equal(again.secure, true);
    assert.equal(upstream.asked.length, 1);
  });
});

/** A UDP server that answers every query with `rcode`, or not at all. */
async function badServer(rcode: 'SERVFAIL' | 'silence'): Promise<Socket> {
  const sock = createSocket('udp4');
  await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
  sock.on('message', (msg, rinfo) => {
    if (rcode === 'silence') return;
    const q = dnsPacket.decode(msg);
    const reply = dnsPacket.encode({
      type: 'response',
      id: q.id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 2, // rcode 2: SERVFAIL
      questions: q.questions,
    });
    sock.send(reply, rinfo.port, rinfo.address);
  });
  return sock;
}

describe('DNS cache: failures are not kept', () => {
  for (const kind of ['SERVFAIL', 'silence'] as const) {
    test(`${kind}: asked again every time; shared while in flight`, async () => {
      const sock = await badServer(kind);
      const server = `127.0.0.1:${sock.address().port}`;
      const upstream = new Counted(new DnsClient({ servers: [server], timeoutMs: 150, tries: 1 }));
      const cache = new DnsCache(upstream, { maxEntries: 10 });
      const code = kind === 'SERVFAIL' ? 'ERR_DNS_SERVFAIL' : 'ERR_DNS_TIMEOUT';
      await assert.rejects(cache.query('example.org', 'TXT'), { code });
      await assert.rejects(cache.query('example.org', 'TXT'), { code });
      assert.equal(upstream.asked.length, 2);
      const shared = await Promise.allSettled([
        cache.query('example.org', 'TXT'),
        cache.query('example.org', 'TXT'),
      ]);
      assert.deepEqual(
        shared.map((r) => r.status),
        ['rejected', 'rejected'],
      );
      assert.equal(upstream.asked.length, 3);
      assert.equal(cache.stats().entries, 0);
      sock.close();
    });
  }

  test('an unreachable server: at once, and not kept', async () => {
    // Nothing listens on UDP port 1 of the loopback: the ICMP answer comes back at once.
    const upstream = new Counted(
      new DnsClient({ servers: ['127.0.0.1:1'], timeoutMs: 5000, tries: 1 }),
    );
    const cache = new DnsCache(upstream, { maxEntries: 10 });
    const t0 = performance.now();
    await assert.rejects(cache.query('example.org', 'A'), { code: 'ERR_DNS_UNREACHABLE' });
    await assert.rejects(cache.query('example.org', 'A'), { code: 'ERR_DNS_UNREACHABLE' });
    assert.ok(performance.now() - t0 < 2000, 'not a timeout');
    assert.equal(upstream.asked.length, 2);
  });

  test('maxEntries must be positive', () => {
    const client = new DnsClient({ servers: ['127.0.0.1:1'] });
    assert.throws(() => new DnsCache(client, { maxEntries: 0 }), RangeError);
  });
});
