// MTA-STS (RFC 8461) end to end: unbound publishes `_mta-sts` TXT records and MX records, an
// HTTPS server on 127.0.0.x:443 serves the policies with a certificate from a test CA, and
// Postfix receives with a certificate from the same CA. Enforce: a valid policy delivers over
// TLS; an MX the policy does not name, or a certificate that does not name the MX, is a
// temporary failure and nothing is sent. Testing: delivered, the failure counted. Policies are
// cached on disk and outlive their server.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  createOffRamp,
  type OffRampHandler,
  type OffRampMetrics,
} from '../../src/legacy/offramp/index.js';
import { encodeOutbound } from '../../src/queue/outbound.js';
import { MappingEngine } from '../../src/routing/index.js';
import {
  job,
  makeCa,
  memoryLog,
  message,
  postfixMissing,
  startPolicyServer,
  startReceiver,
  startZone,
  tempDir,
  unboundMissing,
  type Dns,
  type PolicyServer,
  type Receiver,
  type TestCa,
} from './helpers.js';

const skip = postfixMissing() || unboundMissing();
const Z = 'sts.test';

function policy(mode: string, mx: readonly string[]): string {
  return [
    'version: STSv1',
    `mode: ${mode}`,
    ...mx.map((m) => `mx: ${m}`),
    'max_age: 86400',
    '',
  ].join('\r\n');
}

