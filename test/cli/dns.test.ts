// `aftersmtp dns`: the records a domain needs, from the gateway's settings, its ledger key and
// its DKIM keys (the SMTP bridge's MX, SPF, DKIM and DMARC too), and --check against a real DNS
// server (unbound): all published and equal passes; a record with another k=, a missing address
// record, a host with another address, or a DKIM record that is not the key fails with exit 1
// and says which. Without a reachable --host (the default listen address is loopback) it asks
// for one.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runCli, tempDir } from '../helpers/cli.js';
import { startUnbound, unboundMissing, type DnsServer } from '../client-api/helpers.js';
import { startZone, type Dns } from '../offramp/helpers.js';

const skip = unboundMissing();

describe('aftersmtp dns', { skip }, () => {
  const dataDir = join(tempDir('dns'), 'data');
  const env = {
    AFTERSMTP_DATA_DIR: dataDir,
    AFTERSMTP_DOMAIN: 'example.org',
    AFTERSMTP_PASSPHRASE: 'pw',
    AFTERSMTP_QUIC_LISTEN: '0.0.0.0:4434',
    AFTERSMTP_GRPC_LISTEN: '0.0.0.0:4433',
  };
  let key = '';
  let dkim = { name: '', value: '' };
  let good: Dns;
  let bad: DnsServer;
  const want = () => `v=aftersmtp1; p=relay.example.org:4434; c=relay.example.org:4433; k=${key}`;

  before(async () => {
    const k = await runCli(['ledger', 'key'], { env });
    assert.equal(k.code, 0, k.stderr);
    key = k.stdout.trim();
    const g = await runCli(['dkim', 'keygen', '--selector', 's1', '--json'], { env });
    assert.equal(g.code, 0, g.stderr);
    const made = JSON.parse(g.stdout) as { dnsName: string; dnsValue: string };
    dkim = { name: made.dnsName, value: made.dnsValue };
    const txt = (v: string) => (v.match(/.{1,255}/g) ?? []).map((p) => `"${p}"`).join(' ');
    good = await startZone('example.org', [
      `_aftersmtp._tcp.example.org. TXT ${txt(want())}`,
      'relay.example.org. A 192.0.2.10',
      'relay.example.org. AAAA 2001:db8::10',
      'example.org. MX 10 relay.example.org.',
      'example.org. TXT "v=spf1 mx -all"',
      `${dkim.name}. TXT ${txt(dkim.value)}`,
      '_dmarc.example.org. TXT "v=DMARC1; p=reject"',
    ]);
    const other =
      'example.org/aftersmtp-ledger/v1+00000000+AepKbGPinFIKvvVQexMuxfmVR3auvr57kkIe6mkURtIs';
    bad = await startUnbound('example.org', {
      '_aftersmtp._tcp.example.org': [want().replace(key, other)],
    });
  });

  after(async () => {
    await good?.close();
    await bad?.close();
  });

  test('prints the TXT record with p=, c= and the ledger key, and what the host needs', async () => {
    const r = await runCli(['dns', '--host', 'relay.example.org'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdout.includes(`_aftersmtp._tcp.example.org. 3600 IN TXT "${want()}"`), r.stdout);
    assert.match(r.stdout, /relay\.example\.org must have an A and\/or AAAA record/);
    assert.match(r.stdout, /UDP 4434 \(QUIC\).*TCP 4433 \(gRPC\)/);
    assert.ok(r.stdout.includes('example.org. 3600 IN MX 10 relay.example.org.'), r.stdout);
    assert.ok(r.stdout.includes('example.org. 3600 IN TXT "v=spf1 mx -all"'), r.stdout);
    assert.ok(r.stdout.includes(`${dkim.name}. 3600 IN TXT "${dkim.value.slice(0, 40)}`), r.stdout);
    assert.ok(r.stdout.includes('_dmarc.example.org. 3600 IN TXT "v=DMARC1; p=none"'), r.stdout);
  });

  test('--check passes when every record is published as it must be', async () => {
    const r = await runCli(
      ['dns', '--host', 'relay.example.org', '--address', '192.0.2.10', '--check', '--json'],
      { env: { ...env, AFTERSMTP_DNS_SERVERS: good.server } },
    );
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as {
      records: { type: string; status: string; got: string[] }[];
    };
    assert.deepEqual(
      out.records.map((c) => [c.type, c.status]),
      [
        ['TXT', 'ok'],
        ['A/AAAA', 'ok'],
        ['MX', 'ok'],
        ['TXT', 'ok'],
        ['TXT', 'ok'],
        ['TXT', 'ok'],
      ],
    );
    assert.deepEqual(out.records[1]?.got.sort(), ['192.0.2.10', '2001:db8::10']);
  });

  test('--check fails (exit 1) on another k=, a missing address and a wrong address', async () => {
    const differs = await runCli(
      ['dns', '--host', 'relay.example.org', '--check', '--server', bad.server],
      {
        env,
      },
    );
    assert.equal(differs.code, 1);
    assert.match(
      differs.stdout,
      /_aftersmtp\._tcp\.example\.org TXT {2}differs: published: "v=aftersmtp1;/,
    );
    assert.match(differs.stdout, /relay\.example\.org A\/AAAA {2}missing/);
    assert.match(differs.stdout, /s1\._domainkey\.example\.org TXT {2}missing/);
    assert.match(differs.stderr, /6 record\(s\) missing or different.*\(ERR_DNS_CHECK\)/);
    const wrong = await runCli(
      [
        'dns',
        '--host',
        'relay.example.org',
        '--address',
        '192.0.2.99',
        '--check',
        '--server',
        good.server,
      ],
      { env },
    );
    assert.equal(wrong.code, 1);
    assert.match(wrong.stdout, /differs: 192\.0\.2\.10 2001:db8::10 \(expected 192\.0\.2\.99\)/);
  });

  test('a loopback or wildcard listen address needs --host (exit 2)', async () => {
    const r = await runCli(['dns'], { env });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--host is required/);
  });
});
