// The gateway's DNS client seen as node's dns.resolve (src/net/dns-node.ts), against node's own
// resolver (c-ares) asking the same real unbound: the same records in the same shapes, the same
// error codes and messages; and mailauth's SPF, DKIM and DMARC results, header for header, the
// same through the cached client as through node's resolver (pass, fail, softfail, none,
// neutral, permerror, temperror), the second time from the cache as the first.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { Resolver } from 'node:dns/promises';
import { after, before, describe, test } from 'node:test';
import { authenticate, dkimSign, type DNSResolver } from 'mailauth';
import { DnsCache } from '../../src/net/dns-cache.js';
import { nodeStyleResolve } from '../../src/net/dns-node.js';
import { DnsClient } from '../../src/net/dns.js';
import { startZone, unboundMissing, type Dns } from '../offramp/helpers.js';

const Z = 'auth.test';
const CLIENT = '10.1.2.3';
const PTR = '3.2.1.10.in-addr.arpa';

/** A TXT value as zone-file character-strings of at most 255 octets. */
function txt(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(`"${value.slice(i, i + 255)}"`);
  return parts.join(' ');
}

function nodeResolver(server: string): DNSResolver {
  const r = new Resolver({ timeout: 1000, tries: 2 });
  r.setServers([server]);
  return (name, rrtype) => r.resolve(name, rrtype) as Promise<string[][] | string[]>;
}

function ours(server: string): DNSResolver {
  const client = new DnsClient({ servers: [server], timeoutMs: 1000, tries: 2 });
  return nodeStyleResolve(new DnsCache(client, { maxEntries: 1000 })) as DNSResolver;
}

async function outcome(p: Promise<unknown>): Promise<unknown> {
  try {
    const v = await p;
    // unbound may rotate the records of an RRset: compare them as sets.
    return { ok: (v as unknown[]).map((x) => JSON.stringify(x)).sort() };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { hostname?: string };
    return { code: e.code, message: e.message, syscall: e.syscall, hostname: e.hostname };
  }
}

const dkimKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
const dkimPublic = dkimKey.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