describe('off-ramp with MTA-STS', { skip }, () => {
  let ca: TestCa;
  let dns: Dns;
  let rx: Receiver;
  let web: PolicyServer;
  let maps: MappingEngine;
  let cacheDir: string;
  const counted: string[] = [];
  const metrics: OffRampMetrics = {
    tls: (p, r) => counted.push(`${p}/${r}`),
    recipients: () => undefined,
  };
  const log = memoryLog();
  const domains = ['good', 'bad', 'wrongname', 'testing'].map((d) => `${d}.${Z}`);

  const offRamp = (o: { cacheDir?: string } = {}): OffRampHandler =>
    createOffRamp({
      maps: () => maps.snapshot(),
      dnsServers: [dns.server],
      hostname: 'gateway.example.org',
      log,
      metrics,
      port: rx.port,
      ca: [ca.certPem],
      ...(o.cacheDir !== undefined ? { policyCacheDir: o.cacheDir } : {}),
      timeouts: { connectMs: 2000, dnsMs: 1000, policyFetchMs: 2000 },
    });

  const send = (off: OffRampHandler, domain: string) =>
    off(
      job(
        `smtp:${domain}`,
        [`bob@${domain}`],
        encodeOutbound({
          mailFrom: 'alice@example.org',
          message: message(domain, `bob@${domain}`),
        }),
      ),
    );

  before(async () => {
    ca = await makeCa();
    web = await startPolicyServer(ca, domains);
    web.policies.set(`mta-sts.good.${Z}`, policy('enforce', [`*.good.${Z}`]));
    web.policies.set(`mta-sts.bad.${Z}`, policy('enforce', [`mx.bad.${Z}`]));
    web.policies.set(`mta-sts.wrongname.${Z}`, policy('enforce', [`mx.wrongname.${Z}`]));
    web.policies.set(`mta-sts.testing.${Z}`, policy('testing', [`mx.elsewhere.${Z}`]));
    // Postfix's certificate names the good MX only.
    const cert = await ca.issue([`mx.good.${Z}`]);
    rx = await startReceiver({
      domains,
      users: domains.map((d) => `bob@${d}`),
      tls: { keyPem: cert.keyPem, chainPem: `${cert.certPem.trim()}\n${ca.certPem.trim()}\n` },
    });
    dns = await startZone(Z, [
      ...domains.flatMap((d) => [
        `_mta-sts.${d}. TXT "v=STSv1; id=20261201"`,
        `mta-sts.${d}. A ${web.address}`,
      ]),
      `good.${Z}. MX 10 mx.good.${Z}.`,
      `mx.good.${Z}. A 127.0.0.1`,
      `bad.${Z}. MX 10 other.${Z}.`,
      `other.${Z}. A 127.0.0.1`,
      `wrongname.${Z}. MX 10 mx.wrongname.${Z}.`,
      `mx.wrongname.${Z}. A 127.0.0.1`,
      `testing.${Z}. MX 10 mx.testing.${Z}.`,
      `mx.testing.${Z}. A 127.0.0.1`,
    ]);
    maps = MappingEngine.open({ path: ':memory:', pollMs: 0 });
    cacheDir = join(tempDir('sts-cache'), 'mta-sts');
  });

  after(async () => {
    maps?.close();
    await rx?.close();
    await dns?.close();
    await web?.close();
    if (cacheDir !== undefined) rmSync(dirname(cacheDir), { recursive: true, force: true });
  });

  const stored = (domain: string) => rx.captured().filter((c) => c.recipient === `bob@${domain}`);

  test('enforce, MX named by the policy, certificate valid for it: delivered over TLS', async () => {
    const off = offRamp({ cacheDir });
    const [r] = await send(off, `good.${Z}`);
    assert.deepEqual(r, { recipient: `bob@good.${Z}`, status: 'delivered' });
    const [got] = await rx.waitFor(1);
    assert.match(got?.stored.toString() ?? '', /using TLSv1\.[23]/);
    assert.ok(counted.includes('sts/success'), counted.join(' '));
    assert.ok(web.requests.includes(`mta-sts.good.${Z}/.well-known/mta-sts.txt`));
    // The policy is kept on disk for its max_age.
    const file = join(cacheDir, `good.${Z}.json`);
    assert.ok(existsSync(file));
    assert.equal(JSON.parse(readFileSync(file, 'utf8')).mode, 'enforce');
  });

  test('enforce, an MX the policy does not name: temporary, nothing sent', async () => {
    const off = offRamp({ cacheDir });
    const [r] = await send(off, `bad.${Z}`);
    assert.equal(r?.status, 'temporary');
    assert.equal(r?.code, 'ERR_SMTP_MTA_STS');
    assert.match(
      (r as { reason: string }).reason,
      /not an MX host of bad\.sts\.test's MTA-STS policy/,
    );
    assert.ok(counted.includes('sts/validation-failure'));
    assert.equal(stored(`bad.${Z}`).length, 0);
    assert.ok(
      !log.lines.some(
        (l) => l.msg === 'off-ramp: session' && (l.obj as { domain: string }).domain === `bad.${Z}`,
      ),
      'no connection to the MX at all',
    );
  });

  test('enforce, a certificate that does not name the MX: temporary, no MAIL FROM', async () => {
    const [r] = await send(offRamp(), `wrongname.${Z}`);
    assert.equal(r?.status, 'temporary');
    assert.equal(r?.code, 'ERR_SMTP_MTA_STS');
    assert.ok(counted.includes('sts/certificate-host-mismatch'), counted.join(' '));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(stored(`wrongname.${Z}`).length, 0);
    // Postfix saw STARTTLS and EHLO, and no MAIL command.
    const disconnects = rx.postfix
      .log()
      .split('\n')
      .filter((l) => / disconnect from /.test(l));
    assert.ok(
      disconnects.some((l) => / starttls=1 /.test(l) && !/ mail=/.test(l)),
      disconnects.join('\n'),
    );
  });

  test('testing: an MX the policy does not name still gets the mail; the failure is counted', async () => {
    const before = counted.filter((c) => c === 'sts/validation-failure').length;
    const [r] = await send(offRamp(), `testing.${Z}`);
    assert.equal(r?.status, 'delivered');
    assert.equal(counted.filter((c) => c === 'sts/validation-failure').length, before + 1);
    await rx.waitFor(2);
  });

  test('a cached policy still applies when its server is gone; without a cache, none does', async () => {
    web.policies.clear(); // every fetch is a 404 now
    const cached = offRamp({ cacheDir });
    // The policy fetched for bad.sts.test above is on disk and not expired: still enforced.
    const [r] = await send(cached, `bad.${Z}`);
    assert.equal(r?.code, 'ERR_SMTP_MTA_STS');
    // No cache and no policy to be had: delivered as though the domain had no MTA-STS (§5.1).
    const [r2] = await send(offRamp(), `bad.${Z}`);
    assert.equal(r2?.status, 'delivered');
    assert.ok(counted.includes('sts/sts-policy-fetch-error'));
  });
});
