/**
 * Policy-stage benchmark: the per-message cost of MailScript, against the same work without it,
 * in the same run (DESIGN.md §8).
 *
 * 1. The policy stage alone (runPolicy on a legacy submission: a 4 KB message with 14 header
 *    fields, one recipient): no checks, vs a typical script (header tests, an auth test, one
 *    add_header), warm context; and the sandbox run alone, and a cold start (a new version:
 *    a context made and the script compiled).
 * 2. The whole pipeline (submitLegacy: authentication, policy, sealing to the recipient's DID,
 *    the durable queue commit with fsync on LMDB), one message at a time, with and without the
 *    script: two in-process gateways (test/smtp/helpers.ts) in this run.
 *
 * The spam scanners' call (Rspamd, SpamAssassin) is measured by its own section, to be added to
 * SECTIONS below beside these ones ("scanner"), against the same baseline.
 *
 * Run: `node dist/bench/policy/script.js` or `aftersmtp bench policy/script`; BENCH_SECONDS sets the time per
 * figure. It reports; it never asserts.
 */
import { randomBytes } from 'node:crypto';
import { mapsDatabasePath, type MapSnapshot } from '../../src/routing/index.js';
import { runPolicy, type PolicyCheck, type PolicySubject } from '../../src/pipeline/policy.js';
import type { LegacySubmission } from '../../src/pipeline/types.js';
import { mailScriptCheck } from '../../src/script/check.js';
import { ScriptSandbox } from '../../src/script/sandbox.js';
import { ScriptStore } from '../../src/script/store.js';
import { DOMAIN, startSmtpGateway, type SmtpGateway } from '../../test/smtp/helpers.js';
import { formatOps, measure, measureAsync, runSections, type Section } from '../lib/measure.js';

/** A typical script: what an administrator writes first. */
export const TYPICAL = `
if (headers.contains('urgent') && auth.dkim === 'pass') route_to_webhook('slack');
if (envelope.sender.endsWith('@spam.test') || auth.dmarc === 'fail') reject(550, 'Not accepted here');
if (headers.get('list-id') !== null) add_header('X-List', 'yes');
add_header('X-Policy', 'checked ' + entrance);
`;

const QUIET = { info: () => undefined, warn: () => undefined, error: () => undefined };
const us = (ops: number): number => 1e6 / ops;
const fmt = (n: number): string => n.toFixed(1);

