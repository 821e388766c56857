// Two complete gateways in one process for the relay tests: each with its own ledger (SQLite in
// a temporary directory, its gateway record published with its TLS key), its own mailbox store
// (lmdb), its client API (gRPC over TLS, for ResolveIdentity) and its QUIC endpoint, all on
// 127.0.0.1 with port 0; and a real DNS server (unbound) serving `_aftersmtp._tcp` TXT records
// for both domains. The relay parts (directory, resolver, sender, receiver) are built on top once
// DNS is up, with a resolver state file in each gateway's data directory.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startClientApi, type ClientApiServer } from '../../src/amp/client-api/server.js';
import { loadConfig } from '../../src/config/load.js';
import {
  PeerDirectory,
  openRelay,
  openRemoteIdentities,
  type Relay,
  RelayReceiver,
  RelaySender,
  RemoteIdentityResolver,
  relayStatePath,
} from '../../src/amp/relay/index.js';
import { SecretKeySet, type SuiteId } from '../../src/identity/index.js';
import { logOrigin } from '../../src/ledger/checkpoint.js';
import { publishGatewayRecord } from '../../src/ledger/gateway-record.js';
import { IdentityLedger } from '../../src/ledger/ledger.js';
import { NoteSigner } from '../../src/ledger/note.js';
import {
  generateSelfSignedCertificate,
  QuicTransport,
  type CertificateAndKey,
  type QuicLimits,
} from '../../src/quic/index.js';
import { Keyring, generateKey } from '../../src/store/keys.js';
import { LmdbMailboxStore } from '../../src/store/lmdb.js';
import { LmdbQueue } from '../../src/queue/lmdb.js';
import { registerRequest } from '../ledger/helpers.js';
import { testPipeline } from '../helpers/pipeline.js';
import { startUnbound, type DnsServer } from '../client-api/helpers.js';
import { freePort } from '../helpers/ports.js';

export const ZONE = 'test';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface TestGateway {
  readonly domain: string;
  readonly dir: string;
  readonly keys: SecretKeySet;
  readonly cert: CertificateAndKey;
  readonly ledger: IdentityLedger;
  readonly api: ClientApiServer;
  readonly store: LmdbMailboxStore;
  readonly queue: LmdbQueue;
  readonly transport: QuicTransport;
  /** Set when the relay was built by openRelay (the serve wiring) instead of piece by piece. */
  relay?: Relay;
  directory?: PeerDirectory;
  identities?: RemoteIdentityResolver;
  sender?: RelaySender;
  receiver?: RelayReceiver;
  /** Registers a user (open-pow at low bits) and returns its keys. */
  user(localpart: string, suite?: SuiteId): Promise<SecretKeySet>;
  /** The TXT record of this gateway. */
  txt(extra?: string): string;
  close(): Promise<void>;
}

export interface GatewayOptions {
  readonly suite?: SuiteId;
  readonly limits?: QuicLimits;
  readonly maxEnvelopeBytes?: number;
  /** Build the relay with openRelay from AFTERSMTP_* settings (the QUIC port is reserved now). */
  readonly openRelay?: boolean;
}

