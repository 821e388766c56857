/**
 * Mailbox store benchmark: durable deliveries/s and latency (p50/p99) of 4 KiB envelopes with 1
 * and 64 concurrent writers, for every backend, in one run on one machine (DESIGN.md §8):
 *   - lmdb: ChaCha20-Poly1305 sealing in the store layer, an LMDB commit and `flushed` (fsync)
 *     before deliver() resolves; concurrent deliveries share a commit and its fsync (group commit);
 *   - postgres: pgcrypto (pgp_sym_encrypt_bytea, AES-256) in the server, one transaction per
 *     delivery (mailbox row lock, three writes), committed with fsync and synchronous_commit on.
 * Every figure is "deliver() resolved", i.e. durable. Each writer delivers to its own recipient
 * (the common case: one mailbox row per recipient). The postgres rows appear when a server answers
 * at AFTERSMTP_POSTGRES_URL (scripts/services/postgres.sh start).
 *
 * Run: `node dist/bench/store.js` (BENCH_SECONDS: seconds per figure, at least 1 s is used). It
 * reports; it never asserts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { generateKey, Keyring } from '../src/store/keys.js';
import { LmdbMailboxStore } from '../src/store/lmdb.js';
import { PostgresMailboxStore } from '../src/store/postgres.js';
import type { MailboxStore } from '../src/store/types.js';
import { measureBackends, type Backend } from './lib/backends.js';
import { defaultSeconds, formatOps, formatRatio, ratio, runSections } from './lib/measure.js';

const CONCURRENCY = [1, 64];
const BODY = randomBytes(4096);
const HASH = createHash('sha256').update(BODY).digest();
/** About the size of a classic-v1 receipt record. */
const RECEIPT = randomBytes(256);

/** One delivery to writer `w`'s own mailbox. */
function deliver(store: MailboxStore): (w: number) => Promise<unknown> {
  let n = 0;
  return (w) =>
    store.deliver({
      recipient: `did:aftersmtp:bench.example:user${w}`,
      messageId: `bench-${n++}`,
      sender: 'did:aftersmtp:sender.example:s',
      receivedAt: Date.now(),
      expiresAt: Date.now() + 3_600_000,
      ciphertextHash: HASH,
      envelope: BODY,
      receipt: RECEIPT,
    });
}

const BACKENDS: Backend<MailboxStore>[] = [
  {
    name: 'lmdb',
    fsync: 'fsync per group commit',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'aftersmtp-bench-store-'));
      const store = await LmdbMailboxStore.open({
        path: dir,
        keyring: new Keyring([generateKey()]),
      });
      return {
        handle: store,
        async close() {
          await store.close();
          rmSync(dir, { recursive: true, force: true });
        },
      };
    },
  },
  {
    name: 'postgres',
    fsync: 'fsync on, synchronous_commit on',
    async open() {
      const url = process.env.AFTERSMTP_POSTGRES_URL;
      if (url === undefined) return 'skipped: AFTERSMTP_POSTGRES_URL is not set';
      const name = `aftersmtp_bench_${Date.now()}`;
      const admin = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
      try {
        await admin.connect();
        await admin.query(`CREATE DATABASE ${name}`);
      } catch (err) {
        return `skipped: ${(err as Error).message}`;
      } finally {
        await admin.end().catch(() => undefined);
      }
      const u = new URL(url);
      u.pathname = `/${name}`;
      const store = await PostgresMailboxStore.open({
        url: u.toString(),
        keyring: new Keyring([generateKey()]),
        poolSize: 64,
      });
      return {
        handle: store,
        async close() {
          await store.close();
          const c = new pg.Client({ connectionString: url });
          await c.connect();
          await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
          await c.end();
        },
      };
    },
  },
];

await runSections([
  {
    id: 'deliver',
    title: 'Deliver to durable commit, 4 KiB envelopes, encrypted at rest',
    async run() {
      const seconds = Math.max(1, defaultSeconds());
      const { cells, notes } = await measureBackends(BACKENDS, CONCURRENCY, deliver, seconds, 300);
      const baseline = (w: number) =>
        cells.find((c) => c.backend === 'lmdb' && c.concurrency === w)?.opsPerSecond;
      notes.push(
        `${seconds} s measured per row after 0.3 s warm-up; one process; each writer has its own mailbox; ` +
          'ratio: against lmdb at the same concurrency.',
      );
      return {
        headers: [
          'backend',
          'fsync policy',
          'writers',
          'deliveries/s',
          'p50 ms',
          'p99 ms',
          'vs lmdb',
        ],
        rows: cells.map((c) => [
          c.backend,
          c.fsync,
          String(c.concurrency),
          formatOps(c.opsPerSecond),
          c.p50ms.toFixed(2),
          c.p99ms.toFixed(2),
          formatRatio(ratio(c.opsPerSecond, baseline(c.concurrency))),
        ]),
        notes,
        json: cells.map((c) => ({
          ...c,
          ratioToLmdb: ratio(c.opsPerSecond, baseline(c.concurrency)),
        })),
      };
    },
  },
]);
