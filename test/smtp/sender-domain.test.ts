// The sender's domain must be able to receive mail (src/pipeline/sender-domain.ts,
// AFTERSMTP_SMTP_REJECT_UNKNOWN_SENDER_DOMAIN, Postfix's reject_unknown_sender_domain), against a
// real DNS server (unbound) for the zone `test`: MX records, address records alone, a null MX
// (RFC 7505), records of neither kind, no such name; a silent server refuses nothing; then through
// the on-ramp: 450 4.1.8 for a domain that does not exist, 550 5.7.27 for a null MX, the null
// sender and an access_map OK not looked up.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { DnsClient } from '../../src/net/dns.js';
import { SenderDomainCheck } from '../../src/pipeline/sender-domain.js';
import { silentDns } from '../helpers/dns.js';
import { unboundMissing } from '../client-api/helpers.js';
import { startZone } from '../offramp/helpers.js';
import { DOMAIN, RawSmtp, setMapEntry, startSmtpGateway } from './helpers.js';

describe('the sender domain check', { skip: unboundMissing() }, () => {
  let dns: { server: string; close(): Promise<void> };
  before(async () => {
    dns = await startZone('test', [
      'real.test. MX 10 mx.real.test.',
      'mx.real.test. A 192.0.2.25',
      'address-only.test. AAAA 2001:db8::26',
      'nomail.test. MX 0 .',
      'txt-only.test. TXT "v=spf1 -all"',
    ]);
  });
  after(async () => {
    await dns.close();
  });
  const check = () =>
    new SenderDomainCheck({
      dns: new DnsClient({ servers: [dns.server], timeoutMs: 1000, tries: 1 }),
    });

  test('MX or address records: exists; null MX, neither, or no such name: not', async () => {
    const c = check();
    assert.equal(await c.state('real.test'), 'exists');
    assert.equal(await c.state('address-only.test'), 'exists');
    assert.equal(await c.state('nomail.test'), 'null-mx');
    assert.equal(await c.state('txt-only.test'), 'unknown');
    assert.equal(await c.state('nowhere.test'), 'unknown');
    assert.equal((await c.verdict('someone@[192.0.2.1]')).kind, 'continue', 'an address literal');
  });

  test('a server that does not answer refuses nothing, after the timeout', async () => {
    const silent = await silentDns();
    try {
      const c = new SenderDomainCheck({
        dns: silent.dns,
        timeoutMs: 300,
      });
      const started = Date.now();
      assert.equal((await c.verdict('someone@nowhere.test')).kind, 'continue');
      assert.ok(Date.now() - started < 2000);
    } finally {
      silent.close();
    }
  });

  test('through the on-ramp: 450 4.1.8, 550 5.7.27; the null sender and OK pass', async () => {
    const gw = await startSmtpGateway({ dnsChecks: { senderDomains: check() } });
    try {
      await gw.user('dan');
      const c = await RawSmtp.open(gw.port.mx);
      await c.cmd('EHLO client.test');
      const rcpt = async (from: string): Promise<string> => {
        await c.cmd('RSET');
        assert.match(await c.cmd(`MAIL FROM:<${from}>`), /^250 /);
        return c.cmd(`RCPT TO:<dan@${DOMAIN}>`);
      };
      assert.equal(
        await rcpt('someone@nowhere.test'),
        '450 4.1.8 <someone@nowhere.test>: Sender address rejected: Domain not found\r\n',
      );
      assert.equal(
        await rcpt('someone@nomail.test'),
        '550 5.7.27 <someone@nomail.test>: Sender address rejected: Domain nomail.test sends no mail (null MX, RFC 7505)\r\n',
      );
      assert.match(await rcpt('someone@real.test'), /^250 /);
      assert.match(await rcpt(''), /^250 /, 'bounces are not looked up');
      await setMapEntry(gw, 'access_map', 'nowhere.test', 'OK');
      assert.match(await rcpt('someone@nowhere.test'), /^250 /, 'access_map OK for the sender');
      c.close();
    } finally {
      await gw.close();
    }
  });
});
