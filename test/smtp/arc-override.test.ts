// A trusted ARC sealer's word against a DMARC reject (src/pipeline/dmarc.ts,
// AFTERSMTP_SMTP_ARC_TRUSTED_SEALERS), through the on-ramp, with a real DNS server (unbound)
// publishing the keys and policies and dkimpy's arc_sign (the code behind Debian's arcsign)
// sealing as a mailing list does. The author's domain says p=reject; the list adds a footer,
// which breaks the author's DKIM signature, and sends from its own bounce address, so the
// message fails DMARC at the gateway. The list's seal recorded what it saw before: DKIM and
// DMARC pass. Sealed by the trusted list, the message is taken and delivered; sealed by another
// list, or by the trusted one when it recorded DMARC as failing, it is refused 550 5.7.1.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { zoneTxt } from '../../src/cli/commands/dns.js';
import { dkimSign, type DkimKey } from '../../src/mail/dkim.js';
import { DkimKeys } from '../../src/mail/dkim-keys.js';
import { dmarcCheck } from '../../src/pipeline/dmarc.js';
import type { SecretKeySet } from '../../src/identity/keys.js';
import { startZone, tempDir, unboundMissing, type Dns } from '../offramp/helpers.js';
import { dkimpyArcSign, dkimpyMissing } from '../mail/verifiers.js';
import { DOMAIN, startSmtpGateway, type SmtpGateway } from './helpers.js';

const ZONE = 'override.test';
const AUTHOR = ZONE;
const TRUSTED = `lists.trusted.${ZONE}`;
const OTHER = `other.${ZONE}`;

describe(
  'a trusted ARC sealer overrides a DMARC reject',
  {
    skip: unboundMissing() || dkimpyMissing(),
  },
  () => {
    let dir: string;
    let dns: Dns;
    let keys: DkimKeys;
    let gw: SmtpGateway;
    let dan: SecretKeySet;
    const overrides: { domain: string; sealer: string }[] = [];

    before(async () => {
      dir = tempDir('arc-override');
      keys = new DkimKeys(dir, 'a passphrase for the test keys');
      await keys.generate(AUTHOR, 'a1', 'rsa-sha256');
      await keys.generate(TRUSTED, 't1', 'rsa-sha256');
      await keys.generate(OTHER, 'o1', 'rsa-sha256');
      dns = await startZone(ZONE, [
        ...keys.list().map((k) => `${k.dnsName}. 60 IN TXT ${zoneTxt(k.dnsValue)}`),
        `${AUTHOR}. 60 IN TXT "v=spf1 ip4:192.0.2.1 -all"`,
        `_dmarc.${AUTHOR}. 60 IN TXT "v=DMARC1; p=reject"`,
      ]);
      gw = await startSmtpGateway({
        dnsServers: [dns.server],
        // The parent domain: its subdomains' seals count too.
        policy: [
          dmarcCheck({
            trustedArcSealers: [`trusted.${ZONE}`],
            onOverride: ({ domain, sealer }) => overrides.push({ domain, sealer }),
          }),
        ],
      });
      dan = await gw.user('dan');
    });
    after(async () => {
      await gw?.close();
      await dns?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const keyPem = (domain: string): string =>
      (keys.signingKeys(domain)[0] as DkimKey).privateKey
        .export({ type: 'pkcs1', format: 'pem' })
        .toString();

    /** The author's message, DKIM-signed by its domain, as the list received it. */
    const authored = (subject: string): Buffer => {
      const m = Buffer.from(
        [
          `From: Alice <alice@${AUTHOR}>`,
          `To: dan@${DOMAIN}`,
          `Subject: ${subject}`,
          'Date: Wed, 02 Dec 2026 10:00:00 +0000',
          `Message-ID: <${subject.replace(/\W/g, '')}@${AUTHOR}>`,
          'MIME-Version: 1.0',
          'Content-Type: text/plain; charset=utf-8',
          '',
          'Hello, list.',
          '',
        ].join('\r\n'),
      );
      return Buffer.concat([Buffer.from(dkimSign(m, keys.signingKeys(AUTHOR)), 'latin1'), m]);
    };

    /** What `list` sends on: its results on top, a footer below (the author's DKIM broken), sealed. */
    const throughList = (list: string, subject: string, dmarcSeen: 'pass' | 'fail'): Buffer => {
      const received = authored(subject);
      const withFooter = Buffer.concat([received, Buffer.from(`-- \r\nThe ${list} list\r\n`)]);
      const results =
        `Authentication-Results: ${list}; dkim=${dmarcSeen} header.d=${AUTHOR};` +
        ` dmarc=${dmarcSeen} header.from=${AUTHOR}\r\n`;
      return dkimpyArcSign(dns.server, Buffer.concat([Buffer.from(results), withFooter]), {
        selector: list === TRUSTED ? 't1' : 'o1',
        domain: list,
        keyPem: keyPem(list),
        authservId: list,
        dir,
      });
    };

    const send = (list: string, raw: Buffer) =>
      nodemailer
        .createTransport({ host: '127.0.0.1', port: gw.port.mx, secure: false, ignoreTLS: true })
        .sendMail({ envelope: { from: `bounces@${list}`, to: [`dan@${DOMAIN}`] }, raw });

    const refusedForDmarc = (err: { response?: string }): boolean => {
      assert.equal(
        err.response,
        `550 5.7.1 Message rejected: the DMARC policy of ${AUTHOR} is reject, and the message fails it`,
      );
      return true;
    };

    test('sealed by another list: the policy holds, 550 5.7.1', async () => {
      await assert.rejects(send(OTHER, throughList(OTHER, 'via other', 'pass')), refusedForDmarc);
      assert.deepEqual(overrides, []);
    });

    test('sealed by the trusted list, which saw DMARC pass: taken and delivered', async () => {
      const r = await send(TRUSTED, throughList(TRUSTED, 'via trusted', 'pass'));
      assert.match(r.response, /^250 /);
      const [got] = await gw.inbox(dan, 1);
      assert.equal(got?.opened.subject, 'via trusted');
      const headers = got!.opened.content.toString('latin1');
      // The recipient still sees the failure the gateway found, and the chain that passed.
      assert.match(headers, /dmarc=fail/);
      assert.match(headers, /arc=pass/);
      assert.deepEqual(overrides, [{ domain: AUTHOR, sealer: TRUSTED }]);
    });

    test('sealed by the trusted list, which saw DMARC fail: refused', async () => {
      await assert.rejects(
        send(TRUSTED, throughList(TRUSTED, 'seen failing', 'fail')),
        refusedForDmarc,
      );
      assert.equal(overrides.length, 1);
    });
  },
);