function message(): Buffer {
  const headers = [
    'From: Carol <carol@sender.test>',
    `To: alice@${DOMAIN}`,
    'Subject: Quarterly report, second draft',
    `Date: ${new Date().toUTCString()}`,
    `Message-ID: <${randomBytes(8).toString('hex')}@sender.test>`,
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=utf-8',
    'Content-Transfer-Encoding: 8bit',
    'List-Id: <reports.sender.test>',
    'X-Mailer: bench',
    'Received: from a.sender.test by b.sender.test; Mon, 1 Dec 2026 10:00:00 +0000',
    'Received: from c.sender.test by a.sender.test; Mon, 1 Dec 2026 09:59:59 +0000',
    'Authentication-Results: b.sender.test; spf=pass smtp.mailfrom=sender.test',
    'Reply-To: carol@sender.test',
  ];
  const body = 'Lorem ipsum dolor sit amet. '.repeat(140);
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body}\r\n`);
}

async function submission(gw: SmtpGateway): Promise<LegacySubmission> {
  const client = { entrance: 'smtp' as const, address: '192.0.2.10', port: 40000, tls: false };
  const state = { client, trusted: false, mailFrom: 'carol@sender.test' };
  const plan = (await gw.pipeline.rcptTo(state, `alice@${DOMAIN}`)).rcpt;
  if (plan?.kind !== 'accepted') throw new Error('the recipient was refused');
  return {
    transaction: 'bench',
    client,
    mailFrom: 'carol@sender.test',
    recipients: [plan.plan],
    trusted: false,
    effects: {},
    message: message(),
    receivedAt: Date.now(),
  };
}

const webhooks = new Map([['slack', 'http://127.0.0.1:9/hook']]);

async function withScript(): Promise<{
  gw: SmtpGateway;
  check: () => PolicyCheck;
  done: () => void;
}> {
  let store: ScriptStore | undefined;
  let check: PolicyCheck | undefined;
  const sandbox = await ScriptSandbox.create();
  const gw = await startSmtpGateway({
    policy: ({ dir }) => {
      store = ScriptStore.open({ path: mapsDatabasePath(dir) });
      store.set('global', TYPICAL);
      check = mailScriptCheck({
        scripts: () => (store as ScriptStore).snapshot(),
        sandbox,
        webhooks,
        log: QUIET,
      });
      return [check];
    },
  });
  return {
    gw,
    check: () => check as PolicyCheck,
    done: () => {
      store?.close();
      sandbox.close();
    },
  };
}

const SECTIONS: Section[] = [
  {
    id: 'policy',
    title: 'MailScript in the policy stage (one message, one recipient, 4 KB, 14 header fields)',
    async run() {
      const s = await withScript();
      try {
        await s.gw.user('alice');
        const sub = await submission(s.gw);
        const subject: PolicySubject = { kind: 'legacy', submission: sub };
        const maps = s.gw.maps.snapshot() as MapSnapshot;
        const check = s.check();
        const none = await measureAsync(() => runPolicy([], subject, maps));
        const script = await measureAsync(() => runPolicy([check], subject, maps));
        const sandbox = await ScriptSandbox.create();
        const input = JSON.stringify({
          envelope: {
            sender: 'carol@sender.test',
            recipients: [`alice@${DOMAIN}`],
            entrance: 'smtp',
          },
          headers: [{ name: 'Subject', value: 'x' }],
          auth: { spf: 'pass', dkim: 'pass', dmarc: 'pass' },
          spam: null,
          recipients: [],
          summary: {},
        });
        const warm = measure(() => sandbox.run('w@1', TYPICAL, input));
        let v = 0;
        const cold = measure(() => sandbox.run(`c@${++v}`, TYPICAL, input), { seconds: 0.5 });
        sandbox.close();
        const overhead = us(script) - us(none);
        const rows = [
          ['policy stage, no checks', formatOps(none), fmt(us(none))],
          ['policy stage, typical script (warm)', formatOps(script), fmt(us(script))],
          ['  the sandbox run alone (small input)', formatOps(warm), fmt(us(warm))],
          ['  cold: new version, context + compile', formatOps(cold), fmt(us(cold))],
        ];
        return {
          headers: ['case', 'msgs/s', 'µs/msg'],
          rows,
          notes: [`MailScript overhead per message: ${fmt(overhead)} µs (typical script, warm)`],
          json: {
            noChecksUs: us(none),
            typicalScriptUs: us(script),
            overheadUs: overhead,
            sandboxRunUs: us(warm),
            coldStartUs: us(cold),
          },
        };
      } finally {
        await s.gw.close();
        s.done();
      }
    },
  },
  {
    id: 'pipeline',
    title:
      'The whole pipeline (submitLegacy: auth, policy, seal, durable LMDB commit), one at a time',
    async run() {
      const plain = await startSmtpGateway();
      const s = await withScript();
      try {
        await plain.user('alice');
        await s.gw.user('alice');
        const a = await submission(plain);
        const b = await submission(s.gw);
        const opts = { seconds: Math.max(1, Number(process.env.BENCH_SECONDS ?? 1)) };
        const without = await measureAsync(() => plain.pipeline.submitLegacy(a), opts);
        const withS = await measureAsync(() => s.gw.pipeline.submitLegacy(b), opts);
        const overhead = us(withS) - us(without);
        return {
          headers: ['case', 'msgs/s', 'µs/msg'],
          rows: [
            ['pipeline without MailScript', formatOps(without), fmt(us(without))],
            ['pipeline with the typical script', formatOps(withS), fmt(us(withS))],
          ],
          notes: [
            `difference: ${fmt(overhead)} µs/msg (${((overhead / us(without)) * 100).toFixed(1)}% of the pipeline); concurrency 1, fsync on, classic-v1 sealing`,
          ],
          json: { withoutUs: us(without), withUs: us(withS), overheadUs: overhead },
        };
      } finally {
        await plain.close();
        await s.gw.close();
        s.done();
      }
    },
  },
  // The spam scanners' section goes here: { id: 'scanner', ... } against the same baselines.
];

await runSections(SECTIONS);
