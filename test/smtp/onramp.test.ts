// The SMTP on-ramp end to end in one process: real clients (nodemailer, raw sockets) against the
// real listeners, pipeline, queue, delivery worker and store; SPF, DKIM and DMARC evaluated
// against a real DNS server (unbound) that publishes the sending domain's records.
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { connect } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { dkimSign } from 'mailauth';
import nodemailer, { type Transporter } from 'nodemailer';
import { verifyGatewaySignature } from '../../src/envelope/gateway.js';
import { startUnbound, type DnsServer } from '../client-api/helpers.js';
import { DOMAIN, RawSmtp, message, startSmtpGateway, type SmtpGateway } from './helpers.js';

const SENDER_DOMAIN = 'sender.test';
const DKIM_SELECTOR = 'sel';

describe('SMTP on-ramp', () => {
  let dns: DnsServer;
  let gw: SmtpGateway;
  const dkimKey = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const dkimPublic = dkimKey.publicKey.export({ type: 'spki', format: 'der' }).toString('base64');

  before(async () => {
    dns = await startUnbound('test', {
      [SENDER_DOMAIN]: ['v=spf1 ip4:127.0.0.1 -all'],
      [`_dmarc.${SENDER_DOMAIN}`]: ['v=DMARC1; p=reject'],
      [`${DKIM_SELECTOR}._domainkey.${SENDER_DOMAIN}`]: [`v=DKIM1; k=rsa; p=${dkimPublic}`],
    });
    gw = await startSmtpGateway({ dnsServers: [dns.server] });
  });

  after(async () => {
    await gw.close();
    await dns.close();
  });

  function mx(): Transporter {
    return nodemailer.createTransport({
      host: '127.0.0.1',
      port: gw.port.mx,
      secure: false,
      ignoreTLS: true,
      name: `mail.${SENDER_DOMAIN}`,
    });
  }

  async function signed(raw: string): Promise<string> {
    const options = {
      canonicalization: 'relaxed/relaxed',
      signatureData: [
        {
          signingDomain: SENDER_DOMAIN,
          selector: DKIM_SELECTOR,
          privateKey: dkimKey.privateKey.export({ type: 'pkcs8', format: 'pem' }),
        },
      ],
    };
    const r = await dkimSign(raw, options as unknown as Parameters<typeof dkimSign>[1]);
    assert.match(r.signatures, /^DKIM-Signature: /);
    return r.signatures + raw;
  }

  test('mail from the internet reaches its DID sealed, with what the gateway verified', async () => {
    const alice = await gw.user('alice');
    const raw = await signed(
      message({ from: `Carol <carol@${SENDER_DOMAIN}>`, subject: 'Quarterly report' }),
    );
    const info = await mx().sendMail({
      envelope: { from: `carol@${SENDER_DOMAIN}`, to: [`alice@${DOMAIN}`] },
      raw,
    });
    assert.match(info.response ?? '', /^250 2\.0\.0 Ok: queued as [0-9a-f]{32}$/);
    const [got] = await gw.inbox(alice, 1);
    assert.ok(got, "one envelope in alice's mailbox");
    const { envelope, opened } = got;
    assert.equal(opened.sender.did, gw.keys.did, 'the gateway is the delegated author');
    assert.deepEqual(
      opened.recipients.map((r) => r.did),
      [alice.did],
      'the signed recipient list names alice only',
    );
    assert.equal(opened.contentType, 'message/rfc822');
    assert.equal(opened.subject, 'Quarterly report');
    const text = opened.content.toString();
    assert.match(text, /^Received: from mail\.sender\.test \(\[127\.0\.0\.1\]\)/);
    assert.match(text, /Authentication-Results: mx\.example\.org;/);
    assert.match(text, /spf=pass/);
    assert.match(text, /dkim=pass/);
    assert.match(text, /dmarc=pass/);
    assert.ok(text.endsWith(raw), 'the message follows the trace lines byte for byte');
    const o = envelope.origin;
    assert.ok(o, 'the envelope carries its origin');
    assert.equal(o.entrance, 'smtp');
    assert.equal(o.mailFrom, `carol@${SENDER_DOMAIN}`);
    assert.equal(o.headerFrom, `carol@${SENDER_DOMAIN}`);
    assert.equal(o.clientAddress, '127.0.0.1');
    assert.deepEqual([o.spf, o.dkim, o.dmarc], ['pass', 'pass', 'pass']);
    // The origin is covered by the gateway signature: changing it breaks the signature.
    const gwRecord = gw.keys.record;
    verifyGatewaySignature(envelope, gwRecord);
    assert.throws(() =>
      verifyGatewaySignature({ ...envelope, origin: { ...o, spf: 'fail' } }, gwRecord),
    );
    assert.equal(info.response?.split(' ').at(-1), envelope.messageId.toString('hex'));
  });

  test('SPF and DMARC failures are recorded, not hidden', async () => {
    const bob = await gw.user('bob');
    await mx().sendMail({
      envelope: { from: 'mallory@sender.test', to: [`bob@${DOMAIN}`] },
      // Claims sender.test in From, but is not signed by it; the client address does pass SPF
      // (127.0.0.1), so DMARC passes on SPF alignment only if the envelope domain aligns.
      raw: message({ from: 'ceo@example.com' }),
    });
    const [got] = await gw.inbox(bob, 1);
    assert.equal(got?.envelope.origin?.dkim, 'none');
    assert.equal(got?.envelope.origin?.headerFrom, 'ceo@example.com');
  });

  test('a domain not served here is refused at RCPT, before any data (no open relay)', async () => {
    const c = await RawSmtp.open(gw.port.mx);
    await c.cmd('EHLO client.test');
    assert.match(await c.cmd('MAIL FROM:<someone@sender.test>'), /^250 /);
    assert.equal(
      await c.cmd('RCPT TO:<victim@elsewhere.example>'),
      '554 5.7.1 <victim@elsewhere.example>: Relay access denied\r\n',
    );
    assert.match(await c.cmd('DATA'), /^503 /);
    c.close();
  });

  test('an unknown local user is refused at RCPT with 550 5.1.1', async () => {
    const c = await RawSmtp.open(gw.port.mx);
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<someone@sender.test>');
    assert.match(await c.cmd(`RCPT TO:<nobody@${DOMAIN}>`), /^550 5\.1\.1 <nobody@example\.org>:/);
    c.close();
  });

  test('recipients that split are committed once, for the accepted ones only', async () => {
    const dora = await gw.user('dora');
    const erin = await gw.user('erin');
    const c = await RawSmtp.open(gw.port.mx);
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<someone@sender.test>');
    assert.match(await c.cmd(`RCPT TO:<dora@${DOMAIN}>`), /^250 /);
    assert.match(await c.cmd(`RCPT TO:<ghost@${DOMAIN}>`), /^550 /);
    assert.match(await c.cmd(`RCPT TO:<Erin+lists@${DOMAIN}>`), /^250 /);
    assert.match(await c.cmd('DATA'), /^354 /);
    const reply = await c.cmd(`${message({ subject: 'split' })}.`);
    assert.match(reply, /^250 2\.0\.0 Ok: queued as /);
    c.close();
    const [d] = await gw.inbox(dora, 1);
    const [e] = await gw.inbox(erin, 1);
    assert.equal(d?.opened.subject, 'split');
    assert.equal(e?.opened.subject, 'split');
    // One message id for both copies; each copy names only its own recipient.
    assert.ok(d?.envelope.messageId.equals(e?.envelope.messageId as Buffer));
    assert.deepEqual(
      d?.opened.recipients.map((r) => r.did),
      [dora.did],
    );
    assert.deepEqual(
      e?.opened.recipients.map((r) => r.did),
      [erin.did],
    );
    await new Promise((r) => setTimeout(r, 200));
    assert.equal((await gw.inbox(dora, 2, 0)).length, 1, 'exactly one copy');
  });

  for (const [name, data] of [
    ['<LF>.<LF>', 'Subject: x\r\n\r\nhello\n.\nMAIL FROM:<a@b.test>\r\n'],
    ['<CR><LF>.<LF>', 'Subject: x\r\n\r\nhello\r\n.\nMAIL FROM:<a@b.test>\r\n'],
    ['<LF>.<CR><LF>', 'Subject: x\r\n\r\nhello\n.\r\nMAIL FROM:<a@b.test>\r\n'],
    ['<CR>.<CR>', 'Subject: x\r\n\r\nhello\r.\rMAIL FROM:<a@b.test>\r\n'],
    ['a NUL byte', 'Subject: x\r\n\r\nhel\0lo\r\n'],
    ['a bare CR at a chunk boundary', 'Subject: x\r\n\r\nhello\r'],
  ] as const) {
    test(`SMTP smuggling: ${name} in DATA is refused with 521 and nothing is committed`, async () => {
      const frank = await gw.user(`frank${name.replace(/\W/g, '').toLowerCase()}`);
      const c = await RawSmtp.open(gw.port.mx);
      await c.cmd('EHLO client.test');
      await c.cmd('MAIL FROM:<someone@sender.test>');
      await c.cmd(`RCPT TO:<${frank.did.split(':')[3]}@${DOMAIN}>`);
      assert.match(await c.cmd('DATA'), /^354 /);
      c.write(data);
      if (name === 'a bare CR at a chunk boundary') {
        await new Promise((r) => setTimeout(r, 50));
        c.write('X\r\n.\r\n');
      }
      assert.match(await c.reply(), /^521 5\.5\.2 /);
      assert.ok(await c.waitClosed());
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await gw.inbox(frank, 1, 0)).length, 0, 'nothing reached the mailbox');
    });
  }

  test('a bare LF in a command is refused with 521 and the connection closed', async () => {
    const c = await RawSmtp.open(gw.port.mx);
    await c.cmd('EHLO client.test');
    c.write('MAIL FROM:<someone@sender.test>\n');
    assert.match(await c.reply(), /^521 5\.5\.2 /);
    assert.ok(await c.waitClosed());
  });

  test('plaintext pipelined behind STARTTLS is discarded and the connection dropped', async () => {
    const c = await RawSmtp.open(gw.port.mx);
    await c.cmd('EHLO client.test');
    c.write('STARTTLS\r\nMAIL FROM:<injected@sender.test>\r\n');
    assert.ok(await c.waitClosed(), 'the connection is closed');
    assert.equal(await c.reply(100), '', 'no reply at all, not even to STARTTLS');
  });

  test('RFC 5321 limits: command lines, text lines, address lengths, message size', async () => {
    const c = await RawSmtp.open(gw.port.mx);
    await c.cmd('EHLO client.test');
    assert.match(await c.cmd(`MAIL FROM:<${'a'.repeat(65)}@sender.test>`), /^501 /);
    // smtp-server closes a connection whose command line is over the limit.
    assert.match(await c.cmd(`NOOP ${'x'.repeat(600)}`), /^421 /);
    assert.ok(await c.waitClosed());
    c.close();
    const gina = await gw.user('gina');
    const d = await RawSmtp.open(gw.port.mx);
    await d.cmd('EHLO client.test');
    await d.cmd('MAIL FROM:<someone@sender.test>');
    await d.cmd(`RCPT TO:<gina@${DOMAIN}>`);
    await d.cmd('DATA');
    assert.match(await d.cmd(`Subject: long\r\n\r\n${'y'.repeat(1001)}\r\n.`), /^550 5\.6\.0 /);
    d.close();
    assert.equal((await gw.inbox(gina, 1, 200)).length, 0);
  });

  test('submission on 587: STARTTLS, then AUTH, then a sender the login owns', async () => {
    const henry = await gw.user('henry');
    const ivy = await gw.user('ivy');
    await gw.users.add(`henry@${DOMAIN}`, henry.did, 'correct horse battery');
    // Without AUTH, MAIL is refused; AUTH in plaintext is refused.
    const c = await RawSmtp.open(gw.port.submission);
    await c.cmd('EHLO client.test');
    assert.match(await c.cmd('MAIL FROM:<henry@example.org>'), /^530 /);
    assert.match(await c.cmd('AUTH PLAIN AGhlbnJ5QGV4YW1wbGUub3JnAHdyb25n'), /^5\d\d /);
    c.close();
    const submit = nodemailer.createTransport({
      host: '127.0.0.1',
      port: gw.port.submission,
      secure: false,
      requireTLS: true,
      tls: { ca: gw.tlsCert, servername: 'example.org', rejectUnauthorized: false },
      auth: { user: `henry@${DOMAIN}`, pass: 'correct horse battery' },
    });
    const info = await submit.sendMail({
      envelope: { from: `henry@${DOMAIN}`, to: [`ivy@${DOMAIN}`] },
      raw: message({ from: `Henry <henry@${DOMAIN}>`, to: `ivy@${DOMAIN}`, subject: 'lunch' }),
    });
    assert.match(info.response ?? '', /^250 2\.0\.0 Ok: queued as /);
    const [got] = await gw.inbox(ivy, 1);
    assert.equal(got?.opened.subject, 'lunch');
    assert.equal(got?.envelope.origin?.entrance, 'submission');
    assert.equal(got?.envelope.origin?.login, `henry@${DOMAIN}`);
    assert.match(got?.opened.content.toString() ?? '', /with ESMTPSA id /);
    // Another user's address as the sender is refused.
    await assert.rejects(
      submit.sendMail({
        envelope: { from: `ivy@${DOMAIN}`, to: [`ivy@${DOMAIN}`] },
        raw: message(),
      }),
      /553 5\.7\.1/,
    );
    // A wrong password: 535 5.7.8.
    const wrong = nodemailer.createTransport({
      host: '127.0.0.1',
      port: gw.port.submission,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: `henry@${DOMAIN}`, pass: 'wrong password' },
    });
    await assert.rejects(wrong.verify(), /535 5\.7\.8/);
  });

  test('submission on 465 over implicit TLS', async () => {
    const jack = await gw.user('jack');
    await gw.users.add(`jack@${DOMAIN}`, jack.did, 'another good passphrase');
    const submit = nodemailer.createTransport({
      host: '127.0.0.1',
      port: gw.port.submissions,
      secure: true,
      tls: { rejectUnauthorized: false },
      auth: { user: `jack@${DOMAIN}`, pass: 'another good passphrase' },
    });
    await submit.sendMail({
      envelope: { from: `jack@${DOMAIN}`, to: [`jack@${DOMAIN}`] },
      raw: message({ subject: 'note to self' }),
    });
    const [got] = await gw.inbox(jack, 1);
    assert.equal(got?.opened.subject, 'note to self');
  });
});

describe('SMTP on-ramp limits', () => {
  test('connections per address and commands per minute are capped', async () => {
    const gw = await startSmtpGateway({
      limits: { maxConnectionsPerAddress: 2, commandsPerMinute: 30 },
    });
    try {
      const a = await RawSmtp.open(gw.port.mx);
      const b = await RawSmtp.open(gw.port.mx);
      const c = connect(gw.port.mx, '127.0.0.1');
      const closedEarly = await new Promise<boolean>((resolve) => {
        let data = '';
        c.on('data', (d: Buffer) => (data += d.toString()));
        c.on('close', () => resolve(!data.startsWith('220')));
        c.on('error', () => undefined);
      });
      assert.ok(closedEarly, 'the third connection from one address is closed without a greeting');
      let reply = '';
      for (let i = 0; i < 40 && !reply.startsWith('421'); i++) reply = await a.cmd('NOOP');
      assert.match(reply, /^421 4\.7\.0 /);
      assert.ok(await a.waitClosed());
      a.close();
      b.close();
    } finally {
      await gw.close();
    }
  });
});
