/**
 * The client API's part of `aftersmtp serve` (called from the composition root, serve.ts), in
 * two steps: openGatewayLedger (the TLS certificate, src/tls, generated on first start; the
 * domain's ledger in the data directory, its key encrypted under the gateway key's passphrase,
 * same rules: src/identity/gateway.ts; the gateway's own record published in it), then, once
 * the pipeline is built over that ledger, startGatewayClientApi (the gRPC listener).
 *
 * Guarantees: every ledger policy configured must name a served domain (ConfigError naming
 * AFTERSMTP_LEDGER_POLICY otherwise); if anything fails after the ledger is open, the ledger is
 * closed before the error propagates. The TLS material and the ledger are returned so the QUIC
 * relay and the pipeline use the same ones.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../../identity/files.js';
import { asEnvironmentError, invalidConfiguration } from '../../errors.js';
import {
  gatewayIdentityFiles,
  gatewayPassphrase,
  wrongGatewayPassphrase,
  type GatewaySettings,
} from '../../identity/gateway.js';
import type { SecretKeySet } from '../../identity/index.js';
import { publishGatewayRecord } from '../../ledger/gateway-record.js';
import {
  LOG_KEY_FILE,
  openDataDirLedger,
  openPostgresLedger,
  TokenBucketLimiter,
  type IdentityLedger,
} from '../../ledger/index.js';
import type { DomainPolicy } from '../../ledger/policy.js';
import type { ListenAddress } from '../../net/listen.js';
import { loadOrCreateCertificate, type TlsMaterial } from '../../tls/certificate.js';
import { TrustedClock } from '../../envelope/time.js';
import type { MailboxStore } from '../../store/types.js';
import type { MessagingMetrics } from '../../mailbox/metrics.js';
import type { MailboxSignal } from '../../mailbox/signal.js';
import type { MessagingDeps, TransitDeps } from './messaging.js';
import { EXT_TRANSIT_LOG_KEY, openTransitLog, type TransitLog } from '../../transit/index.js';
import type { ClientApiRequestMetrics } from './request-metrics.js';
import {
  startClientApi,
  type AttestationSource,
  type ClientApiLogger,
  type ClientApiStats,
} from './server.js';

/** The settings the client API and the gateway ledger are opened with. */
export interface ClientApiSettings extends GatewaySettings {
  readonly grpcListen: ListenAddress;
  readonly grpcMaxMessageBytes: number;
  readonly maxEnvelopeBytes: number;
  readonly clientTokenTtl: number;
  readonly ledgerPolicy: ReadonlyMap<string, DomainPolicy> | undefined;
  readonly ledgerChallengeTtl: number;
  readonly ledgerRateLimit: ConstructorParameters<typeof TokenBucketLimiter>[0];
  /** sqlite (default) or postgres: the log shared by several nodes (ledger/postgres.ts). */
  readonly ledgerBackend?: 'sqlite' | 'postgres';
  readonly ledgerFollowMs?: number;
  readonly postgresUrl?: string;
  readonly grpcMaxUnauthenticatedBytes: number;
  readonly grpcMaxInflightBytes: number;
  readonly grpcMaxConnections: number;
  readonly grpcMaxConnectionsPerAddress: number;
  readonly grpcMaxStreamsPerConnection: number;
  readonly grpcHandshakeTimeoutMs: number;
  readonly grpcIdleTimeoutMs: number;
  readonly clientLoginRateLimit: { readonly capacity: number; readonly refillPerSecond: number };
}

/** What the messaging methods need beyond the ledger and the gateway keys (serve opens them). */
export interface GatewayMessaging {
  readonly pipeline: MessagingDeps['pipeline'];
  readonly store: MailboxStore;
  readonly signal: MailboxSignal;
  readonly metrics?: MessagingMetrics;
  /** Calls by method and status, ledger writes (request-metrics.ts). */
  readonly apiMetrics?: ClientApiRequestMetrics;
  /** GetTransitReceipt's sources: this gateway's transit log and its peers' (§12.7). */
  readonly transit?: TransitDeps;
  /** The trusted clock expiry is judged by (gatewayClock). */
  readonly clock?: TrustedClock;
}

