// AMP to the legacy internet end to end: `aftersmtp send` to ordinary addresses through a real
// `aftersmtp serve`, whose off-ramp finds the receiving MTA (Debian's Postfix, with STARTTLS)
// through a DNSSEC-signed zone behind a validating unbound, which also publishes the gateway's
// DKIM keys, an MTA-STS policy (served over HTTPS from a test CA the gateway trusts through
// NODE_EXTRA_CA_CERTS) and TLSA records:
// - good.out.test: DANE-EE that matches: delivered over TLS, DKIM verified by dkimpy and
//   Mail::DKIM, the From the sender's address, the AMP fields gone;
// - sts.out.test: MTA-STS enforce, no TLSA: delivered over TLS to the MX the policy names;
// - bad.out.test: a TLSA record that matches nothing: refused before MAIL FROM, retried, never
//   sent in clear; the TLS-RPT counters say so.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { zoneTxt } from '../../src/cli/commands/dns.js';
import { DkimKeys } from '../../src/mail/dkim-keys.js';
import { tempDir } from '../helpers/cli.js';
import {
  ldnsMissing,
  makeCa,
  postfixMissing,
  startPolicyServer,
  startReceiver,
  startSignedZone,
  unboundMissing,
  type Dns,
  type PolicyServer,
  type Receiver,
} from '../offramp/helpers.js';
import { dkimpyMissing, dkimpyVerify, mailDkimMissing, mailDkimVerify } from '../mail/verifiers.js';
import { E2eGateway, GATEWAY_PASS, cli, makeUser, userArgs, type E2eUser } from './helpers.js';

const Z = 'out.test';
const GW = `gw.${Z}`;
const GOOD = `good.${Z}`;
const STS = `sts.${Z}`;
const BAD = `bad.${Z}`;
const MISSING =
  postfixMissing() || unboundMissing() || ldnsMissing() || dkimpyMissing() || mailDkimMissing();

