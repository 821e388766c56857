/**
 * The SMTP listener thread's bridge (src/legacy/smtp/thread.ts): what the dialogue asks of the
 * main thread and what comes back cross intact (Buffers as Buffers, refusals with their codes),
 * a step that fails answers 451 with the error logged on the main thread, and a port in use is
 * the same ERR_SMTP_BIND as without the thread, mailauth's DNS answers are cached on the thread
 * (against a real unbound), and the thread's open sessions count in src/workload.ts. The real pipeline behind the thread is what every
 * other SMTP test runs (helpers.ts starts the gateway's listeners this way).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { generateSelfSignedCertificate } from '../../src/quic/index.js';
import { EnvironmentError } from '../../src/errors.js';
import { DnsClient } from '../../src/net/dns.js';
import type { DnsCacheStats } from '../../src/net/dns-cache.js';
import type { SmtpListeners, SmtpPipeline } from '../../src/legacy/smtp/server.js';
import { startSmtpThread } from '../../src/legacy/smtp/thread.js';
import type { RcptResult } from '../../src/pipeline/pipeline.js';
import type { LegacySubmission, Refusal, Verdict } from '../../src/pipeline/types.js';
import { beginWork, workAlone } from '../../src/workload.js';
import { startUnbound } from '../client-api/helpers.js';
import { until } from '../helpers/wait.js';
import { identity } from '../ledger/helpers.js';
import { DOMAIN, RawSmtp, message } from './helpers.js';

interface Logged {
  readonly level: string;
  readonly obj: Record<string, unknown>;
  readonly msg: string;
}

describe('SMTP listener thread', () => {
  const alice = identity('alice');
  const submissions: LegacySubmission[] = [];
  const logged: Logged[] = [];
  let refuseSender: Refusal | undefined;
  let failRecipient = false;
  let delayedAsks = 0;
  let cert: { certPem: string; keyPem: string };
  let smtp: SmtpListeners;
  let port = 0;

  const senderVerdict = (): Verdict =>
    refuseSender === undefined ? { kind: 'continue' } : { kind: 'refuse', refusal: refuseSender };
  const recipient = (address: string): Promise<RcptResult> => {
    if (failRecipient) return Promise.reject(new Error('the ledger is closed'));
    return Promise.resolve({
      kind: 'accepted',
      plan: {
        address,
        targets: [{ kind: 'did', did: alice.record.did, record: alice.record, local: true }],
      },
    });
  };
  const pipeline: SmtpPipeline = {
    connect: () => ({ trusted: false, verdict: { kind: 'continue' } }),
    mailFrom: senderVerdict,
    rcptTo: async (_state, address, pending) => {
      delayedAsks++;
      const client = { trusted: false, verdict: { kind: 'continue' } } as const;
      const sender = pending.sender === undefined ? undefined : senderVerdict();
      if (sender?.kind === 'refuse') return { client, sender };
      return {
        client,
        ...(sender !== undefined ? { sender } : {}),
        rcpt: await recipient(address),
      };
    },
    submitLegacy: (sub) => {
      submissions.push(sub);
      return Promise.resolve({
        kind: 'accepted',
        messageId: 'c0ffee',
        recipients: [{ recipient: alice.record.did }],
        entries: [],
      });
    },
  };

  before(async () => {
    cert = await generateSelfSignedCertificate({ commonName: DOMAIN });
    smtp = await startSmtpThread({
      pipeline,
      users: { verify: () => Promise.resolve(undefined) },
      hostname: `mx.${DOMAIN}`,
      tls: { cert: cert.certPem, key: cert.keyPem },
      listen: { mx: { host: '127.0.0.1', port: 0 } },
      log: {
        info: (obj, msg) => logged.push({ level: 'info', obj: obj as Logged['obj'], msg }),
        warn: (obj, msg) => logged.push({ level: 'warn', obj: obj as Logged['obj'], msg }),
        error: (obj, msg) => logged.push({ level: 'error', obj: obj as Logged['obj'], msg }),
      },
    });
    port = smtp.addresses.mx?.port ?? 0;
  });
  after(() => smtp.close());

  test('the message and the plans the main thread made come back to it as Buffers', async () => {
    const c = await RawSmtp.open(port);
    assert.match(c.greeting, /^220 /);
    assert.match(await c.cmd('EHLO client.example.net'), /^250/);
    assert.match(await c.cmd('MAIL FROM:<sender@example.net>'), /^250/);
    assert.match(await c.cmd(`RCPT TO:<alice@${DOMAIN}>`), /^250/);
    assert.match(await c.cmd('DATA'), /^354/);
    const text = message({ subject: 'across threads' });
    assert.match(await c.cmd(`${text}.`), /^250 2\.0\.0 Ok: queued as c0ffee/);
    c.close();
    const sub = submissions.at(-1);
    assert.ok(sub !== undefined);
    assert.ok(Buffer.isBuffer(sub.message));
    assert.equal(sub.message.toString(), text);
    assert.equal(sub.mailFrom, 'sender@example.net');
    assert.equal(sub.client.helo, 'client.example.net');
    assert.equal(sub.client.entrance, 'smtp');
    assert.equal(sub.auth, undefined, 'no resolver given: the pipeline authenticates');
    const target = sub.recipients[0]?.targets[0];
    assert.ok(target?.kind === 'did');
    assert.ok(Buffer.isBuffer(target.record.keyId));
    assert.ok(Buffer.isBuffer(target.record.kemPublicKey));
    assert.ok(Buffer.isBuffer(target.record.signingPublicKeys.ed25519));
    assert.ok(target.record.keyId.equals(alice.record.keyId));
    assert.deepEqual(target.record, alice.record);
  });

  test("a refusal crosses with the operator's reply code and text, at RCPT (delayed)", async () => {
    refuseSender = {
      code: 'ERR_ACCESS_REJECT',
      temporary: false,
      text: 'not from you',
      smtpCode: 550,
    };
    try {
      const c = await RawSmtp.open(port);
      await c.cmd('EHLO client.example.net');
      delayedAsks = 0;
      assert.match(await c.cmd('MAIL FROM:<spam@example.net>'), /^250/);
      assert.match(await c.cmd(`RCPT TO:<alice@${DOMAIN}>`), /^550 5\.7\.1 not from you/);
      assert.match(
        await c.cmd(`RCPT TO:<bob@${DOMAIN}>`),
        /^550 5\.7\.1 not from you/,
        "the sender's refusal holds for the transaction",
      );
      assert.equal(delayedAsks, 1, 'asked once: the second recipient is refused on the thread');
      c.close();
    } finally {
      refuseSender = undefined;
    }
  });

  test('a step that fails on the main thread is 451 to the client and logged there', async () => {
    failRecipient = true;
    try {
      const c = await RawSmtp.open(port);
      await c.cmd('EHLO client.example.net');
      await c.cmd('MAIL FROM:<sender@example.net>');
      const reply = await c.cmd(`RCPT TO:<alice@${DOMAIN}>`);
      assert.match(reply, /^451 4\.3\.0 /);
      assert.doesNotMatch(reply, /ledger/, 'no internal text in the reply');
      c.close();
    } finally {
      failRecipient = false;
    }
    const line = logged.find((l) => l.msg === 'smtp RCPT: internal error');
    assert.ok(line !== undefined, 'logged');
    assert.equal(line.level, 'error');
    assert.match(String((line.obj.err as { message?: string }).message), /the ledger is closed/);
  });

  test("the thread's open sessions besides one count as messages in flight here", async () => {
    const alone = (want: boolean): Promise<true> =>
      until(`workAlone() is ${want}`, () => workAlone() === want);
    const here = beginWork(); // a message in the pipeline
    try {
      await alone(true); // the earlier tests' connections are closed
      const first = await RawSmtp.open(port);
      await alone(true); // one session: the one whose message is here
      const second = await RawSmtp.open(port);
      await alone(false);
      second.close();
      await alone(true);
      first.close();
      await alone(true);
    } finally {
      here();
    }
  });

  test('a port in use is ERR_SMTP_BIND, naming the setting, as without the thread', async () => {
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port: busy } = taken.address() as AddressInfo;
    try {
      await assert.rejects(
        startSmtpThread({
          pipeline,
          users: { verify: () => Promise.resolve(undefined) },
          hostname: `mx.${DOMAIN}`,
          tls: { cert: cert.certPem, key: cert.keyPem },
          listen: { mx: { host: '127.0.0.1', port: busy } },
          log: { info: () => undefined, warn: () => undefined, error: () => undefined },
        }),
        (err: unknown) =>
          err instanceof EnvironmentError &&
          err.code === 'ERR_SMTP_BIND' &&
          /AFTERSMTP_SMTP_LISTEN/.test(err.message) &&
          /EADDRINUSE/.test(err.message),
      );
    } finally {
      taken.close();
    }
  });

  test("mailauth's DNS answers are cached on the thread: a question crosses once per TTL", async () => {
    const dns = await startUnbound('net', {
      'example.net': ['v=spf1 ip4:127.0.0.1 -all'],
      '_dmarc.example.net': ['v=DMARC1; p=none'],
    });
    const client = new DnsClient({ servers: [dns.server], timeoutMs: 5000, tries: 2 });
    const asked: string[] = [];
    const stats: DnsCacheStats[] = [];
    const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
    const cached = await startSmtpThread({
      pipeline,
      users: { verify: () => Promise.resolve(undefined) },
      dns: {
        query: (name, type) => {
          asked.push(`${type} ${name}`);
          return client.query(name, type);
        },
      },
      dnsCacheEntries: 100,
      onDnsStats: (s) => stats.push(s),
      hostname: `mx.${DOMAIN}`,
      tls: { cert: cert.certPem, key: cert.keyPem },
      listen: { mx: { host: '127.0.0.1', port: 0 } },
      log: quiet,
    });
    try {
      for (let i = 0; i < 3; i++) {
        const c = await RawSmtp.open(cached.addresses.mx?.port ?? 0);
        await c.cmd('EHLO client.example.net');
        await c.cmd('MAIL FROM:<sender@example.net>');
        await c.cmd(`RCPT TO:<alice@${DOMAIN}>`);
        await c.cmd('DATA');
        assert.match(await c.cmd(`${message()}.`), /^250 /);
        c.close();
        assert.equal(submissions.at(-1)?.auth?.spf, 'pass');
      }
      assert.ok(asked.includes('TXT example.net'), asked.join(', '));
      assert.equal(new Set(asked).size, asked.length, `asked once each: ${asked.join(', ')}`);
      await new Promise((r) => setTimeout(r, 1500));
      const last = stats.at(-1);
      assert.ok(last !== undefined, 'the thread reports its cache');
      assert.equal(last.misses, asked.length);
      assert.ok(last.hits >= 2 * asked.length, `hits ${last.hits}`);
    } finally {
      await cached.close();
      await dns.close();
    }
  });
});
