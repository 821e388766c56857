/**
 * `aftersmtp serve`: the composition root. Validates the configuration, loads (or creates) the
 * gateway identity, wires the listeners, and stops cleanly on SIGINT/SIGTERM. Today it serves
 * the admin listener (health and metrics); the AMP relay (QUIC), the client API (gRPC) and the
 * legacy bridge are wired here as they land, and the log says exactly what is listening.
 */
import { pino } from 'pino';
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { startAdminServer } from '../../admin/server.js';
import { loadConfig } from '../../config/load.js';
import { loadOrCreateGatewayIdentity } from '../../identity/gateway.js';
import { startGatewayClientApi } from '../../amp/client-api/gateway.js';
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
    const log = pino({ level: config.logLevel, base: { service: 'aftersmtp' } });
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

    const admin = await startAdminServer(config.adminListen, registry);
    const clientApi = await startGatewayClientApi(config, identity, log).catch(async (err) => {
      await admin.close();
      throw err;
    });
    log.info(
      {
        gateway: identity.record.did,
        suite: identity.record.suite,
        keyId: identity.record.keyId.toString('base64'),
        dataDir: config.dataDir,
        admin: `http://${admin.address.address}:${admin.address.port}`,
        ...clientApi.announce,
        notYetServed: ['AMP relay (QUIC, udp/4434)', 'SMTP bridge'],
      },
      'aftersmtp serving',
    );

    log.info({ signal: await stopped }, 'shutting down');
    await clientApi.close();
    await admin.close();
    log.info('stopped');
  },
};
