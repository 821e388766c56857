/**
 * libuv's thread pool in the background scheduling class (native/src/background.rs): every
 * pool thread in SCHED_BATCH from the start, so a thread the event loop wakes (for Node.js's own
 * pool work: crypto.sign with a callback, file system calls, DNS lookups) no longer preempts the
 * event loop when no core is idle. The native core's own pool tasks (signatures, key wraps,
 * hashcash) put their thread in the class themselves; this reaches the threads they never ran on.
 */
import { PoolBatch } from '#native';

/** How long the pool's threads wait for each other (all start at once on an idle pool). */
const MEETING_MS = 2_000;

/** The pool's size as libuv sets it: UV_THREADPOOL_SIZE, else 4, at most 1,024. */
export function threadPoolSize(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number.parseInt(env.UV_THREADPOOL_SIZE ?? '', 10);
  return Number.isInteger(n) && n > 0 ? Math.min(n, 1024) : 4;
}

/**
 * Puts every thread of the pool in SCHED_BATCH; true when each was reached (false when the pool
 * was busy for the whole wait, or smaller than `threads`: the threads reached keep the class).
 */
export async function backgroundThreadPool(threads = threadPoolSize()): Promise<boolean> {
  const meeting = new PoolBatch(threads, MEETING_MS);
  const arrived = await Promise.all(Array.from({ length: threads }, () => meeting.arrive()));
  return arrived.every(Boolean);
}
