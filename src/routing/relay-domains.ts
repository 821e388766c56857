/**
 * relay_domains: the domains this node accepts mail for, besides AFTERSMTP_DOMAIN (which the
 * caller always adds). A key is a domain (`example.org`: that domain only) or `.example.org` (any
 * subdomain of example.org, not example.org itself); the value is not used (`OK` by convention,
 * as in a Postfix relay_domains table).
 *
 * Guarantees: keys are lower-case IDNA A-labels checked with src/identity/did.ts checkDomain;
 * lookups fold case, drop a trailing dot and convert U-labels, so `Example.ORG.` and
 * `bücher.example` match their stored forms; anything that is not a domain name is not a relay
 * domain.
 */
import { checkEntryDomain, domainKeys, normalizeDomain } from './addresses.js';
import { MapInputError } from './errors.js';
import { type EntryClass, type CheckedEntry, type MapEntry } from './types.js';

/** Normalizes and checks one relay_domains entry; throws MapInputError. */
export function checkRelayDomainEntry(
  rawKey: string,
  rawValue: string,
  cls: EntryClass,
): CheckedEntry {
  if (cls !== 'both')
    throw new MapInputError('relay_domains entries have no sender/recipient class');
  const key = rawKey.trim();
  const value = rawValue.trim() || 'OK';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) throw new MapInputError('the value has control characters');
  if (key.startsWith('.'))
    return { key: `.${checkEntryDomain(key.slice(1))}`, value, kind: 'exact' };
  return { key: checkEntryDomain(key), value, kind: 'exact' };
}

/** A compiled relay_domains, read-only once built. */
export class RelayDomains {
  readonly #keys = new Map<string, MapEntry>();

  constructor(entries: readonly MapEntry[]) {
    for (const entry of entries) if (!this.#keys.has(entry.key)) this.#keys.set(entry.key, entry);
  }

  lookup(domain: string, tried: string[] = []): MapEntry | undefined {
    const d = normalizeDomain(domain);
    if (d === undefined || d.startsWith('[') || d.startsWith('.')) return undefined;
    for (const key of domainKeys(d, false)) {
      tried.push(key);
      const hit = this.#keys.get(key);
      if (hit) return hit;
    }
    return undefined;
  }
}
