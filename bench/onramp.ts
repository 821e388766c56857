/**
 * On-ramp benchmark: Postfix's smtp-source against our port 25 and against a private Postfix
 * smtpd, in the same run, same machine, same message size and session counts. Our side: a real
 * `aftersmtp serve` (lmdb queue + lmdb store, group commit, fsync on) whose 250 means: SPF, DKIM,
 * DMARC evaluated (mailauth, against a local unbound answering for the sender's domain, as a
 * production gateway asks its caching resolver), the message sealed to the recipient's DID (one
 * envelope, gateway-signed) and the queue entry durable. Postfix's side: ../shared/bench/
 * postfix-onehop.sh (durable accept: the queue file is fsync'd before smtpd's 250; a new
 * connection per message, as ours). The figure is committed messages per second at the SMTP
 * client (smtp-source's wall time), and CPU per message of the serving process.
 *
 * The sides are measured in rounds: per session count, a fresh Postfix and then each of our
 * gateways (started once), so the two sides of a ratio are minutes apart at most; the table
 * gives the median over rounds and each ratio is the median of the rounds' own ratios (on a
 * shared virtual machine the same run can move by a third from one minute to the next).
 *
 * Run as root (Postfix): `node dist/bench/onramp.js` or `aftersmtp bench onramp`. Knobs:
 * ONRAMP_MESSAGES (default 2000 per run), ONRAMP_SESSIONS ("1 16 64"), ONRAMP_SUITES
 * ("classic-v1 hybrid-v1"), ONRAMP_ROUNDS (default 3), ONRAMP_WARMUP (default 3000 messages at
 * 16 sessions before our first measured run: a running gateway's JavaScript is compiled, and with
 * a shorter warm-up V8's optimizing compiler was still taking a quarter of the process's CPU in
 * the first rows), ONRAMP_POSTFIX_WARMUP (default 1000, before each Postfix run).
 * ONRAMP_CPU_PROF_DIR makes each `serve` write a V8 CPU profile there (<suite>-onramp/) and the
 * bench the last run's measured window (<suite>-window), for the per-stage table of
 * bench/stages.ts. ONRAMP_SLOW_SYNC_US gives our gateways a disk whose flushes are slow: every
 * fsync and fdatasync waits that long first (bench/lib/slow-sync.c, built with `cc` and loaded
 * with LD_PRELOAD); Postfix is then left out (its master does not pass LD_PRELOAD on to its
 * daemons), so the table compares builds or settings of ours, not the two MTAs. It reports; it
 * never asserts. ONRAMP_LATENCY_DIR records where each message's wall time goes (src/latency.ts's
 * marks, through bench/lib/latency-recorder.ts preloaded into each `serve`, files in
 * <dir>/<suite>/) and prints, per suite and session count, the median of each phase over the
 * last round's messages (bench/lib/latency.ts): with one session that is the critical path of a
 * message; with more, the queueing too. ONRAMP_DIALOGUES=N times N sessions, one at a time, at
 * the client, step by step (each reply's wait: banner, EHLO, MAIL, RCPT, DATA, the message's 250,
 * QUIT, the close; bench/lib/smtp-dialogue.ts), against a private Postfix before our gateways
 * start and each of ours after the rounds: where one session's time differs between the two.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startUnbound } from '../test/client-api/helpers.js';
import { connect, register, startMessagingGateway } from '../test/messaging/helpers.js';
import {
  ONRAMP_PHASES,
  phaseFigures,
  readMarks,
  timelines,
  type PhaseFigure,
} from './lib/latency.js';
import { cpuProfileArgs, profileWindow } from './lib/profile.js';
import { median, percentile, quiet, runSections, type Section } from './lib/measure.js';
import { cpuSeconds } from './lib/postfix.js';
import { DIALOGUE_STEPS, timeDialogues, type DialogueStep } from './lib/smtp-dialogue.js';
import { startPostfix } from '../test/helpers/postfix.js';

const run = promisify(execFile);
const MESSAGES = Number(process.env.ONRAMP_MESSAGES ?? 2000);
const SESSIONS = (process.env.ONRAMP_SESSIONS ?? '1 16 64').split(/\s+/).map(Number);
const SUITES = (process.env.ONRAMP_SUITES ?? 'classic-v1 hybrid-v1').split(/\s+/);
const SIZE = 4096;
const WARMUP = Number(process.env.ONRAMP_WARMUP ?? 3000);
const POSTFIX_WARMUP = Number(process.env.ONRAMP_POSTFIX_WARMUP ?? 1000);
const ROUNDS = Math.max(1, Number(process.env.ONRAMP_ROUNDS ?? 3));
const PROFILE_DIR = process.env.ONRAMP_CPU_PROF_DIR;
const SLOW_SYNC_US = Number(process.env.ONRAMP_SLOW_SYNC_US ?? 0);
const LATENCY_DIR = process.env.ONRAMP_LATENCY_DIR;
const DIALOGUES = Number(process.env.ONRAMP_DIALOGUES ?? 0);
const LATENCY_RECORDER = fileURLToPath(new URL('./lib/latency-recorder.js', import.meta.url));
const SLOW_SYNC_SOURCE = fileURLToPath(new URL('../../bench/lib/slow-sync.c', import.meta.url));
const SMTP_SOURCE = '/usr/sbin/smtp-source';
const POSTFIX_SCRIPT = fileURLToPath(
  new URL('../../../shared/bench/postfix-onehop.sh', import.meta.url),
);

interface Row {
  side: string;
  sessions: number;
  messages: number;
  seconds: number;
  perSecond: number;
  cpuUsPerMessage: number;
}

/** One smtp-source run: a new connection per message, `sessions` at once. */
async function smtpSource(port: number, sessions: number, messages: number, to: string) {
  const t0 = performance.now();
  await run(
    SMTP_SOURCE,
    [
      '-c',
      '-l',
      String(SIZE),
      '-m',
      String(messages),
      '-s',
      String(sessions),
      '-f',
      'a@example.org',
      '-t',
      to,
      `127.0.0.1:${port}`,
    ],
    { timeout: 900_000, maxBuffer: 64 * 1024 * 1024 },
  );
  return (performance.now() - t0) / 1000;
}

