/**
 * access_map: who may submit what (DESIGN.md §1b admission). Keys are client networks (cidr.ts),
 * the null sender `<>`, address patterns (addresses.ts, access(5) order) and regexp entries;
 * values are Postfix access(5) actions:
 *
 *   OK | DUNNO | REJECT [text] | DEFER [text] | DISCARD [text] | HOLD [text]
 *   | PREPEND header: value | 4NN text (a DEFER with that code) | 5NN text (a REJECT with it)
 *
 * Lookup, Postfix semantics: the keys are tried in order and the first key present decides.
 * DUNNO is an answer too: "pretend the key was not found, and do not try less specific keys"
 * (access(5)), so `user@example.org DUNNO` exempts one address from `example.org REJECT`; the
 * caller treats a DUNNO match like no match and goes on with its next check. The map is one
 * table: exact keys first (for a client: the longest matching network), then regexp entries in
 * map order, and a DUNNO ends the search in both. An entry's class limits an address entry to
 * sender or recipient checks; client checks use network entries and regexp entries of class both.
 *
 * Guarantees: values are parsed when stored (an unknown action, a bare number, which Postfix
 * would take as OK, a reply text with control characters or an enhanced status code of the wrong
 * class is refused); texts are printable ASCII of at most LIMITS.maxTextLength characters, also
 * after `$n` substitution (other characters become '?'), so a verdict can go into an SMTP reply.
 */
import {
  accessAddressKeys,
  checkEntryDomain,
  checkEntryLocalpart,
  splitAddress,
} from './addresses.js';
import { looksLikeNetwork, networkText, parseIp, parseNetwork, PrefixTable } from './cidr.js';
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
  type AccessAction,
  type AccessMatch,
  type EntryClass,
  type CheckedEntry,
  type LookupOptions,
  type MapEntry,
} from './types.js';

export type AccessVerdict = Omit<AccessMatch, 'key'>;

const WITH_TEXT: readonly AccessAction[] = ['REJECT', 'DEFER', 'DISCARD', 'HOLD'];
const REPLY_TEXT = /^[\x20-\x7e]*$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0a-\x1f\x7f]/;

function checkText(action: AccessAction, text: string, code?: number): void {
  if (text.length > LIMITS.maxTextLength) {
    throw new MapInputError(`${action} text is longer than ${LIMITS.maxTextLength} characters`);
  }
  if (action === 'REJECT' || action === 'DEFER') {
    if (!REPLY_TEXT.test(text)) {
      throw new MapInputError(
        `${action} text must be printable ASCII (it goes into an SMTP reply)`,
      );
    }
    // RFC 3463 §2: the class of an enhanced status code matches the reply's (4 or 5).
    const esc = /^([245])\.[0-9]{1,3}\.[0-9]{1,3}(?:\s|$)/.exec(text);
    const cls = String(code ?? (action === 'REJECT' ? 5 : 4))[0];
    if (esc && esc[1] !== cls) {
      throw new MapInputError(
        `enhanced status code ${text.split(' ')[0]} does not go with ${code ?? action}`,
      );
    }
  } else if (CONTROL.test(text)) {
    throw new MapInputError(`${action} text has control characters`);
  }
}

