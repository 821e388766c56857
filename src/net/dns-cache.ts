/**
 * A small cache of DNS answers in front of the gateway's DnsClient, so that the on-ramp does not
 * ask the resolver for the same SPF, DKIM and DMARC records for every message, and the off-ramp
 * not for the same MX, addresses and TLSA for every job. It answers as the client does (it is a
 * DnsResolver): the cached answer is the one the resolver gave, AD bit (`secure`) included.
 *
 * What is kept, keyed by (name lower-cased without a trailing dot, type):
 * - an answer with records of the type asked: for the smallest TTL of the answer section's
 *   records (a CNAME's included), at most `maxTtlSeconds`;
 * - a negative answer (NXDOMAIN, or NODATA: NOERROR without records of the type asked): for the
 *   TTL RFC 2308 §5 gives it (the smaller of the authority SOA's TTL and MINIMUM), else for
 *   `negativeTtlSeconds` when the answer carries no SOA, at most `maxNegativeTtlSeconds`, and
 *   never longer than a CNAME in it;
 * - nothing whose TTL is 0 (RFC 1035 §3.2.1: use it for this transaction only).
 * - Errors (timeouts, SERVFAIL, REFUSED, an unreachable or garbling server) are not kept: they
 *   say something about the path to the resolver at one moment, not about the data; RFC 2308 §7
 *   allows keeping them up to 5 minutes, but a blip would then turn into minutes of SPF and DKIM
 *   `temperror` and deferred deliveries. Identical questions asked while one is in flight share
 *   its outcome, error included, so an outage costs one query per question at a time, not one
 *   per message.
 *
 * Guarantees: at most `maxEntries` answers and `maxBytes` (each answer counted by its size on the
 * wire plus its key and a fixed overhead) are held; over either, the least recently used answers
 * go first. An answer is never served after its expiry by the injected clock. Questions asked
 * while the same question is in flight share that query. The records of a cached answer keep the
 * TTLs they arrived with (they are not counted down). Not guaranteed: that an answer is still
 * what the zone publishes (a change is seen once the TTL has run out, as with any resolver), nor
 * any hit at all: the cache may drop anything at any time.
 */
import type { DnsAnswer, DnsResolver, DnsType } from './dns.js';

export interface DnsCacheOptions {
  /** Answers held at most (AFTERSMTP_DNS_CACHE_ENTRIES); at least 1. */
  readonly maxEntries: number;
  /** Bytes held at most, answers counted by their wire size (default 16 MiB). */
  readonly maxBytes?: number;
  /** The longest a positive answer is kept, seconds (default 3600). */
  readonly maxTtlSeconds?: number;
  /** How long a negative answer without an SOA is kept, seconds (default 60). */
  readonly negativeTtlSeconds?: number;
  /** The longest a negative answer is kept, seconds (default 900). */
  readonly maxNegativeTtlSeconds?: number;
  /** Milliseconds since the epoch (tests inject a clock). */
  readonly now?: () => number;
}

/** Running totals, read by the metrics at every scrape. */
export interface DnsCacheStats {
  /** Questions answered from the cache. */
  readonly hits: number;
  /** Questions sent to the resolver. */
  readonly misses: number;
  /** Questions that joined the same question in flight. */
  readonly shared: number;
  /** Answers dropped to stay within the bounds, least recently used first. */
  readonly evictions: number;
  readonly entries: number;
  readonly bytes: number;
}

/** The statistics of several caches as one (the gateway's and the SMTP listener thread's). */
export function totalStats(all: readonly (DnsCacheStats | undefined)[]): DnsCacheStats | undefined {
  const present = all.filter((s): s is DnsCacheStats => s !== undefined);
  if (present.length === 0) return undefined;
  const sum = (k: keyof DnsCacheStats): number => present.reduce((n, s) => n + s[k], 0);
  return {
    hits: sum('hits'),
    misses: sum('misses'),
    shared: sum('shared'),
    evictions: sum('evictions'),
    entries: sum('entries'),
    bytes: sum('bytes'),
  };
}

interface Entry {
  readonly answer: DnsAnswer;
  readonly expires: number;
  readonly cost: number;
}

/** What an entry costs beyond its wire bytes: the Map slot, the objects, the key (estimated). */
const ENTRY_OVERHEAD = 256;

