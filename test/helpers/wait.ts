// Waiting in tests for something another process or thread does: the one polling helper.
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Asks `check` every `everyMs` until it answers with something other than undefined or false,
 * and returns that answer; fails the test, naming `what`, once `ms` have passed.
 */
export async function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  { ms = 10_000, everyMs = 20 }: { ms?: number; everyMs?: number } = {},
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const answer = await check();
    if (answer !== undefined && answer !== false) return answer;
    if (Date.now() > deadline) assert.fail(`not within ${ms} ms: ${what}`);
    await sleep(everyMs);
  }
}