/** Parses an access(5) action; throws MapInputError saying what is expected. */
export function parseAccessAction(raw: string): AccessVerdict {
  const value = raw.trim();
  if (value.length === 0) throw new MapInputError('empty action');
  const numeric = /^([0-9]+)(?:[ \t]+(.*))?$/.exec(value);
  if (numeric) {
    const code = Number(numeric[1]);
    const text = (numeric[2] ?? '').trim();
    if (numeric[2] === undefined) {
      throw new MapInputError(
        `an all-numeric value (${value}) means OK in Postfix; write OK, or 4NN/5NN followed by text`,
      );
    }
    if (!/^[45][0-9][0-9]$/.test(numeric[1] as string)) {
      throw new MapInputError(`reply code ${numeric[1]} is not 4NN or 5NN`);
    }
    const action = code >= 500 ? 'REJECT' : 'DEFER';
    checkText(action, text, code);
    return text ? { action, code, text } : { action, code };
  }
  const space = value.search(/[ \t]/);
  const word = (space < 0 ? value : value.slice(0, space)).toUpperCase();
  const text = space < 0 ? '' : value.slice(space + 1).trim();
  switch (word) {
    case 'OK':
    case 'DUNNO':
      if (text) throw new MapInputError(`${word} takes no text`);
      return { action: word };
    case 'PREPEND': {
      if (!/^[\x21-\x39\x3b-\x7e]+:/.test(text)) {
        throw new MapInputError('PREPEND needs a header line: PREPEND Name: value');
      }
      if (text.length > LIMITS.maxTextLength) {
        throw new MapInputError(`PREPEND header is longer than ${LIMITS.maxTextLength} characters`);
      }
      if (CONTROL.test(text)) throw new MapInputError('PREPEND header has control characters');
      return { action: 'PREPEND', text };
    }
    default: {
      const action = WITH_TEXT.find((a) => a === word);
      if (action === undefined) {
        throw new MapInputError(
          `unknown action ${JSON.stringify(word)} (expected OK, REJECT, DEFER, DISCARD, HOLD, PREPEND, DUNNO, or 4NN/5NN text)`,
        );
      }
      checkText(action, text);
      return text ? { action, text } : { action };
    }
  }
}

/** The normal form of an action: the keyword in upper case, one space, the text. */
export function formatAccessAction(v: AccessVerdict): string {
  const head = v.code !== undefined ? String(v.code) : v.action;
  return v.text ? `${head} ${v.text}` : head;
}

/** Normalizes and checks one access_map entry; throws MapInputError. */
export function checkAccessEntry(rawKey: string, rawValue: string, cls: EntryClass): CheckedEntry {
  const key = rawKey.trim();
  if (isRegexpKey(key)) {
    const re = compileRegexpKey(key);
    const v = rawValue.trim();
    checkTemplate(v, re);
    const space = v.search(/[ \t]/);
    if ((space < 0 ? v : v.slice(0, space)).includes('$')) {
      throw new MapInputError('the action itself cannot be a $ substitution, only its text');
    }
    const verdict = parseAccessAction(probe(v));
    const head = verdict.code !== undefined ? String(verdict.code) : verdict.action;
    const tail = space < 0 ? '' : v.slice(space + 1).trim();
    return { key: re.text, value: tail ? `${head} ${tail}` : head, kind: 'regexp' };
  }
  const value = formatAccessAction(parseAccessAction(rawValue));
  if (key === '<>') return { key, value, kind: 'exact' };
  if (looksLikeNetwork(key)) {
    if (cls !== 'both')
      throw new MapInputError('a client network entry applies to every check; its class is both');
    return { key: networkText(parseNetwork(key)), value, kind: 'cidr' };
  }
  if (key.startsWith('@')) {
    throw new MapInputError(
      `write the domain without @: ${JSON.stringify(key.slice(1))} (access(5))`,
    );
  }
  if (key.endsWith('@')) {
    return {
      key: `${checkEntryLocalpart(key.slice(0, -1), key).toLowerCase()}@`,
      value,
      kind: 'exact',
    };
  }
  const parts = splitAddress(key);
  if (parts) {
    const local = checkEntryLocalpart(parts.localpart, key).toLowerCase();
    return { key: `${local}@${checkEntryDomain(parts.domain)}`, value, kind: 'exact' };
  }
  if (key.startsWith('.'))
    return { key: `.${checkEntryDomain(key.slice(1), 'domain', true)}`, value, kind: 'exact' };
  return { key: checkEntryDomain(key, 'domain', true), value, kind: 'exact' };
}

interface Exact {
  readonly entry: MapEntry;
  readonly verdict: AccessVerdict;
}
interface Pattern {
  readonly entry: MapEntry;
  readonly re: RegexpKey;
  /** The action (and code) as written; only the text may hold substitutions. */
  readonly verdict: AccessVerdict;
  readonly textTemplate: string;
}

export interface AccessHit {
  readonly entry: MapEntry;
  readonly match: AccessMatch;
}

function applies(entry: MapEntry, as: 'client' | 'sender' | 'recipient'): boolean {
  return entry.class === 'both' || entry.class === as;
}

