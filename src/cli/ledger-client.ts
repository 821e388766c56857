/**
 * What the client-side ledger commands (register, resolve) share: the gateway flags and its TLS
 * pin, the client state file (pinned log keys and newest checkpoints), and where the log key
 * comes from.
 *
 * Log key trust, in order (PROTOCOL.md §9.6, §10.4): `--log-key` if given; otherwise DNS
 * (`_aftersmtp._tcp.<domain>` TXT `k=`, servers from AFTERSMTP_DNS_SERVERS) checked against the
 * key pinned in the state file, pinning it on first use; if DNS has no usable record, the pinned
 * key alone (with a warning unless there is simply no record). A key that differs from the pin is refused (ERR_LEDGER_KEY_CHANGED), loudly.
 *
 * DIDs of OTHER domains (send's recipients, inbox's senders) are not served by the user's
 * gateway: openRemoteIdentities gives the relay's RemoteIdentityResolver (PROTOCOL.md §13.2: the
 * domain's own gateway, found by AFTERSMTP_RELAY_ROUTES then DNS, answers verified with the
 * domain's DNS `k=` log key, pinned in the same client state file).
 */
import { mkdir } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { DiscoveryResolver, parseDnsServers } from '../amp/discovery.js';
import { GatewayClient, type GatewayPin } from '../amp/client-api/index.js';
import { PeerDirectory } from '../amp/relay/discovery.js';
import { RemoteIdentityResolver } from '../amp/relay/identities.js';
import { parseRelayRoutes } from '../amp/relay/routes.js';
import { envValue } from '../env.js';
import { InputError } from '../errors.js';
import { parseDid } from '../identity/index.js';
import { readBoundedFile } from '../identity/files.js';
import { ClientState } from '../ledger/index.js';
import { clientDefaults, type ClientConfigName } from './client-config.js';
import { UsageError, optionalString, type Options, type ParsedArgs } from './command.js';

export const GATEWAY_OPTIONS: Options = {
  gateway: { type: 'string' },
  'gateway-cert': { type: 'string' },
  'gateway-spki': { type: 'string' },
  'log-key': { type: 'string' },
  state: { type: 'string' },
  json: { type: 'boolean' },
};

export const GATEWAY_USAGE =
  "  --gateway <host:port>        the gateway's client API (gRPC over TLS, default port 4433)\n" +
  '  --gateway-cert <pem file>    pin the gateway by its certificate, or\n' +
  '  --gateway-spki sha256/<b64>  pin it by its key (printed by serve as tlsSpki)\n' +
  "  --log-key <verifier key>     the domain log's key (default: DNS k=, pinned on first use)\n" +
  '  --state <file>               client state (default ~/.aftersmtp/ledger-client.json)\n' +
  '  --json                       one JSON document on stdout\n' +
  '  Defaults for --gateway, its pin, --key and --state: AFTERSMTP_GATEWAY, AFTERSMTP_GATEWAY_CERT\n' +
  '  or AFTERSMTP_GATEWAY_SPKI, AFTERSMTP_KEY, AFTERSMTP_CLIENT_STATE, else the client config file\n' +
  '  (AFTERSMTP_CLIENT_CONFIG, default ~/.aftersmtp/client.conf; docs/OPERATIONS.md).';

export const DEFAULT_STATE_FILE = join('.aftersmtp', 'ledger-client.json');

const MAX_CERT_FILE_BYTES = 64 * 1024;

/** A flag's value, else its default from the environment or the client config file. */
export function clientOption(args: ParsedArgs, name: ClientConfigName): string | undefined {
  return optionalString(args, name) ?? clientDefaults().values[name];
}

/** The key file: --key, AFTERSMTP_KEY or `key =` in the client config, else a usage error. */
export function keyFileOption(args: ParsedArgs): string {
  const v = clientOption(args, 'key');
  if (v === undefined || v === '') {
    throw new UsageError('--key is required (or AFTERSMTP_KEY, or key = in the client config)');
  }
  return v;
}