/** One of our gateways: started and warmed up once, then measured at every session count. */
interface OurSide {
  readonly suite: string;
  run(sessions: number): Promise<Row>;
  stop(): Promise<void>;
  /** The wall-clock span (ms) of each measured run, for the latency marks. */
  readonly windows: { sessions: number; from: number; to: number }[];
  /** Where its latency marks are, when ONRAMP_LATENCY_DIR is set. */
  readonly latencyDir?: string;
  /** Its port 25 and the recipient every message goes to. */
  readonly port: number;
  readonly to: string;
}

/** Wall-clock ms, as the latency marks have it. */
function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** LD_PRELOAD and its setting for a gateway whose flushes wait SLOW_SYNC_US; none when 0. */
async function slowSyncEnv(): Promise<Record<string, string>> {
  if (SLOW_SYNC_US <= 0) return {};
  const lib = join(mkdtempSync(join(tmpdir(), 'onramp-slow-sync-')), 'slow-sync.so');
  await run('cc', ['-O2', '-shared', '-fPIC', '-o', lib, SLOW_SYNC_SOURCE, '-ldl']);
  return { LD_PRELOAD: lib, SLOW_SYNC_US: String(SLOW_SYNC_US) };
}

async function startOurs(suite: string, slowSync: Record<string, string>): Promise<OurSide> {
  const latencyDir = LATENCY_DIR === undefined ? undefined : join(LATENCY_DIR, suite);
  if (latencyDir !== undefined) {
    rmSync(latencyDir, { recursive: true, force: true });
    mkdirSync(latencyDir, { recursive: true });
  }
  const dns = await startUnbound('example.org', {
    'example.org': ['v=spf1 ip4:127.0.0.1 -all'],
    '_dmarc.example.org': ['v=DMARC1; p=none'],
  });
  const gw = await startMessagingGateway(
    {
      AFTERSMTP_SUITE: suite,
      AFTERSMTP_DNS_SERVERS: dns.server,
      AFTERSMTP_SMTP_MAX_CONNECTIONS_PER_ADDRESS: '1000',
      AFTERSMTP_SMTP_COMMANDS_PER_MINUTE: '1000000',
      ...slowSync,
      ...(latencyDir !== undefined ? { LATENCY_TRACE_DIR: latencyDir } : {}),
    },
    [
      ...cpuProfileArgs(PROFILE_DIR, `${suite}-onramp`),
      ...(latencyDir === undefined ? [] : [`--import=${LATENCY_RECORDER}`]),
    ],
  );
  const stop = async (): Promise<void> => {
    // The recorder writes at least every quarter second: let every thread's last marks out.
    if (latencyDir !== undefined) await new Promise((r) => setTimeout(r, 500));
    await gw.stop();
    await dns.close();
    rmSync(gw.dataDir, { recursive: true, force: true });
  };
  try {
    const client = await connect(gw);
    const alice = await register(client, 'alice', suite as 'classic-v1' | 'hybrid-v1');
    client.close();
    const port = Number(
      String((gw.ready.smtp as { mx: string }).mx)
        .split(':')
        .at(-1),
    );
    const to = `${alice.did.split(':')[3]}@${alice.did.split(':')[2]}`;
    await smtpSource(port, 16, WARMUP, to); // warm-up, not reported
    const pid = gw.child.pid as number;
    const windows: OurSide['windows'] = [];
    return {
      suite,
      windows,
      port,
      to,
      ...(latencyDir !== undefined ? { latencyDir } : {}),
      async run(sessions) {
        const c0 = cpuSeconds(pid);
        const closeWindow = profileWindow(PROFILE_DIR, suite);
        const from = wallMs();
        const seconds = await smtpSource(port, sessions, MESSAGES, to);
        windows.push({ sessions, from, to: wallMs() });
        const cpu = cpuSeconds(pid) - c0;
        closeWindow(MESSAGES);
        return {
          side: `AfterSMTP ${suite}`,
          sessions,
          messages: MESSAGES,
          seconds,
          perSecond: MESSAGES / seconds,
          cpuUsPerMessage: (1e6 * cpu) / MESSAGES,
        };
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** One run of a fresh private Postfix at one session count (its own warm-up first). */
async function postfix(sessions: number): Promise<Row> {
  const dir = mkdtempSync(join(tmpdir(), 'onramp-postfix-'));
  const jsonOut = join(dir, 'postfix.json');
  await new Promise<void>((resolve, reject) => {
    const child = spawn('bash', [POSTFIX_SCRIPT], {
      env: {
        ...process.env,
        MESSAGES: String(MESSAGES),
        SIZE: String(SIZE),
        WARMUP: String(POSTFIX_WARMUP),
        RUNS: `${sessions}:0`,
        JSON_OUT: jsonOut,
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`postfix bench: ${code}`)),
    );
  });
  const report = JSON.parse(readFileSync(jsonOut, 'utf8')) as {
    postfix_version: string;
    runs: {
      sessions: number;
      messages: number;
      accept_s: number;
      accept_per_s: number;
      postfix_cpu_us_per_msg: number;
    }[];
  };
  rmSync(dir, { recursive: true, force: true });
  const r = report.runs[0];
  if (r === undefined) throw new Error('postfix bench: no run in its report');
  return {
    side: `Postfix ${report.postfix_version}`,
    sessions: r.sessions,
    messages: r.messages,
    seconds: r.accept_s,
    perSecond: r.accept_per_s,
    cpuUsPerMessage: r.postfix_cpu_us_per_msg,
  };
}

/**
 * Where a message's wall time went, per suite and session count, over the last round's run
 * (median and 90th percentile per phase, µs).
 */
function latencySection(sides: readonly OurSide[]): Section {
  const columns: { label: string; figures: PhaseFigure[] }[] = [];
  for (const side of sides) {
    if (side.latencyDir === undefined) continue;
    const all = timelines(readMarks(side.latencyDir));
    for (const sessions of SESSIONS) {
      const window = side.windows.filter((w) => w.sessions === sessions).at(-1);
      if (window === undefined) continue;
      columns.push({
        label: `${side.suite} ${sessions}s`,
        figures: phaseFigures(all, ONRAMP_PHASES, window),
      });
    }
  }
  const cell = (f: PhaseFigure | undefined): string =>
    f === undefined || f.messages === 0 ? '—' : `${f.medianUs.toFixed(0)} (${f.p90Us.toFixed(0)})`;
  return {
    id: 'onramp-latency',
    title: `SMTP on-ramp: where a message's wall time goes, µs, median (90th percentile), last round`,
    run: () =>
      Promise.resolve({
        headers: ['phase', ...columns.map((c) => c.label)],
        rows: ONRAMP_PHASES.map((p, i) => [p.name, ...columns.map((c) => cell(c.figures[i]))]),
        notes: [
          'From src/latency.ts marks recorded in serve (ONRAMP_LATENCY_DIR); wall time, so a phase includes waits for a busy thread, the disk and the client.',
          `Messages per column: ${columns.map((c) => `${c.label} ${c.figures.at(-1)?.messages ?? 0}`).join(', ')}.`,
        ],
        json: Object.fromEntries(columns.map((c) => [c.label, c.figures])),
      }),
  };
}

/** One column of the dialogue table: a server and each step's times, µs. */
interface DialogueColumn {
  readonly label: string;
  readonly steps: Record<DialogueStep, number[]>;
}

const DIALOGUE = { from: 'a@example.org', size: SIZE, warmup: 100 } as const;

/**
 * ONRAMP_DIALOGUES sessions, one at a time, against a private Postfix (durable accept, the mail
 * then discarded), timed at the client step by step; before our gateways start, on a quiet
 * machine.
 */
async function postfixDialogue(): Promise<DialogueColumn> {
  await quiet();
  const postfix = await startPostfix({
    mainCf: ['relay_domains = example.test', 'relay_transport = discard:dialogue'],
  });
  try {
    const steps = await timeDialogues({
      ...DIALOGUE,
      sessions: DIALOGUES,
      port: postfix.port,
      to: 'b@example.test',
    });
    const version = (await run('postconf', ['-d', '-h', 'mail_version'])).stdout.trim();
    return { label: `Postfix ${version}`, steps };
  } finally {
    await postfix.stop();
  }
}

/** The same against one of our gateways, once the machine is quiet after its rounds. */
async function ourDialogue(side: OurSide): Promise<DialogueColumn> {
  await quiet();
  const steps = await timeDialogues({
    ...DIALOGUE,
    sessions: DIALOGUES,
    port: side.port,
    to: side.to,
  });
  return { label: `AfterSMTP ${side.suite}`, steps };
}

function dialogueSection(columns: readonly DialogueColumn[]): Section {
  const cell = (us: readonly number[]): string =>
    `${median(us).toFixed(0)} (${percentile(us, 0.9).toFixed(0)})`;
  return {
    id: 'onramp-dialogue',
    title: `One SMTP session at a time, timed at the client: each reply's wait, µs, median (90th percentile)`,
    run: () =>
      Promise.resolve({
        headers: ['step', ...columns.map((c) => c.label)],
        rows: DIALOGUE_STEPS.map((step) => [step, ...columns.map((c) => cell(c.steps[step]))]),
        notes: [
          `${DIALOGUES} sessions per server after 100 not timed (ONRAMP_DIALOGUES), one after the other, a new connection each, ${SIZE} B messages; the client is bench/lib/smtp-dialogue.ts.`,
          'Postfix: a private instance (test/helpers/postfix.ts), queue file fsync before 250, the mail then discarded, timed before our gateways start; ours after the rounds above, the same gateways. Each starts once the machine is quiet (under 10% busy over half a second, at most 30 s of waiting).',
        ],
        json: Object.fromEntries(
          columns.map((c) => [
            c.label,
            Object.fromEntries(
              DIALOGUE_STEPS.map((step) => [step, { medianUs: median(c.steps[step]) }]),
            ),
          ]),
        ),
      }),
  };
}

interface Run extends Row {
  readonly round: number;
  /** msg/s over the same round's Postfix figure at the same session count. */
  readonly vsPostfix: number;
}

async function main(): Promise<void> {
  const withPostfix = SLOW_SYNC_US <= 0;
  if (
    !existsSync(SMTP_SOURCE) ||
    (withPostfix && (process.getuid?.() !== 0 || !existsSync(POSTFIX_SCRIPT)))
  ) {
    throw new Error('run as root with Debian postfix installed and ../shared/bench present');
  }
  const sides: OurSide[] = [];
  const runs: Run[] = [];
  const dialogueColumns: DialogueColumn[] = [];
  try {
    if (DIALOGUES > 0 && withPostfix) dialogueColumns.push(await postfixDialogue());
    const slowSync = await slowSyncEnv();
    for (const suite of SUITES) sides.push(await startOurs(suite, slowSync));
    // Rounds of (Postfix, then each of ours) per session count, so that both sides of a ratio
    // are measured minutes apart at most and a slow spell of the machine hits both.
    for (let round = 1; round <= ROUNDS; round++) {
      for (const sessions of SESSIONS) {
        const base = withPostfix ? await postfix(sessions) : undefined;
        if (base !== undefined) runs.push({ ...base, round, vsPostfix: 1 });
        for (const side of sides) {
          const r = await side.run(sessions);
          runs.push({ ...r, round, vsPostfix: r.perSecond / (base?.perSecond ?? NaN) });
        }
      }
    }
    if (DIALOGUES > 0) for (const side of sides) dialogueColumns.push(await ourDialogue(side));
  } finally {
    for (const side of sides) await side.stop();
  }
  const groups = new Map<string, Run[]>();
  for (const r of runs) {
    const key = `${r.side}\u0000${r.sessions}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const summary = [...groups.values()].map((g) => {
    const first = g[0] as Run;
    const rates = g.map((r) => r.perSecond);
    return {
      side: first.side,
      sessions: first.sessions,
      rounds: g.length,
      perSecond: median(rates),
      lowest: Math.min(...rates),
      highest: Math.max(...rates),
      vsPostfix: median(g.map((r) => r.vsPostfix)),
      cpuUsPerMessage: median(g.map((r) => r.cpuUsPerMessage)),
    };
  });
  const latency = LATENCY_DIR === undefined ? [] : [latencySection(sides)];
  const dialogue = dialogueColumns.length === 0 ? [] : [dialogueSection(dialogueColumns)];
  await runSections([
    {
      id: 'onramp',
      title: `SMTP on-ramp: committed messages/s, ${SIZE} B messages, a new connection per message, ${MESSAGES} per run, ${ROUNDS} rounds`,
      run: () =>
        Promise.resolve({
          headers: [
            'side',
            'sessions',
            'msg/s (median)',
            'lowest-highest',
            'vs Postfix (median)',
            'CPU µs/msg',
          ],
          rows: summary.map((r) => [
            r.side,
            String(r.sessions),
            r.perSecond.toFixed(0),
            `${r.lowest.toFixed(0)}-${r.highest.toFixed(0)}`,
            Number.isNaN(r.vsPostfix) ? '—' : `${r.vsPostfix.toFixed(2)}x`,
            r.cpuUsPerMessage.toFixed(0),
          ]),
          notes: [
            ...(withPostfix
              ? [
                  'Postfix: private instance, durable accept (queue file fsync before 250), relay to smtp-sink (../shared/bench/postfix-onehop.sh).',
                ]
              : [
                  `Slow disk: every fsync and fdatasync of our gateways waited ${SLOW_SYNC_US} µs first (bench/lib/slow-sync.c); Postfix left out.`,
                ]),
            'AfterSMTP: serve on lmdb (queue fsync, group commit) before 250; SPF, DKIM, DMARC through a local unbound; one envelope sealed per DID, gateway-signed.',
            withPostfix
              ? `Each round measures Postfix (a fresh instance, warmed up with ${POSTFIX_WARMUP} messages) and then each of ours at one session count; "vs Postfix" is the median over rounds of each round's ratio. Ours are started once and warmed up with ${WARMUP} messages at 16 sessions (not reported).`
              : `Ours are started once and warmed up with ${WARMUP} messages at 16 sessions (not reported).`,
            'CPU µs/msg: the serving process (Postfix: all its processes), from /proc; the median over rounds.',
          ],
          json: { slowSyncUs: SLOW_SYNC_US, summary, runs },
        }),
    },
    ...latency,
    ...dialogue,
  ]);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
