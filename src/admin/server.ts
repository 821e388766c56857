/**
 * The admin HTTP listener: GET /healthz (liveness: the process answers), GET /readyz
 * (readiness: start-up is complete and the store, the queue and the ledger answer; 503 and the
 * failing check otherwise, readiness.ts) and GET /metrics (Prometheus text format from
 * prom-client). It binds where AFTERSMTP_ADMIN_LISTEN says, 127.0.0.1 by default, and serves
 * nothing else: every other path or method is 404/405 with no body of interest. A port that
 * cannot be bound is ERR_ADMIN_BIND naming the address and the setting.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { ListenAddress } from '../net/listen.js';
import { listenError } from '../net/listen.js';
import type { Readiness } from './readiness.js';

export interface AdminServer {
  readonly address: AddressInfo;
  close(): Promise<void>;
}

export async function startAdminServer(
  listen: ListenAddress,
  registry: Registry,
  readiness?: Readiness,
): Promise<AdminServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path === '/readyz') {
      if (readiness === undefined) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ready\n');
        return;
      }
      readiness.report().then(
        (r) => {
          const lines = [
            r.ready ? 'ready' : `not ready (${r.state})`,
            ...Object.entries(r.checks).map(([name, v]) => `${name}: ${v}`),
          ];
          res
            .writeHead(r.ready ? 200 : 503, { 'content-type': 'text/plain' })
            .end(`${lines.join('\n')}\n`);
        },
        () => res.writeHead(500).end(),
      );
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(body),
        () => res.writeHead(500).end(),
      );
      return;
    }
    res.writeHead(404).end();
  });
  server.requestTimeout = 10_000;
  server.headersTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) =>
      reject(
        listenError(
          'ERR_ADMIN_BIND',
          { protocol: 'TCP', ...listen, setting: 'AFTERSMTP_ADMIN_LISTEN' },
          err,
        ),
      ),
    );
    server.listen(listen.port, listen.host, () => {
      server.removeAllListeners('error');
      resolve();
    });
  });
  return {
    address: server.address() as AddressInfo,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
