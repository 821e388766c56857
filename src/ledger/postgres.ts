/**
 * The identity ledger on PostgreSQL (AFTERSMTP_LEDGER=postgres), for several gateway nodes that
 * serve one domain. The server holds the log: one row per log (its size and root), its leaves,
 * pending approvals, stored policies and the registration rate-limit buckets. Each node keeps a
 * replica of the log in a local SQLite database (the ledger's reads, proofs and checks run on it
 * unchanged) and follows the server.
 *
 * Tables:
 *
 *   ledger_logs       origin, size, root, verifier_key, challenge_secret   one row per log
 *   ledger_leaves     origin, idx, data, root        root = the tree head at size idx + 1
 *   ledger_approvals  origin, reference, did, admin, expires_at
 *   ledger_policies   origin, domain, policy, bits
 *   ledger_rate       origin, source, tokens, updated_at, allowed
 *
 * Guarantees:
 * - Appends are serialised by the server: a write locks the log's row (SELECT ... FOR UPDATE),
 *   brings the replica up to the locked size, runs the ledger's checks and appends locally, and
 *   inserts the new leaves (primary key (origin, idx)) with the tree head after each, then commits
 *   before the call returns. No two nodes can give out one index; since a checkpoint is signed
 *   only over committed leaves and the root is a function of the leaves, no two nodes can sign
 *   different roots of one size. A replica that disagrees with the server's tree head at its size
 *   is refused (ERR_LEDGER_CORRUPT), never signed from.
 * - The spent-stamp set is shared through the log itself: a stamp is spent exactly when the
 *   registration that carries it is committed, and every replica derives it from that leaf.
 * - Approvals and policies live on the server and are read under the write lock; the rate-limit
 *   buckets are updated by one atomic statement each (PgRateLimiter).
 * - Every node must load the same log key (ledger.key) and sees the same challenge secret (kept in
 *   the log's row), so a challenge issued by one node is accepted by another.
 * - A registration on one node is visible to reads on the others within `followMs` (default
 *   250 ms; polling, see docs/OPERATIONS.md "Running several nodes").
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { logOrigin } from './checkpoint.js';
import { LedgerError } from './errors.js';
import { IdentityLedger, type LedgerReplication, type ReplicaTarget } from './ledger.js';
import { loadOrCreateLogKey, LOG_KEY_FILE, DEFAULT_SCRYPT, type ScryptParams } from './logkey.js';
import type { RateDecision, RateLimiter } from './ratelimit.js';
import { LedgerCorruptError } from './store.js';
import { MemoryTree, leafHash } from '../identity/merkle.js';
import { PgSyncError, SyncPgClient } from './pg-sync.js';
import { join } from 'node:path';
import type { DataDirOptions } from './cli-support.js';

/** Serialises schema creation between nodes starting at once. */
const SCHEMA_LOCK = 0x41534c47; // 'ASLG'
const PAGE = 1000;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS ledger_logs (
  origin text PRIMARY KEY, size bigint NOT NULL, root bytea NOT NULL,
  verifier_key text NOT NULL, challenge_secret bytea NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_leaves (
  origin text NOT NULL, idx bigint NOT NULL, data bytea NOT NULL, root bytea NOT NULL,
  PRIMARY KEY (origin, idx));
CREATE TABLE IF NOT EXISTS ledger_approvals (
  origin text NOT NULL, reference text NOT NULL, did text NOT NULL, admin text NOT NULL,
  expires_at bigint NOT NULL, PRIMARY KEY (origin, reference));
CREATE TABLE IF NOT EXISTS ledger_policies (
  origin text NOT NULL, domain text NOT NULL, policy text NOT NULL, bits integer NOT NULL,
  PRIMARY KEY (origin, domain));
CREATE TABLE IF NOT EXISTS ledger_rate (
  origin text NOT NULL, source text NOT NULL, tokens double precision NOT NULL,
  updated_at bigint NOT NULL, allowed boolean NOT NULL, PRIMARY KEY (origin, source));
`;

export const LEDGER_REPLICA_FILE = 'ledger-replica.sqlite';

export interface PgLedgerOptions {
  readonly url: string;
  /** How often a node looks for leaves appended by the others (ms; default 250). */
  readonly followMs?: number;
  /** Longest wait for one statement of a write (ms; default 10 000). */
  readonly statementTimeoutMs?: number;
}

interface LeafRow {
  idx: string;
  data: Buffer;
  root: Buffer;
}

interface ApprovalRow {
  reference: string;
  did: string;
  admin: string;
  expires_at: number;
}

interface PolicyRow {
  domain: string;
  policy: string;
  bits: number;
}

/** Creates the tables (idempotent; serialised between nodes by an advisory lock). */
function migrate(c: SyncPgClient): void {
  c.query('BEGIN');
  try {
    c.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK]);
    c.query(SCHEMA);
    c.query('COMMIT');
  } catch (err) {
    rollback(c);
    throw err;
  }
}

function rollback(c: SyncPgClient): void {
  try {
    c.query('ROLLBACK');
  } catch {
    // The connection is gone; the server rolled the transaction back when it went.
  }
}

/** Keeps a ledger's local SQLite database a replica of the log on PostgreSQL. */
export class PgLedgerReplication implements LedgerReplication {
  readonly #sync: SyncPgClient;
  readonly #url: string;
  readonly #followMs: number;
  #target: ReplicaTarget | undefined;
  #depth = 0;
  #timer: NodeJS.Timeout | undefined;
  #follower: pg.Client | undefined;
  #following = false;
  #closed = false;
  /** Set when a follow pass failed; read by readiness. */
  lastError: Error | undefined;

  constructor(options: PgLedgerOptions) {
    this.#url = options.url;
    this.#followMs = options.followMs ?? 250;
    this.#sync = new SyncPgClient(options.url, { timeoutMs: options.statementTimeoutMs });
  }

  attach(target: ReplicaTarget): void {
    this.#target = target;
    const c = this.#sync;
    migrate(c);
    c.query(
      `INSERT INTO ledger_logs (origin, size, root, verifier_key, challenge_secret)
       VALUES ($1, 0, $2, $3, $4) ON CONFLICT (origin) DO NOTHING`,
      [target.origin, target.store.root(0), target.verifierKey, randomBytes(32)],
    );
    const row = c.query<{ verifier_key: string; challenge_secret: Buffer }>(
      'SELECT verifier_key, challenge_secret FROM ledger_logs WHERE origin = $1',
      [target.origin],
    ).rows[0];
    if (row === undefined) throw new LedgerCorruptError('ERR_LEDGER_CORRUPT', 'no log row');
    if (row.verifier_key !== target.verifierKey) {
      throw new LedgerError(
        'ERR_LOG_KEY_MISMATCH',
        `the log ${target.origin} on PostgreSQL was created with the key ${row.verifier_key}, not ${target.verifierKey}: every node loads the same ledger.key`,
      );
    }
    const s = target.store;
    s.db.transaction(() => {
      s.setMeta('origin', Buffer.from(target.origin));
      s.setMeta('verifier_key', Buffer.from(target.verifierKey));
      s.setMeta('challenge_secret', row.challenge_secret);
    })();
    this.#checkReplica();
    this.#pullTo(Number.MAX_SAFE_INTEGER);
    this.#pullPolicies(
      c.query<PolicyRow>('SELECT domain, policy, bits FROM ledger_policies WHERE origin = $1', [
        target.origin,
      ]).rows,
    );
  }

  /** A replica kept on disk must hold a prefix of the server's log. */
  #checkReplica(): void {
    const t = this.#t();
    const size = t.store.size();
    if (size === 0) return;
    const row = this.#sync.query<{ root: Buffer }>(
      'SELECT root FROM ledger_leaves WHERE origin = $1 AND idx = $2',
      [t.origin, size - 1],
    ).rows[0];
    if (row === undefined || !row.root.equals(t.store.root(size))) {
      throw new LedgerCorruptError(
        'ERR_LEDGER_CORRUPT',
        `the local replica of ${t.origin} (size ${size}) is not a prefix of the log on PostgreSQL; remove it and start again`,
      );
    }
  }

  #t(): ReplicaTarget {
    if (this.#target === undefined) throw new Error('the replication is not attached');
    return this.#target;
  }

  /** Applies leaves fetched from the server; skips those the replica already has. */
  #apply(rows: readonly LeafRow[]): void {
    const t = this.#t();
    for (const r of rows) {
      const idx = Number(r.idx);
      const size = t.store.size();
      if (idx < size) continue;
      if (idx > size) {
        throw new LedgerCorruptError('ERR_LEDGER_CORRUPT', `leaf ${size} is missing on the server`);
      }
      t.apply(r.data);
      if (!t.store.root(idx + 1).equals(r.root)) {
        throw new LedgerCorruptError(
          'ERR_LEDGER_CORRUPT',
          `the replica's tree head at size ${idx + 1} differs from the server's`,
        );
      }
    }
  }

  /** Fetches and applies (synchronously) the leaves up to `size`. */
  #pullTo(size: number): void {
    const t = this.#t();
    while (t.store.size() < size) {
      const rows = this.#sync.query<LeafRow>(
        'SELECT idx, data, root FROM ledger_leaves WHERE origin = $1 AND idx >= $2 ORDER BY idx LIMIT $3',
        [t.origin, t.store.size(), PAGE],
      ).rows;
      if (rows.length === 0) break;
      t.store.db.transaction(() => this.#apply(rows))();
    }
  }

  #pullPolicies(rows: readonly PolicyRow[]): void {
    const db = this.#t().store.db;
    db.transaction(() => {
      db.prepare('DELETE FROM policies').run();
      const ins = db.prepare('INSERT INTO policies (domain, policy, bits) VALUES (?, ?, ?)');
      for (const r of rows) ins.run(r.domain, r.policy, r.bits);
    })();
  }

  write<T>(run: () => T): T {
    if (this.#depth > 0) return run();
    const t = this.#t();
    const c = this.#sync;
    const db = t.store.db;
    this.#depth++;
    try {
      c.query('BEGIN');
      try {
        const head = c.query<{ size: string }>(
          'SELECT size FROM ledger_logs WHERE origin = $1 FOR UPDATE',
          [t.origin],
        ).rows[0];
        if (head === undefined) throw new LedgerCorruptError('ERR_LEDGER_CORRUPT', 'no log row');
        this.#pullTo(Number(head.size));
        if (t.store.size() !== Number(head.size)) {
          throw new LedgerCorruptError(
            'ERR_LEDGER_CORRUPT',
            `the server's log has ${head.size} leaves but only ${t.store.size()} could be read`,
          );
        }
        const approvals = c.query<ApprovalRow>(
          'SELECT reference, did, admin, expires_at::float8 AS expires_at FROM ledger_approvals WHERE origin = $1',
          [t.origin],
        ).rows;
        const policies = c.query<PolicyRow>(
          'SELECT domain, policy, bits FROM ledger_policies WHERE origin = $1',
          [t.origin],
        ).rows;
        const out = db
          .transaction(() => {
            db.prepare('DELETE FROM approvals').run();
            const ins = db.prepare(
              'INSERT INTO approvals (reference, did, admin, expires_at) VALUES (?, ?, ?, ?)',
            );
            for (const a of approvals) ins.run(a.reference, a.did, a.admin, a.expires_at);
            this.#pullPolicies(policies);
            const before = t.store.size();
            const result = run();
            this.#pushLeaves(before);
            this.#pushApprovals(approvals);
            this.#pushPolicies(policies);
            c.query('COMMIT');
            return result;
          })
          .immediate();
        return out;
      } catch (err) {
        rollback(c);
        throw err;
      }
    } finally {
      this.#depth--;
    }
  }

  #pushLeaves(before: number): void {
    const t = this.#t();
    const after = t.store.size();
    if (after === before) return;
    const idx: number[] = [];
    const data: Buffer[] = [];
    const roots: Buffer[] = [];
    for (let i = before; i < after; i++) {
      idx.push(i);
      data.push(t.store.leaf(i));
      roots.push(t.store.root(i + 1));
    }
    this.#sync.query(
      `INSERT INTO ledger_leaves (origin, idx, data, root)
       SELECT $1, * FROM unnest($2::bigint[], $3::bytea[], $4::bytea[])`,
      [t.origin, idx, data, roots],
    );
    this.#sync.query('UPDATE ledger_logs SET size = $2, root = $3 WHERE origin = $1', [
      t.origin,
      after,
      t.store.root(after),
    ]);
  }

  #pushApprovals(before: readonly ApprovalRow[]): void {
    const t = this.#t();
    const now = t.store.db
      .prepare('SELECT reference, did, admin, expires_at FROM approvals')
      .all() as ApprovalRow[];
    const had = new Set(before.map((a) => a.reference));
    const has = new Set(now.map((a) => a.reference));
    const gone = [...had].filter((r) => !has.has(r));
    if (gone.length > 0) {
      this.#sync.query(
        'DELETE FROM ledger_approvals WHERE origin = $1 AND reference = ANY($2::text[])',
        [t.origin, gone],
      );
    }
    for (const a of now) {
      if (had.has(a.reference)) continue;
      this.#sync.query(
        'INSERT INTO ledger_approvals (origin, reference, did, admin, expires_at) VALUES ($1, $2, $3, $4, $5)',
        [t.origin, a.reference, a.did, a.admin, a.expires_at],
      );
    }
  }

  #pushPolicies(before: readonly PolicyRow[]): void {
    const t = this.#t();
    const now = t.store.db
      .prepare('SELECT domain, policy, bits FROM policies')
      .all() as PolicyRow[];
    const key = (p: PolicyRow): string => `${p.domain}\u0000${p.policy}\u0000${p.bits}`;
    const had = new Set(before.map(key));
    for (const p of now) {
      if (had.has(key(p))) continue;
      this.#sync.query(
        `INSERT INTO ledger_policies (origin, domain, policy, bits) VALUES ($1, $2, $3, $4)
         ON CONFLICT (origin, domain) DO UPDATE SET policy = EXCLUDED.policy, bits = EXCLUDED.bits`,
        [t.origin, p.domain, p.policy, p.bits],
      );
    }
  }

  /** Starts following the server: leaves and policies written by other nodes. */
  follow(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setInterval(() => void this.followOnce(), this.#followMs);
    this.#timer.unref();
  }

  /** One follow pass (asynchronous reads; the replica is changed in one synchronous step). */
  async followOnce(): Promise<void> {
    if (this.#following || this.#closed) return;
    this.#following = true;
    const t = this.#t();
    try {
      if (this.#follower === undefined) {
        const c = new pg.Client({ connectionString: this.#url, connectionTimeoutMillis: 5000 });
        c.on('error', () => {
          if (this.#follower === c) this.#follower = undefined;
        });
        await c.connect();
        this.#follower = c;
      }
      const f = this.#follower;
      for (;;) {
        const from = t.store.size();
        const r = await f.query<LeafRow>(
          'SELECT idx, data, root FROM ledger_leaves WHERE origin = $1 AND idx >= $2 ORDER BY idx LIMIT $3',
          [t.origin, from, PAGE],
        );
        if (this.#closed) return;
        if (r.rows.length > 0) t.store.db.transaction(() => this.#apply(r.rows))();
        if (r.rows.length < PAGE) break;
      }
      const p = await f.query<PolicyRow>(
        'SELECT domain, policy, bits FROM ledger_policies WHERE origin = $1',
        [t.origin],
      );
      if (this.#closed) return;
      this.#pullPolicies(p.rows);
      this.lastError = undefined;
    } catch (err) {
      this.lastError = err as Error;
      const f = this.#follower;
      this.#follower = undefined;
      await f?.end().catch(() => undefined);
    } finally {
      this.#following = false;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#sync.close();
    void this.#follower?.end().catch(() => undefined);
  }

  /**
   * Recomputes the tree head of the whole log from the server's leaves alone and checks it
   * against the stored head at every size (the multi-node restart check: one history).
   */
  static async verifyFromScratch(
    url: string,
    origin: string,
  ): Promise<{ size: number; root: Buffer }> {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const head = (
        await c.query<{ size: string; root: Buffer }>(
          'SELECT size, root FROM ledger_logs WHERE origin = $1',
          [origin],
        )
      ).rows[0];
      if (head === undefined) throw new LedgerError('ERR_DID_UNKNOWN', `no log ${origin}`);
      const tree = new MemoryTree();
      let next = 0;
      for (;;) {
        const rows = (
          await c.query<LeafRow>(
            'SELECT idx, data, root FROM ledger_leaves WHERE origin = $1 AND idx >= $2 ORDER BY idx LIMIT $3',
            [origin, next, PAGE],
          )
        ).rows;
        for (const r of rows) {
          if (Number(r.idx) !== next) {
            throw new LedgerCorruptError('ERR_LEDGER_CORRUPT', `leaf ${next} is missing`);
          }
          tree.append(leafHash(r.data));
          next++;
          if (!tree.root(next).equals(r.root)) {
            throw new LedgerCorruptError('ERR_LEDGER_CORRUPT', `tree head ${next} does not match`);
          }
        }
        if (rows.length < PAGE) break;
      }
      const size = Number(head.size);
      if (next !== size || !tree.root(size).equals(head.root)) {
        throw new LedgerCorruptError(
          'ERR_LEDGER_CORRUPT',
          'the log head does not match its leaves',
        );
      }
      return { size, root: head.root };
    } finally {
      await c.end();
    }
  }
}

/**
 * A token-bucket limiter whose buckets live on PostgreSQL, shared by every node: one atomic
 * upsert per request (the bucket is refilled, charged if it can be, and the verdict recorded in
 * the same statement), so two nodes cannot both spend the last token.
 */
export class PgRateLimiter implements RateLimiter {
  readonly #sync: SyncPgClient;
  readonly #origin: string;
  readonly #capacity: number;
  readonly #rate: number;
  readonly #clock: () => number;
  #calls = 0;

  constructor(options: {
    url: string;
    origin: string;
    capacity: number;
    refillPerSecond: number;
    clock?: () => number;
  }) {
    if (!(options.capacity >= 1) || !(options.refillPerSecond > 0)) {
      throw new RangeError('rate limit: capacity >= 1 and refillPerSecond > 0 are required');
    }
    this.#sync = new SyncPgClient(options.url);
    migrate(this.#sync);
    this.#origin = options.origin;
    this.#capacity = options.capacity;
    this.#rate = options.refillPerSecond / 1000;
    this.#clock = options.clock ?? Date.now;
  }

  take(key: string, cost = 1): RateDecision {
    const now = this.#clock();
    // avail = min(capacity, tokens + elapsed * rate); charged when avail >= cost.
    const avail = `LEAST($3::float8, ledger_rate.tokens + GREATEST(0, $4::bigint - ledger_rate.updated_at) * $6::float8)`;
    const r = this.#sync.query<{ tokens: number; allowed: boolean }>(
      `INSERT INTO ledger_rate (origin, source, tokens, updated_at, allowed)
       VALUES ($1, $2, $3::float8 - $5::float8, $4, $3::float8 >= $5::float8)
       ON CONFLICT (origin, source) DO UPDATE SET
         tokens = ${avail} - CASE WHEN ${avail} >= $5::float8 THEN $5::float8 ELSE 0 END,
         allowed = ${avail} >= $5::float8,
         updated_at = GREATEST(ledger_rate.updated_at, $4::bigint)
       RETURNING tokens, allowed`,
      [this.#origin, key, this.#capacity, now, cost, this.#rate],
    ).rows[0];
    if (++this.#calls % 1000 === 0) this.#prune(now);
    if (r === undefined) throw new PgSyncError('ERR_LEDGER_PG', 'the rate limiter wrote no row');
    if (r.allowed) return { allowed: true, remaining: Math.floor(r.tokens) };
    return { allowed: false, retryAfterMs: Math.ceil((cost - r.tokens) / this.#rate) };
  }

  /** Buckets full again are the same as absent ones: drop them (bounded table). */
  #prune(now: number): void {
    this.#sync.query('DELETE FROM ledger_rate WHERE origin = $1 AND updated_at < $2', [
      this.#origin,
      now - Math.ceil(this.#capacity / this.#rate),
    ]);
  }

  close(): void {
    this.#sync.close();
  }
}

/** Opens the data directory's ledger as a replica of the log on PostgreSQL. */
export async function openPostgresLedger(
  opts: DataDirOptions & {
    readonly url: string;
    readonly followMs?: number;
    readonly rateLimit?: { capacity: number; refillPerSecond: number };
    readonly scrypt?: ScryptParams;
    /** The replica's file (default <dataDir>/ledger-replica.sqlite; ':memory:' for tests). */
    readonly replicaPath?: string;
  },
): Promise<{
  ledger: IdentityLedger;
  keyCreated: boolean;
  replication: PgLedgerReplication;
}> {
  const origin = opts.ledger?.origin ?? logOrigin(opts.domains[0] as string);
  const { signer, created } = await loadOrCreateLogKey(
    join(opts.dataDir, LOG_KEY_FILE),
    origin,
    opts.passphrase,
    opts.scrypt ?? DEFAULT_SCRYPT,
  );
  const replication = new PgLedgerReplication({ url: opts.url, followMs: opts.followMs });
  const limiter =
    opts.rateLimit === undefined
      ? opts.ledger?.limiter
      : new PgRateLimiter({ url: opts.url, origin, ...opts.rateLimit });
  let ledger: IdentityLedger;
  try {
    ledger = new IdentityLedger({
      ...opts.ledger,
      ...(limiter === undefined ? {} : { limiter }),
      path: opts.replicaPath ?? join(opts.dataDir, LEDGER_REPLICA_FILE),
      signer,
      domains: opts.domains,
      origin,
      replication,
    });
  } catch (err) {
    replication.close();
    if (limiter instanceof PgRateLimiter) limiter.close();
    throw err;
  }
  replication.follow();
  return { ledger, keyCreated: created, replication };
}
