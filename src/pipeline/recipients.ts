/**
 * The one recipient check (DESIGN.md §1b, addressing): is this DID someone mail can be sealed or
 * relayed to now? A DID of a domain this gateway serves is asked of the local ledger (`current`:
 * an index read, no proof); any other DID of the directory of remote identities (the relay's
 * verified resolver, which caches verified records). The answer is a value, never an exception:
 * current (with the record to seal or check the wrap against), or a refusal with a stable code.
 *
 * Guarantees: a `current` answer for a local DID is the ledger's latest record at the time of the
 * call; for a remote DID it is a record verified against that domain's pinned log (possibly from
 * the resolver's cache within its TTL). A failure to reach the remote gateway is temporary.
 */
import { parseDid } from '../identity/did.js';
import type { PublicKeyRecord } from '../identity/keys.js';
import type { DidState } from '../ledger/ledger.js';
import { refusal } from './refusals.js';
import type { Refusal } from './types.js';

/** The local ledger, as the pipeline reads it. */
export interface LedgerView {
  current(did: string): DidState;
}

/** What the directory of remote identities answers about a DID of another domain. */
export type RemoteLookup =
  | { readonly state: 'current'; readonly record: PublicKeyRecord }
  | { readonly state: 'revoked' }
  | { readonly state: 'unknown' }
  | {
      readonly state: 'failed';
      readonly code: string;
      readonly temporary: boolean;
      readonly text: string;
    };

/** A sending gateway as the directory verified it (relay admission). */
export type RemoteGatewayLookup =
  | {
      readonly state: 'found';
      readonly did: string;
      readonly record: PublicKeyRecord;
      readonly tlsSpki: Buffer;
    }
  | {
      readonly state: 'failed';
      readonly code: string;
      readonly temporary: boolean;
      readonly text: string;
    };

/** Identities of other domains, verified against their own ledgers (src/amp/relay). */
export interface RemoteDirectory {
  lookup(did: string): Promise<RemoteLookup>;
  /** The gateway record of `domain`; `fresh` skips the cache (a record that may have changed). */
  gateway(domain: string, fresh?: boolean): Promise<RemoteGatewayLookup>;
}

export type RecipientState =
  | { readonly state: 'current'; readonly record: PublicKeyRecord; readonly local: boolean }
  | { readonly state: 'refused'; readonly refusal: Refusal };

export interface RecipientCheckDeps {
  /** The domains whose DIDs live in `ledger`. */
  readonly domains: ReadonlySet<string>;
  readonly ledger: LedgerView;
  /** Absent: DIDs of other domains are refused (this gateway does not relay). */
  readonly remote?: RemoteDirectory;
}

function refused(r: Refusal): RecipientState {
  return { state: 'refused', refusal: r };
}

/** The DID's state for mail now: see the module comment. */
export async function checkRecipient(
  did: string,
  deps: RecipientCheckDeps,
): Promise<RecipientState> {
  let domain: string;
  try {
    domain = parseDid(did).domain;
  } catch (err) {
    return refused(refusal('ERR_RECIPIENT_INVALID', `${did}: ${(err as Error).message}`));
  }
  if (deps.domains.has(domain)) return localState(did, deps.ledger);
  if (deps.remote === undefined) {
    return refused({
      code: 'ERR_RELAY_UNAVAILABLE',
      temporary: false,
      text: `${did} is at ${domain}: this gateway does not relay to other domains`,
    });
  }
  const r = await deps.remote.lookup(did);
  switch (r.state) {
    case 'current':
      return { state: 'current', record: r.record, local: false };
    case 'revoked':
      return refused(refusal('ERR_RECIPIENT_REVOKED', `${did} is revoked`));
    case 'unknown':
      return refused(refusal('ERR_RECIPIENT_UNKNOWN', `${did} is not registered`));
    case 'failed':
      return refused({ code: r.code, temporary: r.temporary, text: `${did}: ${r.text}` });
  }
}

/** A DID of a served domain, from the local ledger. */
export function localState(did: string, ledger: LedgerView): RecipientState {
  const s = ledger.current(did);
  switch (s.state) {
    case 'current':
      return { state: 'current', record: s.record, local: true };
    case 'revoked':
      return refused(refusal('ERR_RECIPIENT_REVOKED', `${did} is revoked`));
    case 'unknown':
      return refused(refusal('ERR_RECIPIENT_UNKNOWN', `${did} is not registered`));
  }
}
