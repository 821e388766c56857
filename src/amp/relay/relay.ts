/**
 * The relay's part of `aftersmtp serve` (the composition root wires it, DESIGN.md §4): from the
 * validated configuration and the gateway's TLS material, key, ledger and mailbox store, builds
 * the peer directory, the remote identity resolver (state in the data directory), the inbound
 * RelayReceiver, the QUIC endpoint bound to AFTERSMTP_QUIC_LISTEN with it as handler, and the
 * outbound RelaySender on the same endpoint.
 *
 *   const relay = await openRelay({ config, tls, gatewayKeys: identity, ledger, store, log });
 *   worker = new LocalDeliveryWorker({ ..., remote: (job) => relay.sender.relayJob(job) });
 *   ...
 *   relay.close();
 *
 * Guarantees: one QUIC endpoint (UDP socket) serves both directions, so the certificate peers
 * see is the one published as `quic-tls-spki`; if binding fails, nothing is left open.
 */
import type { Config } from '../../config/schema.js';
import type { SecretKeySet } from '../../identity/keys.js';
import type { IdentityLedger } from '../../ledger/ledger.js';
import { quicLimitsFromConfig, type QuicConfig } from '../../quic/config.js';
import { QuicTransport, type QuicPeerInfo } from '../../quic/transport.js';
import { LruTtlCache } from './cache.js';
import { RELAY_REFUSALS } from './errors.js';
import { QUIC_CODES, QuicRefusal } from '../../quic/errors.js';
import { StorageFullError } from '../../errors.js';
import type { MailboxStore } from '../../store/types.js';
import { PeerDirectory } from './discovery.js';
import { RemoteIdentityResolver, relayStatePath } from './identities.js';
import { RelayReceiver, type RelayLogger } from './receiver.js';
import { RelaySender } from './sender.js';

export type RelayConfig = QuicConfig &
  Pick<
    Config,
    | 'dataDir'
    | 'domain'
    | 'dnsServers'
    | 'relayRoutes'
    | 'relayCacheTtl'
    | 'relayCacheSize'
    | 'quicListen'
    | 'maxEnvelopeBytes'
  >;

export interface OpenRelayOptions {
  readonly config: RelayConfig;
  /** The gateway's certificate (the one published as quic-tls-spki): loadOrCreateCertificate. */
  readonly tls: { readonly certPem: string; readonly keyPem: string };
  readonly gatewayKeys: SecretKeySet;
  readonly ledger: IdentityLedger;
  readonly store: Pick<MailboxStore, 'deliver' | 'putReceipt' | 'getReceipt'>;
  readonly log?: RelayLogger & { error(obj: object, msg: string): void };
  /** After a new envelope is stored for a local recipient (e.g. MailboxSignal.notify). */
  readonly onDelivered?: (recipient: string) => void;
}

export interface Relay {
  readonly transport: QuicTransport;
  readonly sender: RelaySender;
  readonly receiver: RelayReceiver;
  readonly identities: RemoteIdentityResolver;
  /** Fields for the "aftersmtp serving" log line. */
  readonly announce: Record<string, unknown>;
  close(): void;
}

/** Refusals the receiver makes only after the sending gateway passed its check (§13.3). */
const AFTER_GATEWAY_CHECK: ReadonlySet<number> = new Set(
  (
    [
      'ERR_RELAY_NOT_OUR_DOMAIN',
      'ERR_RELAY_UNKNOWN_RECIPIENT',
      'ERR_RELAY_RECIPIENT_REVOKED',
      'ERR_RELAY_RECIPIENT_KEY',
      'ERR_RELAY_MAILBOX_FULL',
    ] as const
  ).map((code) => RELAY_REFUSALS[code].wire),
);

function gatewayPassed(err: unknown): boolean {
  return (
    err instanceof StorageFullError ||
    (err instanceof QuicRefusal && AFTER_GATEWAY_CHECK.has(err.wireCode))
  );
}

/** No room for the message (ERR_STORAGE_FULL): the peer's queue retries later (BUSY). */
function busyWhenFull(err: unknown): never {
  if (err instanceof StorageFullError) {
    throw new QuicRefusal('receiver storage full; retry later', QUIC_CODES.busy);
  }
  throw err;
}

export async function openRelay(o: OpenRelayOptions): Promise<Relay> {
  const c = o.config;
  const ttlMs = c.relayCacheTtl * 1000;
  const directory = new PeerDirectory({ routes: c.relayRoutes, dnsServers: c.dnsServers, ttlMs });
  const identities = await RemoteIdentityResolver.open({
    directory,
    statePath: relayStatePath(c.dataDir),
    cacheSize: c.relayCacheSize,
    cacheTtlMs: ttlMs,
  });
  const receiver = new RelayReceiver({
    domains: [c.domain],
    ledger: o.ledger,
    store: o.store,
    gatewayKeys: o.gatewayKeys,
    identities,
    maxEnvelopeBytes: c.maxEnvelopeBytes,
    log: o.log,
    onDelivered: o.onDelivered,
  });
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
    transport = QuicTransport.open({
      certPem: o.tls.certPem,
      keyPem: o.tls.keyPem,
      host: c.quicListen.host,
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
          (receipt) => {
            trust(msg.peer);
            return receipt;
          },
          (err: unknown) => {
            if (gatewayPassed(err)) trust(msg.peer);
            return busyWhenFull(err);
          },
        ),
      onError: (err, txid) => o.log?.error({ err, transaction: txid }, 'relay internal error'),
    });
  } catch (err) {
    identities.close();
    throw err;
  }
  const sender = new RelaySender({
    transport,
    identities,
    gatewayKeys: o.gatewayKeys,
    maxEnvelopeBytes: c.maxEnvelopeBytes,
    log: o.log,
  });
  const host = c.quicListen.host.includes(':') ? `[${c.quicListen.host}]` : c.quicListen.host;
  return {
    transport,
    sender,
    receiver,
    identities,
    announce: {
      quic: `${host}:${transport.port}`,
      relayRoutes: c.relayRoutes === undefined ? [] : [...c.relayRoutes.keys()],
    },
    close() {
      transport.close();
      identities.close();
    },
  };
}
