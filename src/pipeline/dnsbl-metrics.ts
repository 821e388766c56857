/**
 * The DNS blocklists' lookups (dnsbl.ts) as a Prometheus counter, by zone and result: listed
 * (the client or sender was refused, unless an earlier zone listed it too), clean, error (no answer in
 * time, a DNS failure, or an answer that is the list's refusal of the query, 127.255.255.x).
 */
import { Counter, type Registry } from 'prom-client';
import type { DnsblResult } from './dnsbl.js';

/** Registers the counter, every zone's series at 0; returns the function that counts a lookup. */
export function registerDnsblMetrics(
  registry: Registry,
  zones: readonly string[],
): (zone: string, r: DnsblResult) => void {
  const lookups = new Counter({
    name: 'aftersmtp_smtp_dnsbl_lookups_total',
    help: "Port 25 clients and senders looked up in the DNS blocklists (AFTERSMTP_SMTP_DNSBL, AFTERSMTP_SMTP_RHSBL), by zone and result: listed, clean, error (no answer in time, a DNS failure, or the list's refusal of the query).",
    labelNames: ['zone', 'result'],
    registers: [registry],
  });
  for (const zone of zones) {
    for (const result of ['listed', 'clean', 'error'] as const) lookups.inc({ zone, result }, 0);
  }
  return (zone, result) => lookups.inc({ zone, result });
}
