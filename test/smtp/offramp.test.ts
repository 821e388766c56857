// Mail out through the pipeline, in one process: what the gateway sends to ordinary addresses
// arrives at a real Postfix (Debian's, the receiving MTA of dest.test, reached by an
// mx_record_map route) and is checked there by independent verifiers against records unbound
// publishes: DKIM by dkimpy and Mail::DKIM, ARC by dkimpy, SRS against what reverses here.
//
// - submission (587, AUTH) and a network access_map trusts on port 25 ("the old printer"):
//   signed with the domain's rsa-sha256 and ed25519-sha256 keys, the reverse path kept;
// - a virtual alias of ours to an address elsewhere: forwarded with an SRS reverse path and an
//   ARC set (i=1 over a message without a chain, i=2 over one dkimpy sealed), the author's own
//   DKIM signature intact; a bounce to the SRS address goes back to the original sender, a
//   forged one is refused;
// - AMP to an ordinary address (sealed to the gateway DID): opened, From rewritten to the
//   sender's address (canonical_maps first), AMP-only fields and Bcc gone, Message-ID and Date
//   kept, signed; what may not go that way is refused;
// - a permanent failure at the receiver comes back as a DSN (RFC 3464) through our own MX.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { zoneTxt } from '../../src/cli/commands/dns.js';
import { encodeEnvelope, sealMessage } from '../../src/envelope/index.js';
import type { SecretKeySet } from '../../src/identity/keys.js';
import { dkimSign, type DkimKey } from '../../src/mail/dkim.js';
import { DkimKeys } from '../../src/mail/dkim-keys.js';
import type { Outcome } from '../../src/pipeline/types.js';
import {
  postfixMissing,
  startReceiver,
  startZone,
  tempDir,
  unboundMissing,
  type Captured,
  type Dns,
  type Receiver,
} from '../offramp/helpers.js';
import {
  dkimpyArcSign,
  dkimpyArcVerify,
  dkimpyMissing,
  dkimpyVerify,
  mailDkimMissing,
  mailDkimVerify,
} from '../mail/verifiers.js';
import { DOMAIN, RawSmtp, startSmtpGateway, type SmtpGateway } from './helpers.js';

const DEST = 'dest.test';
/** The author of forwarded mail, and a first forwarder: subdomains of ours, in our zone. */
const ORIGIN = `orig.${DOMAIN}`;
const FIRST = `first.${DOMAIN}`;
const MISSING = postfixMissing() || unboundMissing() || dkimpyMissing() || mailDkimMissing();

