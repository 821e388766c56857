// The off-ramp's decisions without a network: DANE matching over every usable TLSA parameter
// (RFC 7671, RFC 7672 §3), MTA-STS record and MX-pattern rules (RFC 8461 §3.1, §4.1), MX order
// (RFC 5321 §5.1), DNS server syntax.
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { describe, test } from 'node:test';
import type { DetailedPeerCertificate } from 'node:tls';
import { verifyDane, type Tlsa } from '../../src/legacy/offramp/dane.js';
import { parseDnsServer } from '../../src/net/dns.js';
import { mxMatches, parseStsRecord } from '../../src/legacy/offramp/mta-sts.js';
import { registerOffRampMetrics } from '../../src/legacy/offramp/metrics.js';
import { orderMx } from '../../src/legacy/offramp/mx.js';
import { Registry } from 'prom-client';
import { makeCa, type Issued } from './helpers.js';

/** The peer certificate object node's TLS gives, built from certificates (leaf first). */
function peer(...chain: X509Certificate[]): DetailedPeerCertificate {
  let issuer: DetailedPeerCertificate | undefined;
  for (const c of [...chain].reverse()) {
    const o = c.toLegacyObject() as DetailedPeerCertificate;
    (o as { issuerCertificate?: DetailedPeerCertificate }).issuerCertificate = issuer ?? o;
    issuer = o;
  }
  return issuer as DetailedPeerCertificate;
}

function tlsa(usage: number, selector: number, matchingType: number, c: X509Certificate): Tlsa {
  const bytes = selector === 0 ? c.raw : c.publicKey.export({ type: 'spki', format: 'der' });
  const data =
    matchingType === 0
      ? bytes
      : createHash(matchingType === 1 ? 'sha256' : 'sha512')
          .update(bytes)
          .digest();
  return { usage, selector, matchingType, data };
}

describe('DANE matching', async () => {
  const ca = await makeCa();
  const other = await makeCa('another CA');
  const leaf: Issued = await ca.issue(['mx.example.net']);
  const expired = await ca.issue(['mx.example.net'], {
    notBefore: new Date(Date.now() - 10 * 86_400_000),
    notAfter: new Date(Date.now() - 86_400_000),
  });
  const refs = ['mx.example.net', 'example.net'];
  const now = Date.now();

  test('DANE-EE: every selector and matching type matches the server certificate', () => {
    for (const s of [0, 1]) {
      for (const m of [0, 1, 2]) {
        const v = verifyDane([tlsa(3, s, m, leaf.cert)], peer(leaf.cert, ca.cert), refs, now);
        assert.deepEqual(v, { ok: true, matched: `3 ${s} ${m}` });
      }
    }
  });

  test('DANE-EE ignores names and dates (RFC 7672 §3.1.1)', () => {
    const v = verifyDane(
      [tlsa(3, 1, 1, expired.cert)],
      peer(expired.cert),
      ['elsewhere.example'],
      now,
    );
    assert.equal(v.ok, true);
  });

  test('DANE-TA: the CA in the presented chain, the MX name in the certificate', () => {
    for (const s of [0, 1]) {
      for (const m of [0, 1, 2]) {
        const v = verifyDane([tlsa(2, s, m, ca.cert)], peer(leaf.cert, ca.cert), refs, now);
        assert.deepEqual(v, { ok: true, matched: `2 ${s} ${m}` });
      }
    }
  });

  test('DANE-TA checks the name, the dates and the signatures', () => {
    const wrongName = verifyDane(
      [tlsa(2, 0, 1, ca.cert)],
      peer(leaf.cert, ca.cert),
      ['mx.other.example'],
      now,
    );
    assert.equal(wrongName.ok, false);
    assert.equal(!wrongName.ok && wrongName.result, 'certificate-host-mismatch');
    const old = verifyDane([tlsa(2, 0, 1, ca.cert)], peer(expired.cert, ca.cert), refs, now);
    assert.equal(!old.ok && old.result, 'certificate-expired');
    // A chain that names the anchor without being issued by it.
    const forged = verifyDane([tlsa(2, 0, 1, other.cert)], peer(leaf.cert, other.cert), refs, now);
    assert.equal(!forged.ok && forged.result, 'tlsa-invalid');
    // The server's own certificate is no trust anchor.
    const self = verifyDane([tlsa(2, 0, 1, leaf.cert)], peer(leaf.cert, ca.cert), refs, now);
    assert.equal(self.ok, false);
  });

  test('no usable record matches: PKIX usages (0, 1), unknown selectors and types are ignored', () => {
    const records = [
      tlsa(0, 0, 1, ca.cert),
      tlsa(1, 1, 1, leaf.cert),
      { ...tlsa(3, 1, 1, leaf.cert), selector: 2 },
      { ...tlsa(3, 1, 1, leaf.cert), matchingType: 3 },
      tlsa(3, 1, 1, other.cert),
    ];
    const v = verifyDane(records, peer(leaf.cert, ca.cert), refs, now);
    assert.equal(!v.ok && v.result, 'tlsa-invalid');
  });
});

