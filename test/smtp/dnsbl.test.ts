// DNS blocklists of port 25's clients (src/pipeline/dnsbl.ts, AFTERSMTP_SMTP_DNSBL): the zone
// list and its filters, the names asked (RFC 5782: reversed octets, reversed nibbles), which
// answers list an address; against a real DNS server (unbound) publishing two lists, one that
// lists 127.0.0.2 with a reason and one that answers 127.255.255.254 (a list refusing the
// query, never a listing); a silent server within the timeout; then through the on-ramp: a listed
// client is refused 554 5.7.1 at its first RCPT with the zone and reason, another address of the
// loopback is not, an access_map OK for the listed address lets it in unlooked-up, and a
// submission client is never looked up. Domain lists (RHSBL) for the reverse path's domain: a
// listed sender is refused at the first RCPT, the null sender and an access_map OK are not
// looked up.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  classifyAnswer,
  Dnsbl,
  dnsblName,
  parseDnsblZones,
  type DnsblResult,
} from '../../src/pipeline/dnsbl.js';
import { DnsClient } from '../../src/net/dns.js';
import { silentDns } from '../helpers/dns.js';
import { startUnbound, unboundMissing, type DnsServer } from '../client-api/helpers.js';
import { DOMAIN, RawSmtp, setMapEntry, startSmtpGateway } from './helpers.js';

describe('DNS blocklist zones and answers', () => {
  test('zones with and without filters; bad ones refused with the reason', () => {
    assert.deepEqual(parseDnsblZones(''), []);
    const [zen, spamcop] = parseDnsblZones('Zen.Spamhaus.org.=127.0.0.[2..4;10], bl.spamcop.net');
    assert.equal(zen?.zone, 'zen.spamhaus.org');
    assert.deepEqual(zen?.filter, [
      [[127, 127]],
      [[0, 0]],
      [[0, 0]],
      [
        [2, 4],
        [10, 10],
      ],
    ]);
    assert.deepEqual(spamcop, { zone: 'bl.spamcop.net' });
    for (const [spec, why] of [
      ['localhost', /expected a DNS zone/],
      ['bad_zone.example', /expected a DNS zone/],
      ['a.example,A.example', /listed twice/],
      ['a.example=127.0.0', /four octets/],
      ['a.example=127.0.0.[4..2]', /four octets/],
      ['a.example=127.0.0.256', /four octets/],
      ['a.example=127.0.0.[2', /four octets/],
    ] as const) {
      assert.throws(() => parseDnsblZones(spec), why, spec);
    }
  });

  test('the names asked: reversed octets for IPv4, reversed nibbles for IPv6', () => {
    assert.equal(dnsblName('192.0.2.99', 'bl.example'), '99.2.0.192.bl.example');
    assert.equal(dnsblName('::ffff:192.0.2.99', 'bl.example'), '99.2.0.192.bl.example');
    assert.equal(
      dnsblName('2001:db8:1:2:3:4:567:89ab', 'bl.example'),
      'b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.bl.example',
    );
    assert.equal(dnsblName('not-an-address', 'bl.example'), undefined);
  });

  test('an answer in 127/8 lists, but 127.255.255.x and anything else are errors', () => {
    const [plain, filtered] = parseDnsblZones('a.example,b.example=127.0.0.[2..3]');
    assert.equal(classifyAnswer('127.0.0.2', plain!), 'listed');
    assert.equal(classifyAnswer('127.0.1.5', plain!), 'listed');
    assert.equal(classifyAnswer('127.255.255.254', plain!), 'error');
    assert.equal(classifyAnswer('198.51.100.7', plain!), 'error');
    assert.equal(classifyAnswer('127.0.0.3', filtered!), 'listed');
    assert.equal(classifyAnswer('127.0.0.4', filtered!), 'no');
  });
});

