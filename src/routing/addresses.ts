/**
 * Mail addresses and domains as the maps see them: their normal form, the address extension
 * (`user+ext`), and the lookup keys each map tries, in Postfix's order.
 *
 *   access_map (access(5)):        user+ext@domain, user@domain, domain, parent domains,
 *                                  user+ext@, user@            (null sender: <>)
 *   canonical/virtual (virtual(5)): user+ext@domain, user@domain, @domain
 *   mx_record_map (transport(5)):  user+ext@domain, user@domain, domain, .parent domains, *
 *
 * Parent domains of `a.b.example.org` are `.b.example.org`, `.example.org`, `.org` (dot form),
 * or `b.example.org`, `example.org`, `org` when access_map's parent matching is on (Postfix's
 * parent_domain_matches_subdomains listing smtpd_access_maps). The domain itself is never
 * looked up in dot form, as in Postfix.
 *
 * Guarantees: lookup keys are lower-case with IDNA A-label domains (Postfix folds the search
 * string to lower case, access(5) "CASE FOLDING"); the extension is split as Postfix's
 * split_addr does it (not for postmaster and mailer-daemon, not when the localpart would be
 * empty, not owner-x / x-request when '-' is a delimiter); nothing here throws on lookup input,
 * bad input simply yields fewer keys.
 */
import { domainToASCII } from 'node:url';
import { checkDid, checkDomain, DID_PREFIX, formatDid } from '../identity/did.js';
import { MapInputError } from './errors.js';
import { LIMITS } from './types.js';

/** RFC 5322 atext plus '.', and UTF-8 (RFC 6531) in local parts. */
const LOCALPART = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\uffff]+$/;
const ADDRESS_LITERAL = /^\[[0-9a-f.:]+\]$|^\[ipv6:[0-9a-f.:]+\]$/;

/**
 * AFTERSMTP_RECIPIENT_DELIMITER: up to 8 characters, each of which starts an extension (Postfix
 * recipient_delimiter); atext specials only, so no address syntax is lost. '' turns it off.
 */
export function checkRecipientDelimiter(raw: string): string {
  if (!/^[!#$%&'*+\-/=?^_`{|}~.]{0,8}$/.test(raw)) {
    throw new Error(
      `expected up to 8 of the characters !#$%&'*+-/=?^_\`{|}~. (or empty for none), got ${JSON.stringify(raw)}`,
    );
  }
  return raw;
}

/** A domain in lookup form (lower case, no trailing dot, A-labels), or undefined if invalid. */
export function normalizeDomain(raw: string): string | undefined {
  let d = raw.trim().toLowerCase();
  if (d.endsWith('.')) d = d.slice(0, -1);
  if (d.length === 0 || d.length > 253 + 16) return undefined;
  if (ADDRESS_LITERAL.test(d)) return d;
  // Plain LDH names need no IDNA processing (domainToASCII would also refuse some of them).
  if (/^[a-z0-9.-]+$/.test(d)) return d;
  const ascii = domainToASCII(d);
  return ascii === '' ? undefined : ascii;
}

/** A host name in lookup form (normalizeDomain) that DIDs could name (checkDomain), or undefined. */
export function lookupDomain(raw: string): string | undefined {
  const d = normalizeDomain(raw);
  if (d === undefined) return undefined;
  try {
    return checkDomain(d);
  } catch {
    return undefined;
  }
}

/**
 * A domain written in a map entry: normalized and valid (src/identity/did.ts checkDomain). With
 * `topLevel`, a single label (`org`, as in the key `.org`) is accepted too.
 */
export function checkEntryDomain(raw: string, what = 'domain', topLevel = false): string {
  const d = normalizeDomain(raw);
  if (d === undefined || ADDRESS_LITERAL.test(d)) {
    throw new MapInputError(`invalid ${what} ${JSON.stringify(raw)}`);
  }
  try {
    // checkDomain wants two labels; a top-level label is checked as the last label of one.
    if (topLevel && !d.includes('.')) return checkDomain(`tld.${d}`, raw).slice(4);
    return checkDomain(d, raw);
  } catch (err) {
    throw new MapInputError(`invalid ${what}: ${(err as Error).message}`);
  }
}

/** A local part written in a map entry: atext and dots, at most 64 octets. Case kept. */
export function checkEntryLocalpart(raw: string, input = raw): string {
  if (raw.length === 0) throw new MapInputError(`empty local part in ${JSON.stringify(input)}`);
  if (Buffer.byteLength(raw, 'utf8') > 64) {
    throw new MapInputError(`local part longer than 64 octets in ${JSON.stringify(input)}`);
  }
  if (!LOCALPART.test(raw)) {
    throw new MapInputError(
      `invalid local part in ${JSON.stringify(input)} (quoted local parts are not supported)`,
    );
  }
  return raw;
}

export interface AddressParts {
  readonly localpart: string;
  readonly domain: string;
}

/** Splits `local@domain` at the last '@'; undefined without an '@' or with an empty side. */
export function splitAddress(address: string): AddressParts | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) return undefined;
  return { localpart: address.slice(0, at), domain: address.slice(at + 1) };
}