describe(
  'node-style answers and mailauth results, ours against c-ares',
  { skip: unboundMissing() },
  () => {
    let dns: Dns;

    before(async () => {
      dns = await startZone(Z, [
        `${Z}. 3600 IN SOA ns.${Z}. hostmaster.${Z}. 1 3600 600 86400 30`,
        `${Z}. 300 IN MX 10 mx1.${Z}.`,
        `${Z}. 300 IN MX 20 mx2.${Z}.`,
        `mx1.${Z}. 300 IN A ${CLIENT}`,
        `mx1.${Z}. 300 IN AAAA 2001:db8:0:0::25`,
        `alias.${Z}. 300 IN CNAME mx1.${Z}.`,
        `multi.${Z}. 300 IN TXT "one" "two"`,
        `multi.${Z}. 300 IN TXT "three"`,
        `latin.${Z}. 300 IN TXT "caf\\233"`,
        `${PTR}. 300 IN PTR mx1.${Z}.`,
        // SPF policies
        `pass.${Z}. 300 IN TXT "v=spf1 mx:${Z} -all"`,
        `_dmarc.pass.${Z}. 300 IN TXT "v=DMARC1; p=reject"`,
        `sel._domainkey.pass.${Z}. 300 IN TXT ${txt(`v=DKIM1; k=rsa; p=${dkimPublic}`)}`,
        `fail.${Z}. 300 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
        `_dmarc.fail.${Z}. 300 IN TXT "v=DMARC1; p=reject"`,
        `soft.${Z}. 300 IN TXT "v=spf1 a:nothing.${Z} ~all"`,
        `ptr.${Z}. 300 IN TXT "v=spf1 ptr:${Z} -all"`,
        `exists.${Z}. 300 IN TXT "v=spf1 exists:%{i}.ex.${Z} -all"`,
        `${CLIENT}.ex.${Z}. 300 IN A 127.0.0.2`,
        `inc.${Z}. 300 IN TXT "v=spf1 include:pass.${Z} -all"`,
        `void.${Z}. 300 IN TXT "v=spf1 a:n1.${Z} a:n2.${Z} a:n3.${Z} -all"`,
        `two.${Z}. 300 IN TXT "v=spf1 -all"`,
        `two.${Z}. 300 IN TXT "v=spf1 +all"`,
        `nospf.${Z}. 300 IN TXT "something else"`,
      ]);
    });

    after(async () => {
      await dns?.close();
    });

    test('the same records, shapes and error codes as node:dns', async () => {
      const theirs = nodeResolver(dns.server);
      const mine = ours(dns.server);
      const questions: [string, string][] = [
        [Z, 'MX'],
        [`mx1.${Z}`, 'A'],
        [`mx1.${Z}`, 'AAAA'],
        [`MX1.${Z}.`, 'A'],
        [`alias.${Z}`, 'A'],
        [`alias.${Z}`, 'CNAME'],
        [`multi.${Z}`, 'TXT'],
        [`latin.${Z}`, 'TXT'],
        [`sel._domainkey.pass.${Z}`, 'TXT'],
        [PTR, 'PTR'],
        [`none.${Z}`, 'TXT'],
        [`none.${Z}`, 'A'],
        [`mx1.${Z}`, 'TXT'],
        [`mx1.${Z}`, 'MX'],
        [`alias.${Z}`, 'TXT'],
        [`${'x'.repeat(64)}.${Z}`, 'TXT'],
      ];
      for (const [name, type] of questions) {
        const want = await outcome(theirs(name, type));
        assert.deepEqual(await outcome(mine(name, type)), want, `${type} ${name}`);
        assert.deepEqual(await outcome(mine(name, type)), want, `${type} ${name}, cached`);
      }
    });

    test('a server that is not there: the same error as node:dns', async () => {
      const want = await outcome(nodeResolver('127.0.0.1:1')(Z, 'TXT'));
      assert.deepEqual(await outcome(ours('127.0.0.1:1')(Z, 'TXT')), want);
    });

    async function message(from: string, sign: boolean): Promise<string> {
      const raw =
        `From: Carol <carol@${from}>\r\nTo: alice@example.org\r\nSubject: hi\r\n` +
        `Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@${from}>\r\n\r\nHello.\r\n`;
      if (!sign) return raw;
      const r = await dkimSign(raw, {
        canonicalization: 'relaxed/relaxed',
        signatureData: [
          {
            signingDomain: from,
            selector: 'sel',
            privateKey: dkimKey.privateKey.export({ type: 'pkcs8', format: 'pem' }),
          },
        ],
      } as unknown as Parameters<typeof dkimSign>[1]);
      return r.signatures + raw;
    }

    const cases: { domain: string; sign: boolean; spf: string; dkim?: string; dmarc?: string }[] = [
      { domain: `pass.${Z}`, sign: true, spf: 'pass', dkim: 'pass', dmarc: 'pass' },
      { domain: `fail.${Z}`, sign: false, spf: 'fail', dmarc: 'fail' },
      // Signed by a domain without a key in DNS: "no key".
      { domain: `fail.${Z}`, sign: true, spf: 'fail', dkim: 'neutral', dmarc: 'fail' },
      { domain: `soft.${Z}`, sign: false, spf: 'softfail' },
      { domain: `ptr.${Z}`, sign: false, spf: 'pass' },
      { domain: `exists.${Z}`, sign: false, spf: 'pass' },
      { domain: `inc.${Z}`, sign: false, spf: 'pass' },
      { domain: `void.${Z}`, sign: false, spf: 'permerror' },
      { domain: `two.${Z}`, sign: false, spf: 'permerror' },
      { domain: `nospf.${Z}`, sign: false, spf: 'none' },
      { domain: `nothing.${Z}`, sign: false, spf: 'none' },
    ];

    /** One message per case: a signature made anew could differ (its t= is in seconds). */
    async function results(
      resolver: DNSResolver,
      c: { domain: string },
      raw: string,
    ): Promise<{ headers: string; spf?: string; dkim?: string; dmarc?: string }> {
      const r = await authenticate(raw, {
        ip: CLIENT,
        helo: `mx1.${Z}`,
        sender: `carol@${c.domain}`,
        mta: 'mx.example.org',
        resolver,
        disableBimi: true,
      });
      const status = (x: unknown): string | undefined =>
        (x as { status?: { result?: string } } | false)
          ? (x as { status?: { result?: string } }).status?.result
          : undefined;
      return {
        headers: r.headers,
        spf: status(r.spf),
        dkim: status((r.dkim as { results?: unknown[] }).results?.[0]),
        dmarc: status(r.dmarc),
      };
    }

    for (const c of cases) {
      test(`mailauth: ${c.domain}${c.sign ? ', signed' : ''}: spf=${c.spf}`, async () => {
        const raw = await message(c.domain, c.sign);
        const want = await results(nodeResolver(dns.server), c, raw);
        assert.equal(want.spf, c.spf, 'the case is what it says');
        if (c.dkim !== undefined) assert.equal(want.dkim, c.dkim);
        if (c.dmarc !== undefined) assert.equal(want.dmarc, c.dmarc);
        const mine = ours(dns.server);
        assert.deepEqual(await results(mine, c, raw), want);
        assert.deepEqual(await results(mine, c, raw), want, 'from the cache');
      });
    }

    test('mailauth: DNS down is temperror, as with node:dns', async () => {
      const c = { domain: `pass.${Z}` };
      const raw = await message(c.domain, true);
      const want = await results(nodeResolver('127.0.0.1:1'), c, raw);
      assert.equal(want.spf, 'temperror');
      assert.equal(want.dkim, 'temperror');
      assert.deepEqual(await results(ours('127.0.0.1:1'), c, raw), want);
    });
  },
);