describe('AMP to ordinary addresses through serve, DANE and MTA-STS', { skip: MISSING }, () => {
  const work = tempDir('e2e-offramp');
  let rx: Receiver;
  let dns: Dns;
  let policy: PolicyServer;
  let gateway: E2eGateway;
  let alice: E2eUser;
  let env: Record<string, string>;

  before(async () => {
    const ca = await makeCa();
    const caFile = join(work, 'ca.pem');
    writeFileSync(caFile, ca.certPem);
    const cert = await ca.issue([GOOD, STS, BAD].map((d) => `mx.${d}`));
    rx = await startReceiver({
      domains: [GOOD, STS, BAD],
      users: [GOOD, STS, BAD].map((d) => `bob@${d}`),
      tls: { keyPem: cert.keyPem, chainPem: `${cert.certPem.trim()}\n${ca.certPem.trim()}\n` },
    });
    policy = await startPolicyServer(ca, [STS]);
    policy.policies.set(
      `mta-sts.${STS}`,
      `version: STSv1\nmode: enforce\nmx: mx.${STS}\nmax_age: 86400\n`,
    );
    gateway = await E2eGateway.prepare(work, GW, {
      AFTERSMTP_SUITE: 'classic-v1',
      AFTERSMTP_OFFRAMP_PORT: String(rx.port),
      AFTERSMTP_QUEUE_RETRY_BASE_MS: '500',
      NODE_EXTRA_CA_CERTS: caFile,
    });
    // The DKIM keys serve would make at its first start, made first so the zone can publish them.
    const dkim = new DkimKeys(gateway.dataDir, GATEWAY_PASS);
    await dkim.ensure(GW);
    const spki = cert.cert.publicKey.export({ type: 'spki', format: 'der' });
    const tlsa = (d: string) => `_${rx.port}._tcp.mx.${d}.`;
    dns = await startSignedZone(Z, [
      `_aftersmtp._tcp.${GW}. IN TXT ${zoneTxt(gateway.txt())}`,
      ...dkim.list(GW).map((k) => `${k.dnsName}. IN TXT ${zoneTxt(k.dnsValue)}`),
      ...[GOOD, STS, BAD].flatMap((d) => [`${d}. IN MX 10 mx.${d}.`, `mx.${d}. IN A 127.0.0.1`]),
      `${tlsa(GOOD)} IN TLSA 3 1 1 ${createHash('sha256').update(spki).digest('hex')}`,
      `${tlsa(BAD)} IN TLSA 3 1 1 ${randomBytes(32).toString('hex')}`,
      `_mta-sts.${STS}. IN TXT "v=STSv1; id=1"`,
      `mta-sts.${STS}. IN A ${policy.address}`,
    ]);
    env = { AFTERSMTP_DNS_SERVERS: dns.server };
    Object.assign(gateway.env, env);
    await gateway.start();
    alice = await makeUser(work, gateway, 'alice', 'classic-v1', env);
  });

  after(async () => {
    await gateway?.stop();
    await rx?.close();
    await policy?.close();
    await dns?.close();
  });

  test('send to three domains: two delivered over TLS and signed, one refused by DANE and retried', async () => {
    const r = await cli(
      [
        'send',
        ...userArgs(alice),
        '--to',
        `Bob@${GOOD}`,
        '--cc',
        `bob@${STS}`,
        '--bcc',
        `bob@${BAD}`,
        '--subject',
        'out of AMP',
        '--body-file',
        '-',
      ],
      env,
      'Hello from AMP.\n',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /end-to-end encryption ends at your gateway \(did:aftersmtp:gw\.out\.test:gateway\)/,
    );

    const got = await rx.waitFor(2, 30_000);
    for (const d of [GOOD, STS]) {
      const m = got.find((c) => c.recipient.toLowerCase() === `bob@${d}`);
      assert.ok(m, `delivered to bob@${d}`);
      const text = m.message.toString('utf8');
      assert.match(m.stored.toString(), /using TLSv1\.[23]/, 'over TLS');
      assert.equal(m.sender, `alice@${GW}`);
      assert.match(text, new RegExp(`^From: alice@${GW.replace(/\./g, '\\.')}\\r$`, 'm'));
      assert.match(text, /^Subject: out of AMP\r$/m);
      assert.match(text, /Hello from AMP\./);
      assert.doesNotMatch(text, /X-AfterSMTP|^Bcc:/im);
      assert.deepEqual(dkimpyVerify(dns.server, m.message), [true, true]);
      assert.ok(
        mailDkimVerify(dns.server, m.message).some((l) => l.startsWith(`pass ${GW} `)),
        'Mail::DKIM passes the rsa-sha256 signature',
      );
    }

    // bad.out.test: retried (at least twice), each time refused before MAIL FROM.
    let attempts = 0;
    await gateway.waitLog((l) => {
      const failures = (l.failures as { recipient: string; reason: string }[] | undefined) ?? [];
      if (l.msg === 'delivery settled' && failures.some((f) => f.recipient === `bob@${BAD}`)) {
        assert.match(failures[0]?.reason ?? '', /ERR_SMTP_DANE/);
        attempts++;
      }
      return attempts >= 2;
    }, 30_000);
    assert.equal(rx.captured().filter((c) => c.recipient === `bob@${BAD}`).length, 0);
    assert.doesNotMatch(rx.postfix.log(), new RegExp(`to=<bob@${BAD.replace(/\./g, '\\.')}>`));

    const metrics = await (await fetch(`${String(gateway.ready?.admin)}/metrics`)).text();
    for (const series of [
      'aftersmtp_offramp_tls_sessions_total{policy="tlsa",result="success"}',
      'aftersmtp_offramp_tls_sessions_total{policy="sts",result="success"}',
    ]) {
      assert.match(metrics, new RegExp(`^${series.replace(/[{}]/g, '\\$&')} [1-9]`, 'm'), series);
    }
    assert.match(
      metrics,
      /^aftersmtp_offramp_tls_sessions_total\{policy="tlsa",result="(?!success)[^"]+"\} [1-9]/m,
    );
  });
});