/**
 * An address in a map value (an alias target, a canonical result): `local@domain` with its local
 * part kept as written and its domain in normal form.
 */
export function checkEntryAddress(raw: string): string {
  const parts = splitAddress(raw);
  if (parts === undefined)
    throw new MapInputError(`expected local@domain, got ${JSON.stringify(raw)}`);
  return `${checkEntryLocalpart(parts.localpart, raw)}@${checkEntryDomain(parts.domain, `domain in ${JSON.stringify(raw)}`)}`;
}

export interface Extension {
  /** The local part without the extension. */
  readonly base: string;
  /** The extension, without its delimiter (may be empty: `user+@x`). */
  readonly ext: string;
  /** The delimiter character that was found. */
  readonly delimiter: string;
}

/** Postfix split_addr(): the extension of a local part, if it has one. */
export function splitExtension(localpart: string, delimiters: string): Extension | undefined {
  if (delimiters.length === 0 || localpart.length === 0) return undefined;
  const lower = localpart.toLowerCase();
  if (lower === 'postmaster' || lower === 'mailer-daemon' || lower === 'double-bounce') {
    return undefined;
  }
  if (delimiters.includes('-') && (lower.startsWith('owner-') || lower.endsWith('-request'))) {
    return undefined;
  }
  let i = 0;
  while (i < localpart.length && !delimiters.includes(localpart[i] as string)) i++;
  if (i === 0 || i === localpart.length) return undefined;
  return {
    base: localpart.slice(0, i),
    ext: localpart.slice(i + 1),
    delimiter: localpart[i] as string,
  };
}

/** An address in lookup form (`local@domain` lower-cased, A-label domain), or undefined. */
export function lookupAddress(address: string): AddressParts | undefined {
  if (address.length > LIMITS.maxLookupInput) return undefined;
  const parts = splitAddress(address.trim());
  if (parts === undefined) return undefined;
  const domain = normalizeDomain(parts.domain);
  if (domain === undefined) return undefined;
  return { localpart: parts.localpart.toLowerCase(), domain };
}

/**
 * The parent domains of `domain`, nearest first: `.b.example.org`, `.example.org`, `.org` (dot
 * form), or without the leading dot when `bare`. None for an address literal.
 */
export function parentDomains(domain: string, bare: boolean): string[] {
  if (domain.startsWith('[')) return [];
  const out: string[] = [];
  for (let i = domain.indexOf('.'); i >= 0; i = domain.indexOf('.', i + 1)) {
    out.push(bare ? domain.slice(i + 1) : domain.slice(i));
  }
  return out;
}

/** `domain` then its parents (access_map and relay_domains). */
export function domainKeys(domain: string, bareParents: boolean): string[] {
  return [domain, ...parentDomains(domain, bareParents)];
}

/** access(5) EMAIL ADDRESS PATTERNS with ADDRESS EXTENSION: the keys in lookup order. */
export function accessAddressKeys(
  address: string,
  options: { readonly recipientDelimiter: string; readonly parentDomainMatches: boolean },
): string[] {
  const trimmed = address.trim();
  if (trimmed === '' || trimmed === '<>') return ['<>'];
  if (trimmed.length > LIMITS.maxLookupInput) return [];
  const parts = lookupAddress(trimmed);
  if (parts === undefined) {
    // A local part alone (`RCPT TO:<postmaster>`): only the user@ forms apply.
    if (trimmed.includes('@')) return [];
    return userKeys(trimmed.toLowerCase(), options.recipientDelimiter, '');
  }
  return [
    ...userKeys(parts.localpart, options.recipientDelimiter, `@${parts.domain}`),
    ...domainKeys(parts.domain, options.parentDomainMatches),
    ...userKeys(parts.localpart, options.recipientDelimiter, ''),
  ];
}

/** `user+ext<suffix>`, `user<suffix>` (suffix `@domain`, or `` for the `user@` forms). */
function userKeys(localpart: string, delimiters: string, suffix: string): string[] {
  const at = suffix === '' ? '@' : suffix;
  const ext = splitExtension(localpart, delimiters);
  return ext ? [`${localpart}${at}`, `${ext.base}${at}`] : [`${localpart}${at}`];
}

