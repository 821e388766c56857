/**
 * Postfix as the baseline of a benchmark, in the same run: the drivers in ../shared/bench (run as
 * root; they install Debian's postfix when it is missing and run private instances on 127.0.0.1),
 * and the CPU a process has used, read from /proc, for the figures of our side.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const TWO_HOP = fileURLToPath(
  new URL('../../../../shared/bench/postfix-twohop.sh', import.meta.url),
);

/** One run of postfix-twohop.sh: smtp-source -> A (durable) -> B (durable) -> virtual(8) Maildir. */
export interface PostfixTwoHopRun {
  readonly version: string;
  readonly sessions: number;
  readonly messages: number;
  readonly acceptSeconds: number;
  /** Start of the run until the last file appeared in B's Maildir. */
  readonly deliveredSeconds: number;
  readonly deliveredPerSecond: number;
  readonly aCpuUsPerMessage: number;
  readonly bCpuUsPerMessage: number;
  /** Files, distinct Message-IDs and full bodies all equal to `messages`, nothing left in tmp/. */
  readonly checksOk: boolean;
  readonly maildirFiles: number;
  readonly distinctMessageIds: number;
}

/** Why the Postfix baseline cannot run here, or undefined when it can. */
export function postfixBaselineUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the Postfix baseline needs root';
  if (!existsSync(TWO_HOP)) return `${TWO_HOP} is missing`;
  return undefined;
}

/** Runs postfix-twohop.sh with a new connection per message, one run per session count. */
export async function postfixTwoHop(o: {
  readonly messages: number;
  readonly size: number;
  readonly sessions: readonly number[];
  readonly warmup: number;
}): Promise<PostfixTwoHopRun[]> {
  const dir = mkdtempSync(join(tmpdir(), 'postfix-twohop-'));
  const jsonOut = join(dir, 'postfix.json');
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn('bash', [TWO_HOP], {
        env: {
          ...process.env,
          MESSAGES: String(o.messages),
          SIZE: String(o.size),
          WARMUP: String(o.warmup),
          RUNS: o.sessions.map((s) => `${s}:0`).join(' '),
          JSON_OUT: jsonOut,
        },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      child.on('exit', (code) =>
        code === 0 ? resolve() : reject(new Error(`postfix-twohop.sh exited with ${code}`)),
      );
    });
    const report = JSON.parse(readFileSync(jsonOut, 'utf8')) as {
      postfix_version: string;
      runs: {
        sessions: number;
        messages: number;
        accept_s: number;
        delivered_s: number;
        delivered_per_s: number;
        a_cpu_s: number;
        b_cpu_s: number;
        maildir_files: number;
        distinct_message_ids: number;
        checks_ok: boolean;
      }[];
    };
    return report.runs.map((r) => ({
      version: report.postfix_version,
      sessions: r.sessions,
      messages: r.messages,
      acceptSeconds: r.accept_s,
      deliveredSeconds: r.delivered_s,
      deliveredPerSecond: r.delivered_per_s,
      aCpuUsPerMessage: (1e6 * r.a_cpu_s) / r.messages,
      bCpuUsPerMessage: (1e6 * r.b_cpu_s) / r.messages,
      checksOk: r.checks_ok,
      maildirFiles: r.maildir_files,
      distinctMessageIds: r.distinct_message_ids,
    }));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** CPU seconds (user + system) a live process has used, from /proc/<pid>/stat. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
