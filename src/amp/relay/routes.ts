/**
 * The administrator's relay routes (AFTERSMTP_RELAY_ROUTES; DESIGN.md §4's mx_record_map
 * override, docs/PROTOCOL.md §13.1): for a remote domain, the QUIC relay endpoint and the
 * client-API endpoint of its gateway, winning over DNS.
 *
 *     routes = route *( "," route )
 *     route  = domain "=" quic *( "+" quic ) [ "/" api ]   api default: the first quic's host, port 4433
 *     quic, api = host ":" port | "[" IPv6 "]" ":" port
 *
 * Several quic endpoints are the nodes of one gateway (docs/PROTOCOL.md §13.1: spread, failover).
 *
 * Guarantees: parseRelayRoutes is strict (valid domain names, lower-cased; valid endpoints; no
 * domain twice) and throws an Error whose message names the bad part.
 */
import { checkDomain } from '../../identity/did.js';
import { parseHostPort, parseHostPortList } from '../discovery.js';

export const DEFAULT_CLIENT_API_PORT = 4433;

export interface Endpoint {
  readonly host: string;
  readonly port: number;
}

export interface RelayRoute {
  /** The QUIC relay endpoints of the domain's gateway nodes, in the order given. */
  readonly quic: readonly Endpoint[];
  readonly api: Endpoint;
}

export function parseRelayRoutes(raw: string): ReadonlyMap<string, RelayRoute> {
  const routes = new Map<string, RelayRoute>();
  for (const item of raw.split(',').map((s) => s.trim())) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0)
      throw new Error(`expected domain=host:port[/host:port], got ${JSON.stringify(item)}`);
    let domain: string;
    try {
      domain = checkDomain(item.slice(0, eq).trim().toLowerCase());
    } catch (err) {
      throw new Error(`bad domain in ${JSON.stringify(item)}: ${(err as Error).message}`);
    }
    if (routes.has(domain)) throw new Error(`the domain ${domain} is routed twice`);
    const parts = item.slice(eq + 1).split('/');
    if (parts.length > 2) throw new Error(`expected quic[/api] after ${domain}=`);
    let quic: Endpoint[];
    let api: Endpoint;
    try {
      quic = parseHostPortList((parts[0] as string).trim().replace(/\+/g, ','), 'a route');
      api =
        parts[1] === undefined
          ? { host: (quic[0] as Endpoint).host, port: DEFAULT_CLIENT_API_PORT }
          : parseHostPort(parts[1].trim());
    } catch (err) {
      throw new Error(`bad endpoint for ${domain}: ${(err as Error).message}`);
    }
    routes.set(domain, { quic, api });
  }
  if (routes.size === 0) throw new Error('expected at least one domain=host:port route');
  return routes;
}
