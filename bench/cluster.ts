/**
 * Cluster benchmark: messages/s through one domain's gateway with 1, 2 and 3 `aftersmtp serve`
 * nodes sharing PostgreSQL (mailboxes, ledger, maps) and a NATS JetStream cluster of three servers
 * (streams with 3 replicas) as the queue, against one node on the embedded backends (LMDB queue
 * and mailbox store, SQLite ledger and maps), all in the same run on the same machine. The nodes
 * share this machine's cores: adding a node adds no CPU, so the 2- and 3-node rows show what
 * sharing costs (coordination, the network hops to the shared services), not how far it scales
 * on separate machines.
 *
 * One message, timed: alice's client seals a 4 KiB message to bob (outside the timing), then t0,
 * DispatchMessage on the next node in turn (the node commits it to the queue and answers), a
 * node's delivery worker leases the job and writes bob's mailbox, and logs "delivery settled" with
 * delivered 1 for its message id: the signal that the message is durable in the mailbox (the
 * store commit, fsync on, happened before the settle). Senders are closed loops of one message in
 * flight each (SENDERS of them).
 *
 * CPU per message is read from /proc for every gateway process and every nats-server of the row,
 * and from process.cpuUsage() for the bench process (sealing, gRPC client, log parsing). The
 * PostgreSQL server's CPU is not counted (it is a shared server, other work uses it too).
 *
 * Needs AFTERSMTP_POSTGRES_URL (test/store/services.ts) and the nats-server of
 * scripts/services/nats.sh (`nats.sh install`); without them the shared rows are left out with a
 * note. Run: `node dist/bench/cluster.js` or `aftersmtp bench cluster` (each row is measured for
 * 10 x BENCH_SECONDS, at least 2 s; default 4 s). It reports; it never asserts.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GatewayClient } from '../src/amp/client-api/index.js';
import { encodeEnvelope, sealMessage } from '../src/envelope/index.js';
import { readKeyFile } from '../src/identity/index.js';
import { NatsCluster, natsServerBinary } from '../test/helpers/nats-cluster.js';
import { freshDatabase, postgresService } from '../test/store/services.js';
import {
  E2eGateway,
  USER_PASS,
  makeUserWith,
  shareSecrets,
  type LogLine,
} from '../test/e2e/helpers.js';
import { defaultSeconds, formatOps, percentile, runSections } from './lib/measure.js';
import { cpuSeconds } from './lib/postfix.js';

const BODY = randomBytes(4096);
const SENDERS = Number(process.env.CLUSTER_SENDERS ?? 16);
const WARMUP_MS = 1000;
const STORED_TIMEOUT_MS = 60_000;

interface Row {
  backends: 'embedded' | 'shared';
  nodes: number;
  senders: number;
  messages: number;
  messagesPerSecond: number;
  p50ms: number;
  p99ms: number;
  /** CPU per message: all gateway processes, all nats-servers, the bench process. */
  gatewayCpuUs: number;
  natsCpuUs: number;
  benchCpuUs: number;
}

/** Resolves when any node logs that a message id was delivered into its mailbox. */
class SettledSignal {
  readonly #waiting = new Map<string, () => void>();
  readonly listener = (l: LogLine): void => {
    if (l.msg !== 'delivery settled' || Number(l.delivered) < 1) return;
    const id = String(l.messageId);
    const w = this.#waiting.get(id);
    if (w !== undefined) {
      this.#waiting.delete(id);
      w();
    }
  };

  wait(id: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(id);
        reject(new Error(`message ${id} not delivered within ${STORED_TIMEOUT_MS} ms`));
      }, STORED_TIMEOUT_MS);
      this.#waiting.set(id, () => (clearTimeout(timer), resolve()));
    });
  }
}

