/**
 * DNS blocklists for port 25 (RFC 5782; Postfix's reject_rbl_client and reject_rhsbl_sender):
 * the client's address is looked up in each configured zone (`2.0.0.127.zone` for 127.0.0.2, the
 * 32 reversed nibbles for IPv6), the reverse path's domain in each domain zone (`domain.zone`),
 * and an address record there means "listed". The admission stage refuses a listed client or
 * sender (554 5.7.1, naming the zone and its TXT reason), after access_map: an `OK` there for the
 * client's address (a known partner, a monitoring host) or the sender is never looked up.
 *
 * What counts as a listing: an A record in 127.0.0.0/8 (RFC 5782 §2.3), and, when the zone is
 * written with a filter (`zen.spamhaus.org=127.0.0.[2..11]`, Postfix's syntax: each octet a
 * number or a bracketed list of numbers and `a..b` ranges, separated by `;`), only an answer the
 * filter matches. 127.255.255.0/24 is never a listing: lists answer there to say they refused the
 * query (Spamhaus: a public resolver, or over the free use limit), and an address outside 127/8
 * is a resolver that rewrites NXDOMAIN; both are counted as errors, not listings.
 *
 * Fails open: a zone that does not answer within `timeoutMs`, or answers with an error, does not
 * block the client (Postfix likewise); each lookup's result is counted by zone (`onResult`). The
 * zones are asked at once, and the first zone in the configured order that lists the address
 * decides. Answers are cached for their TTL by the DNS cache in front of `dns`.
 */
import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';
import { answerWithin, DnsError, recordsOf, type DnsResolver } from '../net/dns.js';
import { lookupDomain } from '../routing/addresses.js';
import { refusal } from './refusals.js';
import type { Client, Verdict } from './types.js';

/** One octet of a filter: inclusive ranges. */
type OctetRanges = readonly (readonly [number, number])[];

export interface DnsblZone {
  /** The zone, in lower case, without a final dot. */
  readonly zone: string;
  /** Which answers list an address; absent: any in 127.0.0.0/8 but 127.255.255.0/24. */
  readonly filter?: readonly [OctetRanges, OctetRanges, OctetRanges, OctetRanges];
}

export interface DnsblListing {
  readonly zone: string;
  /** The address record the zone answered, e.g. 127.0.0.2. */
  readonly code: string;
  /** The zone's TXT record for the address (one line, printable), if it had one in time. */
  readonly reason?: string;
}

export type DnsblResult = 'listed' | 'clean' | 'error';

export interface DnsblOptions {
  readonly zones: readonly DnsblZone[];
  readonly dns: DnsResolver;
  /** The longest wait for a zone's answer (default 3 s); later is "not listed". */
  readonly timeoutMs?: number;
  /** Counts each zone's lookup. */
  readonly onResult?: (zone: string, result: DnsblResult) => void;
}

const MAX_REASON = 200;

/** Parses AFTERSMTP_SMTP_DNSBL: zones separated by commas or spaces, each `zone[=filter]`. */
export function parseDnsblZones(spec: string): DnsblZone[] {
  const zones: DnsblZone[] = [];
  for (const item of spec.split(/[\s,]+/).filter((s) => s !== '')) {
    const eq = item.indexOf('=');
    const zone = lookupDomain(eq < 0 ? item : item.slice(0, eq));
    if (zone === undefined || zone.length > 200) {
      throw new Error(`"${item}": expected a DNS zone, e.g. zen.spamhaus.org`);
    }
    if (zones.some((z) => z.zone === zone)) throw new Error(`"${zone}" is listed twice`);
    zones.push(eq < 0 ? { zone } : { zone, filter: parseFilter(item.slice(eq + 1), item) });
  }
  return zones;
}

function parseFilter(text: string, item: string): NonNullable<DnsblZone['filter']> {
  const bad = (): never => {
    throw new Error(
      `"${item}": the filter is four octets, each a number or a list in brackets, e.g. 127.0.0.[2..11;20]`,
    );
  };
  // Octets are separated by dots outside brackets (inside, `..` makes a range).
  const octets = text.match(/\[[^\]]*\]|[^.[\]]+|\[[^\]]*$/g) ?? [];
  if (octets.length !== 4 || octets.join('.') !== text) bad();
  const octet = (s: string): number => {
    if (!/^[0-9]{1,3}$/.test(s) || Number(s) > 255) bad();
    return Number(s);
  };
  const ranges = octets.map((o): OctetRanges => {
    if (!o.startsWith('[')) return [[octet(o), octet(o)]];
    if (!o.endsWith(']') || o.length < 3) bad();
    return o
      .slice(1, -1)
      .split(';')
      .map((element): readonly [number, number] => {
        const [from, to, ...rest] = element.split('..');
        if (rest.length > 0) bad();
        const lo = octet(from ?? '');
        const hi = to === undefined ? lo : octet(to);
        if (hi < lo) bad();
        return [lo, hi];
      });
  });
  return ranges as unknown as NonNullable<DnsblZone['filter']>;
}

