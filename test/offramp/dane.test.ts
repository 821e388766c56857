// DANE (RFC 7672) end to end: a zone signed with ldns-signzone, served by an authoritative
// unbound, answered by a second unbound that validates it with the zone's key as trust anchor
// (the off-ramp reads its AD bit); Postfix receives with STARTTLS. A matching TLSA record
// (DANE-EE 3 1 1, DANE-TA 2 0 1) delivers over TLS; a TLSA record that matches nothing, or a
// server that offers no STARTTLS, is a temporary failure and Postfix receives nothing. The same
// records from a resolver that does not validate are not DANE at all.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
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
  ldnsMissing,
  makeCa,
  memoryLog,
  message,
  postfixMissing,
  startReceiver,
  startSignedZone,
  startZone,
  unboundMissing,
  type Dns,
  type Receiver,
} from './helpers.js';

const skip = postfixMissing() || unboundMissing() || ldnsMissing();
const Z = 'dane.test';

describe('off-ramp with DANE', { skip }, () => {
  let signed: Dns;
  let unsigned: Dns;
  let rx: Receiver;
  let maps: MappingEngine;
  const counted: string[] = [];
  const metrics: OffRampMetrics = {
    tls: (p, r) => counted.push(`${p}/${r}`),
    recipients: () => undefined,
  };
  const log = memoryLog();
  const domains = ['ee', 'ta', 'bad', 'plain'].map((d) => `${d}.${Z}`);

  const offRamp = (server: string): OffRampHandler =>
    createOffRamp({
      maps: () => maps.snapshot(),
      dnsServers: [server],
      hostname: 'gateway.example.org',
      log,
      metrics,
      port: rx.port,
      timeouts: { connectMs: 2000, dnsMs: 1000 },
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

  /** MAIL commands Postfix has seen so far (from its disconnect lines). */
  const mailCommands = (): number =>
    rx.postfix
      .log()
      .split('\n')
      .filter((l) => / disconnect from .* mail=/.test(l)).length;

  before(async () => {
    const ca = await makeCa();
    const cert = await ca.issue(domains.map((d) => `mx.${d}`));
    rx = await startReceiver({
      domains,
      users: domains.map((d) => `bob@${d}`),
      tls: { keyPem: cert.keyPem, chainPem: `${cert.certPem.trim()}\n${ca.certPem.trim()}\n` },
      plainAddress: '127.0.0.3',
    });
    const spki = cert.cert.publicKey.export({ type: 'spki', format: 'der' });
    const eeHash = createHash('sha256').update(spki).digest('hex');
    const taHash = createHash('sha256').update(ca.cert.raw).digest('hex');
    const tlsa = (d: string) => `_${rx.port}._tcp.mx.${d}.${Z}.`;
    const records = [
      ...domains.map((d) => `${d}. IN MX 10 mx.${d}.`),
      ...['ee', 'ta', 'bad'].map((d) => `mx.${d}.${Z}. IN A 127.0.0.1`),
      `mx.plain.${Z}. IN A 127.0.0.3`,
      `${tlsa('ee')} IN TLSA 3 1 1 ${eeHash}`,
      `${tlsa('ta')} IN TLSA 2 0 1 ${taHash}`,
      `${tlsa('bad')} IN TLSA 3 1 1 ${randomBytes(32).toString('hex')}`,
      `${tlsa('plain')} IN TLSA 3 1 1 ${eeHash}`,
    ];
    signed = await startSignedZone(Z, records);
    unsigned = await startZone(
      Z,
      records.map((r) => r.replace(' IN ', ' ')),
    );
    maps = MappingEngine.open({ path: ':memory:', pollMs: 0 });
  });

  after(async () => {
    maps?.close();
    await rx?.close();
    await signed?.close();
    await unsigned?.close();
  });

  test('DANE-EE (3 1 1) that matches: delivered over TLS', async () => {
    const [r] = await send(offRamp(signed.server), `ee.${Z}`);
    assert.deepEqual(r, { recipient: `bob@ee.${Z}`, status: 'delivered' });
    const [got] = await rx.waitFor(1);
    assert.match(got?.stored.toString() ?? '', /using TLSv1\.[23]/);
    assert.ok(counted.includes('tlsa/success'), counted.join(' '));
  });

  test('DANE-TA (2 0 1) over the CA in the presented chain, the MX name in the certificate: delivered', async () => {
    const [r] = await send(offRamp(signed.server), `ta.${Z}`);
    assert.equal(r?.status, 'delivered', JSON.stringify(r));
    await rx.waitFor(2);
  });

  test('a TLSA record that matches nothing: temporary, retried, nothing sent', async () => {
    const mails = mailCommands();
    const [r] = await send(offRamp(signed.server), `bad.${Z}`);
    assert.equal(r?.status, 'temporary');
    assert.equal(r?.code, 'ERR_SMTP_DANE');
    assert.match((r as { reason: string }).reason, /no TLSA record matches/);
    assert.ok(counted.includes('tlsa/tlsa-invalid'));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(mailCommands(), mails, 'no MAIL command reached Postfix');
    assert.equal(rx.captured().filter((c) => c.recipient === `bob@bad.${Z}`).length, 0);
  });

  test('TLSA published, no STARTTLS offered: temporary, never sent in clear', async () => {
    const mails = mailCommands();
    const [r] = await send(offRamp(signed.server), `plain.${Z}`);
    assert.equal(r?.status, 'temporary');
    assert.equal(r?.code, 'ERR_SMTP_DANE');
    assert.ok(counted.includes('tlsa/starttls-not-supported'), counted.join(' '));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(mailCommands(), mails);
    assert.equal(rx.captured().filter((c) => c.recipient === `bob@plain.${Z}`).length, 0);
  });

  test('the same records from a resolver that does not validate are not DANE', async () => {
    const before = counted.length;
    const [r] = await send(offRamp(unsigned.server), `bad.${Z}`);
    assert.equal(r?.status, 'delivered');
    assert.deepEqual(counted.slice(before), ['no-policy-found/success']);
  });
});
