/**
 * virtual_alias_maps: one address (or DID) to many targets, DIDs and/or addresses separated by
 * commas or whitespace as in Postfix's virtual(5), expanded recursively the way Postfix's cleanup
 * does it (cleanup_map1n.c):
 *
 * - each address is looked up as user+ext@domain, user@domain, @domain (a DID as it is), then in
 *   regexp entries; its first target takes its place and the others are appended, and the new
 *   address is looked up again, until no entry matches;
 * - an address that maps to itself among other targets (`a@x a@x, b@x`) is not expanded again,
 *   anywhere in this expansion: that is how an alias keeps a copy for itself;
 * - at most LIMITS.maxAliasResults addresses in the working list (duplicates counted, as Postfix
 *   counts them) and at most LIMITS.maxAliasDepth rewrites of one address; over either, the answer
 *   is `limit` and the pipeline answers 4.6.0, so a loop (`a -> b`, `b -> a`) defers the message
 *   instead of looping or losing it;
 * - the final list is deduplicated (DIDs exactly, addresses without regard to case), first
 *   occurrence kept, in order.
 *
 * A target `@domain` stands for the looked-up local part at that domain; an extension the key did
 * not include is carried over into address targets (propagate_unmatched_extensions).
 *
 * Guarantees: the expansion terminates after at most maxAliasResults x (maxAliasDepth + 1)
 * lookups; every target returned is a valid DID or address.
 */
import { DID_PREFIX } from '../identity/did.js';
import {
  applyResult,
  checkTarget,
  mailAddressKeys,
  splitAddress,
  substitutedTarget,
} from './addresses.js';
import { checkMailKey } from './canonical.js';
import { compileEach, MapInputError } from './errors.js';
import {
  checkTemplate,
  compileRegexpKey,
  execRegexp,
  isRegexpKey,
  substitute,
  type RegexpKey,
} from './regexp.js';
import {
  LIMITS,
  type AliasExpansion,
  type AliasStep,
  type EntryClass,
  type CheckedEntry,
  type LookupOptions,
  type MapEntry,
} from './types.js';

function splitTargets(value: string): string[] {
  return value.split(/[\s,]+/).filter((t) => t.length > 0);
}

/** Parses a target list as written in a map; throws MapInputError naming the bad target. */
export function parseTargets(value: string): string[] {
  const raw = splitTargets(value);
  if (raw.length === 0) throw new MapInputError('an alias needs at least one target');
  return raw.map((t) => checkTarget(t, true));
}

/** Normalizes and checks one virtual_alias_maps entry; throws MapInputError. */
export function checkAliasEntry(rawKey: string, rawValue: string, cls: EntryClass): CheckedEntry {
  if (cls !== 'both')
    throw new MapInputError('virtual_alias_maps entries have no sender/recipient class');
  const key = rawKey.trim();
  if (isRegexpKey(key)) {
    const re = compileRegexpKey(key);
    const targets = splitTargets(rawValue);
    if (targets.length === 0) throw new MapInputError('an alias needs at least one target');
    checkTemplate(rawValue, re);
    return { key: re.text, value: targets.join(', '), kind: 'regexp' };
  }
  return { key: checkMailKey(key), value: parseTargets(rawValue).join(', '), kind: 'exact' };
}

/** How expansions compare addresses: DIDs exactly, addresses folded to lower case. */
function sameKey(target: string): string {
  return target.startsWith(DID_PREFIX) ? target : target.toLowerCase();
}

interface Alias {
  readonly entry: MapEntry;
  readonly targets: readonly string[];
}

export interface AliasHit {
  readonly entry: MapEntry;
  /** The key that matched (the pattern for a regexp entry). */
  readonly key: string;
  readonly targets: readonly string[];
}

export interface ExpansionTrace {
  readonly tried: string[];
  readonly steps: AliasStep[];
  /** The entry that expanded the original address. */
  first?: MapEntry;
}

/** A compiled virtual_alias_maps, read-only once built. */
export class AliasTable {
  readonly #exact = new Map<string, Alias>();
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
        this.#exact.set(entry.key, { entry, targets: parseTargets(entry.value) });
      }
    });
  }

  /** One level: the targets of `address`, or undefined when no entry matches. */
  lookup(address: string, tried: string[] = []): AliasHit | undefined {
    const s = address.trim();
    if (s.length === 0 || s.length > LIMITS.maxLookupInput) return undefined;
    if (s.startsWith(DID_PREFIX)) {
      tried.push(s);
      const hit = this.#exact.get(s);
      if (hit) return { entry: hit.entry, key: s, targets: hit.targets };
    } else {
      const original = splitAddress(s);
      for (const k of mailAddressKeys(s, this.#options.recipientDelimiter)) {
        tried.push(k.key);
        const hit = this.#exact.get(k.key);
        if (hit && original) {
          const targets = hit.targets.map((t) => applyResult(t, original.localpart, k.unmatched));
          return { entry: hit.entry, key: k.key, targets };
        }
      }
    }
    for (const p of this.#patterns) {
      tried.push(p.entry.key);
      const groups = execRegexp(p.re, s);
      if (groups === undefined) continue;
      const targets = splitTargets(substitute(p.entry.value, groups)).map((t) =>
        substitutedTarget(t, true),
      );
      if (targets.length === 0 || targets.some((t) => t === undefined)) continue;
      const original = splitAddress(s);
      if (targets.some((t) => (t as string).startsWith('@')) && !original) continue;
      return {
        entry: p.entry,
        key: p.entry.key,
        targets: targets.map((t) => applyResult(t as string, original?.localpart ?? '')),
      };
    }
    return undefined;
  }

  /** The full expansion of `address` (see the module comment). */
  expand(address: string, trace?: ExpansionTrace): AliasExpansion {
    const start = address.trim();
    const first = this.lookup(start, trace?.tried);
    if (first === undefined) return { kind: 'none' };
    if (trace) trace.first = first.entry;
    const list: string[] = [start];
    const selfMapped = new Set<string>();
    const tooMany = (): AliasExpansion => ({
      kind: 'limit',
      reason: `virtual_alias_maps expansion of ${start} exceeds ${LIMITS.maxAliasResults} addresses`,
    });
    for (let i = 0; i < list.length; i++) {
      if (list.length > LIMITS.maxAliasResults) return tooMany();
      for (let depth = 0; ; depth++) {
        const current = list[i] as string;
        if (selfMapped.has(sameKey(current))) break;
        const hit = i === 0 && depth === 0 ? first : this.lookup(current);
        if (hit === undefined) break;
        if (depth >= LIMITS.maxAliasDepth) {
          return {
            kind: 'limit',
            reason: `virtual_alias_maps nesting for ${start} exceeds ${LIMITS.maxAliasDepth} (at ${current}; a loop?)`,
          };
        }
        trace?.steps.push({ address: current, key: hit.key, targets: hit.targets });
        list[i] = hit.targets[0] as string;
        for (let t = 1; t < hit.targets.length; t++) list.push(hit.targets[t] as string);
        // The list never shrinks: once over the limit, the answer is known (and memory bounded).
        if (list.length > LIMITS.maxAliasResults) return tooMany();
        if (hit.targets.some((t) => sameKey(t) === sameKey(current)))
          selfMapped.add(sameKey(current));
      }
    }
    if (list.length > LIMITS.maxAliasResults) return tooMany();
    const seen = new Set<string>();
    const targets = list.filter((t) => {
      const k = sameKey(t);
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
    return { kind: 'expanded', targets };
  }
}
