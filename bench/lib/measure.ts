/**
 * Reusable benchmark helpers: ops/s measurement with warm-up (sync and async), a plain-text
 * table printer, ratio formatting, and the runner that executes a list of sections, prints every
 * section's table and then one JSON object with all figures from the same run (DESIGN.md §8).
 * Benchmarks are never timed tests; they report, they do not assert.
 */
import { arch, cpus, loadavg, platform } from 'node:os';

/** How long to measure each operation, and how much to warm up first. */
export interface MeasureOptions {
  /** Total measured time per operation in seconds (default 0.4, or BENCH_SECONDS). */
  seconds?: number;
  /** Warm-up time in seconds before measuring (default 20% of `seconds`, at least 3 calls). */
  warmupSeconds?: number;
  /**
   * The measured time is split into this many rounds and the best round is reported (default
   * 3), so a burst of load from another process on a shared machine does not sink a figure.
   */
  rounds?: number;
}

/** Seconds measured per figure: BENCH_SECONDS from the environment, else 0.4. */
export function defaultSeconds(): number {
  const env = Number(process.env.BENCH_SECONDS);
  return Number.isFinite(env) && env > 0 ? env : 0.4;
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

function settings(opts: MeasureOptions): { round: number; rounds: number; warmup: number } {
  const seconds = opts.seconds ?? defaultSeconds();
  const rounds = Math.max(1, opts.rounds ?? 3);
  return { round: seconds / rounds, rounds, warmup: opts.warmupSeconds ?? seconds * 0.2 };
}

/**
 * Operations per second of a synchronous `fn`: warm up, then for each round run doubling
 * batches until the round's time has elapsed (batches keep the clock out of the loop for fast
 * operations). Returns the best round.
 */
export function measure(fn: () => unknown, opts: MeasureOptions = {}): number {
  const { round, rounds, warmup } = settings(opts);
  let sink: unknown;
  const warmEnd = now() + warmup;
  for (let calls = 0; calls < 3 || now() < warmEnd; calls++) sink = fn();
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    let ops = 0;
    let batch = 1;
    const start = now();
    for (;;) {
      for (let i = 0; i < batch; i++) sink = fn();
      ops += batch;
      const elapsed = now() - start;
      if (elapsed >= round) {
        best = Math.max(best, ops / elapsed);
        break;
      }
      if (elapsed < round / 10) batch *= 2;
    }
  }
  keep(sink);
  return best;
}

/** Operations per second of an asynchronous `fn`, awaited one call at a time; best round. */
export async function measureAsync(
  fn: () => Promise<unknown>,
  opts: MeasureOptions = {},
): Promise<number> {
  const { round, rounds, warmup } = settings(opts);
  let sink: unknown;
  const warmEnd = now() + warmup;
  for (let calls = 0; calls < 3 || now() < warmEnd; calls++) sink = await fn();
  let best = 0;
  for (let r = 0; r < rounds; r++) {
    let ops = 0;
    const start = now();
    for (;;) {
      sink = await fn();
      ops++;
      const elapsed = now() - start;
      if (elapsed >= round) {
        best = Math.max(best, ops / elapsed);
        break;
      }
    }
  }
  keep(sink);
  return best;
}

const NEVER = Symbol('never');
/** Keep a result observable so the engine cannot drop the measured work. */
function keep(v: unknown): void {
  if (v === NEVER) console.log(v);
}

/**
 * The `p` quantile of `xs` (0 < p <= 1) by nearest rank: the smallest sample with at least
 * p of the samples at or below it. NaN for no samples. Every bench's percentiles come from here.
 */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))] as number;
}

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1
    ? (s[mid] as number)
    : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

/** Format ops/s compactly: 1234567 -> "1.23M", 45678 -> "45.7k", 12.3 -> "12.3". */
export function formatOps(ops: number | undefined): string {
  if (ops === undefined) return '—';
  if (ops >= 1e6) return `${(ops / 1e6).toFixed(2)}M`;
  if (ops >= 1e3) return `${(ops / 1e3).toFixed(1)}k`;
  return ops.toFixed(1);
}