describe('MTA-STS rules', () => {
  test('TXT record: exactly one v=STSv1 record with an id (RFC 8461 §3.1)', () => {
    assert.equal(parseStsRecord(['v=STSv1; id=20160831085700Z;']), '20160831085700Z');
    assert.equal(parseStsRecord(['v=spf1 -all', 'v=STSv1;id=abc']), 'abc');
    assert.equal(parseStsRecord(['v=STSv1; id=a', 'v=STSv1; id=b']), undefined);
    assert.equal(parseStsRecord(['v=STSv1;']), undefined);
    assert.equal(parseStsRecord(['v=STSv1; id=has-dash']), undefined);
    assert.equal(parseStsRecord(['v=STSv10; id=a']), undefined);
  });

  test('MX patterns: a wildcard matches exactly one label (RFC 8461 §4.1)', () => {
    assert.ok(mxMatches('mx.example.com', ['mx.example.com']));
    assert.ok(mxMatches('MX1.Example.COM.', ['*.example.com']));
    assert.ok(!mxMatches('example.com', ['*.example.com']));
    assert.ok(!mxMatches('a.b.example.com', ['*.example.com']));
    assert.ok(!mxMatches('mx.example.org', ['mx.example.com', '*.example.com']));
  });
});

describe('MX order and DNS servers', () => {
  test('lowest preference first; equal preferences in random order', () => {
    const records = [
      { preference: 20, exchange: 'c' },
      { preference: 10, exchange: 'a' },
      { preference: 10, exchange: 'b' },
      { preference: 30, exchange: 'd' },
    ];
    const firsts = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const o = orderMx(records).map((r) => r.exchange);
      assert.deepEqual(o.slice(2), ['c', 'd']);
      firsts.add(o[0] as string);
    }
    assert.deepEqual([...firsts].sort(), ['a', 'b']);
  });

  test('servers: ip, ip:port, [ipv6]:port', () => {
    assert.deepEqual(parseDnsServer('127.0.0.1'), { host: '127.0.0.1', port: 53 });
    assert.deepEqual(parseDnsServer('127.0.0.1:5353'), { host: '127.0.0.1', port: 5353 });
    assert.deepEqual(parseDnsServer('[::1]:5353'), { host: '::1', port: 5353 });
    assert.deepEqual(parseDnsServer('::1'), { host: '::1', port: 53 });
    assert.throws(() => parseDnsServer('dns.example'), /not a DNS server address/);
  });
});

describe('metrics', () => {
  test('TLS-RPT counters by policy and result; the success series exist from the first scrape', async () => {
    const registry = new Registry();
    const m = registerOffRampMetrics(registry);
    let text = await registry.metrics();
    for (const p of ['sts', 'tlsa', 'no-policy-found']) {
      assert.match(
        text,
        new RegExp(`aftersmtp_offramp_tls_sessions_total\\{policy="${p}",result="success"\\} 0`),
      );
    }
    m.tls('tlsa', 'tlsa-invalid');
    m.recipients('delivered', 2);
    text = await registry.metrics();
    assert.match(
      text,
      /aftersmtp_offramp_tls_sessions_total\{policy="tlsa",result="tlsa-invalid"\} 1/,
    );
    assert.match(text, /aftersmtp_offramp_recipients_total\{result="delivered"\} 2/);
  });
});
