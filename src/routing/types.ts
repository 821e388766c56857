/**
 * The MappingEngine's public vocabulary: the map names, what a lookup answers (access verdicts,
 * routes, alias expansions), a stored entry, the immutable snapshot the pipeline reads, and the
 * bounds every input is held to. Types and constants only; no behaviour.
 *
 * Guarantees: every value handed to the pipeline is one of these shapes, already validated (a
 * route's host is a valid host name or IP address, an access text has no control characters, an
 * alias target is a DID or an address).
 */
export const MAP_NAMES = [
  'access_map',
  'relay_domains',
  'mx_record_map',
  'canonical_maps',
  'virtual_alias_maps',
  'spam_policy',
] as const;
export type MapName = (typeof MAP_NAMES)[number];

export function isMapName(name: string): name is MapName {
  return (MAP_NAMES as readonly string[]).includes(name);
}

/**
 * Which rewriting or check an entry applies to. canonical_maps and access_map address entries
 * may be limited to one; every other entry is 'both'.
 */
export type EntryClass = 'both' | 'sender' | 'recipient';
export const ENTRY_CLASSES: readonly EntryClass[] = ['both', 'sender', 'recipient'];

/** How an entry's key is matched: a table key, an IP network, or a Postfix regexp pattern. */
export type EntryKind = 'exact' | 'cidr' | 'regexp';

/** An entry's key and value in normal form, as a map's check returns them. */
export interface CheckedEntry {
  readonly key: string;
  readonly value: string;
  readonly kind: EntryKind;
}

export interface MapEntry {
  readonly map: MapName;
  /** The key in its normal form (lower-cased, IDNA A-label domains, canonical networks). */
  readonly key: string;
  /** The value in its normal form (e.g. `REJECT text`, `smtp:[mx.example.org]:25`). */
  readonly value: string;
  readonly class: EntryClass;
  readonly kind: EntryKind;
  /** Position in the map: first-match order for regexp entries (file order on import). */
  readonly seq: number;
}

export type AccessAction = 'OK' | 'REJECT' | 'DEFER' | 'DISCARD' | 'HOLD' | 'PREPEND' | 'DUNNO';

export interface AccessMatch {
  readonly action: AccessAction;
  /** REJECT/DEFER reply text, DISCARD/HOLD log text, or PREPEND's header line. */
  readonly text?: string;
  /** SMTP code when the entry gave one, e.g. 550 (Postfix's `5NN text` form). */
  readonly code?: number;
  /** The table key that matched. */
  readonly key: string;
}

export type Route =
  | { readonly kind: 'amp'; readonly host: string; readonly port: number }
  | {
      readonly kind: 'smtp';
      readonly host: string;
      readonly port: number;
      /** false for `smtp:[host]`: connect to host itself; true: look up host's MX records. */
      readonly mxLookup: boolean;
      /** `smtps:`: TLS from the first byte (RFC 8314 §3), no STARTTLS, no plaintext. */
      readonly implicitTls: boolean;
    }
  | { readonly kind: 'error'; readonly text: string };

export type AliasExpansion =
  /** No alias entry: deliver to the address itself. */
  | { readonly kind: 'none' }
  /** The final targets (DIDs and addresses), duplicates removed, first occurrence kept. */
  | { readonly kind: 'expanded'; readonly targets: readonly string[] }
  /** Over a Postfix limit: the pipeline answers a temporary failure (4.6.0). */
  | { readonly kind: 'limit'; readonly reason: string };

/** One lookup step of an alias expansion, for `maps test`. */
export interface AliasStep {
  readonly address: string;
  readonly key: string;
  readonly targets: readonly string[];
}

/** Which check or rewriting `test` runs (access_map: client/sender/recipient). */
export type TestAs = 'client' | 'sender' | 'recipient';

export type MapTestValue =
  AccessMatch | Route | AliasExpansion | SpamPolicy | string | boolean | undefined;