export async function startTestGateway(
  domain: string,
  opts: GatewayOptions = {},
): Promise<TestGateway> {
  const dir = mkdtempSync(join(tmpdir(), `aftersmtp-relay-${domain}-`));
  const keys = SecretKeySet.generate(`did:aftersmtp:${domain}:gateway`, opts.suite ?? 'classic-v1');
  const cert = await generateSelfSignedCertificate({ commonName: domain });
  const ledger = new IdentityLedger({
    path: join(dir, 'ledger.sqlite'),
    signer: new NoteSigner(logOrigin(domain), randomBytes(32)),
    domains: [domain],
    policies: new Map([[domain, { policy: 'open-pow', bits: 6 }]]),
  });
  publishGatewayRecord(ledger, keys, cert.spki);
  const api = await startClientApi({
    host: '127.0.0.1',
    port: 0,
    certPem: cert.certPem,
    keyPem: cert.keyPem,
    ledger,
    maxMessageBytes: 64 * 1024,
    log: quiet,
  });
  const store = await LmdbMailboxStore.open({
    path: join(dir, 'mailboxes'),
    keyring: new Keyring([generateKey()]),
  });
  const queue = new LmdbQueue({ path: join(dir, 'queue'), bounce: { reportingMta: domain } });
  const gw: TestGateway = {
    domain,
    dir,
    keys,
    cert,
    ledger,
    api,
    store,
    queue,
    transport: undefined as unknown as QuicTransport,
    async user(localpart, suite = 'classic-v1') {
      const u = SecretKeySet.generate(`did:aftersmtp:${domain}:${localpart}`, suite);
      ledger.register(await registerRequest(ledger, u));
      return u;
    },
    txt(extra = '') {
      return `v=aftersmtp1; p=127.0.0.1:${quicPort ?? gw.transport.port}; k=${ledger.verifierKey}; c=127.0.0.1:${api.port}${extra}`;
    },
    async close() {
      gw.relay?.close();
      gw.identities?.close();
      gw.transport?.close();
      await api.close(0);
      await queue.close();
      await store.close();
      ledger.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const quicPort = opts.openRelay === true ? await freePort('udp') : undefined;
  (gw as { quicPort?: number }).quicPort = quicPort;
  if (quicPort !== undefined) return gw;
  (gw as { transport: QuicTransport }).transport = QuicTransport.open({
    certPem: cert.certPem,
    keyPem: cert.keyPem,
    host: '127.0.0.1',
    port: 0,
    limits: opts.limits,
    verifyInboundPeer: (p) => gw.receiver?.verifyPeer(p) ?? false,
    onMessage: (m) => (gw.receiver as RelayReceiver).handle(m),
  });
  return gw;
}

/** Builds the relay of `gw` against DNS `dns` (a new directory and resolver on the same state). */
export async function wireRelay(
  gw: TestGateway,
  dns: DnsServer,
  opts: { maxEnvelopeBytes?: number; cacheTtlMs?: number; lookupTimeoutMs?: number } = {},
): Promise<void> {
  const quicPort = (gw as { quicPort?: number }).quicPort;
  if (quicPort !== undefined) {
    // The serve wiring: everything from the environment, as `aftersmtp serve` would.
    const config = loadConfig({
      AFTERSMTP_DATA_DIR: gw.dir,
      AFTERSMTP_DOMAIN: gw.domain,
      AFTERSMTP_QUIC_LISTEN: `127.0.0.1:${quicPort}`,
      AFTERSMTP_DNS_SERVERS: dns.server,
    });
    gw.relay?.close();
    gw.identities?.close();
    const identities = await openRemoteIdentities(config);
    gw.relay = await openRelay({
      config,
      tls: gw.cert,
      gatewayKeys: gw.keys,
      identities,
      pipeline: testPipeline({ ...gw, identities }),
    });
    (gw as { transport: QuicTransport }).transport = gw.relay.transport;
    gw.identities = identities;
    gw.sender = gw.relay.sender;
    gw.receiver = gw.relay.receiver;
    return;
  }
  gw.identities?.close();
  const directory = new PeerDirectory({ dnsServers: [dns.server], ttlMs: 0 });
  const identities = await RemoteIdentityResolver.open({
    directory,
    statePath: relayStatePath(gw.dir),
    cacheTtlMs: opts.cacheTtlMs,
    ...(opts.lookupTimeoutMs !== undefined ? { timeoutMs: opts.lookupTimeoutMs } : {}),
  });
  gw.directory = directory;
  gw.identities = identities;
  gw.sender = new RelaySender({
    transport: gw.transport,
    identities,
    gatewayKeys: gw.keys,
    maxEnvelopeBytes: opts.maxEnvelopeBytes,
  });
  gw.receiver = new RelayReceiver({
    pipeline: testPipeline({ ...gw, identities }),
    maxEnvelopeBytes: opts.maxEnvelopeBytes,
  });
}

export async function startDns(gateways: readonly TestGateway[]): Promise<DnsServer> {
  const records: Record<string, string[]> = {};
  for (const g of gateways) records[`_aftersmtp._tcp.${g.domain}`] = [g.txt()];
  return startUnbound(ZONE, records);
}
