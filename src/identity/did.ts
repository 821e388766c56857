/**
 * DIDs of the form `did:aftersmtp:<domain>:<localpart>` (docs/PROTOCOL.md §2): strict parsing and
 * formatting, and the mapping to and from `localpart@domain` mail addresses.
 *
 * Guarantees: a parsed DID has exactly one string form (parse(format(x)) === x and
 * format(parse(s)) === s); the domain is a lower-case LDH name whose labels are valid IDNA
 * A-labels (RFC 5890 §2.3.2.1), 1–63 octets each, at most 253 octets in total, at least two
 * labels, with a non-numeric top-level label (RFC 3696 §2); the localpart is an RFC 5321 §4.1.2
 * Dot-string (atext per RFC 5322 §3.2.3, no quoted strings) of at most 64 octets
 * (RFC 5321 §4.5.3.1.1). Anything else is an InputError (code ERR_DID) naming the bad part.
 *
 * W3C DID Core §3.1 allows only ALPHA / DIGIT / "." / "-" / "_" and pct-encoded octets in a
 * method-specific id, while atext also has `! # $ % & ' * + / = ? ^ ` { | } ~`. Those characters
 * are therefore percent-encoded (upper-case hex, RFC 3986 §2.1) in the DID string and only those:
 * the encoding is canonical, and a DID that encodes anything else, or leaves one of them bare, is
 * rejected.
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import { BoundedMap } from '../bounded-map.js';
import { InputError } from '../errors.js';

export const DID_PREFIX = 'did:aftersmtp:';
/** Longest DID string we accept: prefix + 253-octet domain + ':' + 64 atext octets, 3x encoded. */
export const MAX_DID_LENGTH = DID_PREFIX.length + 253 + 1 + 64 * 3;

export interface Did {
  /** Lower-case A-label domain, e.g. `xn--bcher-kva.example`. */
  readonly domain: string;
  /** Decoded RFC 5321 Dot-string localpart, e.g. `john+tag`. */
  readonly localpart: string;
}

const ATEXT = /^[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]+$/;
const DID_IDCHAR = /^[A-Za-z0-9._-]$/;
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

function bad(part: string, input: string, why: string): InputError {
  const shown = input.length > 80 ? `${input.slice(0, 80)}...` : input;
  return new InputError('ERR_DID', `invalid ${part} in ${JSON.stringify(shown)}: ${why}`);
}

/** Validates a lower-case A-label domain (the form stored in DIDs). Returns it unchanged. */
export function checkDomain(domain: string, input = domain): string {
  if (domain.length === 0) throw bad('domain', input, 'empty');
  if (domain.length > 253) throw bad('domain', input, 'longer than 253 octets');
  const labels = domain.split('.');
  if (labels.length < 2) throw bad('domain', input, 'needs at least two labels');
  for (const label of labels) {
    if (label.length === 0) throw bad('domain', input, 'empty label');
    if (label.length > 63) throw bad('domain', input, `label "${label}" longer than 63 octets`);
    if (!LDH_LABEL.test(label)) {
      throw bad('domain', input, `label "${label}" is not a lower-case LDH label`);
    }
    if (label.slice(2, 4) === '--') {
      // RFC 5890 §2.3.1: "??--" labels are reserved; only "xn--" A-labels that round-trip.
      if (!label.startsWith('xn--')) throw bad('domain', input, `reserved label "${label}"`);
      const u = domainToUnicode(label);
      if (u === '' || u === label || domainToASCII(u) !== label) {
        throw bad('domain', input, `label "${label}" is not a valid IDNA A-label`);
      }
    }
  }
  if (/^[0-9]+$/.test(labels[labels.length - 1] ?? '')) {
    throw bad('domain', input, 'top-level label is all-numeric');
  }
  return domain;
}

/** Validates an RFC 5321 Dot-string localpart (decoded form). Returns it unchanged. */
export function checkLocalpart(localpart: string, input = localpart): string {
  if (localpart.length === 0) throw bad('localpart', input, 'empty');
  if (Buffer.byteLength(localpart, 'utf8') > 64) {
    throw bad('localpart', input, 'longer than 64 octets');
  }
  for (const atom of localpart.split('.')) {
    if (atom.length === 0)
      throw bad('localpart', input, 'empty dot-atom part (leading, trailing or double dot)');
    if (!ATEXT.test(atom)) {
      throw bad(
        'localpart',
        input,
        'characters outside RFC 5322 atext (quoted strings are not allowed)',
      );
    }
  }
  return localpart;
}

