// Where the contract tests find the real NATS and RabbitMQ servers (started by
// scripts/services/*.sh, .ci/run). Locally a missing server skips those tests with the command
// that starts it; under CI (CI=true) it fails them: CI must never pass without the real servers.
import { connect } from 'node:net';

export interface Service {
  readonly url: string;
  /** Why the tests are skipped; undefined when the server answers. */
  readonly skip: string | undefined;
}

function reachable(url: string): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: u.hostname, port: Number(u.port) || 0 });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

export async function service(env: string, fallback: string, script: string): Promise<Service> {
  const url = process.env[env] ?? fallback;
  if (await reachable(url)) return { url, skip: undefined };
  const why = `no server at ${url} (${env}); start one with: bash scripts/services/${script} start`;
  if (process.env.CI === 'true') throw new Error(`under CI the real server is required: ${why}`);
  return { url, skip: why };
}
