/**
 * `aftersmtp serve`: the composition root. Validates the configuration, loads (or creates) the
 * gateway identity, and wires, in order: the queue and the mailbox store, the admin listener,
 * the gateway's certificate and ledger, the verified resolver of other domains, the maps, the
 * pipeline (the one way in) over all of them, then the entrances that hand it mail (the client
 * API over gRPC, the relay over QUIC, SMTP) and the delivery worker that takes committed mail
 * out. It stops cleanly on SIGINT/SIGTERM, in reverse order, and logs what it serves.
 */
import { join } from 'node:path';
import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { Gauge, Registry } from 'prom-client';
import { registerProcessMetrics } from '../../admin/process-metrics.js';
import { Readiness } from '../../admin/readiness.js';
import { startAdminServer } from '../../admin/server.js';
import { clientApiMethods } from '../../amp/client-api/definition.js';
import { registerClientApiRequestMetrics } from '../../amp/client-api/request-metrics.js';
import { routeGrpcLogs } from '../../amp/client-api/server.js';
import { createLogger } from '../../log.js';
import { backgroundThreadPool } from '../../native/pool.js';
import { registerCertificateMetrics } from '../../tls/metrics.js';
import { loadConfig } from '../../config/load.js';
import { loadOrCreateGatewayIdentity } from '../../identity/gateway.js';
import type { AttestationSource } from '../../amp/client-api/server.js';
import {
  gatewayClock,
  loadTrustedTime,
  openGatewayLedger,
  saveTrustedTime,
  startGatewayClientApi,
} from '../../amp/client-api/gateway.js';
import {
  openRelay,
  openRemoteIdentities,
  remoteDirectory,
  type Relay,
} from '../../amp/relay/index.js';
import { DeliveryWorker } from '../../delivery/worker.js';
import { openAttestations } from '../attestation.js';
import { registerMessagingMetrics } from '../../mailbox/metrics.js';
import { MailboxSignal } from '../../mailbox/signal.js';
import { TransitOutbox } from '../../mailbox/transit-outbox.js';
import { MailboxWriter } from '../../mailbox/writer.js';
import { Dnsbl, type DnsblZone } from '../../pipeline/dnsbl.js';
import { SenderDomainCheck } from '../../pipeline/sender-domain.js';
import { dmarcCheck } from '../../pipeline/dmarc.js';
import { registerDnsblMetrics } from '../../pipeline/dnsbl-metrics.js';
import { mailAuthenticator } from '../../pipeline/authentication.js';
import { Pipeline } from '../../pipeline/pipeline.js';
import type { PolicyCheck } from '../../pipeline/policy.js';
import type { LedgerView, RemoteDirectory } from '../../pipeline/recipients.js';
import { ampSenderCheck, spamCheck, type SpamLogger } from '../../pipeline/spam.js';
import {
  RspamdClient,
  SpamdClient,
  registerSpamMetrics,
  type SpamMetrics,
} from '../../spam/index.js';
import { registerQueueMetrics } from '../../queue/metrics.js';
import { openQueue } from '../../queue/open.js';
import {
  MappingEngine,
  PgMapsFollower,
  mapsDatabasePath,
  sharedMaps,
} from '../../routing/index.js';
import { openStore, storeKeySource } from '../../store/open.js';
import { keyFileOf } from '../../store/keys.js';
import { KeyringFollower } from '../../store/keyring-follower.js';
import { registerQuicMetrics } from '../../quic/metrics.js';
import type { SmtpListeners } from '../../legacy/smtp/server.js';
import { startSmtpThread, type SmtpThreadOptions } from '../../legacy/smtp/thread.js';
import { SubmissionUsers } from '../../legacy/users.js';
import { SEAL_OVERHEAD_BYTES } from '../../config/checks.js';
import type { Config } from '../../config/schema.js';
import { NODE_FLAGS } from '../node-flags.js';
import { registerClientApiMetrics } from '../../amp/client-api/metrics.js';
import { prepareDataDir } from '../../storage/datadir.js';
import { registerStorageMetrics } from '../../storage/metrics.js';
import { StorageSpace, storageFloor } from '../../storage/space.js';
import { checkDescriptorBudget } from '../../net/limits.js';
import { DnsClient, type DnsResolver } from '../../net/dns.js';
import { DnsCache, totalStats, type DnsCacheStats } from '../../net/dns-cache.js';
import { registerDnsCacheMetrics } from '../../net/dns-metrics.js';
import {
  createOffRamp,
  CredentialsFile,
  registerOffRampMetrics,
} from '../../legacy/offramp/index.js';
import { dkimSign } from '../../mail/dkim.js';
import { DkimKeys } from '../../mail/dkim-keys.js';
import { loadSrsSecret, Srs } from '../../mail/srs.js';
import { dkimZoneLine } from './dkim.js';
import { mailScriptCheck } from '../../script/check.js';
import { registerScriptMetrics, type ScriptObserver } from '../../script/metrics.js';
import { ScriptSandbox } from '../../script/sandbox.js';
import { PgScriptsFollower, sharedScriptDocuments } from '../../script/shared.js';
import { ScriptStore, type ScriptSnapshot } from '../../script/store.js';
import { createWebhookDelivery } from '../../script/webhook.js';
import type { Command } from '../command.js';

