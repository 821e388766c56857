/**
 * Tasks run one at a time, in the order given: each starts once the one before has settled
 * (fulfilled or rejected), and `run` gives back its own outcome. For the few operations that
 * must not overlap one another while everything else goes on (a store's keyring change and its
 * rewrap).
 */
export class Serial {
  #tail: Promise<unknown> = Promise.resolve();

  run<T>(task: () => Promise<T>): Promise<T> {
    const out = this.#tail.then(task, task);
    this.#tail = out.catch(() => undefined);
    return out;
  }
}