/** Replaces what cannot go into a reply after substitution, and bounds the length. */
function sanitize(text: string, action: AccessAction): string {
  const clean =
    action === 'REJECT' || action === 'DEFER'
      ? text.replace(/[^\x20-\x7e]/g, '?')
      : // eslint-disable-next-line no-control-regex
        text.replace(/[\x00-\x08\x0a-\x1f\x7f]/g, '?');
  return clean.slice(0, LIMITS.maxTextLength);
}

/** A compiled access_map: exact keys, networks and patterns, read-only once built. */
export class AccessTable {
  readonly #exact = new Map<string, Exact>();
  readonly #networks = new PrefixTable<Exact>();
  readonly #patterns: Pattern[] = [];
  readonly #options: LookupOptions;

  /** `entries` in map order, already checked (entries.ts checkEntry). */
  constructor(entries: readonly MapEntry[], options: LookupOptions) {
    this.#options = options;
    compileEach(entries, (entry) => {
      if (entry.kind === 'regexp') {
        const re = compileRegexpKey(entry.key);
        checkTemplate(entry.value, re);
        const space = entry.value.search(/[ \t]/);
        this.#patterns.push({
          entry,
          re,
          verdict: parseAccessAction(probe(entry.value)),
          textTemplate: space < 0 ? '' : entry.value.slice(space + 1).trim(),
        });
        return;
      }
      const verdict = parseAccessAction(entry.value);
      if (entry.kind === 'cidr') this.#networks.add(parseNetwork(entry.key), { entry, verdict });
      else if (!this.#exact.has(entry.key)) this.#exact.set(entry.key, { entry, verdict });
    });
  }

  /**
   * Networks that a Postfix cidr table (first match in file order) would never reach: a wider
   * network containing them comes earlier. One probe per prefix length per network.
   */
  shadowedNetworks(): string[] {
    const out: string[] = [];
    const nets = [...this.#networks.networks()].sort(
      (a, b) => a.value.entry.seq - b.value.entry.seq,
    );
    for (const later of nets) {
      const earlier = this.#networks
        .wider(later.net)
        .find((e) => e.value.entry.seq < later.value.entry.seq);
      if (earlier) {
        out.push(
          `${later.value.entry.key} is inside ${earlier.value.entry.key}, which comes first: a Postfix cidr table would never reach it; this map uses the longest prefix, so ${later.value.entry.key} applies`,
        );
      }
    }
    return out;
  }

  client(ip: string, tried: string[] = []): AccessHit | undefined {
    const addr = parseIp(ip);
    if (addr === undefined) return undefined;
    const hit = this.#networks.lookup(addr, tried);
    if (hit)
      return { entry: hit.value.entry, match: { ...hit.value.verdict, key: hit.value.entry.key } };
    return this.#matchPatterns(addr.text, 'client', tried);
  }

  address(
    address: string,
    as: 'sender' | 'recipient',
    tried: string[] = [],
  ): AccessHit | undefined {
    const keys = accessAddressKeys(address, this.#options);
    for (const key of keys) {
      tried.push(key);
      const hit = this.#exact.get(key);
      if (hit && applies(hit.entry, as)) {
        return { entry: hit.entry, match: { ...hit.verdict, key } };
      }
    }
    if (keys.length === 0) return undefined;
    const subject = keys[0] === '<>' ? '<>' : address.trim();
    return this.#matchPatterns(subject, as, tried);
  }

  #matchPatterns(
    subject: string,
    as: 'client' | 'sender' | 'recipient',
    tried: string[],
  ): AccessHit | undefined {
    for (const p of this.#patterns) {
      if (!applies(p.entry, as)) continue;
      tried.push(p.entry.key);
      const groups = execRegexp(p.re, subject);
      if (groups === undefined) continue;
      if (!p.textTemplate) return { entry: p.entry, match: { ...p.verdict, key: p.entry.key } };
      const text = sanitize(substitute(p.textTemplate, groups).trim(), p.verdict.action);
      if (p.verdict.action === 'PREPEND' && !/^[\x21-\x39\x3b-\x7e]+:/.test(text)) continue;
      const match: AccessMatch = text
        ? { ...p.verdict, text, key: p.entry.key }
        : {
            action: p.verdict.action,
            ...(p.verdict.code ? { code: p.verdict.code } : {}),
            key: p.entry.key,
          };
      return { entry: p.entry, match };
    }
    return undefined;
  }
}