function rfc5322(o: { from: string; to: string; subject: string; extra?: string[] }): Buffer {
  return Buffer.from(
    [
      `From: ${o.from}`,
      `To: ${o.to}`,
      `Subject: ${o.subject}`,
      `Date: ${new Date().toUTCString().replace(/GMT$/, '+0000')}`,
      `Message-ID: <${randomBytes(8).toString('hex')}@test>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      ...(o.extra ?? []),
      '',
      `Body of ${o.subject}.`,
      '',
    ].join('\r\n'),
  );
}

/** One message over port 25 (optionally from another 127.0.0.x); the DATA reply. */
async function smtp25(
  port: number,
  o: { from: string; to: readonly string[]; data: Buffer; localAddress?: string },
): Promise<{ rcpt: string[]; data?: string }> {
  const c = await RawSmtp.open(port, o.localAddress);
  try {
    await c.cmd('EHLO client.test');
    await c.cmd(`MAIL FROM:<${o.from}>`);
    const rcpt: string[] = [];
    for (const r of o.to) rcpt.push(await c.cmd(`RCPT TO:<${r}>`));
    if (!rcpt.some((r) => r.startsWith('250'))) return { rcpt };
    await c.cmd('DATA');
    c.write(o.data);
    return { rcpt, data: await c.cmd('.') };
  } finally {
    c.close();
  }
}

/** The header fields of a stored message, top first, unfolded. */
function fields(m: Buffer): [string, string][] {
  const head = m.toString('utf8').split('\r\n\r\n')[0] ?? '';
  return head
    .replace(/\r\n[ \t]/g, ' ')
    .split('\r\n')
    .map((l) => {
      const i = l.indexOf(':');
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()] as [string, string];
    });
}

function field(m: Buffer, name: string): string | undefined {
  return fields(m).find(([n]) => n === name)?.[1];
}

describe('mail out through the pipeline, checked at a real Postfix', { skip: MISSING }, () => {
  let rx: Receiver;
  let gw: SmtpGateway;
  let dns: Dns;
  let originKeys: DkimKeys;
  let firstKeyPem: string;
  let dir: string;
  let alice: SecretKeySet;

  before(async () => {
    dir = tempDir('offramp-signing');
    rx = await startReceiver({
      domains: [DEST, ORIGIN],
      users: [`bob@${DEST}`, `carol@${DEST}`, `dave@${DEST}`, `erin@${DEST}`, `author@${ORIGIN}`],
    });
    originKeys = new DkimKeys(dir, 'test');
    await originKeys.generate(ORIGIN, 'o1', 'rsa-sha256');
    await originKeys.generate(FIRST, 'f1', 'rsa-sha256');
    firstKeyPem = (originKeys.signingKeys(FIRST)[0] as DkimKey).privateKey
      .export({ type: 'pkcs1', format: 'pem' })
      .toString();
    // The gateway's keys (rsa and ed25519 of DOMAIN) live beside the others.
    await originKeys.ensure(DOMAIN);
    dns = await startZone(DOMAIN, [
      ...originKeys.list().map((k) => `${k.dnsName}. 60 IN TXT ${zoneTxt(k.dnsValue)}`),
      `${ORIGIN}. 60 IN TXT "v=spf1 ip4:127.0.0.1 -all"`,
    ]);
    // The on-ramp checks SPF and DKIM of what it receives through the same server.
    gw = await startSmtpGateway({ outbound: { dkim: originKeys }, dnsServers: [dns.server] });
    const route = `smtp:[127.0.0.1]:${rx.port}`;
    gw.maps.set('mx_record_map', DEST, route);
    gw.maps.set('mx_record_map', ORIGIN, route);
    // Bounces to our own users come back through our own MX.
    gw.maps.set('mx_record_map', DOMAIN, `smtp:[127.0.0.1]:${gw.port.mx}`);
    gw.maps.set('access_map', '127.0.0.2', 'OK');
    gw.maps.set('virtual_alias_maps', `list@${DOMAIN}`, `carol@${DEST}`);
    alice = await gw.user('alice');
  });

  after(async () => {
    await gw?.close();
    await rx?.close();
    await dns?.close();
  });

  /** The next message Postfix stores for `recipient` (one not stored when this was called). */
  async function arrived(recipient: string): Promise<Captured> {
    const seen = new Set(rx.captured().map((c) => c.stored.toString('latin1')));
    for (let i = 0; i < 200; i++) {
      const fresh = rx
        .captured()
        .find((c) => c.recipient === recipient && !seen.has(c.stored.toString('latin1')));
      if (fresh !== undefined) return fresh;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`nothing arrived for ${recipient}; Postfix log:\n${rx.postfix.log()}`);
  }

  /** Expect the next delivery to `recipient`, started by `send`. */
  async function deliver(recipient: string, send: () => Promise<unknown>): Promise<Captured> {
    const waiting = arrived(recipient);
    await send();
    return waiting;
  }

  function assertSignedByUs(m: Buffer): void {
    assert.deepEqual(dkimpyVerify(dns.server, m), [true, true]);
    const perl = mailDkimVerify(dns.server, m);
    assert.ok(
      perl.some((l) => l.startsWith(`pass ${DOMAIN} `) && l.includes('rsa-sha256')),
      perl.join('\n'),
    );
  }

  test('submission with AUTH: DKIM-signed (rsa and ed25519), the reverse path kept', async () => {
    const henry = await gw.user('henry');
    await gw.users.add(`henry@${DOMAIN}`, henry.did, 'correct horse battery');
    const submit = nodemailer.createTransport({
      host: '127.0.0.1',
      port: gw.port.submission,
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: `henry@${DOMAIN}`, pass: 'correct horse battery' },
    });
    const got = await deliver(`bob@${DEST}`, () =>
      submit.sendMail({
        envelope: { from: `henry@${DOMAIN}`, to: [`bob@${DEST}`] },
        raw: rfc5322({ from: `Henry <henry@${DOMAIN}>`, to: `bob@${DEST}`, subject: 'sub' }),
      }),
    );
    assert.equal(got.sender, `henry@${DOMAIN}`);
    assert.match(
      field(got.message, 'dkim-signature') ?? '',
      /a=(rsa|ed25519)-sha256;.*d=example\.org;/,
    );
    assert.equal(field(got.message, 'authentication-results'), undefined, 'none of ours goes out');
    assertSignedByUs(got.message);
  });

  test('a network access_map trusts, on port 25: signed and delivered', async () => {
    const got = await deliver(`dave@${DEST}`, () =>
      smtp25(gw.port.mx, {
        localAddress: '127.0.0.2',
        from: `printer@${DOMAIN}`,
        to: [`dave@${DEST}`],
        data: rfc5322({ from: `printer@${DOMAIN}`, to: `dave@${DEST}`, subject: 'scan' }),
      }),
    );
    assert.equal(got.sender, `printer@${DOMAIN}`);
    assertSignedByUs(got.message);
    // From anywhere else, the same is refused: port 25 never relays.
    const r = await smtp25(gw.port.mx, {
      from: `printer@${DOMAIN}`,
      to: [`dave@${DEST}`],
      data: Buffer.alloc(0),
    });
    assert.match(r.rcpt[0] ?? '', /^554 5\.7\.1 /);
  });

  test('an alias to an address elsewhere: SRS reverse path, ARC i=1, the author signature intact', async () => {
    const original = rfc5322({
      from: `Author <author@${ORIGIN}>`,
      to: `list@${DOMAIN}`,
      subject: 'fwd',
    });
    const signed = Buffer.concat([
      Buffer.from(dkimSign(original, originKeys.signingKeys(ORIGIN)), 'latin1'),
      original,
    ]);
    const got = await deliver(`carol@${DEST}`, () =>
      smtp25(gw.port.mx, { from: `author@${ORIGIN}`, to: [`list@${DOMAIN}`], data: signed }),
    );
    const rp = got.sender ?? '';
    assert.match(
      rp,
      new RegExp(`^SRS0=[^=]{4}=[A-Z2-7]{2}=${ORIGIN.replace(/\./g, '\\.')}=author@example\\.org$`),
    );
    assert.match(
      field(got.message, 'arc-seal') ?? '',
      /^i=1; a=rsa-sha256; t=\d+; cv=none; d=example\.org;/,
    );
    assert.equal(dkimpyArcVerify(dns.server, got.message).cv, 'pass');
    // The author's signature still verifies (nothing it covers was changed).
    assert.deepEqual(dkimpyVerify(dns.server, got.message), [true]);

    // A bounce to the SRS address goes back to the author; a forged one is refused.
    const srs = rp;
    const bounce = await deliver(`author@${ORIGIN}`, () =>
      smtp25(gw.port.mx, {
        from: '',
        to: [srs],
        data: rfc5322({ from: `MAILER-DAEMON@${DEST}`, to: srs, subject: 'bounce' }),
      }),
    );
    assert.equal(field(bounce.message, 'subject'), 'bounce');
    assert.equal(bounce.sender, '');
    // The hash is compared without regard to case (SRS addresses may be case-folded on the way).
    const forged = srs.replace(
      /^SRS0=(.)/,
      (_m, c: string) => `SRS0=${c.toUpperCase() === 'A' ? 'B' : 'A'}`,
    );
    const r = await smtp25(gw.port.mx, { from: '', to: [forged], data: Buffer.alloc(0) });
    assert.match(r.rcpt[0] ?? '', /^550 5\.1\.1 /);
  });

  test('ARC i=2 over a chain dkimpy began, cv=pass', async () => {
    const original = rfc5322({ from: `author@${ORIGIN}`, to: `list@${FIRST}`, subject: 'second' });
    const signed = Buffer.concat([
      Buffer.from(dkimSign(original, originKeys.signingKeys(ORIGIN)), 'latin1'),
      original,
    ]);
    const sealed = dkimpyArcSign(
      dns.server,
      Buffer.concat([Buffer.from(`Authentication-Results: ${FIRST}; dkim=pass\r\n`), signed]),
      { selector: 'f1', domain: FIRST, keyPem: firstKeyPem, authservId: FIRST, dir },
    );
    const got = await deliver(`carol@${DEST}`, () =>
      smtp25(gw.port.mx, { from: `list-bounces@${FIRST}`, to: [`list@${DOMAIN}`], data: sealed }),
    );
    assert.match(field(got.message, 'arc-seal') ?? '', /^i=2; a=rsa-sha256; t=\d+; cv=pass;/);
    assert.equal(dkimpyArcVerify(dns.server, got.message).cv, 'pass');
  });

  /** What the client API hands the pipeline for `content` sealed to the gateway DID. */
  function toGateway(author: SecretKeySet, content: Buffer, contentType = 'message/rfc822') {
    const [sealed] = sealMessage({
      author,
      to: [gw.keys.record],
      body: { subject: 'out', contentType, content },
    });
    const envelope = sealed?.envelope as NonNullable<typeof sealed>['envelope'];
    return gw.pipeline.submitAmp({
      transaction: randomBytes(8).toString('hex'),
      client: { entrance: 'client-api', address: '127.0.0.1', port: 0, tls: true, did: author.did },
      envelope,
      bytes: encodeEnvelope(envelope),
      receivedAt: Date.now(),
    });
  }

  test('AMP to an ordinary address: opened at the gateway, rewritten, signed', async () => {
    const content = rfc5322({
      from: 'Alice Liddell <did-address-the-client-used@nowhere.test>',
      to: `Erin <erin@${DEST}>`,
      subject: 'from AMP',
      extra: [
        `X-AfterSMTP-Rcpt-To: erin@${DEST}`,
        `Bcc: secret@${DEST}`,
        'Sender: someone-else@nowhere.test',
        'Return-Path: <forged@nowhere.test>',
        'X-AfterSMTP-Note: internal',
      ],
    });
    let outcome: Outcome | undefined;
    const got = await deliver(`erin@${DEST}`, async () => {
      outcome = await toGateway(alice, content);
    });
    assert.equal(outcome?.kind, 'accepted', JSON.stringify(outcome));
    const m = got.message;
    assert.equal(field(m, 'from'), `"Alice Liddell" <alice@${DOMAIN}>`);
    assert.equal(got.sender, `alice@${DOMAIN}`);
    for (const gone of ['sender', 'bcc', 'x-aftersmtp-rcpt-to', 'x-aftersmtp-note']) {
      assert.equal(field(m, gone), undefined, gone);
    }
    assert.equal(field(m, 'message-id'), field(content, 'message-id'));
    assert.equal(field(m, 'date'), field(content, 'date'));
    assert.match(
      field(m, 'received') ?? '',
      /by mx\.example\.org \(AfterSMTP\) with AMP id [0-9a-f]{32}/,
    );
    assertSignedByUs(m);

    // canonical_maps names the address mail from the DID leaves with.
    gw.maps.set('canonical_maps', alice.did, `helpdesk@${DOMAIN}`);
    const again = await deliver(`erin@${DEST}`, () => toGateway(alice, content));
    assert.equal(field(again.message, 'from'), `"Alice Liddell" <helpdesk@${DOMAIN}>`);
    assert.equal(again.sender, `helpdesk@${DOMAIN}`);
    gw.maps.del('canonical_maps', alice.did);
  });

  test('AMP to ordinary addresses: what may not go that way is refused', async () => {
    const refusal = async (content: Buffer, contentType?: string): Promise<string> => {
      const o = await toGateway(alice, content, contentType);
      assert.equal(o.kind, 'refused');
      return o.kind === 'refused' ? o.refusal.code : '';
    };
    const msg = (rcpt: string) =>
      rfc5322({
        from: 'a@b.test',
        to: rcpt,
        subject: 'x',
        extra: [`X-AfterSMTP-Rcpt-To: ${rcpt}`],
      });
    assert.equal(await refusal(msg(`bob@${DOMAIN}`)), 'ERR_RECIPIENT_IS_AMP');
    assert.equal(await refusal(msg(`"quoted local"@${DEST}`)), 'ERR_RECIPIENT_INVALID');
    assert.equal(
      await refusal(rfc5322({ from: 'a@b.test', to: 'x@y.test', subject: 'none' })),
      'ERR_RECIPIENT_INVALID',
    );
    assert.equal(await refusal(msg(`erin@${DEST}`), 'text/plain'), 'ERR_CONTENT_TYPE');
  });

  test('a recipient the receiver refuses: a DSN comes back to the submitting user', async () => {
    const henry = await gw.user('henry2');
    await gw.users.add(`henry2@${DOMAIN}`, henry.did, 'another battery');
    const submit = nodemailer.createTransport({
      host: '127.0.0.1',
      port: gw.port.submission,
      secure: false,
      requireTLS: true,
      tls: { rejectUnauthorized: false },
      auth: { user: `henry2@${DOMAIN}`, pass: 'another battery' },
    });
    await submit.sendMail({
      envelope: { from: `henry2@${DOMAIN}`, to: [`nobody@${DEST}`] },
      raw: rfc5322({ from: `henry2@${DOMAIN}`, to: `nobody@${DEST}`, subject: 'lost' }),
    });
    const [dsn] = await gw.inbox(henry, 1, 20_000);
    const text = dsn?.opened.content.toString() ?? '';
    assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status/);
    assert.match(text, new RegExp(`Final-Recipient: rfc822; nobody@${DEST.replace('.', '\\.')}`));
    assert.match(text, /Status: 5\.\d\.\d/);
    assert.match(text, /Subject: lost/, 'the original headers come back');
  });
});