/** Where the gateway keeps the highest trusted time it reached, across restarts. */
export const TRUSTED_TIME_FILE = 'trusted-time';

/** The saved high-water mark (ms), or undefined when there is none or it does not parse. */
export async function loadTrustedTime(dataDir: string): Promise<number | undefined> {
  const raw = await readFile(join(dataDir, TRUSTED_TIME_FILE), 'utf8').catch(() => '');
  const t = /^[0-9]{1,16}\n?$/.test(raw) ? Number(raw.trim()) : NaN;
  return Number.isSafeInteger(t) ? t : undefined;
}

export async function saveTrustedTime(dataDir: string, time: number): Promise<void> {
  await writeFileAtomic(join(dataDir, TRUSTED_TIME_FILE), Buffer.from(`${time}\n`), {
    mode: 0o600,
    overwrite: true,
    code: 'ERR_DATA_DIR',
  });
}

/**
 * The gateway's trusted clock (docs/EXPIRY.md): its local clock, never below the newest ledger
 * entry's logged time (covered by its signed checkpoint), the newest anchor's block time, nor the
 * highest time it reached before a restart (`saved`, loadTrustedTime).
 */
export function gatewayClock(
  ledger: IdentityLedger,
  attestations?: AttestationSource,
  local: () => number = Date.now,
  saved?: number,
): TrustedClock {
  const logged = (): number | undefined => {
    const size = ledger.checkpoint().size;
    return size > 0 ? ledger.entryAt(size - 1).loggedAt : undefined;
  };
  const anchored = (): number | undefined => {
    let t: number | undefined;
    for (const a of attestations?.() ?? []) {
      if (a.anchor !== undefined) t = Math.max(t ?? 0, a.anchor.blockTime);
    }
    return t;
  };
  return new TrustedClock({ local, floors: [logged, anchored, () => saved] });
}

/** The gateway's TLS material and its domain's ledger, opened from the data directory. */
export interface GatewayLedger {
  readonly tls: TlsMaterial;
  readonly ledger: IdentityLedger;
  /**
   * The gateway's transit log (PROTOCOL.md §12.7), its key published in the gateway record; none
   * when several nodes share the ledger (AFTERSMTP_LEDGER=postgres): one log per node under one
   * origin and key would sign different roots for one size, and a shared one is not built yet.
   */
  readonly transit: TransitLog | undefined;
  /** Fields for the "aftersmtp serving" log line. */
  readonly announce: Record<string, unknown>;
  close(): void;
}

export interface GatewayClientApi {
  /** Fields for the "aftersmtp serving" log line. */
  readonly announce: Record<string, unknown>;
  /** The listener's connections, refusals and request bytes in flight (metrics). */
  stats(): ClientApiStats;
  close(): Promise<void>;
}

/**
 * The certificate (generated on first start) and the domain's ledger with the gateway's own
 * record published in it; ledger policies must name the served domain.
 */