/** One key of a canonical or virtual lookup, and the extension to carry over if it hits. */
export interface MailKey {
  readonly key: string;
  /** Set when the key is `user@domain` tried for `user+ext@domain` (Postfix propagates it). */
  readonly unmatched?: Extension;
  /** Set for the `@domain` catch-all key. */
  readonly catchAll?: boolean;
}

/** virtual(5) / canonical(5) TABLE SEARCH ORDER: user+ext@domain, user@domain, @domain. */
export function mailAddressKeys(address: string, delimiters: string): MailKey[] {
  const parts = lookupAddress(address);
  if (parts === undefined) return [];
  const ext = splitExtension(parts.localpart, delimiters);
  const keys: MailKey[] = [{ key: `${parts.localpart}@${parts.domain}` }];
  if (ext) keys.push({ key: `${ext.base}@${parts.domain}`, unmatched: ext });
  keys.push({ key: `@${parts.domain}`, catchAll: true });
  return keys;
}

/** transport(5) TABLE SEARCH ORDER, without the final `*` (the caller adds it after regexps). */
export function routeKeys(addressOrDomain: string, delimiters: string): string[] {
  const input = addressOrDomain.trim();
  if (input.length === 0 || input.length > LIMITS.maxLookupInput) return [];
  if (!input.includes('@')) {
    const domain = normalizeDomain(input);
    return domain === undefined ? [] : domainKeys(domain, false);
  }
  const parts = lookupAddress(input);
  if (parts === undefined) return [];
  return [
    ...userKeys(parts.localpart, delimiters, `@${parts.domain}`),
    ...domainKeys(parts.domain, false),
  ];
}

/**
 * A map result written as `@domain` stands for the original local part at that domain (Postfix
 * mail_addr_map); otherwise an unmatched extension is carried over into an address result
 * (propagate_unmatched_extensions: canonical, virtual). DIDs are returned as they are.
 */
export function applyResult(
  result: string,
  originalLocalpart: string,
  unmatched?: Extension,
): string {
  if (result.startsWith('@')) return `${originalLocalpart}${result}`;
  if (unmatched === undefined || result.startsWith('did:')) return result;
  const parts = splitAddress(result);
  if (parts === undefined) return result;
  return `${parts.localpart}${unmatched.delimiter}${unmatched.ext}@${parts.domain}`;
}

/**
 * A rewriting target written in a map (canonical result, alias target): a DID (its canonical
 * string), an address (checkEntryAddress) or, when `allowDomain`, `@domain`. Throws MapInputError.
 */
export function checkTarget(raw: string, allowDomain: boolean): string {
  const t = raw.trim();
  if (t.startsWith('did:')) {
    try {
      return checkDid(t);
    } catch (err) {
      throw new MapInputError((err as Error).message);
    }
  }
  if (t.startsWith('@')) {
    if (!allowDomain)
      throw new MapInputError(`expected a DID or local@domain, got ${JSON.stringify(t)}`);
    return `@${checkEntryDomain(t.slice(1))}`;
  }
  return checkEntryAddress(t);
}

/**
 * A target produced by a regexp substitution, checked like checkTarget; a DID whose local part
 * came out unencoded (`did:aftersmtp:example.org:john+tag`) is put in canonical form. Undefined
 * when the result is not a valid target: the entry then does not apply.
 */
export function substitutedTarget(raw: string, allowDomain: boolean): string | undefined {
  try {
    return checkTarget(raw, allowDomain);
  } catch {
    // Not a valid target as written; the only repair is the DID local part's encoding.
  }
  if (!raw.startsWith(DID_PREFIX)) return undefined;
  const rest = raw.slice(DID_PREFIX.length);
  const colon = rest.indexOf(':');
  if (colon <= 0) return undefined;
  try {
    return formatDid({ domain: rest.slice(0, colon), localpart: rest.slice(colon + 1) });
  } catch {
    return undefined;
  }
}

/**
 * A key of a table looked up by routeKeys (mx_record_map, spam_policy), normalized: `*`,
 * `user@domain` (local part lower-cased), `domain` or `.domain`; throws MapInputError.
 */
export function checkRouteKey(rawKey: string): string {
  const key = rawKey.trim();
  if (key === '*') return key;
  const parts = splitAddress(key);
  if (parts) {
    return `${checkEntryLocalpart(parts.localpart, key).toLowerCase()}@${checkEntryDomain(parts.domain)}`;
  }
  if (key.includes('@')) {
    throw new MapInputError(
      `expected user@domain, domain, .domain or * as key, got ${JSON.stringify(key)}`,
    );
  }
  if (key.startsWith('.')) return `.${checkEntryDomain(key.slice(1), 'domain', true)}`;
  return checkEntryDomain(key);
}
