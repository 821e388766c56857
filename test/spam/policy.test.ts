// spam_cat_acl through the whole pipeline, in one process, with the real Rspamd and spamd
// (scripts/services/*.sh): mail arrives over SMTP port 25 (nodemailer), the scanners score it
// after DATA, and each recipient's spam_policy entry decides:
// - GTUBE to recipients who all refuse it: 550 5.7.1 at the end of DATA, nothing stored;
// - ordinary mail: the inbox, with "X-Spam-Flag: NO" and a signed spam part that says ham;
// - lottery spam over the junk score: the Junk folder, "X-Spam-Flag: YES", the signed spam part
//   says junk (changing it breaks the gateway signature);
// - one message, three recipients with different policies (junk, refuse, not scanned): accepted,
//   the refused recipient gets nothing, the others their own folder;
// - a copy that goes through the queue (the delivery worker) is still filed in Junk;
// - mail forwarded to an ordinary address leaves through the off-ramp with its X-Spam fields;
// - a scanner that is down (nothing listening) or slow (never answers) follows the recipient's
//   rule: accept and tag "scanner unavailable", or 451 4.7.1; the metrics count both.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { Registry } from 'prom-client';
import { SMTPServer } from 'smtp-server';
import { GatewaySigner, verifyGatewaySignature } from '../../src/envelope/gateway.js';
import { AuthorSigner } from '../../src/envelope/envelope.js';
import { decodeEnvelope } from '../../src/envelope/codec.js';
import { ampDestination } from '../../src/pipeline/addresses.js';
import { commitToQueue } from '../../src/pipeline/commit.js';
import { spamCheck } from '../../src/pipeline/spam.js';
import { messageFacts, sealCopies } from '../../src/pipeline/transform.js';
import { RspamdClient, SpamdClient, registerSpamMetrics } from '../../src/spam/index.js';
import { DOMAIN, startSmtpGateway, type SmtpGateway } from '../smtp/helpers.js';
import { GTUBE, deadPort, plain, rspamd, silentServer, spamd, spammy } from './services.js';
import { until } from '../helpers/wait.js';

const R = await rspamd();
const S = await spamd();
const SKIP = R.skip ?? S.skip;
const DEST = 'dest.test';

function mx(port: number) {
  return nodemailer.createTransport({
    host: '127.0.0.1',
    port,
    secure: false,
    ignoreTLS: true,
    name: 'mail.sender.test',
  });
}

function gtube(to: string): Buffer {
  return Buffer.from(
    `From: spammer@sender.test\r\nTo: ${to}\r\nSubject: test\r\n` +
      `Date: ${new Date().toUTCString()}\r\nMessage-ID: <${randomBytes(6).toString('hex')}@sender.test>\r\n\r\n${GTUBE}\r\n`,
  );
}

async function folderOf(gw: SmtpGateway, did: string, folder: 'inbox' | 'junk') {
  return (await gw.store.list(did, { folder })).envelopes;
}

/** Waits until the mailbox of `did` holds `n` envelopes (any folder). */
function waitFor(gw: SmtpGateway, did: string, n: number): Promise<true> {
  return until(
    `${did} holds ${n} envelopes`,
    async () => (await gw.store.list(did)).envelopes.length >= n,
  );
}

interface Captured {
  readonly to: string[];
  readonly data: string;
}

