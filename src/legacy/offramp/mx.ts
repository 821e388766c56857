/**
 * Where the mail for a domain goes (RFC 5321 §5.1): the hosts to try, in order, each with the
 * facts the TLS policy needs (was its name obtained from DNSSEC-validated data?).
 *
 * - A route `smtp:[host]:port` (mx_record_map) is that host alone, no MX lookup; its name comes
 *   from the operator, so it counts as secure for DANE (RFC 7672 §2.2.1 leaves it to the client).
 * - Otherwise the MX records of the domain (or of the route's host, `smtp:host:port`, as
 *   Postfix's transport syntax), lowest preference first, equal preferences in random order
 *   (RFC 5321 §5.1), at most MAX_MX hosts.
 * - No MX records (NODATA): the domain itself as the one host, "implicit MX" (RFC 5321 §5.1).
 * - A null MX (RFC 7505, `0 .`): permanent failure, the domain accepts no mail. MX records
 *   whose exchange is the root among others are dropped.
 * - NXDOMAIN for the domain: permanent (it does not exist). DNS trouble: temporary.
 */
import { randomInt } from 'node:crypto';
import type { DnsAnswer, DnsResolver } from '../../net/dns.js';
import { DnsError, isNullMx, recordsOf } from '../../net/dns.js';

/** At most this many MX hosts are kept (Postfix: smtp_mx_address_limit bounds the addresses). */
export const MAX_MX = 10;

export interface NextHost {
  /** The host name (lower case, no trailing dot), or an IP literal from a `[...]` route. */
  readonly name: string;
  readonly port: number;
  /** MX preference (0 for a route or an implicit MX). */
  readonly preference: number;
  /** The name came from a validated MX answer, a route, or is the domain itself. */
  readonly secureName: boolean;
  /** From the domain's MX records (MTA-STS then checks the name against the policy). */
  readonly fromMx: boolean;
}

export type HostPlan =
  | { readonly kind: 'hosts'; readonly hosts: readonly NextHost[] }
  | { readonly kind: 'permanent'; readonly code: string; readonly reason: string }
  | { readonly kind: 'temporary'; readonly code: string; readonly reason: string };

export interface NextHop {
  /** The domain (or the route's host) whose MX records are looked up. */
  readonly lookup: string;
  readonly port: number;
  /** false for `smtp:[host]:port`. */
  readonly mxLookup: boolean;
  /** `smtps:`: TLS from the first byte. */
  readonly implicitTls: boolean;
}

function bare(name: string): string {
  return name.replace(/\.$/, '').toLowerCase();
}

/** Sorts by preference; equal preferences are shuffled (RFC 5321 §5.1). */
export function orderMx<T extends { preference: number }>(records: readonly T[]): T[] {
  const shuffled = [...records];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = randomInt(0, i + 1);
    [shuffled[i], shuffled[j]] = [shuffled[j] as T, shuffled[i] as T];
  }
  // Array.prototype.sort is stable: the shuffle decides among equals.
  return shuffled.sort((a, b) => a.preference - b.preference);
}

export async function planHosts(dns: DnsResolver, hop: NextHop): Promise<HostPlan> {
  if (!hop.mxLookup) {
    return {
      kind: 'hosts',
      hosts: [
        {
          name: bare(hop.lookup),
          port: hop.port,
          preference: 0,
          secureName: true,
          fromMx: false,
        },
      ],
    };
  }
  let answer: DnsAnswer;
  try {
    answer = await dns.query(hop.lookup, 'MX');
  } catch (err) {
    const why = err instanceof DnsError ? err.message : String(err);
    return {
      kind: 'temporary',
      code: 'ERR_SMTP_DNS',
      reason: `MX lookup of ${hop.lookup}: ${why}`,
    };
  }
  if (answer.rcode === 'NXDOMAIN') {
    return {
      kind: 'permanent',
      code: 'ERR_SMTP_NO_DOMAIN',
      reason: `${hop.lookup}: no such domain (NXDOMAIN)`,
    };
  }
  const mx = recordsOf(answer, 'MX');
  if (mx.length === 0) {
    // RFC 5321 §5.1: no MX, the domain's own address records are the implicit MX.
    return {
      kind: 'hosts',
      hosts: [
        { name: bare(hop.lookup), port: hop.port, preference: 0, secureName: true, fromMx: false },
      ],
    };
  }
  if (isNullMx(answer)) {
    // RFC 7505 §3: a null MX; the domain accepts no mail (556 5.1.10 in RFC 7505 §4.2).
    return {
      kind: 'permanent',
      code: 'ERR_SMTP_NULL_MX',
      reason: `${hop.lookup} accepts no mail (null MX, RFC 7505)`,
    };
  }
  // A root exchange beside real ones is no host (RFC 7505 §3: a null MX stands alone).
  const real = mx.filter((r) => bare(r.data.exchange) !== '');
  const seen = new Set<string>();
  const hosts: NextHost[] = [];
  for (const r of orderMx(real.map((r) => ({ ...r.data, preference: r.data.preference ?? 0 })))) {
    const name = bare(r.exchange);
    if (seen.has(name)) continue;
    seen.add(name);
    hosts.push({
      name,
      port: hop.port,
      preference: r.preference,
      secureName: answer.secure,
      fromMx: true,
    });
    if (hosts.length >= MAX_MX) break;
  }
  return { kind: 'hosts', hosts };
}

export interface HostAddresses {
  readonly addresses: readonly string[];
  /** Both address lookups were validated (RFC 7672 §2.2.2: only then may TLSA be used). */
  readonly secure: boolean;
}

/** A and AAAA of a host (IPv4 first); an IP literal is itself. Throws DnsError on DNS trouble. */
export async function hostAddresses(dns: DnsResolver, name: string): Promise<HostAddresses> {
  if (/^[0-9.]+$/.test(name) || name.includes(':')) return { addresses: [name], secure: true };
  const [a, aaaa] = await Promise.allSettled([dns.query(name, 'A'), dns.query(name, 'AAAA')]);
  const addresses: string[] = [];
  let secure = true;
  let failure: unknown;
  for (const r of [a, aaaa]) {
    if (r.status === 'rejected') {
      failure = r.reason;
      continue;
    }
    secure &&= r.value.secure;
    for (const rec of r.value.answers) {
      if (rec.type === 'A' || rec.type === 'AAAA') addresses.push(rec.data);
    }
  }
  if (addresses.length === 0 && failure !== undefined) throw failure;
  return { addresses, secure: secure && failure === undefined };
}
