/**
 * spam_policy: which spam scanners judge a recipient's mail and what their score does, per
 * recipient address, per domain, and by default (the spam_cat_acl). One entry per key,
 * the value a list of `name=value` settings, e.g.
 *
 *   *                 scanners=rspamd junk=6 reject=15 unavailable=accept
 *   example.org       scanners=rspamd,spamassassin junk=5 reject=12 unavailable=tempfail
 *   ceo@example.org   scanners=rspamd junk=4 reject=30
 *   lists.example.org scanners=none
 *
 *   scanners=    rspamd, spamassassin, both (comma-separated), or none
 *   junk=N       a score of N or more files the recipient's copy in its Junk folder
 *   reject=N     a score of N or more refuses the message for this recipient
 *   unavailable= accept (deliver, tagged "scanner unavailable") or tempfail (4.7.1 at end of
 *                DATA, the client tries again later); default tempfail
 *
 * Keys and lookup order are mx_record_map's (transport(5)): user+ext@domain, user@domain, domain,
 * .parent domains nearest first, then `*`. No regexp keys: a policy is chosen per recipient, and
 * an operator reads the table top to bottom. A recipient no entry matches is not scanned.
 *
 * Guarantees: a stored value is parsed and written back in one normal form (settings in a fixed
 * order, scanners sorted); thresholds are finite numbers within ±1000 with junk < reject when both
 * are given; unknown settings or scanners are refused with the key named.
 */
import { checkRouteKey, routeKeys } from './addresses.js';
import { compileEach, MapInputError } from './errors.js';
import {
  SPAM_SCANNERS,
  type CheckedEntry,
  type EntryClass,
  type LookupOptions,
  type MapEntry,
  type SpamPolicy,
  type SpamScannerName,
  type UnavailableRule,
} from './types.js';

const MAX_SCORE = 1000;
const SYNTAX =
  'expected scanners=rspamd|spamassassin|both|none junk=N reject=N unavailable=accept|tempfail';

function score(raw: string, name: string): number {
  if (!/^-?\d{1,4}(\.\d{1,3})?$/.test(raw))
    throw new MapInputError(`${name}=${JSON.stringify(raw)} is not a number`);
  const n = Number(raw);
  if (Math.abs(n) > MAX_SCORE)
    throw new MapInputError(`${name}=${raw} is outside -${MAX_SCORE}..${MAX_SCORE}`);
  return n;
}

/** Parses a spam_policy value; throws MapInputError. */
export function parseSpamPolicy(value: string): SpamPolicy {
  let scanners: SpamScannerName[] | undefined;
  let junk: number | undefined;
  let reject: number | undefined;
  let unavailable: UnavailableRule = 'tempfail';
  const seen = new Set<string>();
  for (const word of value.trim().split(/\s+/)) {
    const eq = word.indexOf('=');
    if (eq <= 0) throw new MapInputError(`${JSON.stringify(word)}: ${SYNTAX}`);
    const name = word.slice(0, eq).toLowerCase();
    const v = word.slice(eq + 1).toLowerCase();
    if (seen.has(name)) throw new MapInputError(`${name} is given twice`);
    seen.add(name);
    switch (name) {
      case 'scanners': {
        const names = v === 'both' ? [...SPAM_SCANNERS] : v === 'none' ? [] : v.split(',');
        for (const s of names) {
          if (!(SPAM_SCANNERS as readonly string[]).includes(s))
            throw new MapInputError(`unknown scanner ${JSON.stringify(s)} (rspamd, spamassassin)`);
        }
        scanners = [...new Set(names as SpamScannerName[])].sort();
        break;
      }
      case 'junk':
        junk = score(v, name);
        break;
      case 'reject':
        reject = score(v, name);
        break;
      case 'unavailable':
        if (v !== 'accept' && v !== 'tempfail')
          throw new MapInputError(`unavailable=${v}: expected accept or tempfail`);
        unavailable = v;
        break;
      default:
        throw new MapInputError(`unknown setting ${JSON.stringify(name)}: ${SYNTAX}`);
    }
  }
  if (scanners === undefined) throw new MapInputError(`no scanners= setting: ${SYNTAX}`);
  if (junk !== undefined && reject !== undefined && junk >= reject)
    throw new MapInputError(`junk=${junk} must be lower than reject=${reject}`);
  return {
    scanners,
    ...(junk !== undefined ? { junk } : {}),
    ...(reject !== undefined ? { reject } : {}),
    unavailable,
  };
}

export function formatSpamPolicy(p: SpamPolicy): string {
  return [
    `scanners=${p.scanners.length === 0 ? 'none' : p.scanners.join(',')}`,
    ...(p.junk !== undefined ? [`junk=${p.junk}`] : []),
    ...(p.reject !== undefined ? [`reject=${p.reject}`] : []),
    `unavailable=${p.unavailable}`,
  ].join(' ');
}

/** Normalizes and checks one spam_policy entry; throws MapInputError. */
export function checkSpamPolicyEntry(
  rawKey: string,
  rawValue: string,
  cls: EntryClass,
): CheckedEntry {
  if (cls !== 'both') throw new MapInputError('spam_policy entries have no sender/recipient class');
  const value = formatSpamPolicy(parseSpamPolicy(rawValue));
  return { key: checkRouteKey(rawKey), value, kind: 'exact' };
}

export interface SpamPolicyHit {
  readonly entry: MapEntry;
  readonly policy: SpamPolicy;
}

export class SpamPolicyTable {
  readonly #exact = new Map<string, SpamPolicyHit>();
  readonly #options: LookupOptions;

  constructor(entries: readonly MapEntry[], options: LookupOptions) {
    this.#options = options;
    compileEach(entries, (entry) => {
      if (entry.kind !== 'exact') throw new MapInputError('spam_policy has no regexp keys');
      if (!this.#exact.has(entry.key))
        this.#exact.set(entry.key, { entry, policy: parseSpamPolicy(entry.value) });
    });
  }

  lookup(address: string, tried: string[] = []): SpamPolicyHit | undefined {
    const keys = routeKeys(address, this.#options.recipientDelimiter);
    if (keys.length === 0) return undefined;
    for (const key of keys) {
      tried.push(key);
      const hit = this.#exact.get(key);
      if (hit) return hit;
    }
    tried.push('*');
    return this.#exact.get('*');
  }
}