/** The name to ask of `zone` for `address` (RFC 5782 §2.1, §2.4); undefined for a non-address. */
export function dnsblName(address: string, zone: string): string | undefined {
  if (isIP(address) === 0) return undefined;
  const parsed = ipaddr.process(address); // an IPv4-mapped IPv6 address is looked up as IPv4
  if (parsed.kind() === 'ipv4') {
    return `${(parsed as ipaddr.IPv4).octets.slice().reverse().join('.')}.${zone}`;
  }
  const nibbles = (parsed as ipaddr.IPv6).toByteArray().flatMap((b) => [b >> 4, b & 15]);
  return `${nibbles
    .reverse()
    .map((n) => n.toString(16))
    .join('.')}.${zone}`;
}

/** Whether an answered address lists the client: 'listed', or why not ('error'). */
export function classifyAnswer(code: string, z: DnsblZone): 'listed' | 'error' | 'no' {
  if (!ipaddr.IPv4.isValidFourPartDecimal(code)) return 'error';
  const octets = ipaddr.IPv4.parse(code).octets;
  if (octets[0] !== 127 || (octets[1] === 255 && octets[2] === 255)) return 'error';
  if (z.filter === undefined) return 'listed';
  const inFilter = octets.every((o, i) =>
    (z.filter?.[i] ?? []).some(([lo, hi]) => o >= lo && o <= hi),
  );
  return inFilter ? 'listed' : 'no';
}

/**
 * The refusal of a listed client or sender, in the words of Postfix's default rbl_reply_maps:
 * "Service unavailable; Client host [address] blocked using zone; reason".
 */
function blocked(
  code: 'ERR_CLIENT_BLOCKED' | 'ERR_SENDER_BLOCKED',
  what: string,
  listed: DnsblListing,
): Verdict {
  const reason = listed.reason !== undefined ? `; ${listed.reason}` : '';
  return {
    kind: 'refuse',
    refusal: refusal(code, `Service unavailable; ${what} blocked using ${listed.zone}${reason}`),
  };
}

/** A listed client (reject_rbl_client). */
export function blockedClient(client: Client, listed: DnsblListing): Verdict {
  return blocked('ERR_CLIENT_BLOCKED', `Client host [${client.address}]`, listed);
}

/** A sender whose domain is listed (reject_rhsbl_sender). */
export function blockedSender(domain: string, listed: DnsblListing): Verdict {
  return blocked('ERR_SENDER_BLOCKED', `Sender address [${domain}]`, listed);
}

/** The blocklists, as the admission stage asks them. */
export class Dnsbl {
  readonly #o: DnsblOptions;
  readonly #timeoutMs: number;

  constructor(o: DnsblOptions) {
    this.#o = o;
    this.#timeoutMs = o.timeoutMs ?? 3_000;
  }

  /** The first zone (in the configured order) that lists the IP `address`, or undefined. */
  listing(address: string): Promise<DnsblListing | undefined> {
    return this.#first((zone) => dnsblName(address, zone));
  }

  /**
   * The first zone that lists the domain (an RHSBL such as dbl.spamhaus.org: `domain.zone`), or
   * undefined; a name that is not a host name is not looked up.
   */
  domainListing(domain: string): Promise<DnsblListing | undefined> {
    const d = lookupDomain(domain);
    return this.#first((zone) =>
      d !== undefined && d.length + zone.length < 253 ? `${d}.${zone}` : undefined,
    );
  }

  async #first(nameIn: (zone: string) => string | undefined): Promise<DnsblListing | undefined> {
    const results = await Promise.all(this.#o.zones.map((z) => this.#ask(nameIn(z.zone), z)));
    return results.find((r) => r !== undefined);
  }

  async #ask(name: string | undefined, z: DnsblZone): Promise<DnsblListing | undefined> {
    if (name === undefined) return undefined;
    let result: DnsblResult = 'clean';
    let listing: DnsblListing | undefined;
    try {
      const answer = await answerWithin(this.#o.dns.query(name, 'A'), this.#timeoutMs);
      if (answer === undefined) {
        result = 'error';
      } else {
        for (const record of answer.answers) {
          if (record.type !== 'A') continue;
          const verdict = classifyAnswer(record.data, z);
          if (verdict === 'listed') {
            listing = { zone: z.zone, code: record.data };
            break;
          }
          if (verdict === 'error') result = 'error';
        }
      }
    } catch (err) {
      if (!(err instanceof DnsError)) throw err;
      result = 'error';
    }
    if (listing !== undefined) {
      result = 'listed';
      const reason = await this.#reason(name);
      if (reason !== undefined) listing = { ...listing, reason };
    }
    this.#o.onResult?.(z.zone, result);
    return listing;
  }

  /** The zone's TXT record for the name: one line of printable ASCII, bounded. */
  async #reason(name: string): Promise<string | undefined> {
    try {
      const answer = await answerWithin(this.#o.dns.query(name, 'TXT'), this.#timeoutMs);
      const first = answer === undefined ? undefined : recordsOf(answer, 'TXT')[0];
      if (first === undefined) return undefined;
      const text = ([] as (string | Buffer)[])
        .concat(first.data)
        .map((part) => part.toString('latin1'))
        .join('')
        .replace(/[^\x20-\x7e]+/g, ' ')
        .trim();
      return text === '' ? undefined : text.slice(0, MAX_REASON);
    } catch {
      return undefined; // the listing stands without its text
    }
  }
}
