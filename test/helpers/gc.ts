// A full garbage collection on demand, so that a test measures what the process retains rather
// than when V8 chose to collect (under a loaded machine a lazy heap reads as tens of MB of growth).
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');

/** Runs a full collection now. */
export const collectGarbage = runInNewContext('gc') as () => void;

/** Bytes of JavaScript heap that `fn` leaves behind, with a full collection before and after. */
export async function heapRetainedBy(fn: () => unknown): Promise<number> {
  collectGarbage();
  const before = process.memoryUsage().heapUsed;
  await fn();
  collectGarbage();
  return process.memoryUsage().heapUsed - before;
}
