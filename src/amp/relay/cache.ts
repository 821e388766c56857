/**
 * A bounded LRU map whose entries also expire after a TTL (DESIGN.md §3: verified identity
 * records are cached). Guarantees: at most `max` entries (none when `max` or `ttlMs` is 0);
 * `get` never returns an entry older than `ttlMs`; no timers (expiry is checked on read), so it
 * holds no process alive.
 */
import { BoundedMap } from '../../bounded-map.js';

export class LruTtlCache<K, V> {
  readonly #map: BoundedMap<K, { at: number; value: V }> | undefined;
  readonly #ttlMs: number;
  readonly #now: () => number;

  constructor(max: number, ttlMs: number, now: () => number = Date.now) {
    const bound = Math.max(0, Math.floor(max));
    this.#map = bound > 0 && ttlMs > 0 ? new BoundedMap(bound) : undefined;
    this.#ttlMs = ttlMs;
    this.#now = now;
  }

  get(key: K): V | undefined {
    const hit = this.#map?.get(key);
    if (hit === undefined) return undefined;
    if (this.#now() - hit.at >= this.#ttlMs) {
      this.#map?.delete(key);
      return undefined;
    }
    this.#map?.set(key, hit); // the most recently used
    return hit.value;
  }

  set(key: K, value: V): void {
    this.#map?.set(key, { at: this.#now(), value });
  }

  delete(key: K): void {
    this.#map?.delete(key);
  }

  clear(): void {
    this.#map?.clear();
  }

  get size(): number {
    return this.#map?.size ?? 0;
  }
}
