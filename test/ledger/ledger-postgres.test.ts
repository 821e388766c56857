// The identity ledger on PostgreSQL (AFTERSMTP_LEDGER=postgres), against the real server: the
// whole ledger contract (ledger.test.ts, every openLedger() a fresh shared log), then what only
// several nodes can show: two replicas of one log see each other's writes, share the challenge
// secret, the spent stamps, approvals, policies and rate limits, sign the same checkpoint for a
// size; two processes appending at once and killed with SIGKILL leave one history in which every
// acknowledged registration has the index it was given.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { PURPOSE_REGISTER, registerTranscript } from '../../src/ledger/entries.js';
import { IdentityLedger } from '../../src/ledger/ledger.js';
import { PgLedgerReplication, PgRateLimiter } from '../../src/ledger/postgres.js';
import { ClientState, verifyAnswer } from '../../src/ledger/verify.js';
import { freshDatabase, postgresService } from '../store/services.js';
import {
  DOMAIN,
  PG_LEDGER_ENV,
  TEST_BITS,
  hasCode,
  identity,
  logSigner,
  registerRequest,
  resetPgLedger,
  tempDir,
} from './helpers.js';

const svc = await postgresService();
const CHILD = fileURLToPath(new URL('./burst-child.js', import.meta.url));

function node(url: string, dir: string, name: string, followMs = 50): IdentityLedger {
  const replication = new PgLedgerReplication({ url, followMs });
  const ledger = new IdentityLedger({
    path: join(dir, `${name}.sqlite`),
    signer: logSigner(),
    domains: [DOMAIN],
    policies: new Map([[DOMAIN, { policy: 'open-pow', bits: TEST_BITS }]]),
    replication,
  });
  replication.follow();
  return ledger;
}

const spentStamps = (l: IdentityLedger): number =>
  (l.store.db.prepare('SELECT count(*) AS n FROM spent_stamps').get() as { n: number }).n;

async function burst(url: string, dir: string, run: string, killAfter: number) {
  const child = spawn(process.execPath, [CHILD, join(dir, `${run}.sqlite`), run], {
    env: { ...process.env, AFTERSMTP_LEDGER_BURST_CHILD: '1', [PG_LEDGER_ENV]: url },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const acked = new Map<string, number>();
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => resolve(signal)),
  );
  for await (const line of createInterface({ input: child.stdout })) {
    const m = /^ack (\d+) (\S+)$/.exec(line);
    assert.ok(m, `unexpected child output ${line}`);
    acked.set(m[2] as string, Number(m[1]));
    if (acked.size === killAfter) child.kill('SIGKILL');
  }
  assert.equal(await exited, 'SIGKILL');
  return acked;
}

