/**
 * Relay benchmark (issue 6): end-to-end messages/s and latency (p50/p99) from DispatchMessage on
 * gateway A to durable storage on gateway B, 4 KiB message bodies, for classic-v1 and hybrid-v1
 * (both gateways and both users of that suite), with 1 and 64 concurrent senders, and the peak RSS
 * (VmHWM) of each gateway process. Two real `aftersmtp serve` processes per suite, started by the
 * e2e helpers (test/e2e/helpers.ts: fixed ports, log key made beforehand) and discovered through
 * a real unbound serving `_aftersmtp._tcp` TXT records (p=, c=, k=); users are made with the real
 * CLI (keygen, register with hashcash).
 *
 * Storage: the defaults, lmdb queue and lmdb mailbox store, group commit, fsync on (a write
 * resolves only after `flushed`; never noSync).
 *
 * One message, timed: the bench seals it (before the row's clock starts), then t0, DispatchMessage
 * on A (A commits it to its queue and answers), A's delivery worker relays it over QUIC, B stores
 * it and its receipt, and B logs "relay message received" for its message id. That log line is the
 * signal: B writes it only after store.deliver() and store.putReceipt() have resolved, both of
 * which await LMDB `flushed`, so it marks the message durable on B. The bench reads B's stdout and
 * stops the clock at that line. Senders are closed loops: each sends its next message when the
 * previous one is durable on B. The warm-up seals as it goes; the measured window's envelopes are
 * sealed before it (as many as the warm-up's rate needs, and a margin), because sealing is the
 * client's work and would otherwise take the gateways' cores (the Postfix baseline's smtp-source
 * does nothing like it); any the window needs beyond them are sealed in it and counted. Then, for
 * the same sender count, a row "paced by A" measured as the baseline is: RELAY_POSTFIX_MESSAGES
 * envelopes sealed beforehand, each sender's next one dispatched when A has answered (as
 * smtp-source waits for Postfix A's 250), the rate counted until the last is durable on B.
 *
 * CPU per message is read from /proc for each `serve` process (A and B) over each row, and from
 * process.cpuUsage() for the bench process itself (sealing, gRPC client, log parsing). Both
 * gateways' CPU per message is also set against the cryptography a relayed message needs (its
 * signatures, hashes and AEAD passes, timed in this process: bench/lib/crypto-floor.ts).
 *
 * Baseline, in the same run: ../shared/bench/postfix-twohop.sh (smtp-source -> Postfix A, durable
 * -> Postfix B, durable -> virtual(8) Maildir, fsync'd), the same 4 KiB bodies and as many
 * sessions as we have senders, RELAY_POSTFIX_MESSAGES (default 2000) per run; it needs root, and
 * is left out (with a note) otherwise.
 *
 * Run: `node dist/bench/relay.js` or `aftersmtp bench relay` (BENCH_SECONDS scales it: each row is
 * measured for 10 x BENCH_SECONDS, at least 2 s; default 4 s per row, about two minutes in all
 * with the baseline). It needs unbound (apt-get install unbound). It reports; it never asserts.
 * The senders submit over one DispatchStream call that they share (docs/PROTOCOL.md §12.3: the
 * same checks and commit as DispatchMessage, answered in order), as a sender with many messages
 * does; RELAY_DISPATCH=unary makes each message a DispatchMessage call of its own instead.
 * RELAY_SENDERS picks the sender counts (default 1,64). RELAY_CPU_PROF_DIR makes each `serve`
 * write a V8 CPU profile there (<suite>-A/, <suite>-B/) and the bench the measured window and its
 * messages (<suite>-window: the last row's), for the per-stage table of bench/stages.ts.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { encodeEnvelope, sealMessage } from '../src/envelope/index.js';
import { GatewayClient } from '../src/amp/client-api/index.js';
import { readKeyFile } from '../src/identity/index.js';
import { startUnbound, unboundMissing } from '../test/client-api/helpers.js';
import { E2eGateway, USER_PASS, makeUser, type LogLine } from '../test/e2e/helpers.js';
import { tempDir } from '../test/helpers/cli.js';
import { cpuProfileArgs, profileWindow } from './lib/profile.js';
import { describeFloor, relayCryptoFloor, type CryptoFloor } from './lib/crypto-floor.js';
import { defaultSeconds, formatOps, percentile, quiet, runSections } from './lib/measure.js';
import {
  cpuSeconds,
  postfixBaselineUnavailable,
  postfixTwoHop,
  type PostfixTwoHopRun,
} from './lib/postfix.js';

const SUITES = ['classic-v1', 'hybrid-v1'] as const;
type Suite = (typeof SUITES)[number];
const CONCURRENCY = (process.env.RELAY_SENDERS ?? '1,64').split(',').map(Number);
/** Where each `serve` writes a V8 CPU profile (<dir>/<suite>-A, -B), for bench/stages.ts. */
const PROFILE_DIR = process.env.RELAY_CPU_PROF_DIR;
/** How the senders submit: one DispatchStream call that they all share, or DispatchMessage calls. */
const DISPATCH = process.env.RELAY_DISPATCH === 'unary' ? 'unary' : 'stream';
const BODY = randomBytes(4096);
/**
 * Warm-up per row before measuring (RELAY_WARMUP_MS): a running gateway's JavaScript is compiled;
 * after 1 s V8's optimizing compiler was still busy in the measured window.
 */
