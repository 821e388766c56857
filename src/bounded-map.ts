/**
 * A Map that never holds more than `max` entries: the one bound of the gateway's in-memory
 * caches and tables keyed by what peers send (parsed DIDs, DID states, verified tokens, rate
 * buckets, DNS answers, MTA-STS policies).
 *
 * Guarantees: `size <= max` at every moment; adding a key to a full map first drops the entry
 * that was set longest ago; `set` of a key already present makes it the newest, so a user that
 * sets again what it reads keeps the most recently used entries (an LRU), and one that sets only
 * on a miss keeps the most recently added (FIFO). No timers: it holds no process alive.
 */
export class BoundedMap<K, V> {
  readonly max: number;
  readonly #map = new Map<K, V>();

  constructor(max: number) {
    if (!Number.isInteger(max) || max < 1) {
      throw new RangeError(`a bounded map needs a whole maximum of at least 1, not ${max}`);
    }
    this.max = max;
  }

  get(key: K): V | undefined {
    return this.#map.get(key);
  }

  has(key: K): boolean {
    return this.#map.has(key);
  }

  /** Sets `key` as the newest entry, dropping the oldest when the map is full. */
  set(key: K, value: V): this {
    if (!this.#map.delete(key) && this.#map.size >= this.max) {
      this.#map.delete(this.#map.keys().next().value as K);
    }
    this.#map.set(key, value);
    return this;
  }

  delete(key: K): boolean {
    return this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }

  get size(): number {
    return this.#map.size;
  }
}
