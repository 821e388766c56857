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
 * Run as root (Postfix): `node dist/bench/onramp.js` or `aftersmtp bench onramp`. Knobs:
 * ONRAMP_MESSAGES (default 2000 per run), ONRAMP_SESSIONS ("1 16 64"), ONRAMP_SUITES
 * ("classic-v1 hybrid-v1"), ONRAMP_WARMUP (default 3000 messages at 16 sessions before the first
 * measured run, on both sides: a running gateway's JavaScript is compiled, and with a shorter
 * warm-up V8's optimizing compiler was still taking a quarter of the process's CPU in the first
 * rows). ONRAMP_CPU_PROF_DIR makes each `serve` write a V8 CPU profile there
 * (<suite>-onramp/) and the bench the last row's measured window (<suite>-window), for the
 * per-stage table of bench/stages.ts. It reports; it never asserts.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startUnbound } from '../test/client-api/helpers.js';
import { connect, register, startMessagingGateway } from '../test/messaging/helpers.js';
import { runSections } from './lib/measure.js';
import { cpuSeconds } from './lib/postfix.js';

const run = promisify(execFile);
const MESSAGES = Number(process.env.ONRAMP_MESSAGES ?? 2000);
const SESSIONS = (process.env.ONRAMP_SESSIONS ?? '1 16 64').split(/\s+/).map(Number);
const SUITES = (process.env.ONRAMP_SUITES ?? 'classic-v1 hybrid-v1').split(/\s+/);
const SIZE = 4096;
const WARMUP = Number(process.env.ONRAMP_WARMUP ?? 3000);
const PROFILE_DIR = process.env.ONRAMP_CPU_PROF_DIR;
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

async function ours(suite: string): Promise<Row[]> {
  if (PROFILE_DIR !== undefined) mkdirSync(PROFILE_DIR, { recursive: true });
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
    },
    PROFILE_DIR === undefined
      ? []
      : ['--cpu-prof', `--cpu-prof-dir=${PROFILE_DIR}/${suite}-onramp`],
  );
  const rows: Row[] = [];
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
    for (const s of SESSIONS) {
      const c0 = cpuSeconds(pid);
      const windowFrom = process.hrtime.bigint() / 1000n;
      const seconds = await smtpSource(port, s, MESSAGES, to);
      const cpu = cpuSeconds(pid) - c0;
      if (PROFILE_DIR !== undefined) {
        // The measured window on the monotonic clock (µs), which V8's profiles also use.
        const windowTo = process.hrtime.bigint() / 1000n;
        writeFileSync(`${PROFILE_DIR}/${suite}-window`, `${windowFrom} ${windowTo} ${MESSAGES}\n`);
      }
      rows.push({
        side: `AfterSMTP ${suite}`,
        sessions: s,
        messages: MESSAGES,
        seconds,
        perSecond: MESSAGES / seconds,
        cpuUsPerMessage: (1e6 * cpu) / MESSAGES,
      });
    }
  } finally {
    await gw.stop();
    await dns.close();
    rmSync(gw.dataDir, { recursive: true, force: true });
  }
  return rows;
}

async function postfix(): Promise<Row[]> {
  const dir = mkdtempSync(join(tmpdir(), 'onramp-postfix-'));
  const jsonOut = join(dir, 'postfix.json');
  await new Promise<void>((resolve, reject) => {
    const child = spawn('bash', [POSTFIX_SCRIPT], {
      env: {
        ...process.env,
        MESSAGES: String(MESSAGES),
        SIZE: String(SIZE),
        WARMUP: String(WARMUP),
        RUNS: SESSIONS.map((s) => `${s}:0`).join(' '),
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
  return report.runs.map((r) => ({
    side: `Postfix ${report.postfix_version}`,
    sessions: r.sessions,
    messages: r.messages,
    seconds: r.accept_s,
    perSecond: r.accept_per_s,
    cpuUsPerMessage: r.postfix_cpu_us_per_msg,
  }));
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0 || !existsSync(SMTP_SOURCE) || !existsSync(POSTFIX_SCRIPT)) {
    throw new Error('run as root with Debian postfix installed and ../shared/bench present');
  }
  const baseline = await postfix();
  const rows: Row[] = [...baseline];
  for (const suite of SUITES) rows.push(...(await ours(suite)));
  const ratio = (r: Row): string => {
    const p = baseline.find((b) => b.sessions === r.sessions);
    return p === undefined ? '-' : `${(r.perSecond / p.perSecond).toFixed(2)}x`;
  };
  await runSections([
    {
      id: 'onramp',
      title: `SMTP on-ramp: committed messages/s, ${SIZE} B messages, a new connection per message, ${MESSAGES} per run`,
      run: () =>
        Promise.resolve({
          headers: ['side', 'sessions', 'messages', 'seconds', 'msg/s', 'vs Postfix', 'CPU µs/msg'],
          rows: rows.map((r) => [
            r.side,
            String(r.sessions),
            String(r.messages),
            r.seconds.toFixed(2),
            r.perSecond.toFixed(0),
            ratio(r),
            r.cpuUsPerMessage.toFixed(0),
          ]),
          notes: [
            'Postfix: private instance, durable accept (queue file fsync before 250), relay to smtp-sink (../shared/bench/postfix-onehop.sh).',
            'AfterSMTP: serve on lmdb (queue fsync, group commit) before 250; SPF, DKIM, DMARC through a local unbound; one envelope sealed per DID, gateway-signed.',
            'CPU µs/msg: the serving process (Postfix: all its processes), from /proc.',
            `Each side warmed up with ${WARMUP} messages at 16 sessions first (not reported).`,
          ],
          json: rows.map((r) => ({ ...r, vsPostfix: ratio(r) })),
        }),
    },
  ]);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