/** A ratio a/b, or undefined when either side is missing. */
export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b === 0 ? undefined : a / b;
}

/** A target on a ratio: the ratio must be at least `min` to PASS. */
export interface Target {
  min: number;
  /** Human form of the target, e.g. "within 1.3x" or ">= 20x". */
  label: string;
}

/** Verdict of a ratio against an optional target. */
export function verdict(r: number | undefined, target?: Target): 'PASS' | 'MISS' | undefined {
  if (r === undefined || target === undefined) return undefined;
  return r >= target.min ? 'PASS' : 'MISS';
}

/** "1.07x PASS", "0.42x", or "—". */
export function formatRatio(r: number | undefined, target?: Target): string {
  if (r === undefined) return '—';
  const v = verdict(r, target);
  return `${r >= 100 ? r.toFixed(0) : r.toFixed(2)}x${v ? ' ' + v : ''}`;
}

/** Print rows as an aligned plain-text table (first column left-aligned, the rest right). */
export function printTable(headers: string[], rows: string[][]): void {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0)))
      .join('  ');
  console.log(line(headers));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

/** What a section produces: a table to print and a JSON-serialisable result. */
export interface SectionResult {
  headers: string[];
  rows: string[][];
  /** Lines printed under the table (targets, workload notes). */
  notes?: string[];
  json: unknown;
}

/** One benchmark section. Sections run in order; append new ones to the list. */
export interface Section {
  /** Key of the section in the JSON output, e.g. "primitives". */
  id: string;
  title: string;
  run(): Promise<SectionResult>;
}

/** The machine's busy share (0..1, all CPUs) over the next `ms` milliseconds. */
async function busyShare(ms: number): Promise<number> {
  const sum = () =>
    cpus().reduce(
      (t, c) => {
        const all = c.times.user + c.times.nice + c.times.sys + c.times.irq + c.times.idle;
        return { all: t.all + all, idle: t.idle + c.times.idle };
      },
      { all: 0, idle: 0 },
    );
  const a = sum();
  await new Promise((resolve) => setTimeout(resolve, ms));
  const b = sum();
  const all = b.all - a.all;
  return all <= 0 ? 0 : 1 - (b.idle - a.idle) / all;
}

/**
 * Waits until the machine is quiet (under `maxBusy` of all CPUs busy over half a second), at
 * most `timeoutMs`, so that a figure does not start inside the tail of the previous one's work
 * (a gateway still flushing and collecting after a burst).
 */
export async function quiet(maxBusy = 0.1, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while ((await busyShare(500)) > maxBusy && Date.now() < end);
}

/** The machine and settings every figure was measured with. */
export function environment(): Record<string, unknown> {
  const cpu = cpus();
  return {
    node: process.versions.node,
    platform: `${platform()}-${arch()}`,
    cpu: cpu[0]?.model ?? 'unknown',
    cpus: cpu.length,
    secondsPerFigure: defaultSeconds(),
    concurrency: 1,
    loadAverageAtStart: loadavg().map((l) => Number(l.toFixed(2))),
  };
}

/**
 * Run every section in order, print each table as it completes, then print one JSON object
 * `{ environment, sections: { [id]: json } }` holding every figure from this run.
 */
export async function runSections(sections: Section[]): Promise<void> {
  const env = environment();
  console.log(
    `# ${String(env.cpu)} (${String(env.cpus)} CPUs), node ${String(env.node)}, ` +
      `${String(env.platform)}, ${String(env.secondsPerFigure)} s measured per figure, ` +
      `one thread, load average ${JSON.stringify(env.loadAverageAtStart)}`,
  );
  const out: Record<string, unknown> = {};
  for (const s of sections) {
    const t0 = now();
    const result = await s.run();
    console.log(`\n## ${s.title} (${(now() - t0).toFixed(1)} s)\n`);
    printTable(result.headers, result.rows);
    for (const n of result.notes ?? []) console.log(n);
    out[s.id] = result.json;
  }
  console.log();
  console.log(JSON.stringify({ environment: env, sections: out }, null, 2));
}