/** The SMTP listeners from the configuration. */
async function openSmtp(
  config: Config,
  gwTls: { certPem: string; keyPem: string },
  pipeline: Pipeline,
  users: SubmissionUsers,
  host: string,
  dns: Pick<SmtpThreadOptions, 'dns' | 'dnsCacheEntries' | 'onDnsStats'>,
  log: SmtpThreadOptions['log'],
  onFailure: (err: Error) => void,
): Promise<SmtpListeners> {
  // A message must fit its envelope (config/checks.ts refuses a setting that cannot).
  const maxMessageBytes =
    config.smtpMaxMessageBytes ??
    Math.max(1024, Math.min(25 * 1024 * 1024, config.maxEnvelopeBytes - SEAL_OVERHEAD_BYTES));
  const tls =
    config.smtpTlsCert !== undefined && config.smtpTlsKey !== undefined
      ? { cert: await readFile(config.smtpTlsCert), key: await readFile(config.smtpTlsKey) }
      : { cert: gwTls.certPem, key: gwTls.keyPem };
  const on = (a: Config['smtpListen']) => (a === 'off' ? undefined : a);
  return startSmtpThread({
    pipeline,
    users,
    // The listener thread runs the authentication check (mailauth) with a DNS cache of its own,
    // in front of the gateway's DNS client.
    ...dns,
    hostname: host,
    tls,
    listen: {
      ...(on(config.smtpListen) !== undefined ? { mx: on(config.smtpListen) } : {}),
      ...(on(config.submissionListen) !== undefined
        ? { submission: on(config.submissionListen) }
        : {}),
      ...(on(config.submissionsListen) !== undefined
        ? { submissions: on(config.submissionsListen) }
        : {}),
    },
    delayReject: config.smtpDelayReject,
    limits: {
      maxMessageBytes,
      maxRecipients: config.smtpMaxRecipients,
      maxConnections: config.smtpMaxConnections,
      maxConnectionsPerAddress: config.smtpMaxConnectionsPerAddress,
      commandsPerMinute: config.smtpCommandsPerMinute,
      minDataRate: config.smtpMinDataRate,
      idleTimeoutMs: config.smtpTimeout * 1000,
    },
    log,
    onFailure,
  });
}

/** How long a stop may take after the first SIGINT/SIGTERM before the process exits anyway. */
/**
 * The policy stage's checks from the settings: spam_cat_acl with the scanners that have a URL
 * (docs/OPERATIONS.md, "Spam policy"; which recipients are scanned is the spam_policy map's
 * business), then the AMP sender rule when one of its limits is set.
 */
