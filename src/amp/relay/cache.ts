/**
 * A bounded LRU map whose entries also expire after a TTL (DESIGN.md §3: verified identity
 * records are cached). Guarantees: at most `max` entries; `get` never returns an entry older than
 * `ttlMs`; no timers (expiry is checked on read), so it holds no process alive.
 */
export class LruTtlCache<K, V> {
  readonly #map = new Map<K, { at: number; value: V }>();
  readonly #max: number;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(max: number, ttlMs: number, now: () => number = Date.now) {
    this.#max = Math.max(0, Math.floor(max));
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get(key: K): V | undefined {
    const hit = this.#map.get(key);
    if (hit === undefined) return undefined;
    this.#map.delete(key);
    if (this.#now() - hit.at >= this.#ttlMs) return undefined;
    this.#map.set(key, hit); // most recently used last
    return hit.value;
  }

  set(key: K, value: V): void {
    if (this.#max === 0 || this.#ttlMs <= 0) return;
    this.#map.delete(key);
    this.#map.set(key, { at: this.#now(), value });
    while (this.#map.size > this.#max) {
      const oldest = this.#map.keys().next().value as K;
      this.#map.delete(oldest);
    }
  }

  delete(key: K): void {
    this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }

  get size(): number {
    return this.#map.size;
  }
}