const WARMUP_MS = Number(process.env.RELAY_WARMUP_MS ?? 5000);
const STORED_TIMEOUT_MS = 30_000;
const FSYNC = 'lmdb queue + lmdb store, group commit, fsync on';
const POSTFIX_MESSAGES = Number(process.env.RELAY_POSTFIX_MESSAGES ?? 2000);

/**
 * How senders are paced: `durable`, the next message when the previous one is durable on B;
 * `accepted`, the next message when A has answered (its queue holds it), as smtp-source paces
 * Postfix's sessions in the baseline, whose rate is also counted until the last message is
 * durable at the far end.
 */
type Pacing = 'durable' | 'accepted';

interface Cell {
  suite: Suite;
  pacing: Pacing;
  senders: number;
  messages: number;
  messagesPerSecond: number;
  /** DispatchMessage call to "relay message received" on B (durable on B). */
  p50ms: number;
  p99ms: number;
  /** DispatchMessage call to its answer (durable in A's queue). */
  dispatchP50ms: number;
  dispatchP99ms: number;
  /** CPU per message of each gateway process and of the bench process. */
  aCpuUs: number;
  bCpuUs: number;
  benchCpuUs: number;
  /** Closed-loop rows: envelopes sealed inside the measured window (the pre-sealed ones ran out). */
  sealedInWindow?: number;
}

/** An envelope sealed and encoded by the bench, as the client would. */
interface Sealed {
  id: string;
  bytes: Buffer;
}

interface Rss {
  suite: Suite;
  gateway: 'A' | 'B';
  domain: string;
  peakRssMiB: number;
}

/** VmHWM (peak resident set) of a live process, in MiB. */
function peakRssMiB(pid: number | undefined): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/^VmHWM:\s+(\d+) kB/m.exec(status)?.[1]);
  return kb / 1024;
}

/** Waits on B's "relay message received" lines by message id. */
class StoredSignal {
  readonly #waiting = new Map<string, { resolve(): void; reject(e: Error): void }>();

  readonly listener = (l: LogLine): void => {
    if (l.msg !== 'relay message received') return;
    const w = this.#waiting.get(String(l.messageId));
    if (w === undefined) return;
    this.#waiting.delete(String(l.messageId));
    if (l.accepted === 1) w.resolve();
    else w.reject(new Error(`B refused ${String(l.messageId)}: ${JSON.stringify(l)}`));
  };

  /** Registered before the dispatch: B may log before A's answer reaches us. */
  wait(messageId: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(messageId);
        reject(new Error(`${messageId}: not stored on B within ${STORED_TIMEOUT_MS} ms`));
      }, STORED_TIMEOUT_MS);
      this.#waiting.set(messageId, {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
    });
  }
}

interface Pair {
  suite: Suite;
  a: E2eGateway;
  b: E2eGateway;
}