function spamPolicyChecks(
  config: Config,
  deps: {
    ledger: LedgerView;
    remote: RemoteDirectory;
    metrics: SpamMetrics;
    log: SpamLogger;
  },
): PolicyCheck[] {
  const timeoutMs = config.spamTimeoutMs;
  const checks: PolicyCheck[] = [
    spamCheck({
      scanners: {
        ...(config.rspamdUrl !== undefined
          ? { rspamd: new RspamdClient({ url: config.rspamdUrl, timeoutMs }) }
          : {}),
        ...(config.spamdUrl !== undefined
          ? { spamassassin: new SpamdClient({ url: config.spamdUrl, timeoutMs }) }
          : {}),
      },
      metrics: deps.metrics,
      log: deps.log,
    }),
  ];
  if (config.spamAmpMinSenderAge > 0 || config.spamAmpMaxPerHour > 0) {
    checks.push(
      ampSenderCheck({
        minSenderAgeMs: config.spamAmpMinSenderAge * 1000,
        maxPerHour: config.spamAmpMaxPerHour,
        ledger: deps.ledger,
        remote: deps.remote,
        metrics: deps.metrics,
      }),
    );
  }
  return checks;
}

export const STOP_DEADLINE_MS = 20_000;

interface StopLog {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** Resolves with the first SIGINT or SIGTERM; arms the deadline and the second-signal exit. */
function stopSignals(log: StopLog): Promise<string> {
  return new Promise<string>((resolve) => {
    let first: string | undefined;
    const onSignal = (signal: string): void => {
      if (first !== undefined) {
        log.error({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      first = signal;
      setTimeout(() => {
        log.error({ signal, deadlineMs: STOP_DEADLINE_MS }, 'did not stop in time: exiting now');
        process.exit(1);
      }, STOP_DEADLINE_MS).unref();
      resolve(signal);
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
  });
}

/** What to undo at shutdown (or when start-up fails half way), last opened first. */
class Teardown {
  readonly #steps: (() => unknown)[] = [];

  add(step: () => unknown): void {
    this.#steps.push(step);
  }

  async run(): Promise<void> {
    for (const step of this.#steps.reverse()) await step();
    this.#steps.length = 0;
  }
}

/**
 * MailScript (docs/MAILSCRIPT.md): the scripts in the maps database (with AFTERSMTP_MAPS=postgres
 * a copy of the scripts shared on the server, followed every AFTERSMTP_SCRIPT_POLL_MS), reloaded every
 * AFTERSMTP_SCRIPT_POLL_MS, run in one sandbox with the configured limits; a reload drops the
 * warm contexts of versions no longer current.
 */
async function openMailScript(
  config: Config,
  log: ReturnType<typeof createLogger>,
  observe: ScriptObserver,
): Promise<{ check: PolicyCheck; close(): void }> {
  const store = ScriptStore.open({
    path: mapsDatabasePath(config.dataDir),
    pollMs: config.scriptPollMs,
  });
  const sandbox = await ScriptSandbox.create({
    timeoutMs: config.scriptTimeoutMs,
    memoryBytes: config.scriptMemoryMb * 1024 * 1024,
    poolSize: config.scriptPoolSize,
  });
  const sources = (s: ScriptSnapshot): Map<string, string> =>
    new Map(
      [...(s.global !== undefined ? [s.global] : []), ...s.byDomain.values()].map((x) => [
        `${x.scope}@${x.version}`,
        x.source,
      ]),
    );
  let previous = sources(store.snapshot());
  store.onReload((s) => {
    // A warm context stays only for a key whose source did not change: the first copy of the
    // shared scripts can reuse a version number this node's own database had used.
    const now = sources(s);
    sandbox.retain((k) => now.has(k) && previous.get(k) === now.get(k));
    previous = now;
    log.info({ version: s.version, scripts: now.size }, 'scripts reloaded');
  });
  store.onError((err) =>
    log.error({ err }, 'scripts: a change could not be loaded; the previous scripts stay in use'),
  );
  let follower: PgScriptsFollower | undefined;
  let docs: ReturnType<typeof sharedScriptDocuments> | undefined;
  if (config.mapsBackend === 'postgres') {
    // Shared by every node, like the maps (script/shared.ts): maps.sqlite holds this node's copy.
    docs = sharedScriptDocuments(config.postgresUrl);
    follower = new PgScriptsFollower(store, docs, config.scriptPollMs);
    try {
      await follower.syncOnce();
    } catch (err) {
      store.close();
      sandbox.close();
      await docs.close();
      throw err;
    }
    follower.start((err) =>
      log.warn({ err }, 'scripts: cannot read the shared scripts; the last ones stay in use'),
    );
  }
  const check = mailScriptCheck({
    scripts: () => store.snapshot(),
    sandbox,
    webhooks: config.scriptWebhooks,
    log,
    observe,
  });
  return {
    check,
    close() {
      follower?.stop();
      void docs?.close();
      store.close();
      sandbox.close();
    },
  };
}

export const serveCommand: Command = {
  path: ['serve'],
  summary:
    'Run the gateway on the configuration in the AFTERSMTP_* environment (embedded defaults in ./data).',
  usage: '[--help]',
  options: {},
  async run() {
    const config = loadConfig();
    const log = createLogger(config.logLevel);
    routeGrpcLogs(log);
    // Installed before anything is opened: a signal during start-up lets the start finish (or
    // fail) and then stops, and any stop that takes longer than STOP_DEADLINE_MS, or a second
    // signal, ends the process at once, so SIGTERM always stops it.
    const stopped = stopSignals(log);
    let failed: Error | undefined;
    const missingFlags = NODE_FLAGS.filter((f) => !process.execArgv.includes(f));
    if (missingFlags.length > 0) {
      log.warn(
        { missing: missingFlags },
        'started without the Node.js flags of bin/aftersmtp: slower at low load (docs/OPERATIONS.md)',
      );
    }
    if (!(await backgroundThreadPool())) {
      log.warn('not every thread of the libuv pool took the background scheduling class');
    }
    prepareDataDir(config.dataDir);
    checkDescriptorBudget(config);
    // Read before anything is opened: a file others may read, or a bad line, stops the start.
    // Watched after: a change is live without a restart, a bad one is refused (logged).
    const credentialsFile = config.offrampCredentialsFile;
    const relayCredentials =
      credentialsFile !== undefined
        ? new CredentialsFile(credentialsFile, (err) =>
            err === undefined
              ? log.info({ file: credentialsFile }, 'off-ramp credentials reloaded')
              : log.error(
                  { file: credentialsFile, err: err.message },
                  'off-ramp credentials file changed and refused: the previous credentials stay in force',
                ),
          )
        : undefined;
    const { identity, notes, passphrase } = await loadOrCreateGatewayIdentity(config);
    for (const note of notes) log.warn(note);

    const registry = new Registry();
    registerProcessMetrics(registry);
    new Gauge({
      name: 'aftersmtp_gateway_info',
      help: 'Constant 1, labelled with the gateway identity.',
      labelNames: ['did', 'suite', 'key_id'],
      registers: [registry],
    }).set(
      {
        did: identity.record.did,
        suite: identity.record.suite,
        key_id: identity.record.keyId.toString('base64'),
      },
      1,
    );

    const teardown = new Teardown();
    teardown.add(() => relayCredentials?.close());
    const readiness = new Readiness();
    try {
      // The reserve of the data directory's file system (AFTERSMTP_STORAGE_MIN_FREE_BYTES, never
      // below the floor): below it the embedded queue and store refuse new mail as a temporary
      // failure.
      const space = new StorageSpace({
        path: config.dataDir,
        minFreeBytes: config.storageMinFreeBytes,
        floorBytes: storageFloor(config.maxEnvelopeBytes),
        onChange: (full, freeBytes, why) =>
          full
            ? log.error(
                { freeBytes, reserve: space.reserveBytes, why },
                'storage full: refusing new mail (temporary failure) until there is room',
              )
            : log.warn({ freeBytes, why }, 'storage has room again: taking new mail'),
      });
      registerStorageMetrics(registry, space);
      // DKIM keys first: the queue signs the DSNs it makes (From MAILER-DAEMON@<domain>).
      const dkimKeys = new DkimKeys(config.dataDir, passphrase);
      for (const k of await dkimKeys.ensure(config.domain)) {
        log.warn(
          {
            domain: k.domain,
            selector: k.selector,
            algorithm: k.algorithm,
            record: dkimZoneLine(k),
          },
          'made a DKIM key: publish its record (aftersmtp dkim list, aftersmtp dns)',
        );
      }
      const queue = await openQueue(
        config,
        {
          reportingMta: config.domain,
          sign: (m) =>
            Buffer.concat([
              Buffer.from(dkimSign(m, dkimKeys.signingKeys(config.domain)), 'latin1'),
              m,
            ]),
        },
        space,
      );
      teardown.add(() => queue.close());
      const store = await openStore(config, {}, space);
      teardown.add(() => store.close());
      // A keyring file is followed: a rotation is taken and finished (records re-sealed) live.
      const keyFile = keyFileOf(storeKeySource(config));
      if (keyFile !== undefined) {
        const keyring = new KeyringFollower(keyFile, store, log);
        teardown.add(() => keyring.close());
      }
      // Every series is registered now, before anything is served (zero until it happens).
      const started: { relay?: Relay; certPem?: string } = {};
      registerQueueMetrics(registry, queue);
      const metrics = registerMessagingMetrics(registry);
      const offrampMetrics = registerOffRampMetrics(registry);
      const apiMetrics = registerClientApiRequestMetrics(registry, clientApiMethods());
      registerQuicMetrics(registry, () => started.relay?.transport.stats());
      registerCertificateMetrics(registry, () => started.certPem);
      // One DNS client for the on-ramp's SPF, DKIM, DMARC and ARC checks and the off-ramp; in
      // front of it a cache that keeps each answer's AD bit for its TTL here, and one on the SMTP
      // listener thread for its checks (docs/OPERATIONS.md, "DNS: one client and its caches").
      const dnsClient = new DnsClient({ servers: config.dnsServers, timeoutMs: 5000, tries: 2 });
      const dnsCache =
        config.dnsCacheEntries > 0
          ? new DnsCache(dnsClient, { maxEntries: config.dnsCacheEntries })
          : undefined;
      const dns: DnsResolver = dnsCache ?? dnsClient;
      let smtpDnsStats: DnsCacheStats | undefined;
      registerDnsCacheMetrics(registry, () => totalStats([dnsCache?.stats(), smtpDnsStats]));
      readiness.add('store', () => store.quarantined());
      readiness.add('queue', () => queue.stats());
      const signal = new MailboxSignal();
      const admin = await startAdminServer(config.adminListen, registry, readiness);
      teardown.add(() => admin.close());
      const gw = await openGatewayLedger(config, identity, log);
      teardown.add(() => gw.close());
      started.certPem = gw.tls.certPem;
      readiness.add('ledger', () => gw.ledger.checkpoint());
      const identities = await openRemoteIdentities(config);
      teardown.add(() => identities.close());
      const maps = MappingEngine.open({
        path: mapsDatabasePath(config.dataDir),
        maxEntriesPerMap: config.mapsMaxEntries,
        pollMs: config.mapsPollMs,
        parentDomainMatches: config.mapsParentDomainMatches,
        recipientDelimiter: config.recipientDelimiter,
      });
      teardown.add(() => maps.close());
      maps.onReload((version) => log.info({ version }, 'maps reloaded'));
      maps.onError((err) =>
        log.error({ err }, 'maps: a change could not be loaded; the previous maps stay in use'),
      );
      if (config.mapsBackend === 'postgres') {
        // The maps shared by every node: maps.sqlite is this node's cache of them (docs/MAPS.md).
        const docs = sharedMaps(config.postgresUrl);
        teardown.add(() => docs.close());
        const follower = new PgMapsFollower(maps, docs, config.mapsPollMs);
        await follower.syncOnce();
        follower.start((err) =>
          log.warn({ err }, 'maps: cannot read the shared maps; the last ones stay in use'),
        );
        teardown.add(() => follower.stop());
      }
      // Expiry is judged by the trusted clock at every entrance, read path and purge
      // (docs/EXPIRY.md); the anchors join it once attestations are open.
      const late: { attestations?: AttestationSource } = {};
      const clock = gatewayClock(
        gw.ledger,
        () => late.attestations?.() ?? [],
        Date.now,
        await loadTrustedTime(config.dataDir),
      );
      const now = (): number => clock.now();
      // The gateway's own transit log and the store outbox that feeds it (PROTOCOL §12.7).
      const transitLog = gw.transit;
      const transit =
        transitLog === undefined
          ? undefined
          : {
              origin: transitLog.origin,
              outbox: new TransitOutbox({
                store,
                log: transitLog,
                onError: (err) =>
                  log.warn({ err }, 'transit log: cannot append receipts; they stay in the outbox'),
              }),
            };
      if (transit !== undefined) {
        const recovered = await transit.outbox.recover();
        if (recovered > 0) log.info(`transit log: appended ${recovered} receipts of the outbox`);
        teardown.add(() => transit.outbox.close());
      }
      const mailbox = new MailboxWriter({
        store,
        gatewayKeys: identity,
        signal,
        metrics,
        ...(transit === undefined ? {} : { transit: transit.outbox }),
        now,
      });
      const mailScript = await openMailScript(config, log, registerScriptMetrics(registry));
      teardown.add(() => mailScript.close());
      const srs = new Srs({ secret: await loadSrsSecret(config.dataDir) });
      const gatewayHost = config.hostname ?? hostname();
      const spamMetrics = registerSpamMetrics(registry);
      const remote = remoteDirectory(identities);
      const policy = spamPolicyChecks(config, {
        ledger: gw.ledger,
        remote,
        metrics: spamMetrics,
        log,
      });
      // DNS blocklists of port 25's clients and senders, through the gateway's DNS cache.
      const countLookup = registerDnsblMetrics(
        registry,
        [...config.smtpDnsbl, ...config.smtpRhsbl].map((z) => z.zone),
      );
      const blocklist = (zones: readonly DnsblZone[]): Dnsbl | undefined =>
        zones.length === 0
          ? undefined
          : new Dnsbl({
              zones,
              dns,
              timeoutMs: config.smtpDnsCheckTimeoutMs,
              onResult: countLookup,
            });
      const blocklists = { dnsbl: blocklist(config.smtpDnsbl), rhsbl: blocklist(config.smtpRhsbl) };
      const senderDomains = config.smtpRejectUnknownSenderDomain
        ? new SenderDomainCheck({ dns, timeoutMs: config.smtpDnsCheckTimeoutMs })
        : undefined;
      const pipeline = new Pipeline({
        // DMARC first (a refusal ends the message before any scan), then the spam check:
        // MailScript reads its report.
        policy: [
          ...(config.smtpDmarcEnforce
            ? [
                dmarcCheck({
                  trustedArcSealers: config.smtpArcTrustedSealers,
                  onOverride: (facts) =>
                    log.info(facts, 'dmarc: policy overridden by a trusted ARC sealer'),
                }),
              ]
            : []),
          ...policy,
          mailScript.check,
        ],
        domains: [config.domain],
        ledger: gw.ledger,
        remote,
        maps: () => maps.snapshot(),
        delimiter: config.recipientDelimiter,
        queue,
        mailbox,
        gatewayKeys: identity,
        hostname: gatewayHost,
        maxEnvelopeBytes: config.maxEnvelopeBytes,
        legacyTtlMs: config.legacyTtl * 1000,
        dkimKeys,
        srs,
        authenticator: mailAuthenticator({ hostname: gatewayHost, dns }),
        ...(blocklists.dnsbl !== undefined ? { dnsbl: blocklists.dnsbl } : {}),
        ...(blocklists.rhsbl !== undefined ? { rhsbl: blocklists.rhsbl } : {}),
        ...(senderDomains !== undefined ? { senderDomains } : {}),
        log,
        metrics,
      });
      // Checkpoints anchored on a chain and sent to witnesses, through the queue (src/cli/attestation.ts).
      const attestations = await openAttestations(
        config,
        gw.ledger,
        queue,
        log,
        transitLog === undefined ? [] : [transitLog],
      );
      teardown.add(() => attestations.close());
      late.attestations = attestations.source;
      const clientApi = await startGatewayClientApi(
        config,
        identity,
        gw,
        log,
        {
          pipeline,
          store,
          signal,
          metrics,
          apiMetrics,
          clock,
          transit: {
            ...(transit === undefined
              ? {}
              : {
                  own: {
                    log: transit.outbox,
                    anchored: () => attestations.anchored(transit.origin),
                  },
                }),
            peer: (domain, commitment) => identities.transitProof(domain, commitment),
          },
        },
        attestations.source,
      );
      teardown.add(() => clientApi.close());
      registerClientApiMetrics(registry, clientApi);
      const relay = await openRelay({
        config,
        tls: gw.tls,
        gatewayKeys: identity,
        identities,
        pipeline,
        log,
        now,
      });
      teardown.add(() => relay.close());
      started.relay = relay;
      const users = SubmissionUsers.open(config.dataDir);
      teardown.add(() => users.close());
      // Without its listeners the gateway takes no legacy mail: it stops in order and exits 1,
      // for its supervisor to start it whole again.
      const smtpDns = {
        dns: dnsClient,
        dnsCacheEntries: config.dnsCacheEntries,
        onDnsStats: (stats: DnsCacheStats) => (smtpDnsStats = stats),
      };
      const smtp = await openSmtp(
        config,
        gw.tls,
        pipeline,
        users,
        gatewayHost,
        smtpDns,
        log,
        (err) => {
          log.error({ err }, 'the SMTP listeners are gone: stopping');
          failed = err;
          process.kill(process.pid, 'SIGTERM');
        },
      );
      teardown.add(() => smtp.close());
      const offramp = createOffRamp({
        maps: () => maps.snapshot(),
        dns,
        hostname: gatewayHost,
        log,
        metrics: offrampMetrics,
        policyCacheDir: join(config.dataDir, 'mta-sts'),
        port: config.offrampPort,
        connectionCacheMs: config.offrampConnectionCacheMs,
        ...(relayCredentials !== undefined ? { credentials: relayCredentials.lookup } : {}),
      });
      teardown.add(() => offramp.close()); // after the worker's stop: QUIT to the kept sessions
      const worker = new DeliveryWorker({
        now,
        queue,
        mailbox,
        ledger: gw.ledger,
        gateway: identity,
        domain: config.domain,
        maxEnvelopeBytes: config.maxEnvelopeBytes,
        concurrency: config.deliveryConcurrency,
        perPeer: config.deliveryPeerConcurrency,
        perDestination: config.deliveryDestinationConcurrency,
        maxHeldBytes: config.deliveryMaxHeldBytes,
        log,
        metrics,
        remote: (job) => relay.sender.relayJob(job),
        offramp,
        handlers: {
          ...attestations.handlers,
          'webhook:': createWebhookDelivery({
            allowed: () => config.scriptWebhooks,
            timeoutMs: config.scriptWebhookTimeoutMs,
          }),
        },
      });
      worker.start();
      attestations.start();
      teardown.add(() => worker.stop());
      const purge = setInterval(() => {
        // The high-water mark first: after a restart the clock starts from it (docs/EXPIRY.md).
        const trusted = now();
        const behind = trusted - Date.now();
        if (behind > 60_000) {
          log.warn(
            { trustedTime: new Date(trusted).toISOString(), behindMs: behind },
            'the local clock is behind the trusted time (set back, or it ran ahead before)',
          );
        }
        saveTrustedTime(config.dataDir, trusted).catch((err: unknown) =>
          log.error({ err }, 'cannot save the trusted time'),
        );
        metrics
          .storeOp('purgeExpired', () => store.purgeExpired(now()))
          .then(
            (n) => n > 0 && log.info({ purged: n }, 'purged expired mail'),
            (err: unknown) => log.error({ err }, 'purging expired mail failed'),
          );
      }, config.mailboxPurgeInterval * 1000);
      purge.unref();
      teardown.add(() => clearInterval(purge));
      log.info(
        {
          gateway: identity.record.did,
          suite: identity.record.suite,
          keyId: identity.record.keyId.toString('base64'),
          dataDir: config.dataDir,
          admin: `http://${admin.address.address}:${admin.address.port}`,
          ...gw.announce,
          ...clientApi.announce,
          ...relay.announce,
          smtp: Object.fromEntries(
            Object.entries(smtp.addresses).map(([role, a]) => [role, `${a.address}:${a.port}`]),
          ),
          queue: queue.backend,
          store: store.backend,
          ...attestations.announce,
        },
        'aftersmtp serving',
      );
      readiness.serving();
    } catch (err) {
      await teardown.run();
      throw err;
    }
    log.info({ signal: await stopped }, 'shutting down');
    readiness.stopping();
    await teardown.run();
    log.info('stopped');
    if (failed !== undefined) throw failed;
  },
};