describe('DNS blocklists against a DNS server', { skip: unboundMissing() }, () => {
  let dns: DnsServer;
  const counted: string[] = [];
  const count = (zone: string, r: DnsblResult) => counted.push(`${zone}:${r}`);
  before(async () => {
    dns = await startUnbound(
      'test',
      { '2.0.0.127.listed.test': ['Listed for testing, see https://listed.test/'] },
      {
        '2.0.0.127.listed.test': ['127.0.0.2'],
        '2.0.0.127.refusing.test': ['127.255.255.254'],
        'spammer.test.dbl.test': ['127.0.1.2'],
      },
    );
  });
  after(async () => {
    await dns.close();
  });
  const client = () => new DnsClient({ servers: [dns.server], timeoutMs: 1000, tries: 1 });

  test('the first listing zone in order decides; a refusing list is an error, not a listing', async () => {
    const bl = new Dnsbl({
      zones: parseDnsblZones('refusing.test,listed.test'),
      dns: client(),
      onResult: count,
    });
    counted.length = 0;
    assert.deepEqual(await bl.listing('127.0.0.2'), {
      zone: 'listed.test',
      code: '127.0.0.2',
      reason: 'Listed for testing, see https://listed.test/',
    });
    assert.deepEqual(counted.sort(), ['listed.test:listed', 'refusing.test:error']);
    counted.length = 0;
    assert.equal(await bl.listing('127.0.0.3'), undefined);
    assert.deepEqual(counted.sort(), ['listed.test:clean', 'refusing.test:clean']);
  });

  test('a domain list: the domain under the zone; a name that is no host name is not asked', async () => {
    counted.length = 0;
    const dbl = new Dnsbl({ zones: parseDnsblZones('dbl.test'), dns: client(), onResult: count });
    assert.deepEqual(await dbl.domainListing('Spammer.test.'), {
      zone: 'dbl.test',
      code: '127.0.1.2',
    });
    assert.equal(await dbl.domainListing('clean.test'), undefined);
    assert.equal(await dbl.domainListing('[192.0.2.1]'), undefined);
    assert.equal(await dbl.domainListing('192.0.2.1'), undefined);
    assert.deepEqual(counted, ['dbl.test:listed', 'dbl.test:clean']);
  });

  test('a filter that the answer does not match lists nothing', async () => {
    const bl = new Dnsbl({ zones: parseDnsblZones('listed.test=127.0.0.[3..11]'), dns: client() });
    assert.equal(await bl.listing('127.0.0.2'), undefined);
  });

  test('a list that does not answer blocks nothing, after the timeout and not much later', async () => {
    const silent = await silentDns();
    try {
      const bl = new Dnsbl({
        zones: parseDnsblZones('listed.test'),
        dns: silent.dns,
        timeoutMs: 300,
        onResult: count,
      });
      counted.length = 0;
      const started = Date.now();
      assert.equal(await bl.listing('127.0.0.2'), undefined);
      const took = Date.now() - started;
      assert.ok(took >= 290 && took < 2000, `${took} ms`);
      assert.deepEqual(counted, ['listed.test:error']);
    } finally {
      silent.close();
    }
  });

  test('through the on-ramp: 554 5.7.1 at the first RCPT; access_map OK lets the client in', async () => {
    const gw = await startSmtpGateway({
      dnsChecks: { dnsbl: new Dnsbl({ zones: parseDnsblZones('listed.test'), dns: client() }) },
    });
    try {
      await gw.user('dan');
      const listed = await RawSmtp.open(gw.port.mx, '127.0.0.2');
      assert.match(listed.greeting, /^220 /, 'judged at the first RCPT (smtpd_delay_reject)');
      await listed.cmd('EHLO client.test');
      assert.match(await listed.cmd('MAIL FROM:<someone@elsewhere.test>'), /^250 /);
      assert.equal(
        await listed.cmd(`RCPT TO:<dan@${DOMAIN}>`),
        '554 5.7.1 Service unavailable; Client host [127.0.0.2] blocked using listed.test; Listed for testing, see https://listed.test/\r\n',
      );
      listed.close();

      const dan = `dan@${DOMAIN}`;
      const port = gw.port.mx;
      assert.match(
        await RawSmtp.rcptReply(port, 'someone@elsewhere.test', dan, '127.0.0.3'),
        /^250 /,
      );

      await setMapEntry(gw, 'access_map', '127.0.0.2', 'OK');
      assert.match(
        await RawSmtp.rcptReply(port, 'someone@partner.test', dan, '127.0.0.2'),
        /^250 /,
      );
    } finally {
      await gw.close();
    }
  });

  test('through the on-ramp: a listed sender domain is refused, the null sender and OK are not', async () => {
    const gw = await startSmtpGateway({
      dnsChecks: { rhsbl: new Dnsbl({ zones: parseDnsblZones('dbl.test'), dns: client() }) },
    });
    try {
      await gw.user('dan');
      const c = await RawSmtp.open(gw.port.mx);
      await c.cmd('EHLO client.test');
      assert.match(await c.cmd('MAIL FROM:<offers@spammer.test>'), /^250 /);
      assert.equal(
        await c.cmd(`RCPT TO:<dan@${DOMAIN}>`),
        '554 5.7.1 Service unavailable; Sender address [spammer.test] blocked using dbl.test\r\n',
      );
      assert.match(await c.cmd('RSET'), /^250 /);
      await c.cmd('MAIL FROM:<someone@clean.test>');
      assert.match(await c.cmd(`RCPT TO:<dan@${DOMAIN}>`), /^250 /);
      await c.cmd('RSET');
      await c.cmd('MAIL FROM:<>');
      assert.match(await c.cmd(`RCPT TO:<dan@${DOMAIN}>`), /^250 /, 'bounces are not looked up');
      c.close();

      await setMapEntry(gw, 'access_map', 'spammer.test', 'OK');
      assert.match(
        await RawSmtp.rcptReply(gw.port.mx, 'offers@spammer.test', `dan@${DOMAIN}`),
        /^250 /,
      );
    } finally {
      await gw.close();
    }
  });

  test('a submission client is never looked up', async () => {
    counted.length = 0;
    const gw = await startSmtpGateway({
      dnsChecks: {
        dnsbl: new Dnsbl({ zones: parseDnsblZones('listed.test'), dns: client(), onResult: count }),
      },
    });
    try {
      const connect = (entrance: 'smtp' | 'submission') =>
        gw.pipeline.connect({ entrance, address: '127.0.0.2', port: 50000, tls: true });
      assert.equal((await connect('submission')).verdict.kind, 'continue');
      assert.deepEqual(counted, []);
      assert.equal((await connect('smtp')).verdict.kind, 'refuse');
      assert.deepEqual(counted, ['listed.test:listed']);
    } finally {
      await gw.close();
    }
  });
});