/** The answer has records of the type asked (a CNAME alone does not count, except for CNAME). */
function positive(answer: DnsAnswer, type: DnsType): boolean {
  return answer.rcode === 'NOERROR' && answer.answers.some((r) => r.type === type);
}

export class DnsCache implements DnsResolver {
  readonly #upstream: DnsResolver;
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  readonly #maxTtl: number;
  readonly #negativeTtl: number;
  readonly #maxNegativeTtl: number;
  readonly #now: () => number;
  /** In least-recently-used order: a hit moves its entry to the end. */
  readonly #entries = new Map<string, Entry>();
  readonly #inFlight = new Map<string, Promise<DnsAnswer>>();
  #bytes = 0;
  #hits = 0;
  #misses = 0;
  #shared = 0;
  #evictions = 0;

  constructor(upstream: DnsResolver, o: DnsCacheOptions) {
    if (!Number.isInteger(o.maxEntries) || o.maxEntries < 1) {
      throw new RangeError(`DnsCache: maxEntries must be a positive integer, not ${o.maxEntries}`);
    }
    this.#upstream = upstream;
    this.#maxEntries = o.maxEntries;
    this.#maxBytes = o.maxBytes ?? 16 * 1024 * 1024;
    this.#maxTtl = o.maxTtlSeconds ?? 3600;
    this.#negativeTtl = o.negativeTtlSeconds ?? 60;
    this.#maxNegativeTtl = o.maxNegativeTtlSeconds ?? 900;
    this.#now = o.now ?? Date.now;
  }

  query(name: string, type: DnsType): Promise<DnsAnswer> {
    const key = `${type} ${name.replace(/\.$/, '').toLowerCase()}`;
    const entry = this.#entries.get(key);
    if (entry !== undefined) {
      this.#entries.delete(key);
      if (entry.expires > this.#now()) {
        this.#entries.set(key, entry);
        this.#hits++;
        return Promise.resolve(entry.answer);
      }
      this.#bytes -= entry.cost;
    }
    const pending = this.#inFlight.get(key);
    if (pending !== undefined) {
      this.#shared++;
      return pending;
    }
    this.#misses++;
    const asked = this.#upstream.query(name, type).then(
      (answer) => {
        this.#inFlight.delete(key);
        this.#keep(key, type, answer);
        return answer;
      },
      (err: unknown) => {
        this.#inFlight.delete(key);
        throw err;
      },
    );
    this.#inFlight.set(key, asked);
    return asked;
  }

  /** How long `answer` may be kept, seconds (0: not at all). */
  ttlOf(answer: DnsAnswer, type: DnsType): number {
    let ttl = Infinity;
    for (const r of answer.answers) ttl = Math.min(ttl, r.type === 'OPT' ? 0 : (r.ttl ?? 0));
    if (positive(answer, type)) return Math.max(0, Math.min(ttl, this.#maxTtl));
    const negative = answer.negativeTtl ?? this.#negativeTtl;
    return Math.max(0, Math.min(ttl, negative, this.#maxNegativeTtl));
  }

  #keep(key: string, type: DnsType, answer: DnsAnswer): void {
    const ttl = this.ttlOf(answer, type);
    if (ttl <= 0) return;
    const cost = answer.wireBytes + 2 * key.length + ENTRY_OVERHEAD;
    if (cost > this.#maxBytes) return;
    const old = this.#entries.get(key);
    if (old !== undefined) {
      this.#entries.delete(key);
      this.#bytes -= old.cost;
    }
    this.#entries.set(key, { answer, expires: this.#now() + ttl * 1000, cost });
    this.#bytes += cost;
    for (const [k, e] of this.#entries) {
      if (this.#entries.size <= this.#maxEntries && this.#bytes <= this.#maxBytes) break;
      this.#entries.delete(k);
      this.#bytes -= e.cost;
      this.#evictions++;
    }
  }

  /** Forgets every answer (questions in flight still complete, and are kept). */
  clear(): void {
    this.#entries.clear();
    this.#bytes = 0;
  }

  stats(): DnsCacheStats {
    return {
      hits: this.#hits,
      misses: this.#misses,
      shared: this.#shared,
      evictions: this.#evictions,
      entries: this.#entries.size,
      bytes: this.#bytes,
    };
  }
}
