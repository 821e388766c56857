/**
 * Finding a remote domain's gateway (DESIGN.md §4, docs/PROTOCOL.md §13.1): the administrator's
 * route (AFTERSMTP_RELAY_ROUTES) first, then DNS TXT `_aftersmtp._tcp.<domain>` with `p=` (the
 * QUIC relay), `k=` (the domain log's verifier key) and the relay's `c=` (the client API, for
 * ResolveIdentity; default: p's host and port 4433).
 *
 * Guarantees: `find` resolves with a peer or throws a RelayError: ERR_RELAY_UNREACHABLE_DOMAIN
 * (permanent) when neither a route nor an aftersmtp1 record exists, ERR_RELAY_DISCOVERY
 * (permanent) for a malformed or ambiguous record, ERR_RELAY_DNS (temporary) when DNS fails.
 * With a route, DNS is still asked for `k=` (the log key is never configured by a route), and a
 * DNS failure then only leaves `logKey` undefined (the pinned key is used). An operator's pin
 * (`aftersmtp ledger pin`, pins.ts) is the log key whatever DNS says, as a route is the endpoint.
 * Host names in `p=`, `c=` and routes are resolved to addresses here, asynchronously, through
 * the same DNS servers (src/amp/hosts.ts): the QUIC endpoint and the client API channel are given
 * addresses, never names. Answers (records and addresses) are cached for `ttlMs` (the records'
 * own TTL is not visible through node's resolver).
 */
import { Resolver } from 'node:dns/promises';
import { AfterSmtpError } from '../../errors.js';
import { HostResolver } from '../hosts.js';
import {
  DISCOVERY_PREFIX,
  parseDiscoveryRecord,
  parseHostPort,
  selectDiscoveryRecord,
} from '../discovery.js';
import { LruTtlCache } from './cache.js';
import { DEFAULT_CLIENT_API_PORT, type Endpoint, type RelayRoute } from './routes.js';
import { RelayError } from './errors.js';

/** Host names and domains whose answers are kept (each cache); the least recently used go first. */
const MAX_CACHED = 10_000;

/** One QUIC relay endpoint of a peer: as published or routed, and its address. */
export interface RelayEndpoint extends Endpoint {
  /** `host` resolved: the address to connect to. */
  readonly address: string;
}

export interface RelayPeer {
  readonly domain: string;
  /**
   * The QUIC relay endpoints (UDP), one per node of the gateway, in the published order (host
   * may be a name); every one serves the same gateway identity and TLS key.
   */
  readonly relays: readonly RelayEndpoint[];
  /** The client API endpoint (gRPC over TLS), for ResolveIdentity. */
  readonly api: Endpoint;
  /** api.host resolved. */
  readonly apiAddress: string;
  /** The domain log's verifier key: the operator's pin, else DNS `k=` when published. */
  readonly logKey: string | undefined;
  readonly source: 'route' | 'dns';
  /** Where logKey came from. */
  readonly logKeySource?: 'pin' | 'dns';
}

export interface PeerDirectoryOptions {
  /** AFTERSMTP_RELAY_ROUTES. */
  readonly routes?: ReadonlyMap<string, RelayRoute>;
  /** AFTERSMTP_DNS_SERVERS (default: the system's). */
  readonly dnsServers?: readonly string[];
  readonly dnsTimeoutMs?: number;
  /** How long an answer is reused (default 60 s; 0: never). */
  readonly ttlMs?: number;
  readonly now?: () => number;
  /** The operator's log-key pins (LogPinFile.get); they win over DNS `k=`. */
  readonly pins?: (domain: string) => Promise<string | undefined>;
}

interface DnsAnswer {
  readonly quic: readonly Endpoint[];
  readonly api: Endpoint;
  readonly logKey: string | undefined;
}

/** The `c=` tag of an already validated record (parseDiscoveryRecord checked the syntax). */
function clientApiTag(text: string, quic: Endpoint): Endpoint {
  for (const part of text.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== 'c') continue;
    try {
      return parseHostPort(part.slice(eq + 1).trim());
    } catch (err) {
      throw new RelayError(
        'ERR_RELAY_DISCOVERY',
        `c= is not host:port (${(err as Error).message})`,
        false,
      );
    }
  }
  return { host: quic.host, port: DEFAULT_CLIENT_API_PORT };
}

export class PeerDirectory {
  readonly #routes: ReadonlyMap<string, RelayRoute>;
  readonly #resolver: Resolver;
  readonly #hosts: HostResolver;
  /** Gateway host names and their addresses, for `ttlMs`. */
  readonly #addresses: LruTtlCache<string, string>;
  readonly #pins: ((domain: string) => Promise<string | undefined>) | undefined;
  /** Discovery answers (null: the domain has no record), for `ttlMs`. */
  readonly #cache: LruTtlCache<string, DnsAnswer | null>;

