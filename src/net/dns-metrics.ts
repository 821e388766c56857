/**
 * The DNS cache's statistics (src/net/dns-cache.ts) as Prometheus metrics, read from
 * DnsCache.stats() at every scrape: lookups by result (hit: answered from the cache; miss: asked
 * of the resolver; shared: joined the same question in flight), answers evicted to stay within
 * the bounds, and the answers and bytes held now. Every series exists from the first scrape, at 0
 * while the cache is off (AFTERSMTP_DNS_CACHE_ENTRIES=0).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { DnsCacheStats } from './dns-cache.js';

export function registerDnsCacheMetrics(
  registry: Registry,
  stats: () => DnsCacheStats | undefined,
): void {
  new Counter({
    name: 'aftersmtp_dns_cache_lookups_total',
    help: 'DNS questions of the gateway (SPF, DKIM, DMARC, ARC, the off-ramp) by result: hit (answered from the cache), miss (asked of AFTERSMTP_DNS_SERVERS), shared (joined the same question in flight).',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      // The cache keeps the running totals; the counter shows them as they are.
      const s = stats();
      this.reset();
      this.inc({ result: 'hit' }, s?.hits ?? 0);
      this.inc({ result: 'miss' }, s?.misses ?? 0);
      this.inc({ result: 'shared' }, s?.shared ?? 0);
    },
  });
  new Counter({
    name: 'aftersmtp_dns_cache_evictions_total',
    help: 'DNS answers dropped before their TTL ran out, to stay within AFTERSMTP_DNS_CACHE_ENTRIES or the byte bound.',
    registers: [registry],
    collect() {
      this.reset();
      this.inc(stats()?.evictions ?? 0);
    },
  });
  new Gauge({
    name: 'aftersmtp_dns_cache_entries',
    help: 'DNS answers held in the cache now (expired ones until they are looked up or evicted).',
    registers: [registry],
    collect() {
      this.set(stats()?.entries ?? 0);
    },
  });
  new Gauge({
    name: 'aftersmtp_dns_cache_bytes',
    help: 'Bytes the DNS cache holds now, answers counted by their size on the wire plus a fixed overhead.',
    registers: [registry],
    collect() {
      this.set(stats()?.bytes ?? 0);
    },
  });
}
