// The on-ramp with the MappingEngine (docs/MAPS.md): access_map at connect, MAIL and RCPT with
// Postfix's actions, virtual aliases fanning out to one envelope per DID, canonical_maps,
// mx_record_map errors, relay_domains, and maps changed under traffic by another engine on the
// same file (as `aftersmtp maps` does) with nothing lost.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { openEnvelope } from '../../src/envelope/index.js';
import { MappingEngine, mapsDatabasePath } from '../../src/routing/index.js';
import { DOMAIN, RawSmtp, message, startSmtpGateway, type SmtpGateway } from './helpers.js';

/** One message over a fresh connection; the final reply of each step. */
async function send(
  port: number,
  rcpts: readonly string[],
  opts: { from?: string; subject?: string } = {},
): Promise<{ rcpt: string[]; data?: string }> {
  const c = await RawSmtp.open(port);
  try {
    await c.cmd('EHLO client.test');
    await c.cmd(`MAIL FROM:<${opts.from ?? 'someone@sender.test'}>`);
    const rcpt: string[] = [];
    for (const r of rcpts) rcpt.push(await c.cmd(`RCPT TO:<${r}>`));
    if (!rcpt.some((r) => r.startsWith('250'))) return { rcpt };
    await c.cmd('DATA');
    const data = await c.cmd(`${message({ subject: opts.subject ?? 'mapped' })}.`);
    return { rcpt, data };
  } finally {
    c.close();
  }
}