export interface MapTestResult {
  readonly map: MapName;
  readonly input: string;
  /** The check that was run (access_map and canonical_maps). */
  readonly as?: TestAs;
  /** The lookup keys tried, in order (regexp entries by their pattern, CIDR by network). */
  readonly tried: readonly string[];
  /** The entry that decided the answer, if any. */
  readonly matched?: MapEntry;
  /** What the snapshot method answers: AccessMatch, boolean, Route, string or AliasExpansion. */
  readonly result: MapTestValue;
  /** virtual_alias_maps: every lookup that expanded an address. */
  readonly steps?: readonly AliasStep[];
  /** The snapshot version that answered. */
  readonly version: number;
}

export interface MapSnapshot {
  readonly version: number;
  accessClient(ip: string): AccessMatch | undefined;
  /** '' (or '<>') is the null sender: the key `<>`, as Postfix's smtpd_null_access_lookup_key. */
  accessSender(address: string): AccessMatch | undefined;
  accessRecipient(address: string): AccessMatch | undefined;
  isRelayDomain(domain: string): boolean;
  /** An address or a bare domain. */
  route(address: string): Route | undefined;
  /** E.g. helpdesk@msgs.global -> did:aftersmtp:msgs.global:support-team. */
  canonicalRecipient(address: string): string | undefined;
  /** E.g. did:aftersmtp:msgs.global:support-team -> helpdesk@msgs.global. */
  canonicalSender(didOrAddress: string): string | undefined;
  expandAlias(address: string): AliasExpansion;
  /** spam_policy: the scanners and thresholds for a recipient address (or a domain). */
  spamPolicy(address: string): SpamPolicy | undefined;
}

/** spam_policy (spam-policy.ts): the scanners and thresholds of a recipient. */
export const SPAM_SCANNERS = ['rspamd', 'spamassassin'] as const;
export type SpamScannerName = (typeof SPAM_SCANNERS)[number];

/** What to do when a scanner is down, slow or answers nonsense. */
export type UnavailableRule = 'accept' | 'tempfail';

export interface SpamPolicy {
  /** Scanners asked, sorted; empty: not scanned. */
  readonly scanners: readonly SpamScannerName[];
  /** Score at or over which the copy is filed in Junk. */
  readonly junk?: number;
  /** Score at or over which the recipient refuses the message. */
  readonly reject?: number;
  readonly unavailable: UnavailableRule;
}

/** Lookup behaviour shared by every map (from the AFTERSMTP_* settings). */
export interface LookupOptions {
  /** access_map: a bare `example.org` key also matches subdomains (else only `.example.org`). */
  readonly parentDomainMatches: boolean;
  /** Characters that start an address extension (`user+ext`); '' turns extensions off. */
  readonly recipientDelimiter: string;
}

export const DEFAULT_LOOKUP_OPTIONS: LookupOptions = {
  parentDomainMatches: false,
  recipientDelimiter: '+',
};

/** Bounds on every input (DESIGN.md §7). */
export const LIMITS = {
  /** A table key other than a regexp: RFC 5321 §4.5.3.1 (64-octet localpart, 255-octet domain). */
  maxKeyLength: 320,
  /** A regexp key, delimiters and flags included. */
  maxRegexpLength: 1024,
  /** A value (an alias list of 1000 targets fits). */
  maxValueLength: 65_536,
  /** Reply or log text in an access action or an error route (fits a 512-octet reply line). */
  maxTextLength: 400,
  /** Lookup input longer than this matches nothing (addresses are at most 256 octets). */
  maxLookupInput: 1024,
  /** virtual_alias_maps: addresses in one expansion (Postfix virtual_alias_expansion_limit). */
  maxAliasResults: 1000,
  /** virtual_alias_maps: rewrites of one address (Postfix virtual_alias_recursion_limit). */
  maxAliasDepth: 100,
  /** `import` input. */
  maxImportBytes: 64 * 1024 * 1024,
  /** Entries per map unless AFTERSMTP_MAPS_MAX_ENTRIES says otherwise. */
  defaultMaxEntries: 100_000,
} as const;