function encodeLocalpart(localpart: string): string {
  let out = '';
  for (const ch of localpart) {
    out += DID_IDCHAR.test(ch)
      ? ch
      : `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function decodeLocalpart(encoded: string, input: string): string {
  let out = '';
  for (let i = 0; i < encoded.length; i++) {
    const ch = encoded[i] as string;
    if (ch === '%') {
      const hex = encoded.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) {
        throw bad('localpart', input, 'percent-encoding must be % and two upper-case hex digits');
      }
      const decoded = String.fromCharCode(parseInt(hex, 16));
      if (DID_IDCHAR.test(decoded) || !ATEXT.test(decoded)) {
        throw bad(
          'localpart',
          input,
          `"%${hex}" is not the canonical encoding of an atext character`,
        );
      }
      out += decoded;
      i += 2;
    } else if (DID_IDCHAR.test(ch)) {
      out += ch;
    } else {
      throw bad(
        'localpart',
        input,
        `character ${JSON.stringify(ch)} must be percent-encoded or is not allowed`,
      );
    }
  }
  return out;
}

/**
 * DIDs parsed lately (valid ones only, frozen): a relayed message's few DIDs are checked a dozen
 * times on its way (decoders, the pipeline, the store), about 20 µs of CPU per message at each
 * gateway when each was parsed anew (bench/relay profiles).
 */
const PARSED = new BoundedMap<string, Did>(1024);

/** Parses a DID string strictly. Throws InputError(ERR_DID) naming the part that is wrong. */
export function parseDid(input: string): Did {
  const known = PARSED.get(input);
  if (known !== undefined) return known;
  const did = Object.freeze(parseDidUncached(input));
  PARSED.set(input, did);
  return did;
}

function parseDidUncached(input: string): Did {
  if (typeof input !== 'string') throw new InputError('ERR_DID', 'a DID must be a string');
  if (input.length > MAX_DID_LENGTH)
    throw bad('DID', input, `longer than ${MAX_DID_LENGTH} characters`);
  if (!input.startsWith(DID_PREFIX)) throw bad('method', input, `must start with "${DID_PREFIX}"`);
  const rest = input.slice(DID_PREFIX.length);
  const parts = rest.split(':');
  if (parts.length !== 2)
    throw bad('DID', input, 'expected exactly "<domain>:<localpart>" after the method');
  const [domain, encoded] = parts as [string, string];
  checkDomain(domain, input);
  if (encoded.length === 0) throw bad('localpart', input, 'empty');
  const localpart = checkLocalpart(decodeLocalpart(encoded, input), input);
  return { domain, localpart };
}

/** Formats a DID from its parts, validating both. */
export function formatDid(did: Did): string {
  checkDomain(did.domain);
  checkLocalpart(did.localpart);
  return `${DID_PREFIX}${did.domain}:${encodeLocalpart(did.localpart)}`;
}

/** Returns the canonical string if `input` is a valid DID, else throws InputError(ERR_DID). */
export function checkDid(input: string): string {
  parseDid(input);
  return input;
}

/**
 * Maps `localpart@domain` to a DID. The domain may be a U-label or mixed case: it is converted
 * with UTS #46 processing (node:url domainToASCII) and lower-cased; the localpart is kept as is
 * (RFC 5321 §2.4: local-parts are case-sensitive). Quoted local-parts are refused.
 */
export function addressToDid(address: string): string {
  if (typeof address !== 'string' || address.length > 512) {
    throw new InputError('ERR_DID', 'a mail address must be a string of at most 512 characters');
  }
  const at = address.lastIndexOf('@');
  if (at <= 0 || at === address.length - 1) {
    throw bad('address', address, 'expected localpart@domain');
  }
  const localpart = address.slice(0, at);
  const rawDomain = address.slice(at + 1);
  const domain = domainToASCII(rawDomain.toLowerCase());
  if (domain === '') throw bad('domain', address, 'not a valid internationalised domain name');
  return formatDid({
    domain: checkDomain(domain, address),
    localpart: checkLocalpart(localpart, address),
  });
}

/** Maps a DID back to `localpart@domain` (A-label domain; U-label with `{ unicode: true }`). */
export function didToAddress(did: string, options: { unicode?: boolean } = {}): string {
  const { domain, localpart } = parseDid(did);
  return `${localpart}@${options.unicode ? domainToUnicode(domain) : domain}`;
}