/** Starts the first node, copies its secrets to the others (they start later), makes the users. */
async function prepareDomain(
  work: string,
  domain: string,
  count: number,
  env: Record<string, string>,
): Promise<{ nodes: E2eGateway[]; alice: string; bob: string }> {
  const nodes: E2eGateway[] = [];
  for (let n = 1; n <= count; n++) {
    nodes.push(await E2eGateway.prepare(join(work, `${domain}-n${n}`), domain, env));
  }
  const first = nodes[0] as E2eGateway;
  await first.start();
  await first.stop();
  for (const n of nodes.slice(1)) {
    shareSecrets(first.dataDir, n.dataDir);
  }
  await first.start();
  const noDns = { AFTERSMTP_DNS_SERVERS: '127.0.0.1:9' };
  const alice = await makeUserWith(work, first, 'alice', noDns, first.logKey);
  const bob = await makeUserWith(work, first, 'bob', noDns, first.logKey);
  return { nodes, alice: alice.keyFile, bob: bob.keyFile };
}

/** SENDERS closed loops for `seconds` against the running `nodes` in turn. */
async function measureRow(
  backends: Row['backends'],
  nodes: E2eGateway[],
  nats: NatsCluster | undefined,
  users: { alice: string; bob: string },
  seconds: number,
): Promise<Row> {
  const aliceKeys = await readKeyFile(users.alice, USER_PASS);
  const bobRecord = (await readKeyFile(users.bob, USER_PASS)).record;
  const signal = new SettledSignal();
  for (const n of nodes) n.listeners.add(signal.listener);
  const clients: { c: GatewayClient; token: string }[] = [];
  try {
    for (const n of nodes) {
      const c = await GatewayClient.connect({ target: n.grpc, pin: { spki: n.spki } });
      clients.push({ c, token: (await c.login(aliceKeys)).token });
    }
    let next = 0;
    const sendOne = async (): Promise<number> => {
      const [sealed] = sealMessage({
        author: aliceKeys,
        to: [bobRecord],
        body: { subject: 'bench', contentType: 'application/octet-stream', content: BODY },
      });
      const envelope = sealed!.envelope;
      const bytes = encodeEnvelope(envelope);
      const stored = signal.wait(envelope.messageId.toString('hex'));
      const { c, token } = clients[next++ % clients.length]!;
      const t0 = performance.now();
      await c.dispatchMessage(token, { envelope: bytes });
      await stored;
      return performance.now() - t0;
    };
    const latencies: number[] = [];
    const run = async (until: number, record: boolean): Promise<void> => {
      while (performance.now() < until) {
        const ms = await sendOne();
        if (record) latencies.push(ms);
      }
    };
    const warm = performance.now() + WARMUP_MS;
    await Promise.all(Array.from({ length: SENDERS }, () => run(warm, false)));
    const gatewayCpu = (): number =>
      nodes.reduce((s, n) => s + cpuSeconds(n.child?.pid as number), 0);
    const natsCpu = (): number =>
      [0, 1, 2].reduce((s, i) => {
        const pid = nats?.pid(i);
        return s + (pid === undefined ? 0 : cpuSeconds(pid));
      }, 0);
    const cpu0 = { gw: gatewayCpu(), nats: natsCpu(), bench: process.cpuUsage() };
    const start = performance.now();
    await Promise.all(Array.from({ length: SENDERS }, () => run(start + seconds * 1000, true)));
    const elapsed = (performance.now() - start) / 1000;
    const bench = process.cpuUsage(cpu0.bench);
    const perMessage = (s: number): number => (1e6 * s) / Math.max(1, latencies.length);
    return {
      backends,
      nodes: nodes.length,
      senders: SENDERS,
      messages: latencies.length,
      messagesPerSecond: latencies.length / elapsed,
      p50ms: percentile(latencies, 0.5),
      p99ms: percentile(latencies, 0.99),
      gatewayCpuUs: perMessage(gatewayCpu() - cpu0.gw),
      natsCpuUs: perMessage(natsCpu() - cpu0.nats),
      benchCpuUs: perMessage((bench.user + bench.system) / 1e6),
    };
  } finally {
    for (const { c } of clients) c.close();
    for (const n of nodes) n.listeners.delete(signal.listener);
  }
}

