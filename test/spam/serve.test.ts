// The spam policy in a real `aftersmtp serve` process: the scanners come from
// AFTERSMTP_RSPAMD_URL and AFTERSMTP_SPAMD_URL (the real Rspamd and spamd), the policy from the
// spam_policy map set with `aftersmtp maps set`, mail arrives over SMTP, and the user reads it
// with `aftersmtp inbox` (FetchInbox): `--folder junk` shows the lottery spam and not the
// ordinary mail, every message says its folder, and the gateway's spam verdict verifies. GTUBE is
// refused at the end of DATA. The admin endpoint's /metrics counts the scans.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import nodemailer from 'nodemailer';
import { tempDir } from '../helpers/cli.js';
import { E2eGateway, cli, makeUserWith, userArgs, type E2eUser } from '../e2e/helpers.js';
import { GTUBE, plain, rspamd, spamd, spammy } from './services.js';

const R = await rspamd();
const S = await spamd();
const D = 'spam.test';

interface Shown {
  messageId: string;
  folder: string;
  subject?: string;
  spam?: { verdict: string; score: string; verified: boolean; error?: string };
  author: { verified: boolean };
}

describe('spam policy through serve and aftersmtp inbox', { skip: R.skip ?? S.skip }, () => {
  const work = tempDir('spam-serve');
  const noDns = { AFTERSMTP_DNS_SERVERS: '127.0.0.1:1' };
  let gw: E2eGateway;
  let alice: E2eUser;
  let mxPort = 0;

  before(async () => {
    gw = await E2eGateway.prepare(work, D, {
      AFTERSMTP_SUITE: 'classic-v1',
      AFTERSMTP_RSPAMD_URL: R.url,
      AFTERSMTP_SPAMD_URL: S.url,
      AFTERSMTP_MAPS_POLL_MS: '50',
      ...noDns,
    });
    await gw.start();
    mxPort = Number(
      String((gw.ready?.smtp as Record<string, string>).mx)
        .split(':')
        .at(-1),
    );
    alice = await makeUserWith(work, gw, 'alice', noDns, gw.logKey);
    const set = await cli(
      [
        'maps',
        'set',
        'spam_policy',
        D,
        'scanners=rspamd,spamassassin junk=6 reject=25 unavailable=tempfail',
      ],
      gw.env,
    );
    assert.equal(set.code, 0, set.stderr);
    await new Promise((r) => setTimeout(r, 300));
  });

  after(async () => {
    await gw?.stop();
  });

  const smtp = () =>
    nodemailer.createTransport({ host: '127.0.0.1', port: mxPort, ignoreTLS: true, secure: false });

  async function inbox(args: string[]): Promise<Shown[]> {
    const r = await cli(['inbox', ...userArgs(alice), '--json', ...args], noDns);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    return (JSON.parse(r.stdout) as { messages: Shown[] }).messages;
  }

  test('junk and ordinary mail are shown apart; GTUBE is refused at the end of DATA', async () => {
    await smtp().sendMail({
      envelope: { from: 'winner@lottery.example', to: [`alice@${D}`] },
      raw: spammy(`alice@${D}`),
    });
    await smtp().sendMail({
      envelope: { from: 'bob@sender.test', to: [`alice@${D}`] },
      raw: plain(`alice@${D}`, 'plain one'),
    });
    await assert.rejects(
      smtp().sendMail({
        envelope: { from: 'x@sender.test', to: [`alice@${D}`] },
        raw: Buffer.from(`From: x@sender.test\r\nSubject: g\r\n\r\n${GTUBE}\r\n`),
      }),
      /550 5\.7\.1/,
    );
    let all: Shown[] = [];
    for (let i = 0; i < 100 && all.length < 2; i++) {
      all = await inbox([]);
      if (all.length < 2) await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(all.map((m) => m.folder).sort(), ['inbox', 'junk']);
    const junk = await inbox(['--folder', 'junk']);
    assert.equal(junk.length, 1);
    assert.equal(junk[0]?.folder, 'junk');
    assert.equal(junk[0]?.spam?.verdict, 'junk');
    assert.equal(junk[0]?.spam?.verified, true, junk[0]?.spam?.error);
    assert.ok(junk[0]?.author.verified);
    const normal = await inbox(['--folder', 'inbox']);
    assert.deepEqual(
      normal.map((m) => [m.folder, m.subject, m.spam?.verdict]),
      [['inbox', 'plain one', 'ham']],
    );
    const text = await cli(['inbox', ...userArgs(alice), '--folder', 'junk'], noDns);
    assert.match(text.stdout, /\(seq \d+, folder junk\)/);
    assert.match(text.stdout, /spam +junk, score [0-9.]+ \(signed by the gateway, verified\)/);
    const bad = await cli(['inbox', ...userArgs(alice), '--folder', 'spam'], noDns);
    assert.equal(bad.code, 2, 'an unknown folder is a usage error');
  });

  test('the admin endpoint counts the scans and verdicts', async () => {
    const res = await fetch(`${String(gw.ready?.admin)}/metrics`);
    const text = await res.text();
    assert.match(text, /aftersmtp_spam_scans_total\{scanner="rspamd",result="ok"\} [3-9]/);
    assert.match(text, /aftersmtp_spam_scans_total\{scanner="spamassassin",result="ok"\} [3-9]/);
    assert.match(text, /aftersmtp_spam_verdicts_total\{verdict="reject"\} 1/);
  });
});
