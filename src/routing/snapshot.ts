/**
 * One immutable version of every map, compiled for lookups: what the pipeline reads. A snapshot
 * is built from the stored entries of one read transaction (so it is one consistent version) and
 * is never changed afterwards; a reload builds a new one and swaps the engine's reference, so a
 * reader that holds a snapshot (one message, one SMTP transaction) sees one version throughout.
 *
 * Guarantees: while a snapshot is built, every stored value is parsed again (actions, networks,
 * routes, DIDs and addresses, alias targets) and every regexp compiled, once; an entry that fails
 * makes the build fail with a MapStoreError naming it, and the engine keeps serving the previous
 * snapshot, so the pipeline is never handed a value that was not checked. Lookups never throw on
 * their input: what is not an address, a domain or an IP address matches nothing.
 */
import { AccessTable } from './access.js';
import { AliasTable, type ExpansionTrace } from './aliases.js';
import { CanonicalTable } from './canonical.js';
import { parseIp } from './cidr.js';
import { MapInputError } from './errors.js';
import { RelayDomains } from './relay-domains.js';
import { RouteTable } from './routes.js';
import { SpamPolicyTable } from './spam-policy.js';
import {
  type AccessMatch,
  type AliasExpansion,
  type LookupOptions,
  type MapEntry,
  type MapName,
  type MapSnapshot,
  type MapTestResult,
  type Route,
  type SpamPolicy,
  type TestAs,
} from './types.js';

/** One compiled table per map. */
export interface MapTables {
  readonly access_map: AccessTable;
  readonly relay_domains: RelayDomains;
  readonly mx_record_map: RouteTable;
  readonly canonical_maps: CanonicalTable;
  readonly virtual_alias_maps: AliasTable;
  readonly spam_policy: SpamPolicyTable;
}

/** Compiles one map's entries (in map order); throws MapStoreError naming an entry that fails. */
export function compileMap<M extends MapName>(
  map: M,
  entries: readonly MapEntry[],
  options: LookupOptions,
): MapTables[M] {
  const tables: { [K in MapName]: () => MapTables[K] } = {
    access_map: () => new AccessTable(entries, options),
    relay_domains: () => new RelayDomains(entries),
    mx_record_map: () => new RouteTable(entries, options),
    canonical_maps: () => new CanonicalTable(entries, options),
    virtual_alias_maps: () => new AliasTable(entries, options),
    spam_policy: () => new SpamPolicyTable(entries, options),
  };
  return tables[map]();
}

/** The version of each map: a reload compiles again only the maps whose version moved. */
export type MapVersions = Readonly<Record<MapName, number>>;

export class Snapshot implements MapSnapshot {
  readonly version: number;
  readonly mapVersions: MapVersions;
  readonly #tables: MapTables;
  readonly #access: AccessTable;
  readonly #relay: RelayDomains;
  readonly #routes: RouteTable;
  readonly #canonical: CanonicalTable;
  readonly #aliases: AliasTable;
  readonly #spam: SpamPolicyTable;

  /** Tables are immutable, so a new snapshot may share those of maps that did not change. */
  constructor(version: number, mapVersions: MapVersions, tables: MapTables) {
    this.version = version;
    this.mapVersions = Object.freeze({ ...mapVersions });
    this.#tables = Object.freeze({ ...tables });
    this.#access = tables.access_map;
    this.#relay = tables.relay_domains;
    this.#routes = tables.mx_record_map;
    this.#canonical = tables.canonical_maps;
    this.#aliases = tables.virtual_alias_maps;
    this.#spam = tables.spam_policy;
    Object.freeze(this);
  }

  /** The compiled table of `map`, to share with the next snapshot. */
  table<M extends MapName>(map: M): MapTables[M] {
    return this.#tables[map];
  }

  accessClient(ip: string): AccessMatch | undefined {
    return this.#access.client(ip)?.match;
  }

  accessSender(address: string): AccessMatch | undefined {
    return this.#access.address(address, 'sender')?.match;
  }

  accessRecipient(address: string): AccessMatch | undefined {
    return this.#access.address(address, 'recipient')?.match;
  }

  isRelayDomain(domain: string): boolean {
    return this.#relay.lookup(domain) !== undefined;
  }

  route(address: string): Route | undefined {
    return this.#routes.lookup(address)?.route;
  }

  canonicalRecipient(address: string): string | undefined {
    return this.#canonical.rewrite(address, 'recipient')?.result;
  }

  canonicalSender(didOrAddress: string): string | undefined {
    return this.#canonical.rewrite(didOrAddress, 'sender')?.result;
  }

  expandAlias(address: string): AliasExpansion {
    return this.#aliases.expand(address);
  }

  spamPolicy(address: string): SpamPolicy | undefined {
    return this.#spam.lookup(address)?.policy;
  }

  /**
   * What `maps test` prints: the lookup keys tried in order, the entry that decided, and the
   * answer the method above gives. `as` picks the check; by default an IP address is a client,
   * '' or '<>' the null sender, a DID a sender (canonical_maps), anything else a recipient.
   */
  explain(map: MapName, input: string, as?: TestAs): MapTestResult {
    const tried: string[] = [];
    const base = { map, input, tried, version: this.version };
    const trimmed = input.trim();
    switch (map) {
      case 'access_map': {
        const check: TestAs =
          as ??
          (parseIp(trimmed)
            ? 'client'
            : trimmed === '' || trimmed === '<>'
              ? 'sender'
              : 'recipient');
        const hit =
          check === 'client'
            ? this.#access.client(input, tried)
            : this.#access.address(input, check, tried);
        return { ...base, as: check, ...(hit ? { matched: hit.entry } : {}), result: hit?.match };
      }
      case 'relay_domains': {
        const hit = this.#relay.lookup(input, tried);
        return { ...base, ...(hit ? { matched: hit } : {}), result: hit !== undefined };
      }
      case 'mx_record_map': {
        const hit = this.#routes.lookup(input, tried);
        return { ...base, ...(hit ? { matched: hit.entry } : {}), result: hit?.route };
      }
      case 'canonical_maps': {
        if (as === 'client')
          throw new MapInputError('canonical_maps rewrites senders or recipients, not clients');
        const check = as ?? (trimmed.startsWith('did:') ? 'sender' : 'recipient');
        const hit = this.#canonical.rewrite(input, check, tried);
        return { ...base, as: check, ...(hit ? { matched: hit.entry } : {}), result: hit?.result };
      }
      case 'virtual_alias_maps': {
        const trace: ExpansionTrace = { tried, steps: [] };
        const result = this.#aliases.expand(input, trace);
        return {
          ...base,
          ...(trace.first ? { matched: trace.first } : {}),
          result,
          steps: trace.steps,
        };
      }
      case 'spam_policy': {
        const hit = this.#spam.lookup(input, tried);
        return { ...base, ...(hit ? { matched: hit.entry } : {}), result: hit?.policy };
      }
    }
  }
}
