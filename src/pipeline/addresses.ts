/**
 * Mail addresses as the pipeline reads them: the domain of an address, and the default mapping of
 * an address of a served domain to its DID (docs/MAPS.md): `User+ext@Example.org` ->
 * `did:aftersmtp:example.org:user` (the extension after the recipient delimiter dropped, the
 * local part lower-cased, as Postfix looks addresses up). canonical_maps and virtual_alias_maps
 * come first; this applies only where they say nothing.
 */
import { addressToDid, formatDid, parseDid } from '../identity/did.js';

export const DID_SCHEME = 'did:aftersmtp:';

export function isDid(s: string): boolean {
  return s.startsWith(DID_SCHEME);
}

/** The lower-cased domain of `local@domain` ('' when there is none). */
export function domainOf(address: string): string {
  const at = address.lastIndexOf('@');
  return at < 0 ? '' : address.slice(at + 1).toLowerCase();
}

/** `did:aftersmtp:<domain>:<localpart>`. */
export function localDid(domain: string, localpart: string): string {
  return formatDid({ domain, localpart });
}

/** The DID's domain, or undefined for a string that is not a DID. */
export function didDomain(did: string): string | undefined {
  try {
    return parseDid(did).domain;
  } catch {
    return undefined;
  }
}

/**
 * The default DID of an address: the local part without its extension, lower-cased. Undefined
 * when the result is not a valid DID (a quoted local part, say).
 */
export function defaultDid(address: string, delimiters = '+'): string | undefined {
  const at = address.lastIndexOf('@');
  if (at <= 0) return undefined;
  let local = address.slice(0, at).toLowerCase();
  // Each character of `delimiters` starts an extension (Postfix recipient_delimiter).
  const ext = [...delimiters].reduce((first, d) => {
    const i = local.indexOf(d);
    return i > 0 && (first < 0 || i < first) ? i : first;
  }, -1);
  if (ext > 0) local = local.slice(0, ext);
  try {
    return addressToDid(`${local}@${address.slice(at + 1)}`);
  } catch {
    return undefined;
  }
}

/** The queue destination of mail for the DIDs of `domain` (its mailboxes here, or its gateway). */
export function ampDestination(domain: string): string {
  return `amp:${domain.toLowerCase()}`;
}

/** The queue destination of an ordinary address: the off-ramp, by the address's domain. */
export function smtpDestination(address: string): string {
  return `smtp:${domainOf(address)}`;
}
