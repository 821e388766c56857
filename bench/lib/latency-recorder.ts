/**
 * Preloaded into a benchmark's `serve` (`node --import`, which Node.js also runs in each worker
 * thread): records every latency mark (src/latency.ts) of this thread and appends them to
 * `<LATENCY_TRACE_DIR>/latency-<pid>-<thread>.txt`, one `at point key [link]` line each, in
 * batches and at least every quarter second, so the files are complete soon after traffic stops.
 * Holds at most MAX_PENDING marks between writes; past that, marks are dropped and counted in a
 * `# dropped N` line.
 */
import { appendFileSync } from 'node:fs';
import { subscribe } from 'node:diagnostics_channel';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { LATENCY_CHANNEL, type LatencyMark } from '../../src/latency.js';

const DIR = process.env.LATENCY_TRACE_DIR;
const BATCH = 4096;
const MAX_PENDING = 1_000_000;

if (DIR !== undefined && DIR !== '') {
  const file = join(DIR, `latency-${process.pid}-${threadId}.txt`);
  let pending: string[] = [];
  let dropped = 0;
  const write = (): void => {
    if (pending.length === 0 && dropped === 0) return;
    const lines = dropped > 0 ? [...pending, `# dropped ${dropped}`] : pending;
    pending = [];
    dropped = 0;
    appendFileSync(file, `${lines.join('\n')}\n`);
  };
  subscribe(LATENCY_CHANNEL, (message) => {
    const m = message as LatencyMark;
    if (pending.length >= MAX_PENDING) {
      dropped++;
      return;
    }
    pending.push(
      `${m.at.toFixed(3)} ${m.point} ${m.key}${m.link === undefined ? '' : ` ${m.link}`}`,
    );
    if (pending.length >= BATCH) write();
  });
  setInterval(write, 250).unref();
  process.on('exit', write);
}
