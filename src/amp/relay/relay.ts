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
import { QuicTransport } from '../../quic/transport.js';
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
  let transport: QuicTransport;
  try {
    transport = QuicTransport.open({
      certPem: o.tls.certPem,
      keyPem: o.tls.keyPem,
      host: c.quicListen.host,
      port: c.quicListen.port,
      limits: quicLimitsFromConfig(c),
      verifyInboundPeer: receiver.verifyPeer,
      onMessage: (msg) => receiver.handle(msg).catch(busyWhenFull),
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