describe('spam_cat_acl with the real scanners', { skip: SKIP }, () => {
  let gw: SmtpGateway;
  let rx: SMTPServer;
  let rxPort = 0;
  const captured: Captured[] = [];
  const registry = new Registry();
  const rspamdClient = new RspamdClient({ url: R.url, timeoutMs: 10_000 });

  before(async () => {
    rx = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData(stream, session, cb) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          captured.push({
            to: session.envelope.rcptTo.map((r) => r.address),
            data: Buffer.concat(chunks).toString(),
          });
          cb();
        });
      },
    });
    await new Promise<void>((r) => rx.listen(0, '127.0.0.1', () => r()));
    rxPort = (rx.server.address() as { port: number }).port;
    gw = await startSmtpGateway({
      outbound: { port: rxPort },
      policy: [
        spamCheck({
          scanners: {
            rspamd: rspamdClient,
            spamassassin: new SpamdClient({ url: S.url, timeoutMs: 20_000 }),
          },
          metrics: registerSpamMetrics(registry),
        }),
      ],
    });
    gw.maps.set('spam_policy', '*', 'scanners=both junk=6 reject=25 unavailable=tempfail');
    gw.maps.set('spam_policy', `bob@${DOMAIN}`, 'scanners=spamassassin junk=3 reject=5');
    gw.maps.set('spam_policy', `carol@${DOMAIN}`, 'scanners=none');
    gw.maps.set('virtual_alias_maps', `fwd@${DOMAIN}`, `zoe@${DEST}`);
    gw.maps.set('mx_record_map', DEST, `smtp:[127.0.0.1]:${rxPort}`);
    await new Promise((r) => setTimeout(r, 120)); // the pipeline's maps poll (50 ms)
  });

  after(async () => {
    rspamdClient.close();
    await gw?.close();
    await new Promise<void>((r) => rx?.close(() => r()));
  });

  test('GTUBE for recipients who all refuse it: 550 5.7.1 at the end of DATA, nothing stored', async () => {
    const alice = await gw.user('alice');
    const dave = await gw.user('dave');
    await assert.rejects(
      mx(gw.port.mx).sendMail({
        envelope: { from: 'spammer@sender.test', to: [`alice@${DOMAIN}`, `dave@${DOMAIN}`] },
        raw: gtube(`alice@${DOMAIN}`),
      }),
      (err: { responseCode?: number; response?: string; command?: string }) => {
        assert.equal(err.responseCode, 550, err.response);
        assert.match(err.response ?? '', /^550 5\.7\.1 /);
        // Both RCPT TO were accepted: the refusal is the answer to the message itself.
        assert.notEqual(err.command, 'RCPT TO');
        return true;
      },
    );
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await gw.store.list(alice.did)).envelopes.length, 0);
    assert.equal((await gw.store.list(dave.did)).envelopes.length, 0);
  });

  test('ordinary mail: the inbox, X-Spam-Flag NO, a signed spam part that says ham', async () => {
    const erin = await gw.user('erin');
    await mx(gw.port.mx).sendMail({
      envelope: { from: 'bob@sender.test', to: [`erin@${DOMAIN}`] },
      raw: plain(`erin@${DOMAIN}`),
    });
    const [got] = await gw.inbox(erin, 1);
    assert.ok(got);
    assert.equal((await folderOf(gw, erin.did, 'inbox')).length, 1);
    assert.equal((await folderOf(gw, erin.did, 'junk')).length, 0);
    const spam = got.envelope.spam;
    assert.ok(spam, 'the envelope carries the spam verdict');
    assert.equal(spam.verdict, 'ham');
    assert.deepEqual(
      spam.scans.map((s) => [s.scanner, s.result]),
      [
        ['rspamd', 'ok'],
        ['spamassassin', 'ok'],
      ],
    );
    assert.equal(spam.junkScore, '6');
    assert.equal(spam.rejectScore, '25');
    verifyGatewaySignature(got.envelope, gw.keys.record);
    const text = got.opened.content.toString();
    assert.match(text, /^X-Spam-Flag: NO\r$/m);
    assert.match(text, /^X-Spam-Status: No, score=/m);
  });

  test('lottery spam over the junk score: the Junk folder, flagged, the verdict signed', async () => {
    const alice = await gw.user('alice2');
    await mx(gw.port.mx).sendMail({
      envelope: { from: 'winner@lottery.example', to: [`alice2@${DOMAIN}`] },
      raw: spammy(`alice2@${DOMAIN}`),
    });
    await waitFor(gw, alice.did, 1);
    const junk = await folderOf(gw, alice.did, 'junk');
    assert.equal(junk.length, 1, 'filed in Junk');
    assert.equal(junk[0]?.folder, 'junk');
    assert.equal((await folderOf(gw, alice.did, 'inbox')).length, 0, 'not in the inbox');
    const [got] = await gw.inbox(alice, 1);
    assert.ok(got);
    const spam = got.envelope.spam;
    assert.ok(spam);
    assert.equal(spam.verdict, 'junk');
    const score = Number(spam.score);
    assert.ok(score >= 6 && score < 25, `score ${spam.score}`);
    verifyGatewaySignature(got.envelope, gw.keys.record);
    assert.throws(
      () =>
        verifyGatewaySignature(
          { ...got.envelope, spam: { ...spam, verdict: 'ham' } },
          gw.keys.record,
        ),
      /signature/i,
      'the verdict is covered by the gateway signature',
    );
    const text = got.opened.content.toString();
    assert.match(text, /^X-Spam-Flag: YES\r$/m);
    assert.match(text, new RegExp(`^X-Spam-Score: ${spam.score.replace('.', '\\.')}\\r$`, 'm'));
    assert.match(text, /^X-Spam-Status: Yes, score=[0-9.]+ required=6 tests=/m);
  });

  test('three recipients, three policies: junk, refused, not scanned: accepted, the refused one gets nothing', async () => {
    const alice = await gw.user('alice3');
    const bob = await gw.user('bob');
    const carol = await gw.user('carol');
    const info = await mx(gw.port.mx).sendMail({
      envelope: {
        from: 'winner@lottery.example',
        to: [`alice3@${DOMAIN}`, `bob@${DOMAIN}`, `carol@${DOMAIN}`],
      },
      raw: spammy(`alice3@${DOMAIN}`),
    });
    assert.match(info.response ?? '', /^250 /);
    await waitFor(gw, alice.did, 1);
    await waitFor(gw, carol.did, 1);
    assert.equal((await folderOf(gw, alice.did, 'junk')).length, 1, 'alice3: junk');
    assert.equal((await folderOf(gw, carol.did, 'inbox')).length, 1, 'carol: not scanned, inbox');
    const [c] = await gw.inbox(carol, 1);
    assert.equal(c?.envelope.spam, undefined, 'no verdict for a recipient that is not scanned');
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await gw.store.list(bob.did)).envelopes.length, 0, 'bob refused it: no copy');
  });

  test('a copy that goes through the queue is filed by the mailbox writer from its spam part', async () => {
    const fay = await gw.user('fay');
    // A junk copy sealed as the pipeline seals it, committed to the queue for the worker.
    const message = spammy(`fay@${DOMAIN}`);
    const messageId = randomBytes(16);
    const [copy] = await sealCopies(
      [{ kind: 'did', did: fay.did, record: fay.record, local: true }],
      message,
      await messageFacts(message),
      {
        entrance: 'smtp',
        mailFrom: 'winner@lottery.example',
        headerFrom: 'winner@lottery.example',
        clientAddress: '192.0.2.1',
        helo: 'x',
        login: '',
        authenticationResults: 'mx.example.org; none',
        spf: 'none',
        dkim: 'none',
        dmarc: 'none',
        arc: 'none',
        receivedAt: Date.now(),
      },
      messageId,
      {
        gatewayKeys: gw.keys,
        authorSigner: new AuthorSigner(gw.keys),
        gatewaySigner: new GatewaySigner(gw.keys),
        hostname: 'mx',
        maxEnvelopeBytes: 1 << 25,
        legacyTtlMs: 86_400_000,
      },
      () => ({
        spam: {
          verdict: 'junk',
          score: '9.5',
          junkScore: '6',
          rejectScore: '15',
          scans: [{ scanner: 'rspamd', result: 'ok', score: '9.5', symbols: 'X' }],
          scannedAt: Date.now(),
        },
      }),
    );
    assert.ok(copy);
    await commitToQueue(
      gw.queue,
      { messageId: messageId.toString('hex'), sender: gw.keys.did, senderKind: 'legacy' },
      [
        {
          recipients: [{ address: fay.did, destination: ampDestination(DOMAIN) }],
          body: copy.bytes,
        },
      ],
    );
    await waitFor(gw, fay.did, 1);
    const junk = await folderOf(gw, fay.did, 'junk');
    assert.equal(junk.length, 1, 'the worker filed it in Junk');
    assert.equal(decodeEnvelope(junk[0]!.envelope).spam?.verdict, 'junk');
  });

  test('forwarded to an ordinary address: the off-ramp copy carries the X-Spam fields', async () => {
    await mx(gw.port.mx).sendMail({
      envelope: { from: 'winner@lottery.example', to: [`fwd@${DOMAIN}`] },
      raw: spammy(`fwd@${DOMAIN}`),
    });
    const out = await until(
      'the message reaches the off-ramp receiver',
      () => captured.find((c) => c.to.includes(`zoe@${DEST}`)),
      { ms: 15_000 },
    );
    assert.match(out.data, /^X-Spam-Flag: YES\r$/m);
    assert.match(out.data, /^X-Spam-Score: [0-9.]+\r$/m);
    assert.match(out.data, /^X-Spam-Status: Yes, score=[0-9.]+ required=6 tests=/m);
    assert.match(out.data, /Subject: =\?utf-8\?B\?WU9VIEhBVkUgV09O/);
  });

  test('the metrics count scans and verdicts', async () => {
    const text = await registry.metrics();
    assert.match(text, /aftersmtp_spam_scans_total\{scanner="rspamd",result="ok"\} [1-9]/);
    assert.match(text, /aftersmtp_spam_scans_total\{scanner="spamassassin",result="ok"\} [1-9]/);
    assert.match(text, /aftersmtp_spam_verdicts_total\{verdict="junk"\} [1-9]/);
    assert.match(text, /aftersmtp_spam_verdicts_total\{verdict="reject"\} [1-9]/);
    assert.match(text, /aftersmtp_spam_verdicts_total\{verdict="ham"\} [1-9]/);
  });
});

