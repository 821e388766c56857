/**
 * canonical_maps: rewriting between DIDs and addresses, for senders, recipients or both.
 *
 * An exact entry that pairs an address with a DID (`helpdesk@msgs.global
 * did:aftersmtp:msgs.global:support-team`, in either order) works both ways: recipient rewriting
 * turns the address into the DID (mail to helpdesk@ goes to the DID), sender rewriting turns the
 * DID into the address (mail from the DID leaves as helpdesk@). Any other exact entry (address to
 * address, `@domain` to anything, DID to DID) rewrites its key into its value, in the classes it
 * has, as Postfix's canonical(5) does. Regexp entries rewrite the whole input into their
 * substituted value (a DID, an address or `@domain`).
 *
 * Lookup: a DID is looked up as it is; an address as user+ext@domain, user@domain, @domain
 * (canonical(5) TABLE SEARCH ORDER); then regexp entries in map order. A result `@domain` keeps the
 * original local part; an extension that the key did not include is carried over into an address
 * result (Postfix propagate_unmatched_extensions), not into a DID. With no entry the answer is
 * undefined: the default mapping (user@ourdomain to did:aftersmtp:ourdomain:user) is the
 * pipeline's.
 *
 * Guarantees: when two entries rewrite the same input in the same class, the first in map order
 * wins and the table reports a warning naming both (so `import` and `set` can say so); every
 * answer is a valid DID or address.
 */
import { DID_PREFIX, checkDid } from '../identity/did.js';
import {
  applyResult,
  checkEntryDomain,
  checkEntryLocalpart,
  checkTarget,
  mailAddressKeys,
  splitAddress,
  substitutedTarget,
} from './addresses.js';
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
  type EntryClass,
  type CheckedEntry,
  type LookupOptions,
  type MapEntry,
} from './types.js';

/** Normalizes a key of canonical_maps or virtual_alias_maps: DID, address or @domain. */
export function checkMailKey(raw: string): string {
  const key = raw.trim();
  if (key.startsWith(DID_PREFIX)) {
    try {
      return checkDid(key);
    } catch (err) {
      throw new MapInputError((err as Error).message);
    }
  }
  if (key.startsWith('@')) return `@${checkEntryDomain(key.slice(1))}`;
  const parts = splitAddress(key);
  if (!parts)
    throw new MapInputError(
      `expected a DID, user@domain or @domain as key, got ${JSON.stringify(key)}`,
    );
  return `${checkEntryLocalpart(parts.localpart, key).toLowerCase()}@${checkEntryDomain(parts.domain)}`;
}

/** Normalizes and checks one canonical_maps entry; throws MapInputError. */
export function checkCanonicalEntry(
  rawKey: string,
  rawValue: string,
  _cls: EntryClass,
): CheckedEntry {
  const key = rawKey.trim();
  const value = rawValue.trim();
  if (/\s/.test(value)) throw new MapInputError('a canonical_maps value is one DID or address');
  if (isRegexpKey(key)) {
    const re = compileRegexpKey(key);
    checkTemplate(value, re);
    if (value.length === 0) throw new MapInputError('empty value');
    return { key: re.text, value, kind: 'regexp' };
  }
  const k = checkMailKey(key);
  const v = checkTarget(value, !k.startsWith(DID_PREFIX));
  return { key: k, value: v, kind: 'exact' };
}

interface Rewrite {
  readonly entry: MapEntry;
  readonly to: string;
}

export interface CanonicalHit {
  readonly entry: MapEntry;
  readonly result: string;
}

const isDid = (s: string): boolean => s.startsWith(DID_PREFIX);
const isAddress = (s: string): boolean => !isDid(s) && !s.startsWith('@');

/** A compiled canonical_maps, read-only once built. */
export class CanonicalTable {
  readonly #index = { sender: new Map<string, Rewrite>(), recipient: new Map<string, Rewrite>() };
  readonly #patterns: { entry: MapEntry; re: RegexpKey }[] = [];
  readonly #options: LookupOptions;
  /** Entries shadowed by an earlier one, in words. */
  readonly warnings: string[] = [];

  constructor(entries: readonly MapEntry[], options: LookupOptions) {
    this.#options = options;
    compileEach(entries, (entry) => {
      if (entry.kind === 'regexp') {
        const re = compileRegexpKey(entry.key);
        checkTemplate(entry.value, re);
        this.#patterns.push({ entry, re });
        return;
      }
      const { key } = entry;
      // Only valid DIDs and addresses are ever handed out (a hand-edited row fails here).
      const value = checkTarget(entry.value, !isDid(key));
      const pair = (isAddress(key) && isDid(value)) || (isDid(key) && isAddress(value));
      const address = isAddress(key) ? key : value.toLowerCase();
      const did = isDid(key) ? key : value;
      const addressOut = isAddress(key) ? key : value;
      if (entry.class !== 'sender') {
        this.#add('recipient', pair ? address : key, { entry, to: pair ? did : value });
      }
      if (entry.class !== 'recipient') {
        this.#add('sender', pair ? did : key, { entry, to: pair ? addressOut : value });
      }
    });
  }

  #add(as: 'sender' | 'recipient', from: string, rewrite: Rewrite): void {
    const index = this.#index[as];
    const first = index.get(from);
    if (first) {
      this.warnings.push(
        `${rewrite.entry.key}: ${as} rewriting of ${from} already comes from entry ${first.entry.key}, which wins`,
      );
      return;
    }
    index.set(from, rewrite);
  }

  rewrite(
    input: string,
    as: 'sender' | 'recipient',
    tried: string[] = [],
  ): CanonicalHit | undefined {
    const s = input.trim();
    if (s.length === 0 || s.length > LIMITS.maxLookupInput) return undefined;
    const index = this.#index[as];
    if (isDid(s)) {
      tried.push(s);
      const hit = index.get(s);
      if (hit) return { entry: hit.entry, result: hit.to };
    } else {
      const original = splitAddress(s);
      for (const k of mailAddressKeys(s, this.#options.recipientDelimiter)) {
        tried.push(k.key);
        const hit = index.get(k.key);
        if (hit && original) {
          return { entry: hit.entry, result: applyResult(hit.to, original.localpart, k.unmatched) };
        }
      }
    }
    for (const p of this.#patterns) {
      if (p.entry.class !== 'both' && p.entry.class !== as) continue;
      tried.push(p.entry.key);
      const groups = execRegexp(p.re, s);
      if (groups === undefined) continue;
      const target = substitutedTarget(substitute(p.entry.value, groups), true);
      if (target === undefined) continue;
      if (!target.startsWith('@')) return { entry: p.entry, result: target };
      const original = splitAddress(s);
      if (original) return { entry: p.entry, result: applyResult(target, original.localpart) };
    }
    return undefined;
  }
}