/** The gateway's address and pin, from the flags or, when no flag gives them, the defaults. */
export function gatewayTarget(args: ParsedArgs): {
  target: string;
  certFile?: string;
  spki?: string;
} {
  const target = clientOption(args, 'gateway');
  if (target === undefined) {
    throw new UsageError(
      '--gateway is required (or AFTERSMTP_GATEWAY, or gateway = in the client config)',
    );
  }
  let certFile = optionalString(args, 'gateway-cert');
  let spki = optionalString(args, 'gateway-spki');
  if (certFile === undefined && spki === undefined) {
    const d = clientDefaults().values;
    certFile = d['gateway-cert'];
    spki = d['gateway-spki'];
  }
  if ((certFile === undefined) === (spki === undefined)) {
    throw new UsageError(
      'pin the gateway with exactly one of --gateway-cert and --gateway-spki (or AFTERSMTP_GATEWAY_CERT / AFTERSMTP_GATEWAY_SPKI)',
    );
  }
  return certFile !== undefined ? { target, certFile } : { target, spki: spki as string };
}

export async function connectGateway(args: ParsedArgs): Promise<GatewayClient> {
  const { target, certFile, spki } = gatewayTarget(args);
  let pin: GatewayPin;
  if (certFile !== undefined) {
    const pem = await readBoundedFile(certFile, MAX_CERT_FILE_BYTES, 'ERR_TLS_CERT');
    pin = { certPem: pem.toString('utf8') };
  } else {
    pin = { spki: spki as string };
  }
  return GatewayClient.connect({ target, pin });
}

/** AFTERSMTP_DNS_SERVERS (undefined: the system's resolvers). */
export function dnsServersFromEnv(): string[] | undefined {
  const raw = envValue('AFTERSMTP_DNS_SERVERS');
  if (raw === undefined) return undefined;
  try {
    return parseDnsServers(raw);
  } catch (err) {
    throw new UsageError(`AFTERSMTP_DNS_SERVERS: ${(err as Error).message}`);
  }
}

/**
 * The resolver of other domains' identities, exactly the relay's (PROTOCOL.md §13.1-§13.2), on
 * the client's own state: AFTERSMTP_RELAY_ROUTES, then DNS (AFTERSMTP_DNS_SERVERS) find the
 * domain's client API; its answers are verified against its DNS `k=`, pinned in `state`.
 */
export async function openRemoteIdentities(state: ClientState): Promise<RemoteIdentityResolver> {
  const raw = envValue('AFTERSMTP_RELAY_ROUTES');
  let routes;
  if (raw !== undefined) {
    try {
      routes = parseRelayRoutes(raw);
    } catch (err) {
      throw new UsageError(`AFTERSMTP_RELAY_ROUTES: ${(err as Error).message}`);
    }
  }
  const directory = new PeerDirectory({ routes, dnsServers: dnsServersFromEnv() });
  return RemoteIdentityResolver.open({ directory, state });
}

export async function loadClientState(args: ParsedArgs): Promise<ClientState> {
  const path = clientOption(args, 'state') ?? join(homedir(), DEFAULT_STATE_FILE);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  return ClientState.load(path);
}

/**
 * The log key to check the answer with, as verifyAnswer's `dnsVerifierKey` (it pins on first use
 * and refuses a key different from the pin). Undefined: rely on the pin alone.
 */
export async function logKeyFor(
  args: ParsedArgs,
  did: string,
  state: ClientState,
): Promise<{ key: string | undefined; source: 'flag' | 'dns' | 'pin' }> {
  const flagKey = optionalString(args, 'log-key');
  if (flagKey !== undefined) return { key: flagKey, source: 'flag' };
  const { domain } = parseDid(did);
  const resolver = new DiscoveryResolver({ servers: dnsServersFromEnv() });
  try {
    return { key: await resolver.logKey(domain), source: 'dns' };
  } catch (err) {
    const pinned = state.get(domain) !== undefined;
    if (pinned && err instanceof InputError) {
      // The pin is the trust anchor; DNS only adds the key-change check, so an unreachable or
      // unpublished record falls back to the pin (said on stderr) rather than failing offline.
      if (err.code !== 'ERR_DISCOVERY_NONE') {
        process.stderr.write(`warning: ${err.message}; using the pinned log key of ${domain}\n`);
      }
      return { key: undefined, source: 'pin' };
    }
    if (!pinned && err instanceof InputError) {
      throw new InputError(
        'ERR_LEDGER_NO_PIN',
        `no log key for ${domain}: ${err.message}; pass --log-key, or pin it once with "aftersmtp ledger pin --client ${domain} <key>" (the key "aftersmtp ledger key" prints on its gateway)`,
      );
    }
    throw err;
  }
}