describe('a scanner down or slow follows the rule, counted, never a silent pass', () => {
  let gw: SmtpGateway;
  let silent: Awaited<ReturnType<typeof silentServer>>;
  const registry = new Registry();

  before(async () => {
    silent = await silentServer();
    const dead = await deadPort();
    gw = await startSmtpGateway({
      policy: [
        spamCheck({
          scanners: {
            rspamd: new RspamdClient({ url: `http://127.0.0.1:${dead}`, timeoutMs: 500 }),
            spamassassin: new SpamdClient({
              url: `spamd://127.0.0.1:${silent.port}`,
              timeoutMs: 500,
            }),
          },
          metrics: registerSpamMetrics(registry),
        }),
      ],
    });
    gw.maps.set(
      'spam_policy',
      `ok@${DOMAIN}`,
      'scanners=rspamd junk=6 reject=15 unavailable=accept',
    );
    gw.maps.set('spam_policy', `slow@${DOMAIN}`, 'scanners=spamassassin unavailable=accept');
    gw.maps.set('spam_policy', `strict@${DOMAIN}`, 'scanners=rspamd unavailable=tempfail');
    await new Promise((r) => setTimeout(r, 120));
  });

  after(async () => {
    await gw?.close();
    await silent?.close();
  });

  test('down, unavailable=accept: delivered and tagged "scanner unavailable"', async () => {
    const ok = await gw.user('ok');
    const slow = await gw.user('slow');
    const started = Date.now();
    await mx(gw.port.mx).sendMail({
      envelope: { from: 'bob@sender.test', to: [`ok@${DOMAIN}`, `slow@${DOMAIN}`] },
      raw: plain(`ok@${DOMAIN}`),
    });
    assert.ok(Date.now() - started < 5000, 'the slow scanner cost its timeout, not more');
    for (const u of [ok, slow]) {
      const [got] = await gw.inbox(u, 1);
      assert.ok(got, u.did);
      assert.equal(got.envelope.spam?.verdict, 'unavailable');
      assert.match(got.opened.content.toString(), /^X-Spam-Status: No, scanner unavailable /m);
      verifyGatewaySignature(got.envelope, gw.keys.record);
    }
  });

  test('down, unavailable=tempfail: 451 4.7.1 at the end of DATA, also when another recipient would accept', async () => {
    const strict = await gw.user('strict');
    for (const to of [[`strict@${DOMAIN}`], [`strict@${DOMAIN}`, `ok@${DOMAIN}`]]) {
      await assert.rejects(
        mx(gw.port.mx).sendMail({
          envelope: { from: 'bob@sender.test', to },
          raw: plain(`strict@${DOMAIN}`, 'retry me'),
        }),
        (err: { responseCode?: number; response?: string }) => {
          assert.equal(err.responseCode, 451, err.response);
          assert.match(err.response ?? '', /^451 4\.7\.1 /);
          return true;
        },
      );
    }
    assert.equal((await gw.store.list(strict.did)).envelopes.length, 0);
  });

  test('the metrics say why each scanner gave no score, and what the rule did', async () => {
    const text = await registry.metrics();
    assert.match(text, /aftersmtp_spam_scans_total\{scanner="rspamd",result="connect"\} [1-9]/);
    assert.match(
      text,
      /aftersmtp_spam_scans_total\{scanner="spamassassin",result="timeout"\} [1-9]/,
    );
    assert.match(text, /aftersmtp_spam_verdicts_total\{verdict="unavailable-accept"\} [1-9]/);
    assert.match(text, /aftersmtp_spam_verdicts_total\{verdict="unavailable-tempfail"\} [1-9]/);
    assert.match(text, /aftersmtp_spam_scans_total\{scanner="rspamd",result="ok"\} 0/);
  });
});
