/**
 * The client API's part of `aftersmtp serve` (called from the composition root, serve.ts): the
 * TLS certificate (src/tls, generated on first start), the domain's ledger in the data directory
 * (its key encrypted under the gateway key's passphrase, same rules: src/identity/gateway.ts),
 * the gateway's own record published in that ledger, and the gRPC listener.
 *
 * Guarantees: every ledger policy configured must name a served domain (ConfigError naming
 * AFTERSMTP_LEDGER_POLICY otherwise); if anything fails after the ledger is open, the ledger is
 * closed before the error propagates; close() stops the listener and then closes the ledger.
 * The TLS material and the ledger are returned so the QUIC relay can be wired to the same ones.
 */
import { ConfigError } from '../../errors.js';
import type { Config } from '../../config/schema.js';
import { gatewayIdentityFiles, gatewayPassphrase } from '../../identity/gateway.js';
import type { SecretKeySet } from '../../identity/index.js';
import { publishGatewayRecord } from '../../ledger/gateway-record.js';
import { openDataDirLedger, TokenBucketLimiter, type IdentityLedger } from '../../ledger/index.js';
import { loadOrCreateCertificate, type TlsMaterial } from '../../tls/certificate.js';
import type { DeliveryQueue } from '../../queue/types.js';
import type { MailboxStore } from '../../store/types.js';
import type { MessagingMetrics } from '../../mailbox/metrics.js';
import type { MailboxSignal } from '../../mailbox/signal.js';
import type { MessagingDeps } from './messaging.js';
import { startClientApi, type ClientApiLogger, type ClientApiStats } from './server.js';

/** What the messaging methods need beyond the ledger and the gateway keys (serve opens them). */
export interface GatewayMessaging {
  readonly queue: DeliveryQueue;
  readonly store: MailboxStore;
  readonly signal: MailboxSignal;
  readonly metrics?: MessagingMetrics;
  /** Verified resolution of other domains' DIDs (the relay); absent: local recipients only. */
  readonly remote?: MessagingDeps['remote'];
}

export interface GatewayClientApi {
  readonly tls: TlsMaterial;
  readonly ledger: IdentityLedger;
  /** Fields for the "aftersmtp serving" log line. */
  readonly announce: Record<string, unknown>;
  /** The listener's connections, refusals and request bytes in flight (metrics). */
  stats(): ClientApiStats;
  close(): Promise<void>;
}

export async function startGatewayClientApi(
  config: Config,
  identity: SecretKeySet,
  log: ClientApiLogger & { warn(msg: string): void },
  messaging?: GatewayMessaging,
): Promise<GatewayClientApi> {
  const policies = config.ledgerPolicy ?? new Map();
  for (const domain of policies.keys()) {
    if (domain !== config.domain) {
      throw new ConfigError(
        'ERR_CONFIG',
        `invalid configuration:\n  AFTERSMTP_LEDGER_POLICY: ${domain} is not served here (AFTERSMTP_DOMAIN is ${config.domain})`,
      );
    }
  }
  const notes: string[] = [];
  const passphrase = await gatewayPassphrase(config, gatewayIdentityFiles(config), notes);
  const tls = await loadOrCreateCertificate({
    dir: config.dataDir,
    commonName: config.domain,
    dnsNames: [config.domain, 'localhost'],
    ips: ['127.0.0.1', '::1'],
    passphrase,
  });
  if (tls.created) log.warn(`generated a self-signed TLS certificate in ${tls.certFile}`);
  const { ledger, keyCreated } = await openDataDirLedger({
    dataDir: config.dataDir,
    domains: [config.domain],
    passphrase,
    ledger: {
      policies,
      challengeTtlMs: config.ledgerChallengeTtl * 1000,
      limiter: new TokenBucketLimiter(config.ledgerRateLimit),
    },
  });
  try {
    if (keyCreated) log.warn(`created the ledger key of ${ledger.origin}`);
    const published = publishGatewayRecord(ledger, identity, tls.spki);
    if (published.note !== undefined) log.warn(published.note);
    const server = await startClientApi({
      host: config.grpcListen.host,
      port: config.grpcListen.port,
      certPem: tls.certPem,
      keyPem: tls.keyPem,
      ledger,
      maxMessageBytes: config.grpcMaxMessageBytes,
      limits: {
        maxUnauthenticatedBytes: config.grpcMaxUnauthenticatedBytes,
        maxInflightBytes: config.grpcMaxInflightBytes,
        maxConnections: config.grpcMaxConnections,
        maxConnectionsPerAddress: config.grpcMaxConnectionsPerAddress,
        maxStreamsPerConnection: config.grpcMaxStreamsPerConnection,
        handshakeTimeoutMs: config.grpcHandshakeTimeoutMs,
        idleTimeoutMs: config.grpcIdleTimeoutMs,
        loginRateLimit: config.clientLoginRateLimit,
      },
      log,
      messaging:
        messaging === undefined
          ? undefined
          : {
              ...messaging,
              gateway: identity,
              ledger,
              domain: config.domain,
              maxEnvelopeBytes: config.maxEnvelopeBytes,
              tokenTtlMs: config.clientTokenTtl * 1000,
            },
    });
    const policy = ledger.policy(config.domain);
    return {
      tls,
      ledger,
      announce: {
        grpc: `${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`,
        grpcServices: [...new Set(server.methods.map((m) => m.split('/')[0]))],
        tlsSpki: tls.spkiPin,
        tlsCert: tls.certFile,
        logOrigin: ledger.origin,
        logKey: ledger.verifierKey,
        treeSize: ledger.checkpoint().size,
        ledgerPolicy: `${policy.policy}${policy.policy === 'open-pow' ? `:${policy.bits}` : ''}`,
        gatewayRecord: { action: published.action, leaf: published.leafIndex },
      },
      stats: () => server.stats(),
      async close() {
        await server.close();
        ledger.close();
      },
    };
  } catch (err) {
    ledger.close();
    throw err;
  }
}
