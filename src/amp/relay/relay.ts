/**
 * The relay's part of `aftersmtp serve` (the composition root wires it, DESIGN.md §4): the
 * remote identity resolver (peer directory from routes and DNS, state in the data directory),
 * which the pipeline also reads; then, from the gateway's TLS material and key and the pipeline,
 * the inbound RelayReceiver, the QUIC endpoint bound to AFTERSMTP_QUIC_LISTEN with it as handler,
 * and the outbound RelaySender on the same endpoint.
 *
 *   const identities = await openRemoteIdentities(config);
 *   const pipeline = new Pipeline({ ..., remote: remoteDirectory(identities) });
 *   const relay = await openRelay({ config, tls, gatewayKeys: identity, identities, pipeline, log });
 *   worker = new DeliveryWorker({ ..., remote: (job) => relay.sender.relayJob(job) });
 *   ...
 *   relay.close(); identities.close();
 *
 * Guarantees: one QUIC endpoint (UDP socket) serves both directions, so the certificate peers
 * see is the one published as `quic-tls-spki`; if binding fails, nothing is left open by it.
 */
import type { SecretKeySet } from '../../identity/keys.js';
import { listenError, type ListenAddress } from '../../net/listen.js';
import type { AmpSubmission, Outcome } from '../../pipeline/types.js';
import { quicLimitsFromConfig, type QuicConfig } from '../../quic/config.js';
import { QuicTransport, type QuicPeerInfo } from '../../quic/transport.js';
import { HostResolver } from '../hosts.js';
import { LruTtlCache } from './cache.js';
import { RELAY_REFUSALS } from './errors.js';
import { PeerDirectory } from './discovery.js';
import { LogPinFile, logPinsPath } from './pins.js';
import { RemoteIdentityResolver, relayStatePath } from './identities.js';
import { RelayReceiver, type RelayLogger } from './receiver.js';
import type { RelayRoute } from './routes.js';
import { RelaySender } from './sender.js';

/** The settings the relay is opened with (AFTERSMTP_QUIC_*, AFTERSMTP_RELAY_*, ...). */
export interface RelayConfig extends QuicConfig {
  readonly dataDir: string;
  readonly domain: string;
  readonly dnsServers: readonly string[] | undefined;
  readonly relayRoutes: ReadonlyMap<string, RelayRoute> | undefined;
  readonly relayCacheTtl: number;
  readonly relayCacheSize: number;
  readonly quicListen: ListenAddress;
  readonly maxEnvelopeBytes: number;
}

export interface OpenRelayOptions {
  readonly config: RelayConfig;
  /** The gateway's certificate (the one published as quic-tls-spki): loadOrCreateCertificate. */
  readonly tls: { readonly certPem: string; readonly keyPem: string };
  readonly gatewayKeys: SecretKeySet;
  /** From openRemoteIdentities; the relay does not close it. */
  readonly identities: RemoteIdentityResolver;
  readonly pipeline: { submitAmp(sub: AmpSubmission): Promise<Outcome> };
  readonly log?: RelayLogger & { error(obj: object, msg: string): void };
  /** The trusted clock expiry is judged by at the entrance (docs/EXPIRY.md); default Date.now. */
  readonly now?: () => number;
}

export interface Relay {
  readonly transport: QuicTransport;
  readonly sender: RelaySender;
  readonly receiver: RelayReceiver;
  /** Fields for the "aftersmtp serving" log line. */
  readonly announce: Record<string, unknown>;
  close(): void;
}

/** The verified resolver of other domains' identities, with its state in the data directory. */
export async function openRemoteIdentities(
  c: Pick<
    RelayConfig,
    'dataDir' | 'dnsServers' | 'relayRoutes' | 'relayCacheTtl' | 'relayCacheSize'
  >,
): Promise<RemoteIdentityResolver> {
  const ttlMs = c.relayCacheTtl * 1000;
  const pins = new LogPinFile(logPinsPath(c.dataDir));
  const directory = new PeerDirectory({
    routes: c.relayRoutes,
    dnsServers: c.dnsServers,
    ttlMs,
    pins: (domain) => pins.get(domain),
  });
  return RemoteIdentityResolver.open({
    directory,
    statePath: relayStatePath(c.dataDir),
    cacheSize: c.relayCacheSize,
    cacheTtlMs: ttlMs,
  });
}