async function measureSuite(
  pair: Pair,
  work: string,
  env: Record<string, string>,
  seconds: number,
): Promise<{ cells: Cell[]; rss: Rss[]; floor: CryptoFloor }> {
  const { suite, a, b } = pair;
  for (const gw of [a, b]) Object.assign(gw.env, env);
  // The bench reads B's "relay message received" lines only.
  a.keepLine = () => false;
  b.keepLine = (text) => text.includes('"msg":"relay message received"');
  a.nodeArgs = cpuProfileArgs(PROFILE_DIR, `${suite}-A`);
  b.nodeArgs = cpuProfileArgs(PROFILE_DIR, `${suite}-B`);
  await Promise.all([a.start(), b.start()]);
  const signal = new StoredSignal();
  b.listeners.add(signal.listener);
  let client: GatewayClient | undefined;
  try {
    const [alice, bob] = await Promise.all([
      makeUser(work, a, 'alice', suite, env),
      makeUser(work, b, 'bob', suite, env),
    ]);
    const aliceKeys = await readKeyFile(alice.keyFile, USER_PASS);
    const bobRecord = (await readKeyFile(bob.keyFile, USER_PASS)).record;
    client = await GatewayClient.connect({ target: a.grpc, pin: { spki: a.spki } });
    const c = client;
    const { token } = await c.login(aliceKeys);
    const stream = DISPATCH === 'stream' ? c.dispatchStream(token) : undefined;
    const submit = (req: { envelope: Buffer }) =>
      stream === undefined ? c.dispatchMessage(token, req) : stream.dispatch(req);

    /** One envelope for bob, sealed (the client's work). */
    const seal = () =>
      sealMessage({
        author: aliceKeys,
        to: [bobRecord],
        body: { subject: 'bench', contentType: 'application/octet-stream', content: BODY },
      })[0]!.envelope;
    /** One envelope for bob, sealed and encoded. */
    const sealOne = (): Sealed => {
      const envelope = seal();
      return { id: envelope.messageId.toString('hex'), bytes: encodeEnvelope(envelope) };
    };

    const sendOne = async (one: Sealed): Promise<{ total: number; dispatch: number }> => {
      const stored = signal.wait(one.id);
      const t0 = performance.now();
      await submit({ envelope: one.bytes });
      const t1 = performance.now();
      await stored;
      return { total: performance.now() - t0, dispatch: t1 - t0 };
    };

    /** Starts measuring a row: what `finish` reports counts from now (rate, latencies, CPU). */
    const measure = () => {
      const cpu0 = {
        a: cpuSeconds(a.child?.pid as number),
        b: cpuSeconds(b.child?.pid as number),
        bench: process.cpuUsage(),
      };
      const start = performance.now();
      return (pacing: Pacing, senders: number, total: number[], dispatch: number[]): Cell => {
        const elapsed = (performance.now() - start) / 1000;
        const benchCpu = process.cpuUsage(cpu0.bench);
        const perMessage = (cpuS: number) => (1e6 * cpuS) / Math.max(1, total.length);
        return {
          suite,
          pacing,
          senders,
          messages: total.length,
          messagesPerSecond: total.length / elapsed,
          p50ms: percentile(total, 0.5),
          p99ms: percentile(total, 0.99),
          dispatchP50ms: percentile(dispatch, 0.5),
          dispatchP99ms: percentile(dispatch, 0.99),
          aCpuUs: perMessage(cpuSeconds(a.child?.pid as number) - cpu0.a),
          bCpuUs: perMessage(cpuSeconds(b.child?.pid as number) - cpu0.b),
          benchCpuUs: perMessage((benchCpu.user + benchCpu.system) / 1e6),
        };
      };
    };

    /**
     * POSTFIX_MESSAGES messages as the baseline sends them: each sender's next message when A has
     * answered; the rate counts until the last one is durable on B.
     */
    const pacedAsPostfix = async (senders: number): Promise<Cell> => {
      const total: number[] = [];
      const dispatch: number[] = [];
      const stored: Promise<void>[] = [];
      // Sealed before the clock starts, as the off-ramp bench does: sealing is the client's work.
      const envelopes = Array.from({ length: POSTFIX_MESSAGES }, sealOne);
      let next = 0;
      const finish = measure();
      const sender = async (): Promise<void> => {
        for (let one = envelopes[next++]; one; one = envelopes[next++]) {
          const durable = signal.wait(one.id);
          const t0 = performance.now();
          stored.push(durable.then(() => void total.push(performance.now() - t0)));
          await submit({ envelope: one.bytes });
          dispatch.push(performance.now() - t0);
        }
      };
      await Promise.all(Array.from({ length: senders }, sender));
      await Promise.all(stored);
      return finish('accepted', senders, total, dispatch);
    };

    const cells: Cell[] = [];
    for (const senders of CONCURRENCY) {
      const total: number[] = [];
      const dispatch: number[] = [];
      // Warm-up seals as it goes; the measured window takes envelopes sealed before it starts (as
      // many as the warm-up's rate needs, with a margin), so the client's sealing does not share
      // the two gateways' cores. Should they run out, the rest are sealed in the window, counted.
      let pool: Sealed[] = [];
      let sealedInWindow = 0;
      const next = (record: boolean): Sealed => {
        const one = pool.pop();
        if (one !== undefined) return one;
        if (record) sealedInWindow++;
        return sealOne();
      };
      let warmedUp = 0;
      const run = async (until: number, record: boolean): Promise<void> => {
        while (performance.now() < until) {
          const r = await sendOne(next(record));
          if (record) {
            total.push(r.total);
            dispatch.push(r.dispatch);
          } else warmedUp++;
        }
      };
      const warm = performance.now() + WARMUP_MS;
      await Promise.all(Array.from({ length: senders }, () => run(warm, false)));
      const poolSize = Math.ceil(((warmedUp * 1000) / WARMUP_MS) * seconds * 2.5) + 4 * senders;
      pool = Array.from({ length: poolSize }, sealOne);
      const finish = measure();
      const closeWindow = profileWindow(PROFILE_DIR, suite);
      const end = performance.now() + seconds * 1000;
      await Promise.all(Array.from({ length: senders }, () => run(end, true)));
      closeWindow(total.length);
      cells.push({ ...finish('durable', senders, total, dispatch), sealedInWindow });
      pool = [];
      cells.push(await pacedAsPostfix(senders));
    }
    const rss: Rss[] = [
      { suite, gateway: 'A', domain: a.domain, peakRssMiB: peakRssMiB(a.child?.pid) },
      { suite, gateway: 'B', domain: b.domain, peakRssMiB: peakRssMiB(b.child?.pid) },
    ];
    await stream?.end();
    // Timed right after the rows (the machine's speed moves over minutes), once it is quiet, on
    // this suite's own sizes.
    await quiet();
    const probe = seal();
    const floor = relayCryptoFloor(suite, {
      ciphertextBytes: probe.ciphertext.length,
      envelopeBytes: encodeEnvelope(probe).length,
    });
    return { cells, rss, floor };
  } finally {
    client?.close();
    b.listeners.delete(signal.listener);
    await Promise.all([a.stop(), b.stop()]);
  }
}

