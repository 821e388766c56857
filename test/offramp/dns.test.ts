// The off-ramp's DNS client against a real unbound (answers, NXDOMAIN, NODATA, no AD bit from a
// resolver that does not validate, a truncated UDP answer asked again over TCP) and against a
// hostile server: silence is a timeout, and any bytes at all in reply are a DnsError, never a
// crash (fast-check).
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { DnsClient, DnsError, recordsOf } from '../../src/legacy/offramp/dns.js';
import { startZone, unboundMissing, type Dns } from './helpers.js';

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

  test('NXDOMAIN and NODATA', async () => {
    assert.equal((await client.query(`none.${Z}`, 'A')).rcode, 'NXDOMAIN');
    const nodata = await client.query(`mx1.${Z}`, 'MX');
    assert.equal(nodata.rcode, 'NOERROR');
    assert.equal(nodata.answers.length, 0);
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