export async function openGatewayLedger(
  config: ClientApiSettings,
  identity: SecretKeySet,
  log: { warn(msg: string): void },
): Promise<GatewayLedger> {
  const policies = config.ledgerPolicy ?? new Map();
  for (const domain of policies.keys()) {
    if (domain !== config.domain) {
      throw invalidConfiguration([
        `AFTERSMTP_LEDGER_POLICY: ${domain} is not served here (AFTERSMTP_DOMAIN is ${config.domain})`,
      ]);
    }
  }
  const notes: string[] = [];
  const files = gatewayIdentityFiles(config);
  const passphrase = await gatewayPassphrase(config, files, notes);
  const tls = await loadOrCreateCertificate({
    dir: config.dataDir,
    commonName: config.domain,
    dnsNames: [config.domain, 'localhost'],
    ips: ['127.0.0.1', '::1'],
    passphrase,
  });
  if (tls.created) log.warn(`generated a self-signed TLS certificate in ${tls.certFile}`);
  const shared = config.ledgerBackend === 'postgres';
  const opened = shared
    ? openPostgresLedger({
        dataDir: config.dataDir,
        domains: [config.domain],
        passphrase,
        url: config.postgresUrl ?? '',
        followMs: config.ledgerFollowMs,
        rateLimit: config.ledgerRateLimit,
        ledger: { policies, challengeTtlMs: config.ledgerChallengeTtl * 1000 },
      })
    : openDataDirLedger({
        dataDir: config.dataDir,
        domains: [config.domain],
        passphrase,
        ledger: {
          policies,
          challengeTtlMs: config.ledgerChallengeTtl * 1000,
          limiter: new TokenBucketLimiter(config.ledgerRateLimit),
        },
      });
  const { ledger, keyCreated } = await opened.catch((err: unknown) => {
    const wrong = wrongGatewayPassphrase(err, join(config.dataDir, LOG_KEY_FILE), config, files);
    throw asEnvironmentError(
      wrong,
      'ERR_LEDGER_STORE',
      shared
        ? `cannot open the ledger on PostgreSQL (AFTERSMTP_LEDGER=postgres, AFTERSMTP_POSTGRES_URL) with the key in ${config.dataDir}`
        : `cannot open the ledger in ${config.dataDir} (AFTERSMTP_DATA_DIR)`,
    );
  });
  let transit: TransitLog | undefined;
  try {
    if (keyCreated) log.warn(`created the ledger key of ${ledger.origin}`);
    if (!shared) transit = openTransitLog(config.dataDir, config.domain);
    const published = publishGatewayRecord(
      ledger,
      identity,
      tls.spki,
      transit === undefined ? [] : [{ name: EXT_TRANSIT_LOG_KEY, value: transit.publicKey }],
    );
    if (published.note !== undefined) log.warn(published.note);
    const policy = ledger.policy(config.domain);
    return {
      tls,
      ledger,
      announce: {
        tlsSpki: tls.spkiPin,
        tlsCert: tls.certFile,
        logOrigin: ledger.origin,
        logKey: ledger.verifierKey,
        treeSize: ledger.checkpoint().size,
        ledgerPolicy: `${policy.policy}${policy.policy === 'open-pow' ? `:${policy.bits}` : ''}`,
        gatewayRecord: { action: published.action, leaf: published.leafIndex },
        transitLog:
          transit === undefined
            ? 'off (several nodes)'
            : { origin: transit.origin, key: transit.verifierKey, size: transit.size() },
      },
      transit,
      close: () => {
        transit?.close();
        ledger.close();
      },
    };
  } catch (err) {
    transit?.close();
    ledger.close();
    throw asEnvironmentError(
      err,
      'ERR_LEDGER_STORE',
      `cannot write the ledger in ${config.dataDir} (AFTERSMTP_DATA_DIR)`,
    );
  }
}

/** The gRPC listener over an open gateway ledger; close() stops it (the ledger stays open). */
export async function startGatewayClientApi(
  config: ClientApiSettings,
  identity: SecretKeySet,
  gw: GatewayLedger,
  log: ClientApiLogger,
  messaging?: GatewayMessaging,
  attestations?: AttestationSource,
): Promise<GatewayClientApi> {
  const server = await startClientApi({
    host: config.grpcListen.host,
    port: config.grpcListen.port,
    certPem: gw.tls.certPem,
    keyPem: gw.tls.keyPem,
    ledger: gw.ledger,
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
    setting: 'AFTERSMTP_GRPC_LISTEN',
    metrics: messaging?.apiMetrics,
    ...(attestations !== undefined ? { attestations } : {}),
    ...(messaging?.transit?.own !== undefined ? { transit: messaging.transit.own } : {}),
    log,
    messaging:
      messaging === undefined
        ? undefined
        : {
            ...messaging,
            gateway: identity,
            ledger: gw.ledger,
            domain: config.domain,
            maxEnvelopeBytes: config.maxEnvelopeBytes,
            tokenTtlMs: config.clientTokenTtl * 1000,
          },
  });
  return {
    announce: {
      grpc: `${server.host.includes(':') ? `[${server.host}]` : server.host}:${server.port}`,
      grpcServices: [...new Set(server.methods.map((m) => m.split('/')[0]))],
    },
    stats: () => server.stats(),
    close: () => server.close(),
  };
}
