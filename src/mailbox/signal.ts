/**
 * Tells waiting FetchInbox streams (follow mode) that a mailbox got mail. In-process only: the
 * delivery worker calls notify() after a durable deliver; a follower waits for it OR a poll
 * interval, so mail delivered by another gateway process sharing the store is still seen.
 * Bounded: at most `maxWaiters` waiters; beyond that wait() falls back to the poll interval.
 */
export class MailboxSignal {
  readonly #waiters = new Map<string, Set<() => void>>();
  #count = 0;

  constructor(readonly maxWaiters = 10_000) {}

  notify(recipient: string): void {
    const set = this.#waiters.get(recipient);
    if (set === undefined) return;
    this.#waiters.delete(recipient);
    this.#count -= set.size;
    for (const w of set) w();
  }

  /** Resolves on notify(recipient), after `ms`, or when `abort` fires, whichever is first. */
  wait(recipient: string, ms: number, abort?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const full = this.#count >= this.maxWaiters;
      const done = (): void => {
        clearTimeout(timer);
        abort?.removeEventListener('abort', done);
        const set = this.#waiters.get(recipient);
        if (set?.delete(done)) {
          this.#count--;
          if (set.size === 0) this.#waiters.delete(recipient);
        }
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (abort?.aborted) return done();
      abort?.addEventListener('abort', done);
      if (full) return;
      let set = this.#waiters.get(recipient);
      if (set === undefined) this.#waiters.set(recipient, (set = new Set()));
      set.add(done);
      this.#count++;
    });
  }
}
