/**
 * mx_record_map: explicit routes per address or domain, in Postfix transport(5) syntax.
 *
 *   amp:host[:port]     AMP relay over QUIC to host (port 4434 if omitted); IPv6 as [2001:db8::1]
 *   smtp:[host][:port]  SMTP to host itself, no MX lookup (port 25 if omitted)
 *   smtp:host[:port]    SMTP to the MX hosts of host (Postfix: no brackets means MX lookup)
 *   smtps:[host][:port] SMTP over implicit TLS (RFC 8314 §3) to host itself (port 465 if omitted);
 *                       smtps:host[:port] to its MX hosts (Postfix's smtp_tls_wrappermode)
 *   error:text          refuse the recipient with text (e.g. error:5.1.1 no such user)
 *
 * Keys: `user@domain` (and `user+ext@domain`), `domain`, `.domain` (any subdomain of domain),
 * regexp entries, and `*`. Lookup order (transport(5) "TABLE SEARCH ORDER"): user+ext@domain,
 * user@domain, domain, .parent domains nearest first, then regexp entries in map order, then `*`.
 *
 * Guarantees: a stored route is parsed and written back in one normal form (transport in lower
 * case, port always present, IPv6 in brackets), hosts are LDH names or IP addresses; an
 * unbracketed IP address with smtp (an MX lookup of an address) is refused; a regexp route whose
 * substituted result is not a valid route is skipped, never returned.
 */
import ipaddr from 'ipaddr.js';
import { checkRouteKey, routeKeys } from './addresses.js';
import { compileEach, MapInputError } from './errors.js';
import {
  checkTemplate,
  compileRegexpKey,
  execRegexp,
  isRegexpKey,
  probe,
  substitute,
  type RegexpKey,
} from './regexp.js';
import {
  LIMITS,
  type EntryClass,
  type CheckedEntry,
  type LookupOptions,
  type MapEntry,
  type Route,
} from './types.js';

export const DEFAULT_AMP_PORT = 4434;
export const DEFAULT_SMTP_PORT = 25;
export const DEFAULT_SMTPS_PORT = 465;

const SYNTAX =
  'expected amp:host[:port], smtp:[host][:port], smtp:host[:port], smtps:[host][:port] or error:text';
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

function checkHost(host: string, value: string): string {
  const h = host.toLowerCase();
  if (h.length === 0 || h.length > 253)
    throw new MapInputError(`bad host in ${JSON.stringify(value)}`);
  if (!h.split('.').every((l) => LDH_LABEL.test(l))) {
    throw new MapInputError(
      `${JSON.stringify(host)} is not a host name or IP address (in ${JSON.stringify(value)})`,
    );
  }
  if (/^[0-9.]+$/.test(h) && !ipaddr.IPv4.isValidFourPartDecimal(h)) {
    throw new MapInputError(
      `${JSON.stringify(host)} is not a valid IPv4 address (in ${JSON.stringify(value)})`,
    );
  }
  return h;
}

interface Nexthop {
  readonly host: string;
  readonly port?: number;
  readonly bracketed: boolean;
}

function parseNexthop(s: string, value: string): Nexthop {
  let host: string;
  let rest: string;
  let bracketed = false;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close < 0) throw new MapInputError(`missing ] in ${JSON.stringify(value)}`);
    bracketed = true;
    host = s.slice(1, close);
    rest = s.slice(close + 1);
    if (/^ipv6:/i.test(host)) host = host.slice(5);
    if (host.includes(':')) {
      if (!ipaddr.IPv6.isValid(host) || host.includes('%')) {
        throw new MapInputError(
          `${JSON.stringify(host)} is not an IPv6 address (in ${JSON.stringify(value)})`,
        );
      }
      host = ipaddr.IPv6.parse(host).toRFC5952String();
    } else {
      host = checkHost(host, value);
    }
  } else {
    const colon = s.indexOf(':');
    if (colon >= 0 && s.indexOf(':', colon + 1) >= 0) {
      throw new MapInputError(
        `IPv6 addresses go in brackets, e.g. [2001:db8::1]:25 (in ${JSON.stringify(value)})`,
      );
    }
    host = checkHost(colon < 0 ? s : s.slice(0, colon), value);
    rest = colon < 0 ? '' : s.slice(colon);
  }
  if (rest === '') return { host, bracketed };
  if (!/^:[0-9]{1,5}$/.test(rest) || Number(rest.slice(1)) < 1 || Number(rest.slice(1)) > 65535) {
    throw new MapInputError(`bad port in ${JSON.stringify(value)} (1 to 65535)`);
  }
  return { host, port: Number(rest.slice(1)), bracketed };
}

