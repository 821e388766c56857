// MailScript end to end: scripts stored the way `aftersmtp script set` stores them, run by the
// policy stage of a real gateway (startSmtpGateway: ledger, queue, mailbox store, delivery worker,
// SMTP listeners) and driven by a real SMTP client (nodemailer). Every action; a runaway script
// (an endless loop, a memory bomb) costs its message a temporary failure and the next message is
// served; the seed's example delivered to a real local HTTP server standing in for Slack; a
// webhook delivered after its server comes back (the queue's retries); a new version picked up by
// the running gateway.
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { mapsDatabasePath } from '../../src/routing/index.js';
import type { PolicyCheck } from '../../src/pipeline/policy.js';
import type { Effects } from '../../src/pipeline/types.js';
import { mailScriptCheck } from '../../src/script/check.js';
import { ScriptSandbox } from '../../src/script/sandbox.js';
import { ScriptStore } from '../../src/script/store.js';
import { createWebhookDelivery } from '../../src/script/webhook.js';
import type { SecretKeySet } from '../../src/identity/keys.js';
import { openEnvelope } from '../../src/envelope/index.js';
import { DOMAIN, startSmtpGateway, type SmtpGateway } from '../smtp/helpers.js';
import { until } from '../helpers/wait.js';

const DEST = 'elsewhere.test';

interface Hook {
  readonly server: Server;
  readonly port: number;
  readonly calls: { path: string; headers: IncomingMessage['headers']; body: unknown }[];
  /** Answers with this status (default 200). */
  status: number;
}

async function startHook(port = 0): Promise<Hook> {
  const hook: Hook = { server: createServer(), port: 0, calls: [], status: 200 };
  hook.server.on('request', (req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      hook.calls.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(body) });
      res.statusCode = hook.status;
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => hook.server.listen(port, '127.0.0.1', resolve));
  return Object.assign(hook, { port: (hook.server.address() as AddressInfo).port });
}