await runSections([
  {
    id: 'cluster',
    title: `DispatchMessage to durable in the mailbox, 4 KiB bodies, ${SENDERS} senders, nodes of one domain on this machine`,
    async run() {
      const seconds = Math.max(2, 10 * defaultSeconds());
      const headers = [
        'backends',
        'nodes',
        'msgs/s',
        'vs embedded',
        'p50 ms',
        'p99 ms',
        'gateways CPU µs/msg',
        'NATS CPU µs/msg',
        'bench µs/msg',
      ];
      const work = mkdtempSync(join(tmpdir(), 'aftersmtp-bench-cluster-'));
      const rows: Row[] = [];
      const notes: string[] = [];
      const running: E2eGateway[] = [];
      let nats: NatsCluster | undefined;
      let dropDb: (() => Promise<void>) | undefined;
      try {
        // Embedded: one node, LMDB queue and store, SQLite ledger and maps.
        const embedded = await prepareDomain(work, 'embedded.test', 1, {
          AFTERSMTP_SUITE: 'classic-v1',
        });
        running.push(...embedded.nodes);
        rows.push(await measureRow('embedded', embedded.nodes, undefined, embedded, seconds));
        await embedded.nodes[0]!.stop();

        const pg = await postgresService().catch((err: unknown) => ({
          url: '',
          skip: (err as Error).message,
        }));
        const bin = natsServerBinary();
        if (pg.skip !== undefined || bin.skip !== undefined) {
          notes.push(`shared rows skipped: ${pg.skip ?? bin.skip ?? ''}`);
        } else {
          nats = await NatsCluster.start(bin.bin, join(work, 'nats'));
          const db = await freshDatabase(pg.url);
          dropDb = db.drop;
          const shared = await prepareDomain(work, 'shared.test', 3, {
            AFTERSMTP_LEDGER: 'postgres',
            AFTERSMTP_MAPS: 'postgres',
            AFTERSMTP_STORE: 'postgres',
            AFTERSMTP_POSTGRES_URL: db.url,
            AFTERSMTP_QUEUE: 'nats',
            AFTERSMTP_NATS_URL: nats.url,
            AFTERSMTP_NATS_REPLICAS: '3',
            AFTERSMTP_SUITE: 'classic-v1',
          });
          running.push(...shared.nodes);
          for (let n = 1; n <= 3; n++) {
            const up = shared.nodes.slice(0, n);
            if (n > 1) await up[n - 1]!.start();
            rows.push(await measureRow('shared', up, nats, shared, seconds));
          }
        }
      } finally {
        await Promise.all(running.map((n) => n.stop()));
        await nats?.stop();
        await dropDb?.();
        rmSync(work, { recursive: true, force: true });
      }
      const base = rows.find((r) => r.backends === 'embedded');
      return {
        headers,
        rows: rows.map((r) => [
          r.backends === 'embedded'
            ? 'embedded (LMDB queue + store, SQLite)'
            : 'shared (PostgreSQL + NATS x3, R3)',
          String(r.nodes),
          formatOps(r.messagesPerSecond),
          base === undefined
            ? '—'
            : `${(r.messagesPerSecond / base.messagesPerSecond).toFixed(2)}x`,
          r.p50ms.toFixed(1),
          r.p99ms.toFixed(1),
          r.gatewayCpuUs.toFixed(0),
          r.backends === 'embedded' ? '—' : r.natsCpuUs.toFixed(0),
          r.benchCpuUs.toFixed(0),
        ]),
        notes: [
          `${seconds} s per row after ${WARMUP_MS} ms of warm-up; classic-v1; fsync on everywhere ` +
            '(LMDB group commit; NATS sync_interval always, a PubAck after a majority of 3 has the job; ' +
            'PostgreSQL fsync on). The nodes share this machine: more nodes add no cores. ' +
            'PostgreSQL CPU is not counted (a shared server).',
          ...notes,
        ],
        json: { senders: SENDERS, bodyBytes: BODY.length, seconds, rows },
      };
    },
  },
]);
