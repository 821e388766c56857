// The gateway's DNS client against a real unbound (answers, NXDOMAIN, NODATA and their negative
// TTL from the SOA, no AD bit from a resolver that does not validate, a truncated UDP answer asked
// again over TCP) and against a hostile server: silence is a timeout, nothing listening is
// ERR_DNS_UNREACHABLE at once, a name that cannot be asked is refused before it is sent, and any
// bytes at all in reply are a DnsError, never a crash (fast-check).
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { DnsClient, DnsError, recordsOf } from '../../src/net/dns.js';
import { startZone, unboundMissing, type Dns } from '../offramp/helpers.js';

const Z = 'dns.test';

describe('DNS client against unbound', { skip: unboundMissing() }, () => {
  let dns: Dns;
  let client: DnsClient;

  before(async () => {
    const long = Array.from(
      { length: 12 },
      (_, i) => `"${String(i).padStart(2, '0')}${'x'.repeat(200)}"`,
    );
    dns = await startZone(Z, [
      `${Z}. 3600 SOA ns.${Z}. hostmaster.${Z}. 1 3600 600 86400 45`,
      `${Z}. MX 10 mx1.${Z}.`,
      `${Z}. MX 20 mx2.${Z}.`,
      `mx1.${Z}. A 127.0.0.1`,
      `big.${Z}. TXT ${long.join(' ')}`,
    ]);
    client = new DnsClient({ servers: [dns.server], timeoutMs: 1000 });
  });

  after(async () => {
    await dns?.close();
  });

  test('MX records; not validated, so not secure', async () => {
    const a = await client.query(Z, 'MX');
    assert.equal(a.rcode, 'NOERROR');
    assert.equal(a.secure, false);
    assert.deepEqual(
      recordsOf(a, 'MX')
        .map((r) => [r.data.preference, r.data.exchange])
        .sort(),
      [
        [10, `mx1.${Z}`],
        [20, `mx2.${Z}`],
      ],
    );
  });

  test('NXDOMAIN and NODATA, with their negative TTL (RFC 2308 §5)', async () => {
    const nx = await client.query(`none.${Z}`, 'A');
    assert.equal(nx.rcode, 'NXDOMAIN');
    assert.equal(nx.negativeTtl, 45);
    const nodata = await client.query(`mx1.${Z}`, 'MX');
    assert.equal(nodata.rcode, 'NOERROR');
    assert.equal(nodata.answers.length, 0);
    assert.equal(nodata.negativeTtl, 45);
    const positive = await client.query(Z, 'MX');
    assert.equal(positive.negativeTtl, undefined);
    assert.ok(positive.wireBytes > 12);
  });

  test('an answer too large for UDP comes over TCP', async () => {
    const a = await client.query(`big.${Z}`, 'TXT');
    const [txt] = recordsOf(a, 'TXT');
    const text = ([] as (string | Buffer)[]).concat(txt?.data ?? []).join('');
    assert.equal(text.length, 12 * 202);
  });
});

describe('DNS client against a hostile server', () => {
  test('silence is ERR_DNS_TIMEOUT', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    const client = new DnsClient({
      servers: [`127.0.0.1:${sock.address().port}`],
      timeoutMs: 150,
      tries: 1,
    });
    await assert.rejects(client.query('example.org', 'MX'), { code: 'ERR_DNS_TIMEOUT' });
    sock.close();
  });

  test('nothing listening: ERR_DNS_UNREACHABLE at once, not a timeout', async () => {
    const client = new DnsClient({ servers: ['127.0.0.1:1'], timeoutMs: 5000, tries: 2 });
    const t0 = performance.now();
    await assert.rejects(client.query('example.org', 'MX'), { code: 'ERR_DNS_UNREACHABLE' });
    assert.ok(performance.now() - t0 < 2000);
  });

  test('a name that cannot be asked is refused before it is sent', async () => {
    const client = new DnsClient({ servers: ['127.0.0.1:1'], timeoutMs: 150, tries: 1 });
    for (const name of [
      `${'x'.repeat(64)}.example.org`,
      'a..example.org',
      '',
      '.',
      `${'abc.'.repeat(64)}org`,
    ]) {
      await assert.rejects(client.query(name, 'TXT'), { code: 'ERR_DNS_NAME' }, name);
    }
  });

  test('any bytes in reply: a DnsError, never a crash', async () => {
    const sock = createSocket('udp4');
    await new Promise<void>((resolve) => sock.bind(0, '127.0.0.1', resolve));
    let reply = Buffer.alloc(0);
    sock.on('message', (msg, rinfo) => {
      // Keep the query's id so that the bytes are taken as the answer.
      const out = Buffer.concat([msg.subarray(0, 2), reply]);
      sock.send(out, rinfo.port, rinfo.address);
    });
    const client = new DnsClient({
      servers: [`127.0.0.1:${sock.address().port}`],
      timeoutMs: 150,
      tries: 1,
    });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 10, maxLength: 600 }), async (bytes) => {
        reply = Buffer.from(bytes);
        try {
          await client.query('example.org', 'TLSA');
        } catch (err) {
          assert.ok(err instanceof DnsError, String(err));
        }
      }),
      { numRuns: 150 },
    );
    sock.close();
  });
});