/** Parses a route value; throws MapInputError saying what is expected. */
export function parseRoute(raw: string): Route {
  const value = raw.trim();
  const colon = value.indexOf(':');
  const transport = colon < 0 ? '' : value.slice(0, colon).toLowerCase();
  const rest = colon < 0 ? '' : value.slice(colon + 1);
  switch (transport) {
    case 'error': {
      const text = rest.trim();
      if (text.length === 0)
        throw new MapInputError('error: needs a text, e.g. error:5.1.1 no such user');
      if (text.length > LIMITS.maxTextLength || !/^[\x20-\x7e]+$/.test(text)) {
        throw new MapInputError(
          `error text must be printable ASCII of at most ${LIMITS.maxTextLength} characters`,
        );
      }
      return { kind: 'error', text };
    }
    case 'amp': {
      if (rest === '') throw new MapInputError(`amp: needs a host (${SYNTAX})`);
      const hop = parseNexthop(rest, value);
      return { kind: 'amp', host: hop.host, port: hop.port ?? DEFAULT_AMP_PORT };
    }
    case 'smtp':
    case 'smtps': {
      if (rest === '') throw new MapInputError(`${transport}: needs a host (${SYNTAX})`);
      const hop = parseNexthop(rest, value);
      if (!hop.bracketed && ipaddr.IPv4.isValidFourPartDecimal(hop.host)) {
        throw new MapInputError(
          `write ${transport}:[${hop.host}] to send to an IP address (without brackets the host's MX records are looked up)`,
        );
      }
      const implicitTls = transport === 'smtps';
      return {
        kind: 'smtp',
        host: hop.host,
        port: hop.port ?? (implicitTls ? DEFAULT_SMTPS_PORT : DEFAULT_SMTP_PORT),
        mxLookup: !hop.bracketed,
        implicitTls,
      };
    }
    default:
      throw new MapInputError(`unknown route ${JSON.stringify(value.slice(0, 80))} (${SYNTAX})`);
  }
}

/** The normal form of a route. */
export function formatRoute(r: Route): string {
  switch (r.kind) {
    case 'error':
      return `error:${r.text}`;
    case 'amp':
      return `amp:${r.host.includes(':') ? `[${r.host}]` : r.host}:${r.port}`;
    case 'smtp': {
      const transport = r.implicitTls ? 'smtps' : 'smtp';
      return r.mxLookup ? `${transport}:${r.host}:${r.port}` : `${transport}:[${r.host}]:${r.port}`;
    }
  }
}

/** Normalizes and checks one mx_record_map entry; throws MapInputError. */
export function checkRouteEntry(rawKey: string, rawValue: string, cls: EntryClass): CheckedEntry {
  if (cls !== 'both')
    throw new MapInputError('mx_record_map entries have no sender/recipient class');
  const key = rawKey.trim();
  if (isRegexpKey(key)) {
    const re = compileRegexpKey(key);
    const value = rawValue.trim();
    checkTemplate(value, re);
    parseRoute(probe(value));
    return { key: re.text, value, kind: 'regexp' };
  }
  const value = formatRoute(parseRoute(rawValue));
  return { key: checkRouteKey(key), value, kind: 'exact' };
}

export interface RouteHit {
  readonly entry: MapEntry;
  readonly route: Route;
}

/** A compiled mx_record_map, read-only once built. */
export class RouteTable {
  readonly #exact = new Map<string, RouteHit>();
  readonly #patterns: { entry: MapEntry; re: RegexpKey }[] = [];
  readonly #options: LookupOptions;

  constructor(entries: readonly MapEntry[], options: LookupOptions) {
    this.#options = options;
    compileEach(entries, (entry) => {
      if (entry.kind === 'regexp') {
        const re = compileRegexpKey(entry.key);
        checkTemplate(entry.value, re);
        this.#patterns.push({ entry, re });
      } else if (!this.#exact.has(entry.key)) {
        this.#exact.set(entry.key, { entry, route: parseRoute(entry.value) });
      }
    });
  }

  lookup(addressOrDomain: string, tried: string[] = []): RouteHit | undefined {
    const keys = routeKeys(addressOrDomain, this.#options.recipientDelimiter);
    if (keys.length === 0) return undefined;
    for (const key of keys) {
      tried.push(key);
      const hit = this.#exact.get(key);
      if (hit) return hit;
    }
    const subject = addressOrDomain.trim();
    for (const p of this.#patterns) {
      tried.push(p.entry.key);
      const groups = execRegexp(p.re, subject);
      if (groups === undefined) continue;
      try {
        return { entry: p.entry, route: parseRoute(substitute(p.entry.value, groups)) };
      } catch {
        continue; // a substitution that makes no route: this entry does not apply
      }
    }
    tried.push('*');
    return this.#exact.get('*');
  }
}