await runSections([
  {
    id: 'relay',
    title: 'DispatchMessage on A to durable storage on B, 4 KiB bodies, two gateways over QUIC',
    async run() {
      const seconds = Math.max(2, 10 * defaultSeconds());
      const headers = [
        'side',
        'senders',
        'msgs/s',
        'vs Postfix',
        'p50 ms',
        'p99 ms',
        'A ack p50',
        'A ack p99',
        'A CPU µs/msg',
        'B CPU µs/msg',
        'bench µs/msg',
        'A+B vs crypto',
        'A peak RSS',
        'B peak RSS',
      ];
      const noBaseline = postfixBaselineUnavailable();
      const baseline: PostfixTwoHopRun[] =
        noBaseline === undefined
          ? await postfixTwoHop({
              messages: POSTFIX_MESSAGES,
              size: BODY.length,
              sessions: CONCURRENCY,
              warmup: 200,
            })
          : [];
      const missing = unboundMissing();
      if (missing !== undefined) {
        return { headers, rows: [], notes: [`skipped: ${missing}`], json: { skipped: missing } };
      }
      const work = tempDir('bench-relay');
      const pairs: Pair[] = [];
      for (const suite of SUITES) {
        const gwEnv = { AFTERSMTP_SUITE: suite };
        const tag = suite.replace('-v1', '');
        pairs.push({
          suite,
          a: await E2eGateway.prepare(work, `a-${tag}.test`, gwEnv),
          b: await E2eGateway.prepare(work, `b-${tag}.test`, gwEnv),
        });
      }
      const records: Record<string, string[]> = {};
      for (const gw of pairs.flatMap((p) => [p.a, p.b])) {
        records[`_aftersmtp._tcp.${gw.domain}`] = [gw.txt()];
      }
      const dns = await startUnbound('test', records);
      const env = { AFTERSMTP_DNS_SERVERS: dns.server };
      const cells: Cell[] = [];
      const rss: Rss[] = [];
      const floors: CryptoFloor[] = [];
      try {
        for (const pair of pairs) {
          const r = await measureSuite(pair, work, env, seconds);
          cells.push(...r.cells);
          rss.push(...r.rss);
          floors.push(r.floor);
        }
      } finally {
        await dns.close();
        rmSync(work, { recursive: true, force: true });
      }
      const mib = (suite: Suite, g: 'A' | 'B'): string => {
        const v = rss.find((x) => x.suite === suite && x.gateway === g)?.peakRssMiB;
        return v === undefined ? '—' : `${v.toFixed(0)} MiB`;
      };
      const ratio = (c: Cell): string => {
        const p = baseline.find((b) => b.sessions === c.senders);
        return p === undefined
          ? '—'
          : `${(c.messagesPerSecond / p.deliveredPerSecond).toFixed(2)}x`;
      };
      /** Both gateways' CPU per message over the cryptography it needs (target: at most 4x). */
      const overFloor = (c: Cell): string => {
        const f = floors.find((x) => x.suite === c.suite);
        return f === undefined ? '—' : `${((c.aCpuUs + c.bCpuUs) / f.totalUs).toFixed(1)}x`;
      };
      return {
        headers,
        rows: [
          ...baseline.map((p) => [
            `Postfix ${p.version}`,
            String(p.sessions),
            formatOps(p.deliveredPerSecond),
            '1.00x',
            '—',
            '—',
            '—',
            '—',
            p.aCpuUsPerMessage.toFixed(0),
            p.bCpuUsPerMessage.toFixed(0),
            '—',
            '—',
            '—',
            '—',
          ]),
          ...cells.map((c) => [
            `AfterSMTP ${c.suite}${c.pacing === 'accepted' ? ', paced by A' : ''}`,
            String(c.senders),
            formatOps(c.messagesPerSecond),
            ratio(c),
            c.p50ms.toFixed(1),
            c.p99ms.toFixed(1),
            c.dispatchP50ms.toFixed(1),
            c.dispatchP99ms.toFixed(1),
            c.aCpuUs.toFixed(0),
            c.bCpuUs.toFixed(0),
            c.benchCpuUs.toFixed(0),
            overFloor(c),
            mib(c.suite, 'A'),
            mib(c.suite, 'B'),
          ]),
        ],
        notes: [
          noBaseline === undefined
            ? `Postfix: postfix-twohop.sh, ${POSTFIX_MESSAGES} messages per run, smtp-source sessions = our senders, ` +
              'a new connection per message; msgs/s is its delivered rate (start of the run to the last Maildir file); ' +
              `checks ${baseline.every((p) => p.checksOk) ? 'ok' : 'FAILED'}.`
            : `Postfix baseline left out: ${noBaseline}.`,
          'CPU µs/msg: user+system from /proc for each serve process (Postfix: all processes of each instance), ' +
            "and the bench process's own (sealing, the gRPC client, reading B's log), over the measured window.",
          "A+B vs crypto: both gateways' CPU per message over the cryptography a relayed message needs " +
            "(bench/lib/crypto-floor.ts, timed in this process after each suite's rows once the machine is quiet, every message " +
            `signed and verified alone; target at most 4x): ${floors.map(describeFloor).join('; ')}.`,
          `fsync policy: ${FSYNC}, on both gateways.`,
          `${seconds} s measured per row after ${WARMUP_MS / 1000} s warm-up; senders are closed loops ` +
            '(the next message when the previous one is durable on B), all as one user over one gRPC channel to A, ' +
            'with envelopes sealed before the row (sealed in the window: ' +
            `${cells
              .filter((c) => c.pacing === 'durable')
              .map((c) => `${c.suite}/${c.senders} ${c.sealedInWindow ?? 0}`)
              .join(', ')}), ` +
            (DISPATCH === 'stream'
              ? 'sharing one DispatchStream call (RELAY_DISPATCH=unary: a DispatchMessage call each).'
              : 'a DispatchMessage call each (RELAY_DISPATCH=unary).'),
          `"paced by A": ${POSTFIX_MESSAGES} messages sent as the baseline's smtp-source sends them (each sender's ` +
            "next message when A has answered, i.e. the message is durable in A's queue), the rate counted from the " +
            'first dispatch until the last message is durable on B; the same measure as the Postfix row. The ' +
            "envelopes are sealed before the clock starts (sealing is the client's work).",
          'p50/p99: DispatchMessage call to B\'s "relay message received" log line for that message id ' +
            "(written after B's store.deliver and putReceipt resolved, i.e. after LMDB flushed); " +
            "A ack: DispatchMessage call to its answer (the message durable in A's queue).",
          'Peak RSS: VmHWM of each `aftersmtp serve` process, read at the end of both rows of its suite ' +
            '(a fresh pair of gateways per suite). Sealing (in the bench process) is outside the timing; ' +
            'the bench, both gateways and unbound share the machine.',
        ],
        json: {
          fsync: FSYNC,
          secondsPerRow: seconds,
          warmupSeconds: WARMUP_MS / 1000,
          postfix: baseline,
          cells: cells.map((c) => ({ ...c, vsPostfix: ratio(c), overCryptoFloor: overFloor(c) })),
          cryptoFloors: floors,
          rss,
        },
      };
    },
  },
]);
