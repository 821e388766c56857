/**
 * Spam policy benchmark: what a scanner call adds to a message, measured in one run against the
 * same pipeline without it (DESIGN.md §8). The pipeline is the real one in one process (ledger in
 * SQLite, LMDB mailbox store and queue, fsync on, one recipient DID sealed and stored); a message
 * of ~1.5 KiB is handed to `submitLegacy` as the SMTP entrance does after DATA, one at a time, so
 * the figure is latency per message: no policy, Rspamd, spamd, both (concurrently, as the spam
 * check asks them). The scanners are the real ones (AFTERSMTP_RSPAMD_URL, AFTERSMTP_SPAMD_URL;
 * scripts/services/*.sh), on this machine, over loopback.
 *
 * Run: `node dist/bench/policy/spam.js` or `aftersmtp bench policy/spam` (SPAM_BENCH_MESSAGES, default 200 per row). It reports;
 * it never asserts.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { spamCheck } from '../../src/pipeline/spam.js';
import type { PolicyCheck } from '../../src/pipeline/policy.js';
import type { LegacySubmission, RecipientPlan } from '../../src/pipeline/types.js';
import { LmdbQueue } from '../../src/queue/lmdb.js';
import { MappingEngine } from '../../src/routing/index.js';
import { RspamdClient, SpamdClient } from '../../src/spam/index.js';
import { Keyring, generateKey } from '../../src/store/keys.js';
import { LmdbMailboxStore } from '../../src/store/lmdb.js';
import { testPipeline } from '../../test/helpers/pipeline.js';
import { DOMAIN, identity, openLedger, registerRequest } from '../../test/ledger/helpers.js';
import { plain } from '../../test/spam/services.js';
import { runSections } from '../lib/measure.js';

const MESSAGES = Number(process.env.SPAM_BENCH_MESSAGES ?? 200);
const RSPAMD = process.env.AFTERSMTP_RSPAMD_URL ?? 'http://127.0.0.1:11333';
const SPAMD = process.env.AFTERSMTP_SPAMD_URL ?? 'spamd://127.0.0.1:783';

async function row(name: string, policy: string | undefined): Promise<(string | number)[]> {
  const { ledger, dir, cleanup } = openLedger();
  const keys = identity('gateway');
  const user = identity('alice');
  ledger.register(await registerRequest(ledger, user));
  const store = await LmdbMailboxStore.open({
    path: join(dir, 'mailboxes'),
    keyring: new Keyring([generateKey()]),
  });
  const queue = new LmdbQueue({ path: join(dir, 'queue'), bounce: { reportingMta: DOMAIN } });
  const maps = MappingEngine.open({ path: ':memory:', pollMs: 0 });
  if (policy !== undefined) maps.set('spam_policy', '*', policy);
  const rspamd = new RspamdClient({ url: RSPAMD });
  const checks: PolicyCheck[] =
    policy === undefined
      ? []
      : [spamCheck({ scanners: { rspamd, spamassassin: new SpamdClient({ url: SPAMD }) } })];
  const pipeline = testPipeline({
    domain: DOMAIN,
    ledger,
    keys,
    store,
    queue,
    maps,
    overrides: { policy: checks },
  });
  const state = {
    client: { entrance: 'smtp' as const, address: '192.0.2.1', port: 25, tls: false },
    trusted: false,
  };
  const r = (await pipeline.rcptTo(state, `alice@${DOMAIN}`)).rcpt;
  if (r?.kind !== 'accepted') throw new Error(`alice: ${JSON.stringify(r)}`);
  const plan: RecipientPlan = r.plan;
  const times: number[] = [];
  let failed = 0;
  for (let i = 0; i < MESSAGES + 10; i++) {
    const sub: LegacySubmission = {
      transaction: `b${i}`,
      client: { ...state.client, helo: 'mail.sender.test' },
      mailFrom: 'bob@sender.test',
      recipients: [plan],
      trusted: false,
      effects: {},
      message: plain(`alice@${DOMAIN}`, `message ${i}`),
      receivedAt: Date.now(),
    };
    const t0 = performance.now();
    const out = await pipeline.submitLegacy(sub);
    if (i >= 10) times.push(performance.now() - t0); // the first 10 warm up
    if (out.kind !== 'accepted') failed++;
  }
  rspamd.close();
  maps.close();
  await queue.close();
  await store.close();
  cleanup();
  times.sort((a, b) => a - b);
  const mean = times.reduce((a, b) => a + b, 0) / times.length;
  const p = (q: number): number => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return [name, MESSAGES, mean.toFixed(2), p(0.5).toFixed(2), p(0.99).toFixed(2), failed];
}

await runSections([
  {
    id: 'spam',
    title: 'pipeline per message, with and without the spam scanners (ms)',
    async run() {
      const rows = [
        await row('no policy', undefined),
        await row('rspamd', 'scanners=rspamd junk=6 reject=15'),
        await row('spamassassin', 'scanners=spamassassin junk=6 reject=15'),
        await row('both', 'scanners=both junk=6 reject=15'),
      ];
      const base = Number(rows[0]![2]);
      const withOverhead = rows.map((r) => [...r, (Number(r[2]) - base).toFixed(2)]);
      return {
        headers: ['policy', 'messages', 'mean', 'p50', 'p99', 'refused', 'added (mean)'],
        rows: withOverhead.map((r) => r.map(String)),
        notes: [
          `Rspamd at ${RSPAMD}, spamd at ${SPAMD} (private test instances: no DNS lists, no Bayes).`,
          'One message at a time: latency, not throughput.',
          "The private Rspamd's DNS goes to a closed loopback port (no network here): its reverse-DNS",
          'and DMARC lookups wait out its 0.2 s DNS timeout, most of its figure; a resolver that answers is faster.',
        ],
        json: withOverhead,
      };
    },
  },
]);