describe('SMTP on-ramp with the maps', () => {
  let gw: SmtpGateway;
  /** Another engine on the same file: what the CLI does, from another process. */
  let admin: MappingEngine;

  before(async () => {
    gw = await startSmtpGateway();
    admin = MappingEngine.open({ path: mapsDatabasePath(gw.dir), pollMs: 0 });
  });

  after(async () => {
    admin.close();
    await gw.close();
  });

  /** Waits until the gateway's engine serves `version` (it polls every 50 ms). */
  async function live(version: number): Promise<void> {
    for (let i = 0; i < 100 && gw.maps.snapshot().version < version; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.ok(gw.maps.snapshot().version >= version, 'the change went live within 2 s');
  }

  test('a virtual alias to three DIDs gives three envelopes, each opened only by its recipient', async () => {
    const [ann, ben, cat] = await Promise.all(['ann', 'ben', 'cat'].map((u) => gw.user(u)));
    const w = admin.set(
      'virtual_alias_maps',
      `sales@${DOMAIN}`,
      `${ann!.did}, ${ben!.did} ${cat!.did}`,
    );
    await live(w.version);
    const r = await send(gw.port.mx, [`sales@${DOMAIN}`], { subject: 'quote request' });
    assert.match(r.data ?? '', /^250 /);
    const copies = await Promise.all([ann, ben, cat].map((u) => gw.inbox(u!, 1)));
    const envelopes = copies.map((c) => c[0]?.envelope);
    for (const [i, u] of [ann, ben, cat].entries()) {
      const mine = copies[i]?.[0];
      assert.equal(mine?.opened.subject, 'quote request');
      assert.deepEqual(
        mine?.opened.recipients.map((x) => x.did),
        [u!.did],
      );
      // No one else's key opens this copy.
      for (const other of [ann, ben, cat].filter((x) => x !== u)) {
        assert.throws(() => openEnvelope(envelopes[i]!, other!));
      }
    }
    assert.equal(new Set(envelopes.map((e) => e?.ciphertext.toString('hex'))).size, 3);
  });

  test('canonical_maps: an address maps to a DID of another name', async () => {
    const support = await gw.user('support-team');
    const w = admin.set('canonical_maps', `helpdesk@${DOMAIN}`, support.did);
    await live(w.version);
    const r = await send(gw.port.mx, [`helpdesk@${DOMAIN}`]);
    assert.match(r.data ?? '', /^250 /);
    assert.equal((await gw.inbox(support, 1)).length, 1);
  });

  test('access_map on sender and recipient: REJECT with text, DEFER, DISCARD, PREPEND', async () => {
    const dan = await gw.user('dan');
    admin.set('access_map', 'spammer@bad.test', 'REJECT go away');
    admin.set('access_map', `dan@${DOMAIN}`, 'PREPEND X-Screened: yes');
    admin.set('access_map', 'later.test', 'DEFER try later');
    const w = admin.set('access_map', 'blackhole@sender.test', 'DISCARD');
    await live(w.version);
    let r = await send(gw.port.mx, [`dan@${DOMAIN}`], { from: 'spammer@bad.test' });
    assert.equal(r.data, undefined, 'nothing is sent after a refused sender');
    // smtpd_delay_reject (the default): the sender's refusal is the answer to each RCPT.
    const c = await RawSmtp.open(gw.port.mx);
    await c.cmd('EHLO client.test');
    assert.match(await c.cmd('MAIL FROM:<spammer@bad.test>'), /^250 /);
    assert.equal(await c.cmd(`RCPT TO:<dan@${DOMAIN}>`), '554 5.7.1 go away\r\n');
    assert.equal(await c.cmd(`RCPT TO:<eve@${DOMAIN}>`), '554 5.7.1 go away\r\n');
    assert.match(await c.cmd('RSET'), /^250 /);
    await c.cmd('MAIL FROM:<x@later.test>');
    assert.match(await c.cmd(`RCPT TO:<dan@${DOMAIN}>`), /^450 4\.7\.1 try later/);
    assert.match(await c.cmd('MAIL FROM:<someone@sender.test>'), /^503 /, 'one transaction');
    assert.match(await c.cmd('RSET'), /^250 /);
    await c.cmd('MAIL FROM:<someone@sender.test>');
    assert.match(await c.cmd(`RCPT TO:<dan@${DOMAIN}>`), /^250 /, 'a new sender is judged anew');
    c.close();
    r = await send(gw.port.mx, [`dan@${DOMAIN}`], { from: 'blackhole@sender.test' });
    assert.match(r.data ?? '', /^250 /, 'a discarded message is accepted');
    r = await send(gw.port.mx, [`dan@${DOMAIN}`], { subject: 'screened' });
    const got = await gw.inbox(dan, 1);
    assert.equal(got.length, 1, 'only the screened one arrived');
    assert.equal(got[0]?.opened.subject, 'screened');
    assert.match(got[0]?.opened.content.toString() ?? '', /\r\nX-Screened: yes\r\n/);
  });

  test('mx_record_map error: refuses at RCPT; relay_domains accepts a domain that is not ours', async () => {
    let w = admin.set('mx_record_map', 'closed.example', 'error:this domain takes no mail');
    w = admin.set('relay_domains', 'partner.example', 'OK');
    await live(w.version);
    const c = await RawSmtp.open(gw.port.mx);
    await c.cmd('EHLO client.test');
    await c.cmd('MAIL FROM:<someone@sender.test>');
    assert.match(await c.cmd('RCPT TO:<x@closed.example>'), /^55\d /);
    assert.match(await c.cmd('RCPT TO:<x@partner.example>'), /^250 /);
    c.close();
  });

  test('maps changed under traffic: every acknowledged message arrives, none refused', async () => {
    const eve = await gw.user('eve');
    const stop = { now: false };
    const churn = (async () => {
      for (let i = 0; !stop.now; i++) {
        admin.set('access_map', `churn${i % 50}@other.test`, 'REJECT churn');
        admin.set('virtual_alias_maps', `list@${DOMAIN}`, `${eve.did}`);
        if (i % 3 === 0) admin.del('access_map', `churn${(i + 25) % 50}@other.test`);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const acknowledged: string[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async (_, k) => {
        for (let i = 0; i < 10; i++) {
          const to = i % 2 === 0 ? `eve@${DOMAIN}` : `list@${DOMAIN}`;
          const r = await send(gw.port.mx, [to], { subject: `t${k}-${i}` });
          assert.match(r.data ?? r.rcpt.join(''), /^250 /);
          acknowledged.push(`t${k}-${i}`);
        }
      }),
    );
    stop.now = true;
    await churn;
    const got = await gw.inbox(eve, 40);
    assert.deepEqual(got.map((g) => g.opened.subject).sort(), [...acknowledged].sort());
  });
});

describe('SMTP on-ramp: access_map on the client address', () => {
  test('a CIDR entry refuses the client at its first RCPT (delayed), with every recipient', async () => {
    const gw = await startSmtpGateway();
    const admin = MappingEngine.open({ path: mapsDatabasePath(gw.dir), pollMs: 0 });
    try {
      const w = admin.set('access_map', '127.0.0.0/8', 'REJECT Your network is blocked');
      for (let i = 0; i < 100 && gw.maps.snapshot().version < w.version; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const c = await RawSmtp.open(gw.port.mx);
      assert.match(c.greeting, /^220 /);
      await c.cmd('EHLO client.test');
      assert.match(await c.cmd('MAIL FROM:<printer@office.example>'), /^250 /);
      const blocked = /^554 5\.7\.1 Your network is blocked/;
      assert.match(await c.cmd(`RCPT TO:<dan@${DOMAIN}>`), blocked);
      assert.match(await c.cmd(`RCPT TO:<eve@${DOMAIN}>`), blocked);
      assert.match(await c.cmd('DATA'), /^503 /, 'no recipient was accepted');
      assert.match(await c.cmd('RSET'), /^250 /);
      await c.cmd('MAIL FROM:<other@office.example>');
      assert.match(await c.cmd(`RCPT TO:<dan@${DOMAIN}>`), blocked, 'for the whole connection');
      c.close();
    } finally {
      admin.close();
      await gw.close();
    }
  });

  test("a client's PREPEND entry reaches every message of its connection", async () => {
    const gw = await startSmtpGateway();
    const admin = MappingEngine.open({ path: mapsDatabasePath(gw.dir), pollMs: 0 });
    try {
      const dan = await gw.user('dan');
      const w = admin.set('access_map', '127.0.0.1', 'PREPEND X-Client-Screened: yes');
      for (let i = 0; i < 100 && gw.maps.snapshot().version < w.version; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const c = await RawSmtp.open(gw.port.mx);
      await c.cmd('EHLO client.test');
      for (const subject of ['first', 'second']) {
        await c.cmd('MAIL FROM:<someone@sender.test>');
        assert.match(await c.cmd(`RCPT TO:<dan@${DOMAIN}>`), /^250 /);
        assert.match(await c.cmd('DATA'), /^354 /);
        assert.match(await c.cmd(`${message({ subject })}.`), /^250 /);
      }
      c.close();
      const got = await gw.inbox(dan, 2);
      assert.deepEqual(got.map((g) => g.opened.subject).sort(), ['first', 'second']);
      for (const g of got) {
        assert.match(g.opened.content.toString(), /\r\nX-Client-Screened: yes\r\n/);
      }
    } finally {
      admin.close();
      await gw.close();
    }
  });

  test('with delay_reject off: a CIDR entry refuses at connect, a sender at MAIL; OK makes it trusted (it may relay)', async () => {
    const gw = await startSmtpGateway({ delayReject: false });
    const admin = MappingEngine.open({ path: mapsDatabasePath(gw.dir), pollMs: 0 });
    try {
      admin.set('access_map', 'spammer@bad.test', 'REJECT go away');
      let w = admin.set('access_map', '127.0.0.0/8', 'REJECT Your network is blocked');
      for (let i = 0; i < 100 && gw.maps.snapshot().version < w.version; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const c = await RawSmtp.open(gw.port.mx);
      // The refusal is the greeting: 554 and the connection closes.
      assert.match(c.greeting, /^554 5\.7\.1 Your network is blocked/);
      assert.ok(await c.waitClosed());
      w = admin.set('access_map', '127.0.0.0/8', 'OK');
      for (let i = 0; i < 100 && gw.maps.snapshot().version < w.version; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const d = await RawSmtp.open(gw.port.mx);
      await d.cmd('EHLO client.test');
      assert.equal(await d.cmd('MAIL FROM:<spammer@bad.test>'), '554 5.7.1 go away\r\n');
      await d.cmd('MAIL FROM:<printer@office.example>');
      // Trusted: an external recipient is accepted (the off-ramp delivers it).
      assert.match(await d.cmd('RCPT TO:<someone@elsewhere.example>'), /^250 /);
      d.close();
    } finally {
      admin.close();
      await gw.close();
    }
  });
});
