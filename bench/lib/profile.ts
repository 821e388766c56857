/**
 * The V8 CPU profiles a benchmark has its `serve` processes write (RELAY_CPU_PROF_DIR,
 * ONRAMP_CPU_PROF_DIR, OFFRAMP_CPU_PROF_DIR), and the measured window that bench/stages.ts reads
 * beside them: `<dir>/<suite>-window` holds its start and end on the monotonic clock V8's profiles
 * use (µs) and the messages carried in it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The Node.js flags that make a process write its profiles into `<dir>/<name>`; none without a dir. */
export function cpuProfileArgs(dir: string | undefined, name: string): string[] {
  if (dir === undefined) return [];
  mkdirSync(dir, { recursive: true });
  return ['--cpu-prof', `--cpu-prof-dir=${join(dir, name)}`];
}

const monotonicMicros = (): bigint => process.hrtime.bigint() / 1000n;

/** Opens a measured window now; the function returned closes it with its message count. */
export function profileWindow(dir: string | undefined, suite: string): (messages: number) => void {
  if (dir === undefined) return () => undefined;
  const from = monotonicMicros();
  return (messages) =>
    writeFileSync(join(dir, `${suite}-window`), `${from} ${monotonicMicros()} ${messages}\n`);
}
