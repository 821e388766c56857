/**
 * Where a process's CPU goes by kind of code, from the samples of Linux perf: the project's and
 * the libraries' JavaScript, V8's built-ins and runtime, its compilers and garbage collector,
 * Node.js and OpenSSL, libc's allocator, LMDB, the native core's cryptography and QUIC, and the
 * kernel by system call; the main thread apart from the others (libuv's pool, LMDB's writer,
 * V8's helpers, the QUIC endpoint). Unlike the V8 profiles of bench/stages.ts, perf's cpu-clock
 * samples count only time on a CPU, in every thread and in the kernel, so they show what a
 * message costs beyond JavaScript; they say less about which stage of the code path it was.
 *
 * Run (as root; perf from Debian's linux-perf), e.g. for the relay benchmark:
 *   NODE_OPTIONS=--perf-basic-prof RELAY_SENDERS=64 node dist/bench/relay.js &
 *   perf record -a -g -F 499 -o /tmp/perf.data -- sleep 120
 *   perf script -i /tmp/perf.data -F comm,pid,tid,time,ip,sym,dso > /tmp/perf.txt
 *   node dist/bench/cpu-kinds.js /tmp/perf.txt --timeline        # samples per second per process
 *   node dist/bench/cpu-kinds.js /tmp/perf.txt <pid>[,<pid>...] [<from> <to>] [--by-module]
 * `--perf-basic-prof` names the JIT's code (/tmp/perf-<pid>.map); <from> and <to> are perf's
 * timestamps in seconds (a steady span from the timeline). `--by-module` sorts the samples by the
 * module whose JavaScript was running instead (lib/cpu-kind.ts's moduleOf). It reports; it never
 * asserts.
 */
import { readFileSync } from 'node:fs';
import { kindOf, moduleOf, samplesOf, type Sample } from './lib/cpu-kind.js';
import { printTable } from './lib/measure.js';

function percent(n: number, of: number): string {
  return of === 0 ? '—' : `${((100 * n) / of).toFixed(1)}%`;
}

function timeline(samples: readonly Sample[]): void {
  const perSecond = new Map<string, Map<number, number>>();
  for (const s of samples) {
    const m = perSecond.get(s.pid) ?? new Map<number, number>();
    const second = Math.floor(s.time);
    m.set(second, (m.get(second) ?? 0) + 1);
    perSecond.set(s.pid, m);
  }
  const busiest = [...perSecond]
    .map(([pid, m]) => ({ pid, m, total: [...m.values()].reduce((x, y) => x + y, 0) }))
    .sort((a, b) => b.total - a.total)
    .slice(0, 8);
  for (const { pid, m } of busiest) {
    console.log(`pid ${pid}: ${[...m].map(([t, n]) => `${t}:${n}`).join(' ')}`);
  }
}

function table(
  samples: readonly Sample[],
  pids: readonly string[],
  by: { name: string; of: (frames: readonly string[]) => string },
): void {
  const headers = [by.name, ...pids.flatMap((p) => [`${p} main`, `${p} others`])];
  const counts = new Map<string, number[]>();
  const totals = pids.map((pid) => samples.filter((s) => s.pid === pid).length);
  for (const s of samples) {
    const column = pids.indexOf(s.pid) * 2 + (s.main ? 0 : 1);
    if (column < 0) continue;
    const kind = by.of(s.frames);
    const row = counts.get(kind) ?? new Array<number>(pids.length * 2).fill(0);
    row[column] = (row[column] ?? 0) + 1;
    counts.set(kind, row);
  }
  const rows = [...counts].sort(
    (a, b) => b[1].reduce((x, y) => x + y) - a[1].reduce((x, y) => x + y),
  );
  printTable(headers, [
    ['samples', ...totals.flatMap((t) => [String(t), ''])],
    ...rows.map(([kind, row]) => [
      kind,
      ...row.map((n, i) => percent(n, totals[Math.floor(i / 2)] ?? 0)),
    ]),
  ]);
  console.log(`Shares of each process's samples (main thread and other threads), by ${by.name}.`);
}

const args = process.argv.slice(2);
const byModule = args.includes('--by-module');
const [file, what, from, to] = args.filter((a) => a !== '--by-module');
if (file === undefined || what === undefined) {
  console.error(
    'usage: cpu-kinds <perf script output> --timeline | <pid>[,<pid>...] [<from> <to>] [--by-module]',
  );
  process.exit(2);
}
const all = samplesOf(readFileSync(file, 'utf8'));
if (what === '--timeline') timeline(all);
else {
  const lo = from === undefined ? -Infinity : Number(from);
  const hi = to === undefined ? Infinity : Number(to);
  table(
    all.filter((s) => s.time >= lo && s.time < hi),
    what.split(','),
    byModule ? { name: 'module', of: moduleOf } : { name: 'kind', of: kindOf },
  );
}