function message(o: { subject: string; to: string; extra?: string[] }): string {
  return [
    `From: Carol <carol@sender.test>`,
    `To: ${o.to}`,
    `Subject: ${o.subject}`,
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${randomBytes(8).toString('hex')}@sender.test>`,
    ...(o.extra ?? []),
    '',
    `Body of ${o.subject}.`,
    '',
  ].join('\r\n');
}

describe('MailScript through SMTP', () => {
  let gw: SmtpGateway;
  let store: ScriptStore;
  let sandbox: ScriptSandbox;
  let slack: Hook;
  let alice: SecretKeySet;
  let bob: SecretKeySet;
  let receiver: SMTPServer;
  let receiverPort = 0;
  const received: { to: string[]; data: string }[] = [];
  const errors: { obj: Record<string, unknown>; msg: string }[] = [];
  /** What the checks before it asked for, as a later check of the policy stage sees it. */
  const seen: Effects[] = [];
  const webhooks = new Map<string, string>();
  let downPort = 0;

  before(async () => {
    slack = await startHook();
    // A port with nothing listening yet: the "ops" endpoint is down when the first call is made.
    const probe = await startHook();
    downPort = probe.port;
    await new Promise((r) => probe.server.close(r));
    webhooks.set('slack', `http://127.0.0.1:${slack.port}/services/T000/B000`);
    webhooks.set('ops', `http://127.0.0.1:${downPort}/hook`);
    sandbox = await ScriptSandbox.create({ timeoutMs: 100, memoryBytes: 32 * 1024 * 1024 });
    receiver = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData(stream, session, cb) {
        let data = '';
        stream.on('data', (d: Buffer) => (data += d.toString()));
        stream.on('end', () => {
          received.push({ to: session.envelope.rcptTo.map((r) => r.address), data });
          cb();
        });
      },
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    receiverPort = (receiver.server.address() as AddressInfo).port;
    const spy: PolicyCheck = (_subject, _maps, prior) => {
      seen.push(prior);
      return { kind: 'continue' };
    };
    gw = await startSmtpGateway({
      outbound: { port: receiverPort },
      retry: { baseMs: 300, capMs: 600, maxAgeMs: 120_000 },
      webhook: createWebhookDelivery({ allowed: () => webhooks, timeoutMs: 2000 }),
      policy: ({ dir }) => {
        store = ScriptStore.open({ path: mapsDatabasePath(dir), pollMs: 50 });
        return [
          mailScriptCheck({
            scripts: () => store.snapshot(),
            sandbox,
            webhooks,
            log: {
              info: () => undefined,
              warn: () => undefined,
              error: (obj, msg) => errors.push({ obj: obj as Record<string, unknown>, msg }),
            },
          }),
          spy,
        ];
      },
    });
    alice = await gw.user('alice');
    bob = await gw.user('bob');
  });

  after(async () => {
    await gw.close();
    store.close();
    sandbox.close();
    slack.server.close();
    await new Promise<void>((r) => receiver.close(() => r()));
  });

  function mx() {
    return nodemailer.createTransport({
      host: '127.0.0.1',
      port: gw.port.mx,
      secure: false,
      ignoreTLS: true,
      name: 'mail.sender.test',
    });
  }

  async function send(subject: string, o: { to?: string; extra?: string[] } = {}) {
    const to = o.to ?? `alice@${DOMAIN}`;
    return mx().sendMail({
      envelope: { from: 'carol@sender.test', to: [to] },
      raw: message({ subject, to, ...(o.extra !== undefined ? { extra: o.extra } : {}) }),
    });
  }

  /** Sets the global script and waits until the gateway serves that version. */
  function script(source: string, scope = 'global'): number {
    return store.set(scope, source).version;
  }

  test("the seed's example: urgent mail calls the slack webhook, and is delivered", async () => {
    script("if (headers.contains('urgent')) route_to_webhook('slack')");
    const info = await send('URGENT: the build is red');
    assert.match(info.response, /^250 /);
    const call = await until('the Slack webhook is called', () => slack.calls[0]);
    assert.equal(call.path, '/services/T000/B000');
    assert.equal(call.headers['content-type'], 'application/json');
    const body = call.body as { subject: string; sender: string; recipients: string[] };
    assert.equal(body.subject, 'URGENT: the build is red');
    assert.equal(body.sender, 'carol@sender.test');
    assert.deepEqual(body.recipients, [`alice@${DOMAIN}`]);
    const [got] = await gw.inbox(alice, 1);
    assert.equal(got?.opened.subject, 'URGENT: the build is red');
    // Not urgent: no call.
    await send('lunch?');
    await gw.inbox(alice, 2);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(slack.calls.length, 1);
  });

  test('reject(code, text): the SMTP reply carries the code and text', async () => {
    script(
      "if (envelope.sender.endsWith('@sender.test')) reject(550, 'We do not take mail from sender.test')",
    );
    await assert.rejects(
      send('spam'),
      (err: Error & { responseCode?: number; response?: string }) => {
        assert.equal(err.responseCode, 550);
        assert.match(err.response ?? '', /We do not take mail from sender\.test/);
        return true;
      },
    );
    script("reject(452, 'Come back later')");
    await assert.rejects(send('later'), { responseCode: 452 });
  });

  test('defer(text) is a temporary failure', async () => {
    script("defer('Greylisted, try again in 5 minutes')");
    await assert.rejects(
      send('grey'),
      (err: Error & { responseCode?: number; response?: string }) => {
        assert.equal(err.responseCode, 451);
        assert.match(err.response ?? '', /Greylisted/);
        return true;
      },
    );
  });

  test('discard(): accepted, delivered to nobody', async () => {
    const before = (await gw.store.list(bob.did)).envelopes.length;
    script("if (headers.get('subject') === 'drop me') discard()");
    assert.match((await send('drop me', { to: `bob@${DOMAIN}` })).response, /^250 /);
    await send('keep me', { to: `bob@${DOMAIN}` });
    const got = await gw.inbox(bob, before + 1);
    assert.deepEqual(
      got.slice(before).map((g) => g.opened.subject),
      ['keep me'],
    );
  });

  test('add_header(): the header is on the delivered message; CR/LF injection refused', async () => {
    script("add_header('X-Script', 'checked by ' + entrance + ', spf=' + auth.spf)");
    const n = (await gw.store.list(alice.did)).envelopes.length;
    await send('with header');
    const got = await gw.inbox(alice, n + 1);
    const text = got[n]?.opened.content.toString() ?? '';
    assert.match(text, /^X-Script: checked by smtp, spf=\w+/m);
    errors.length = 0;
    script("add_header('X-Evil', 'a\\r\\nBcc: victim@example.com')");
    await assert.rejects(send('injection'), { responseCode: 451 });
    assert.equal(errors[0]?.msg, 'MailScript failed: the message is deferred');
    assert.match(String(errors[0]?.obj.error), /CR, LF/);
  });

  test("set_junk(): the recipients' copies are filed in their Junk folder", async () => {
    script('set_junk()');
    seen.length = 0;
    const junk = async () => (await gw.store.list(alice.did, { folder: 'junk' })).envelopes;
    const before = (await junk()).length;
    await send('junk?');
    assert.deepEqual(seen.at(-1)?.junk, [`alice@${DOMAIN}`]);
    const filed = await until('the copy in Junk', async () => {
      const now = await junk();
      return now.length > before && now;
    });
    const opened = openEnvelope(filed.at(-1)!.envelope, alice);
    assert.equal(opened.subject, 'junk?');
    assert.match(opened.content.toString(), /^X-Spam-Flag: YES\r$/m);
  });

  test('redirect(): the message goes to the new recipient only', async () => {
    const a = (await gw.store.list(alice.did)).envelopes.length;
    const b = (await gw.store.list(bob.did)).envelopes.length;
    script(`redirect('bob@${DOMAIN}')`);
    assert.match((await send('for alice, to bob')).response, /^250 /);
    const got = await gw.inbox(bob, b + 1);
    assert.equal(got[b]?.opened.subject, 'for alice, to bob');
    assert.equal((await gw.store.list(alice.did)).envelopes.length, a);
  });

  test('route_via(): mail for an ordinary address goes through the route given', async () => {
    gw.maps.set('access_map', '127.0.0.1', 'OK'); // this client may relay (an internal system)
    await new Promise((r) => setTimeout(r, 150));
    try {
      script(`route_via('smtp:[127.0.0.1]:${receiverPort}')`);
      // elsewhere.test has no MX anywhere (the off-ramp's DNS is 127.0.0.1:1): only the route works.
      await send('routed', { to: `dave@${DEST}` });
      const got = await until('the routed message arrives', () =>
        received.find((r) => r.data.includes('Subject: routed')),
      );
      assert.deepEqual(got.to, [`dave@${DEST}`]);
    } finally {
      gw.maps.del('access_map', '127.0.0.1');
    }
    script("route_via('error:5.1.1 nope')");
    await assert.rejects(send('bad route'), { responseCode: 451 });
  });

  test('webhook(name, payload): a call to an endpoint that is down is retried until it is up', async () => {
    script("webhook('ops', { alert: 'new mail', from: envelope.sender, n: 1 })");
    const n = (await gw.store.list(alice.did)).envelopes.length;
    assert.match((await send('ops alert')).response, /^250 /, 'the message does not wait');
    await gw.inbox(alice, n + 1);
    // Let the first attempt (or two) fail, then bring the endpoint up.
    await new Promise((r) => setTimeout(r, 800));
    const ops = await startHook(downPort);
    try {
      const call = await until('the ops webhook is called', () => ops.calls[0], { ms: 15_000 });
      assert.deepEqual(call.body, { alert: 'new mail', from: 'carol@sender.test', n: 1 });
      assert.equal(call.path, '/hook');
    } finally {
      ops.server.close();
    }
  });

  test('a webhook name nobody allowed fails the script: temporary failure and an error line', async () => {
    errors.length = 0;
    script("webhook('evil', {})");
    await assert.rejects(send('to evil'), { responseCode: 451 });
    assert.match(String(errors[0]?.obj.error), /evil is not an allowed webhook/);
  });

  test('an endless loop and a memory bomb cost one message each; the next is served', async () => {
    for (const [source, reason] of [
      ['for (;;) {}', 'timeout'],
      ['const a = []; for (;;) a.push(new ArrayBuffer(1 << 20))', 'memory'],
      [
        "let s = 'x'; const a = []; for (;;) { a.push(s); s = s + s.slice(0, 4096) + Math.random(); }",
        undefined,
      ],
      ['function f() { return f() + 1 } f()', 'memory'],
    ] as const) {
      errors.length = 0;
      script(source);
      const started = Date.now();
      await assert.rejects(send('runaway'), { responseCode: 451 });
      assert.ok(Date.now() - started < 5000);
      assert.equal(errors.length, 1);
      if (reason !== undefined) assert.equal(errors[0]?.obj.reason, reason, source);
    }
    script('accept()');
    const n = (await gw.store.list(alice.did)).envelopes.length;
    assert.match((await send('after the bombs')).response, /^250 /);
    const got = await gw.inbox(alice, n + 1);
    assert.equal(got[n]?.opened.subject, 'after the bombs');
  });

  test('a hostile script cannot reach the host, and leaves nothing for the next message', async () => {
    script(`
      const found = [];
      try { found.push(typeof this.constructor.constructor('return process')()); } catch (e) { found.push('this:' + e.name); }
      found.push(accept.constructor('return typeof process')());
      found.push(typeof require, typeof process, typeof setTimeout, typeof fetch, typeof globalThis.Deno);
      try { Object.prototype.polluted = 'yes'; } catch (e) { found.push('proto:' + e.name); }
      try { headers.list.push({ name: 'x', value: 'y' }); } catch (e) { found.push('headers:' + e.name); }
      try { envelope.recipients[0] = 'mallory@evil.test'; } catch (e) { found.push('envelope:' + e.name); }
      try { globalThis.leak = 1; } catch (e) { found.push('global:' + e.name); }
      try { accept.evil = 1; } catch (e) { found.push('api:' + e.name); }
      import('fs').then(() => {}, () => {});
      add_header('X-Found', found.join(' '));
    `);
    const n = (await gw.store.list(alice.did)).envelopes.length;
    await send('hostile');
    script(
      "add_header('X-Next', String(({}).polluted) + ' ' + typeof globalThis.leak + ' ' + typeof accept.evil)",
    );
    await send('next');
    const got = await gw.inbox(alice, n + 2);
    const first = got[n]?.opened.content.toString() ?? '';
    const found = /^X-Found: (.*)$/m.exec(first)?.[1] ?? '';
    assert.match(
      found,
      /^this:TypeError undefined undefined undefined undefined undefined undefined/,
    );
    assert.match(found, /proto:TypeError/);
    assert.match(found, /headers:TypeError/);
    assert.match(found, /envelope:TypeError/);
    assert.match(found, /global:TypeError/);
    assert.match(found, /api:TypeError/);
    assert.match(
      got[n + 1]?.opened.content.toString() ?? '',
      /^X-Next: undefined undefined undefined/m,
    );
    assert.equal(({} as Record<string, unknown>).polluted, undefined, 'the host is untouched');
  });

  test('a domain script runs after the global one; a new version is picked up while running', async () => {
    script("add_header('X-Global', 'v1')");
    store.set(DOMAIN, "add_header('X-Domain', 'v1')");
    const n = (await gw.store.list(alice.did)).envelopes.length;
    await send('versions 1');
    // Another process (what `aftersmtp script set` is) writes version 2; the gateway polls.
    const other = ScriptStore.open({ path: mapsDatabasePath(gw.dir) });
    const v2 = other.set(DOMAIN, "add_header('X-Domain', 'v2')").version;
    other.close();
    await until(
      'the new script version is live',
      () => store.snapshot().byDomain.get(DOMAIN)?.version === v2,
    );
    await send('versions 2');
    const got = await gw.inbox(alice, n + 2);
    const one = got[n]?.opened.content.toString() ?? '';
    const two = got[n + 1]?.opened.content.toString() ?? '';
    assert.ok(
      one.indexOf('X-Global: v1') >= 0 && one.indexOf('X-Domain: v1') > one.indexOf('X-Global: v1'),
    );
    assert.match(two, /^X-Domain: v2/m);
    store.del(DOMAIN);
  });
});
