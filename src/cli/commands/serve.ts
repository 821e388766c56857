/**
 * `aftersmtp serve`: the composition root. Validates the configuration, loads (or creates) the
 * gateway identity, wires the listeners, and stops cleanly on SIGINT/SIGTERM. It serves the
 * admin listener (health and metrics), the client API (gRPC: ledger and messaging) and the AMP
 * relay (QUIC, gateway to gateway) over the delivery queue and the mailbox store, with the
 * delivery worker handing local mail to the store and remote mail to the relay; the legacy
 * bridge is wired here when it lands, and the log says exactly what is listening.
 * Shutdown runs in reverse order: purge timer, worker, relay, client API (and ledger), store,
 * queue, admin.
 */
import { Gauge, Registry } from 'prom-client';
import { registerProcessMetrics } from '../../admin/process-metrics.js';
import { Readiness } from '../../admin/readiness.js';
import { startAdminServer } from '../../admin/server.js';
import { clientApiMethods } from '../../amp/client-api/definition.js';
import { registerClientApiRequestMetrics } from '../../amp/client-api/request-metrics.js';
import { routeGrpcLogs } from '../../amp/client-api/server.js';
import { createLogger } from '../../log.js';
import { registerCertificateMetrics } from '../../tls/metrics.js';
import { loadConfig } from '../../config/load.js';
import { loadOrCreateGatewayIdentity } from '../../identity/gateway.js';
import { startGatewayClientApi } from '../../amp/client-api/gateway.js';
import { LocalDeliveryWorker } from '../../delivery/worker.js';
import { registerMessagingMetrics } from '../../mailbox/metrics.js';
import { MailboxSignal } from '../../mailbox/signal.js';
import { registerQueueMetrics } from '../../queue/metrics.js';
import { openQueue } from '../../queue/open.js';
import { openStore } from '../../store/open.js';
import { openRelay, type Relay } from '../../amp/relay/relay.js';
import { RelayError } from '../../amp/relay/errors.js';
import { registerQuicMetrics } from '../../quic/metrics.js';
import type { Command } from '../command.js';

export const serveCommand: Command = {
  path: ['serve'],
  summary:
    'Run the gateway on the configuration in the AFTERSMTP_* environment (embedded defaults in ./data).',
  usage: '[--help]',
  options: {},
  async run() {
    const config = loadConfig();
    // Installed before anything is announced, so a signal that follows the "serving" line at
    // once still stops the gateway cleanly.
    const stopped = new Promise<string>((resolve) => {
      process.once('SIGINT', () => resolve('SIGINT'));
      process.once('SIGTERM', () => resolve('SIGTERM'));
    });
    const log = createLogger(config.logLevel);
    routeGrpcLogs(log);
    const { identity, notes } = await loadOrCreateGatewayIdentity(config);
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

    const queue = await openQueue(config);
    const store = await openStore(config).catch(async (err) => {
      await queue.close();
      throw err;
    });
    // Every series is registered now, before anything is served (zero until it happens).
    const started: { relay?: Relay; certPem?: string } = {};
    registerQueueMetrics(registry, queue);
    const metrics = registerMessagingMetrics(registry);
    const apiMetrics = registerClientApiRequestMetrics(registry, clientApiMethods());
    registerQuicMetrics(registry, () => started.relay?.transport.stats());
    registerCertificateMetrics(registry, () => started.certPem);
    const readiness = new Readiness();
    readiness.add('store', () => store.quarantined());
    readiness.add('queue', () => queue.stats());
    const signal = new MailboxSignal();
    const closeStorage = async (): Promise<void> => {
      await store.close();
      await queue.close();
    };
    const admin = await startAdminServer(config.adminListen, registry, readiness).catch(
      async (err) => {
        await closeStorage();
        throw err;
      },
    );
    // The relay needs the ledger and certificate the client API opens, and dispatch needs the
    // relay's resolver: dispatch reaches it through `started`, set once the relay is open.
    const remote = {
      resolve: (did: string) =>
        started.relay === undefined
          ? Promise.reject(new RelayError('ERR_RELAY_UNAVAILABLE', 'the relay is starting', true))
          : started.relay.identities.resolve(did),
    };
    const clientApi = await startGatewayClientApi(config, identity, log, {
      queue,
      store,
      signal,
      metrics,
      remote,
      apiMetrics,
    }).catch(async (err) => {
      await closeStorage();
      await admin.close();
      throw err;
    });
    const relay = await openRelay({
      config,
      tls: clientApi.tls,
      gatewayKeys: identity,
      ledger: clientApi.ledger,
      store,
      log,
      onDelivered: (recipient) => signal.notify(recipient),
    }).catch(async (err) => {
      await clientApi.close();
      await closeStorage();
      await admin.close();
      throw err;
    });
    started.relay = relay;
    started.certPem = clientApi.tls.certPem;
    readiness.add('ledger', () => clientApi.ledger.checkpoint());
    const worker = new LocalDeliveryWorker({
      queue,
      store,
      ledger: clientApi.ledger,
      gateway: identity,
      domain: config.domain,
      maxEnvelopeBytes: config.maxEnvelopeBytes,
      log,
      metrics,
      signal,
      remote: (job) => relay.sender.relayJob(job),
    });
    worker.start();
    const purge = setInterval(() => {
      metrics
        .storeOp('purgeExpired', () => store.purgeExpired())
        .then(
          (n) => n > 0 && log.info({ purged: n }, 'purged expired mail'),
          (err: unknown) => log.error({ err }, 'purging expired mail failed'),
        );
    }, config.mailboxPurgeInterval * 1000);
    purge.unref();
    log.info(
      {
        gateway: identity.record.did,
        suite: identity.record.suite,
        keyId: identity.record.keyId.toString('base64'),
        dataDir: config.dataDir,
        admin: `http://${admin.address.address}:${admin.address.port}`,
        ...clientApi.announce,
        ...relay.announce,
        queue: queue.backend,
        store: store.backend,
        notYetServed: ['SMTP bridge'],
      },
      'aftersmtp serving',
    );
    readiness.serving();

    log.info({ signal: await stopped }, 'shutting down');
    readiness.stopping();
    clearInterval(purge);
    await worker.stop();
    relay.close();
    await clientApi.close();
    await closeStorage();
    await admin.close();
    log.info('stopped');
  },
};