/**
 * Refusals the pipeline makes only after the sending gateway passed its check (§13.3): the
 * connection that carried them belongs to a verified gateway.
 */
const AFTER_GATEWAY_CHECK: ReadonlySet<number> = new Set(
  (
    [
      'ERR_RELAY_NOT_OUR_DOMAIN',
      'ERR_RELAY_UNKNOWN_RECIPIENT',
      'ERR_RELAY_RECIPIENT_REVOKED',
      'ERR_RELAY_RECIPIENT_KEY',
      'ERR_RELAY_MAILBOX_FULL',
      'ERR_RELAY_BUSY',
    ] as const
  ).map((code) => RELAY_REFUSALS[code].wire),
);

function gatewayPassed(err: unknown): boolean {
  const wire = (err as { wireCode?: unknown }).wireCode;
  return typeof wire === 'number' && AFTER_GATEWAY_CHECK.has(wire);
}

export async function openRelay(o: OpenRelayOptions): Promise<Relay> {
  const c = o.config;
  const identities = o.identities;
  const receiver = new RelayReceiver({
    pipeline: o.pipeline,
    maxEnvelopeBytes: c.maxEnvelopeBytes,
    ...(o.now !== undefined ? { now: o.now } : {}),
  });
  const ttlMs = c.relayCacheTtl * 1000;
  // Certificates bound to a verified gateway record (a message of theirs passed the gateway
  // check, or we checked them as a server ourselves): their connections get the verified
  // budget at once (docs/ARCHITECTURE.md, "QUIC under abuse").
  const trusted = new LruTtlCache<string, true>(c.relayCacheSize, ttlMs);
  const trust = (peer: QuicPeerInfo): void => {
    trusted.set(peer.spki.toString('base64'), true);
    transport?.markVerified(peer.conn);
  };
  let transport: QuicTransport | undefined;
  try {
    // The native endpoint binds an address; a name (localhost) is resolved here, asynchronously.
    const bindHost = await new HostResolver().address(c.quicListen.host);
    transport = QuicTransport.open({
      certPem: o.tls.certPem,
      keyPem: o.tls.keyPem,
      host: bindHost,
      port: c.quicListen.port,
      limits: quicLimitsFromConfig(c),
      verifyInboundPeer: (peer) =>
        !receiver.verifyPeer(peer)
          ? false
          : trusted.get(peer.spki.toString('base64')) === true
            ? 'verified'
            : true,
      onOutboundVerified: (peer) => trusted.set(peer.spki.toString('base64'), true),
      onMessage: (msg) =>
        receiver.handle(msg).then(
          (ack) => {
            trust(msg.peer);
            return ack;
          },
          (err: unknown) => {
            if (gatewayPassed(err)) trust(msg.peer);
            throw err;
          },
        ),
      onError: (err, txid) => o.log?.error({ err, transaction: txid }, 'relay internal error'),
    });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_QUIC_BIND') {
      throw listenError(
        'ERR_QUIC_BIND',
        { protocol: 'UDP', ...c.quicListen, setting: 'AFTERSMTP_QUIC_LISTEN' },
        err,
      );
    }
    throw err;
  }
  const open = transport;
  const sender = new RelaySender({
    transport: open,
    identities,
    gatewayKeys: o.gatewayKeys,
    maxEnvelopeBytes: c.maxEnvelopeBytes,
    log: o.log,
    ...(o.now !== undefined ? { now: o.now } : {}),
  });
  const host = c.quicListen.host.includes(':') ? `[${c.quicListen.host}]` : c.quicListen.host;
  return {
    transport: open,
    sender,
    receiver,
    announce: {
      quic: `${host}:${open.port}`,
      relayRoutes: c.relayRoutes === undefined ? [] : [...c.relayRoutes.keys()],
    },
    close() {
      open.close();
    },
  };
}