  constructor(opts: PeerDirectoryOptions = {}) {
    this.#routes = opts.routes ?? new Map();
    this.#resolver = new Resolver({ timeout: opts.dnsTimeoutMs ?? 3000, tries: 2 });
    if (opts.dnsServers !== undefined) this.#resolver.setServers([...opts.dnsServers]);
    this.#hosts = new HostResolver({ servers: opts.dnsServers, timeoutMs: opts.dnsTimeoutMs });
    const ttlMs = opts.ttlMs ?? 60_000;
    this.#addresses = new LruTtlCache(MAX_CACHED, ttlMs, opts.now);
    this.#cache = new LruTtlCache(MAX_CACHED, ttlMs, opts.now);
    this.#pins = opts.pins;
  }

  /** The gateway of `domain` (lower-case A-label, as in DIDs). */
  async find(domain: string): Promise<RelayPeer> {
    const pin = await this.#pins?.(domain);
    const route = this.#routes.get(domain);
    if (route !== undefined) {
      let logKey = pin;
      if (logKey === undefined) {
        try {
          logKey = (await this.#dns(domain))?.logKey;
        } catch {
          logKey = undefined; // the pinned key (if any) decides; verifyAnswer says so otherwise
        }
      }
      return {
        domain,
        api: route.api,
        ...(await this.#addressesOf(domain, route.quic, route.api)),
        logKey,
        source: 'route',
        logKeySource: pin !== undefined ? 'pin' : 'dns',
      };
    }
    const answer = await this.#dns(domain);
    if (answer === null) {
      throw new RelayError(
        'ERR_RELAY_UNREACHABLE_DOMAIN',
        `${domain} is not reachable over AMP: no relay route and no ${DISCOVERY_PREFIX}${domain} record`,
        false,
      );
    }
    return {
      domain,
      api: answer.api,
      ...(await this.#addressesOf(domain, answer.quic, answer.api)),
      logKey: pin ?? answer.logKey,
      source: 'dns',
      logKeySource: pin !== undefined ? 'pin' : 'dns',
    };
  }

  /** Forgets cached answers (all, or one domain's). */
  forget(domain?: string): void {
    if (domain === undefined) this.#cache.clear();
    else this.#cache.delete(domain);
  }

  cancel(): void {
    this.#resolver.cancel();
    this.#hosts.cancel();
  }

  async #addressesOf(
    domain: string,
    quic: readonly Endpoint[],
    api: Endpoint,
  ): Promise<{ relays: RelayEndpoint[]; apiAddress: string }> {
    const [apiAddress, ...addresses] = await Promise.all([
      this.#address(domain, api.host),
      ...quic.map((q) => this.#address(domain, q.host)),
    ]);
    return {
      relays: quic.map((q, i) => ({ ...q, address: addresses[i] as string })),
      apiAddress: apiAddress as string,
    };
  }

  /** `host` (of `domain`'s gateway) as an address: a failure is temporary (ERR_RELAY_DNS). */
  async #address(domain: string, host: string): Promise<string> {
    const hit = this.#addresses.get(host);
    if (hit !== undefined) return hit;
    let address: string;
    try {
      address = await this.#hosts.address(host);
    } catch (err) {
      throw new RelayError(
        'ERR_RELAY_DNS',
        `the gateway of ${domain}: ${(err as Error).message}`,
        true,
        { cause: err },
      );
    }
    this.#addresses.set(host, address);
    return address;
  }

  /** The domain's record, or null when it has none. */
  async #dns(domain: string): Promise<DnsAnswer | null> {
    const hit = this.#cache.get(domain);
    if (hit !== undefined) return hit;
    const name = `${DISCOVERY_PREFIX}${domain}`;
    let txt: string[][];
    try {
      txt = await this.#resolver.resolveTxt(name);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') return this.#remember(domain, null);
      throw new RelayError('ERR_RELAY_DNS', `DNS lookup of ${name} failed (${String(code)})`, true);
    }
    let answer: DnsAnswer | null;
    try {
      const text = selectDiscoveryRecord(domain, txt);
      const rec = parseDiscoveryRecord(text);
      answer = {
        quic: rec.relays,
        api: clientApiTag(text, rec.relays[0] as Endpoint),
        logKey: rec.logKey,
      };
    } catch (err) {
      if (err instanceof AfterSmtpError && err.code === 'ERR_DISCOVERY_NONE') answer = null;
      else if (err instanceof RelayError) throw err;
      else {
        throw new RelayError('ERR_RELAY_DISCOVERY', (err as Error).message, false, { cause: err });
      }
    }
    return this.#remember(domain, answer);
  }

  #remember(domain: string, answer: DnsAnswer | null): DnsAnswer | null {
    this.#cache.set(domain, answer);
    return answer;
  }
}
