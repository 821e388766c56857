/**
 * Durable-write benchmarks over several backends (bench/queue, bench/store): each backend is
 * opened fresh per concurrency level, driven by N concurrent writers for a measured time after
 * a warm-up, and closed; one cell per (backend, concurrency) with throughput and latency.
 */
import { percentile } from './measure.js';

/** A backend under test; `open` answers a reason string when it cannot run here (skipped). */
export interface Backend<T> {
  name: string;
  /** How it makes a write durable (shown in the table). */
  fsync: string;
  open(): Promise<{ handle: T; close(): Promise<void> } | string>;
}

export interface Cell {
  backend: string;
  fsync: string;
  concurrency: number;
  opsPerSecond: number;
  p50ms: number;
  p99ms: number;
  /** Operations completed in the measured time. */
  count: number;
}

/**
 * Run `once(writer)` in `writers` concurrent loops: `warmupMs` unmeasured, then `seconds`
 * measured; each call's latency is recorded.
 */
async function measureWriters(
  writers: number,
  once: (writer: number) => Promise<unknown>,
  seconds: number,
  warmupMs: number,
): Promise<Omit<Cell, 'backend' | 'fsync' | 'concurrency'>> {
  const latencies: number[] = [];
  const run = async (w: number, until: number, record: boolean): Promise<void> => {
    while (performance.now() < until) {
      const t0 = performance.now();
      await once(w);
      if (record) latencies.push(performance.now() - t0);
    }
  };
  const warm = performance.now() + warmupMs;
  await Promise.all(Array.from({ length: writers }, (_, w) => run(w, warm, false)));
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(Array.from({ length: writers }, (_, w) => run(w, end, true)));
  const elapsed = (performance.now() - start) / 1000;
  return {
    opsPerSecond: latencies.length / elapsed,
    p50ms: percentile(latencies, 0.5),
    p99ms: percentile(latencies, 0.99),
    count: latencies.length,
  };
}

/**
 * Every backend at every concurrency level; `op(handle)` returns the write one writer repeats.
 * Skipped backends become notes.
 */
export async function measureBackends<T>(
  backends: Backend<T>[],
  concurrency: number[],
  op: (handle: T) => (writer: number) => Promise<unknown>,
  seconds: number,
  warmupMs: number,
): Promise<{ cells: Cell[]; notes: string[] }> {
  const cells: Cell[] = [];
  const notes: string[] = [];
  for (const b of backends) {
    for (const n of concurrency) {
      const opened = await b.open();
      if (typeof opened === 'string') {
        notes.push(`${b.name}: ${opened}`);
        break;
      }
      try {
        const measured = await measureWriters(n, op(opened.handle), seconds, warmupMs);
        cells.push({ backend: b.name, fsync: b.fsync, concurrency: n, ...measured });
      } finally {
        await opened.close();
      }
    }
  }
  return { cells, notes };
}
