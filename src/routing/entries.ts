/**
 * The one gate every entry passes before it is stored (set, import) or used (load): the bounds
 * that hold for every map, then the map's own key and value rules (access.ts, relay-domains.ts,
 * routes.ts, canonical.ts, aliases.ts), which return the entry's normal form.
 *
 * Guarantees: a key is at most LIMITS.maxKeyLength characters (LIMITS.maxRegexpLength for a
 * regexp) and has no whitespace or control character outside a regexp pattern; a value is at most
 * LIMITS.maxValueLength characters without control characters; a class other than 'both' is
 * accepted only where it means something (canonical_maps, access_map address and regexp entries).
 * Errors are MapInputErrors whose message names the map and the key.
 */
import { checkAccessEntry } from './access.js';
import { checkAliasEntry } from './aliases.js';
import { checkCanonicalEntry } from './canonical.js';
import { MapInputError, MapLimitError } from './errors.js';
import { normalizeDomain } from './addresses.js';
import { looksLikeNetwork, networkText, parseNetwork } from './cidr.js';
import { isRegexpKey } from './regexp.js';
import { checkRelayDomainEntry } from './relay-domains.js';
import { checkRouteEntry } from './routes.js';
import { checkSpamPolicyEntry } from './spam-policy.js';
import { LIMITS, type CheckedEntry, type EntryClass, type MapName } from './types.js';

export type ImportFormat = 'hash' | 'cidr' | 'regexp';

/** The import formats each map takes. */
export const MAP_FORMATS: Readonly<Record<MapName, readonly ImportFormat[]>> = {
  access_map: ['hash', 'cidr', 'regexp'],
  relay_domains: ['hash'],
  mx_record_map: ['hash', 'regexp'],
  canonical_maps: ['hash', 'regexp'],
  virtual_alias_maps: ['hash', 'regexp'],
  spam_policy: ['hash'],
};

export interface NormalEntry extends CheckedEntry {
  readonly class: EntryClass;
}

const CHECKS: Record<MapName, (key: string, value: string, cls: EntryClass) => CheckedEntry> = {
  access_map: checkAccessEntry,
  relay_domains: checkRelayDomainEntry,
  mx_record_map: checkRouteEntry,
  canonical_maps: checkCanonicalEntry,
  virtual_alias_maps: checkAliasEntry,
  spam_policy: checkSpamPolicyEntry,
};

function shown(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);
}

/** Checks one entry for `map` and returns its normal form; throws MapInputError or MapLimitError. */
export function checkEntry(
  map: MapName,
  rawKey: string,
  rawValue: string,
  cls: EntryClass = 'both',
): NormalEntry {
  const key = rawKey.trim();
  const value = rawValue.trim();
  const regexp = isRegexpKey(key);
  if (key.length === 0) throw new MapInputError(`${map}: empty key`);
  const maxKey = regexp ? LIMITS.maxRegexpLength : LIMITS.maxKeyLength;
  if (key.length > maxKey)
    throw new MapLimitError(`${map}: key ${shown(key)} is longer than ${maxKey} characters`);
  if (value.length > LIMITS.maxValueLength) {
    throw new MapLimitError(
      `${map}: the value for ${shown(key)} is longer than ${LIMITS.maxValueLength} characters`,
    );
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(key) || (!regexp && /\s/.test(key))) {
    throw new MapInputError(`${map}: key ${shown(key)} has whitespace or control characters`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x08\x0a-\x1f\x7f]/.test(value)) {
    throw new MapInputError(`${map}: the value for ${shown(key)} has control characters`);
  }
  if (value.length === 0 && map !== 'relay_domains')
    throw new MapInputError(`${map}: no value for ${shown(key)}`);
  if (cls !== 'both' && map !== 'canonical_maps' && map !== 'access_map') {
    throw new MapInputError(
      `${map}: entries have no sender/recipient class (only canonical_maps and access_map do)`,
    );
  }
  if (regexp && !MAP_FORMATS[map].includes('regexp')) {
    throw new MapInputError(`${map}: regexp keys are not supported in this map`);
  }
  try {
    const normal = CHECKS[map](key, value, cls);
    return { ...normal, class: cls };
  } catch (err) {
    if (err instanceof MapInputError) {
      // Most messages quote the key already; otherwise say which key it is about.
      const where = err.message.includes(JSON.stringify(key).slice(1, -1)) ? '' : ` ${shown(key)}`;
      throw new MapInputError(`${map}${where}: ${err.message}`, err.code);
    }
    throw err;
  }
}

/**
 * The stored form of a key without checking it (for get and del): what checkEntry would make of
 * it. DIDs, regexps, `<>` and `*` are kept as they are; networks take their canonical text;
 * everything else is folded to lower case with A-label domains.
 */
export function normalizeKey(raw: string): string {
  const k = raw.trim();
  if (isRegexpKey(k) || k === '<>' || k === '*' || k.startsWith('did:')) return k;
  if (looksLikeNetwork(k)) {
    try {
      return networkText(parseNetwork(k));
    } catch {
      return k; // not a valid network: it cannot be stored either, so it matches nothing
    }
  }
  const domain = (d: string): string => normalizeDomain(d) ?? d.toLowerCase();
  if (k.startsWith('.')) return `.${domain(k.slice(1))}`;
  const at = k.lastIndexOf('@');
  if (at < 0) return domain(k);
  const rest = k.slice(at + 1);
  return `${k.slice(0, at).toLowerCase()}@${rest === '' ? '' : domain(rest)}`;
}
