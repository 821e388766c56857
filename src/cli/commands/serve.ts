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
import { pino } from 'pino';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { startAdminServer } from '../../admin/server.js';
import { loadConfig } from '../../config/load.js';
import { loadOrCreateGatewayIdentity } from '../../identity/gateway.js';
import { startGatewayClientApi } from '../../amp/client-api/gateway.js';
import { registerClientApiMetrics } from '../../amp/client-api/metrics.js';
import { LocalDeliveryWorker } from '../../delivery/worker.js';
import { registerMessagingMetrics } from '../../mailbox/metrics.js';
import { MailboxSignal } from '../../mailbox/signal.js';
import { registerQueueGauges } from '../../queue/metrics.js';
import { openQueue } from '../../queue/open.js';
import { openStore } from '../../store/open.js';
import { registerStorageMetrics } from '../../storage/metrics.js';
import { StorageSpace } from '../../storage/space.js';
import { openRelay, type Relay } from '../../amp/relay/relay.js';
import { RelayError } from '../../amp/relay/errors.js';
import { registerQuicMetrics } from '../../quic/metrics.js';
import { prepareDataDir } from '../../config/datadir.js';
import { checkDescriptorBudget } from '../../net/limits.js';
import type { Command } from '../command.js';

/** How long a stop may take after the first SIGINT/SIGTERM before the process exits anyway. */
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

export const serveCommand: Command = {
  path: ['serve'],
  summary:
    'Run the gateway on the configuration in the AFTERSMTP_* environment (embedded defaults in ./data).',
  usage: '[--help]',
  options: {},
  async run() {
    const config = loadConfig();
    const log = pino({ level: config.logLevel, base: { service: 'aftersmtp' } });
    // Installed before anything is opened: a signal during start-up lets the start finish (or
    // fail) and then stops, and any stop that takes longer than STOP_DEADLINE_MS, or a second
    // signal, ends the process at once, so SIGTERM always stops it.
    const stopped = stopSignals(log);
    prepareDataDir(config.dataDir);
    checkDescriptorBudget(config);
    const { identity, notes } = await loadOrCreateGatewayIdentity(config);
    for (const note of notes) log.warn(note);

    const registry = new Registry();
    collectDefaultMetrics({ register: registry, prefix: 'aftersmtp_' });
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

    // The reserve of the data directory's file system (AFTERSMTP_STORAGE_MIN_FREE_BYTES): below
    // it the embedded queue and store refuse new mail as a temporary failure.
    const space = new StorageSpace({
      path: config.dataDir,
      minFreeBytes: config.storageMinFreeBytes,
      onChange: (full, freeBytes, why) =>
        full
          ? log.error(
              { freeBytes, reserve: config.storageMinFreeBytes, why },
              'storage full: refusing new mail (temporary failure) until there is room',
            )
          : log.warn({ freeBytes, why }, 'storage has room again: taking new mail'),
    });
    registerStorageMetrics(registry, space);
    const queue = await openQueue(config, undefined, space);
    const store = await openStore(config, {}, space).catch(async (err) => {
      await queue.close();
      throw err;
    });
    registerQueueGauges(registry, queue);
    const metrics = registerMessagingMetrics(registry);
    const signal = new MailboxSignal();
    const closeStorage = async (): Promise<void> => {
      await store.close();
      await queue.close();
    };
    const admin = await startAdminServer(config.adminListen, registry).catch(async (err) => {
      await closeStorage();
      throw err;
    });
    // The relay needs the ledger and certificate the client API opens, and dispatch needs the
    // relay's resolver: dispatch reaches it through `started`, set once the relay is open.
    const started: { relay?: Relay } = {};
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
    }).catch(async (err) => {
      await closeStorage();
      await admin.close();
      throw err;
    });
    registerClientApiMetrics(registry, clientApi);
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
    registerQuicMetrics(registry, relay.transport);
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

    log.info({ signal: await stopped }, 'shutting down');
    clearInterval(purge);
    await worker.stop();
    relay.close();
    await clientApi.close();
    await closeStorage();
    await admin.close();
    log.info('stopped');
  },
};