if (svc.skip !== undefined) {
  test('the ledger on PostgreSQL', { skip: svc.skip }, () => undefined);
} else {
  const db = await freshDatabase(svc.url);
  after(() => db.drop());
  process.env[PG_LEDGER_ENV] = db.url;
  // The contract: every test of the SQLite log, on a log shared through PostgreSQL.
  await import('./ledger.test.js');

  test('postgres: two nodes of one log see each other, share stamps, approvals and policies', async () => {
    resetPgLedger(db.url);
    const { dir, cleanup } = tempDir();
    const a = node(db.url, dir, 'a');
    const b = node(db.url, dir, 'b');
    try {
      const alice = identity('alice');
      const req = await registerRequest(a, alice); // a challenge of node a ...
      const r = b.register(req); // ... accepted by node b: one challenge secret
      assert.equal(r.leafIndex, 0);
      assert.throws(() => a.register(req), hasCode('ERR_DID_EXISTS'));
      // The stamp b spent is in a's spent set too: derived from the leaf that carries it.
      assert.equal(spentStamps(a), 1);
      const bob = identity('bob');
      // Both nodes sign the same checkpoint for the same size.
      a.register(await registerRequest(a, bob));
      const carol = identity('carol');
      b.register(await registerRequest(b, carol));
      assert.equal(a.checkpoint().size, 2); // a's replica follows; b wrote after catching up
      await sleep(200);
      assert.equal(a.checkpoint().size, 3);
      assert.equal(a.checkpoint().note, b.checkpoint().note);
      assert.equal(a.lookup(carol.did).leafIndex, 2);
      // Approvals made on one node are consumed on another, and are gone from the server.
      const dan = identity('dan');
      const frank = identity('frank');
      const refDan = a.approveRegistration(dan.did, 'root');
      const refFrank = a.approveRegistration(frank.did, 'root');
      const pop = (k: typeof dan) => k.sign(registerTranscript(k.record, []), PURPOSE_REGISTER);
      b.register({ record: dan.record, proofOfPossession: pop(dan), approval: refDan });
      b.register({ record: frank.record, proofOfPossession: pop(frank), approval: refFrank });
      const left = await pgCount(db.url, 'SELECT count(*)::int AS n FROM ledger_approvals');
      assert.equal(left, 0);
      // A policy set on one node reaches the other.
      a.setPolicy(DOMAIN, { policy: 'closed', bits: TEST_BITS });
      await sleep(200);
      assert.equal(b.policy(DOMAIN).policy, 'closed');
      assert.deepEqual(
        (await PgLedgerReplication.verifyFromScratch(db.url, a.origin)).root,
        b.checkpoint().root,
      );
    } finally {
      a.close();
      b.close();
      cleanup();
    }
  });

  test('postgres: a replica that is not a prefix of the shared log is refused', async () => {
    resetPgLedger(db.url);
    const { dir, cleanup } = tempDir();
    try {
      const a = node(db.url, dir, 'a');
      a.register(await registerRequest(a, identity('x')));
      a.close();
      resetPgLedger(db.url);
      const b = node(db.url, dir, 'b');
      b.register(await registerRequest(b, identity('y')));
      b.close();
      assert.throws(() => node(db.url, dir, 'a'), hasCode('ERR_LEDGER_CORRUPT'));
      assert.throws(
        () =>
          new IdentityLedger({
            path: ':memory:',
            signer: logSigner(DOMAIN, 8),
            domains: [DOMAIN],
            replication: new PgLedgerReplication({ url: db.url }),
          }),
        hasCode('ERR_LOG_KEY_MISMATCH'),
      );
    } finally {
      cleanup();
    }
  });

  test('postgres: registration rate limits are shared by the nodes', () => {
    resetPgLedger(db.url);
    let now = 1_000_000;
    const opts = { url: db.url, origin: 'o', capacity: 2, refillPerSecond: 1, clock: () => now };
    const l1 = new PgRateLimiter(opts);
    const l2 = new PgRateLimiter(opts);
    try {
      assert.equal(l1.take('192.0.2.1').allowed, true);
      assert.equal(l2.take('192.0.2.1').allowed, true);
      assert.deepEqual(l1.take('192.0.2.1'), { allowed: false, retryAfterMs: 1000 });
      assert.equal(l2.take('192.0.2.2').allowed, true);
      now += 1000;
      assert.equal(l2.take('192.0.2.1').allowed, true);
      assert.equal(l1.take('192.0.2.1').allowed, false);
    } finally {
      l1.close();
      l2.close();
    }
  });

  test('postgres: two nodes appending at once, both killed mid-burst, leave one history', async () => {
    resetPgLedger(db.url);
    const { dir, cleanup } = tempDir();
    try {
      const acked = new Map<string, number>();
      const runs = await Promise.all([burst(db.url, dir, 'p', 40), burst(db.url, dir, 'q', 40)]);
      const leaves = new Set<number>();
      for (const m of runs) {
        for (const [did, leaf] of m) {
          assert.ok(!leaves.has(leaf), `leaf ${leaf} was given out twice`);
          leaves.add(leaf);
          acked.set(did, leaf);
        }
      }
      const { size, root } = await PgLedgerReplication.verifyFromScratch(db.url, logSigner().name);
      assert.ok(size >= acked.size);
      // A third node starts from nothing and answers for every acknowledged registration.
      const c = node(db.url, dir, 'c');
      try {
        assert.deepEqual(c.checkpoint().root, root);
        const state = new ClientState();
        for (const [did, leaf] of acked) {
          const answer = c.lookup(did);
          assert.equal(answer.leafIndex, leaf, did);
          verifyAnswer(did, answer, state, { dnsVerifierKey: logSigner().verifierKey });
        }
      } finally {
        c.close();
      }
    } finally {
      cleanup();
    }
  });
}

async function pgCount(url: string, sql: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return ((await c.query<{ n: number }>(sql)).rows[0] as { n: number }).n;
  } finally {
    await c.end();
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
