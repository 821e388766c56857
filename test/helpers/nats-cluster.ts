// A NATS JetStream cluster of three servers on 127.0.0.1 for the cluster test and bench/cluster:
// the binary scripts/services/nats.sh builds (`nats.sh bin` names it), each server with its own
// client and route ports, file storage under `dir` and `sync_interval: always` (a write is on disk
// before it is acknowledged, as nats.sh configures the single server). Servers can be killed with
// SIGKILL and started again on the same ports and data, the way an operator's would crash.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'nats';
import { stopChild } from './cli.js';
import { restartablePort } from './ports.js';

const ROOT = new URL('../../..', import.meta.url).pathname;

/** The nats-server binary nats.sh installs, or why there is none. */
export function natsServerBinary(): { bin: string; skip: undefined } | { skip: string } {
  let bin: string;
  try {
    bin = execFileSync('bash', [join(ROOT, 'scripts/services/nats.sh'), 'bin'], {
      encoding: 'utf8',
    }).trim();
  } catch (err) {
    return { skip: `scripts/services/nats.sh bin failed: ${(err as Error).message}` };
  }
  if (!existsSync(bin)) {
    return {
      skip: `no nats-server at ${bin}; build it with: bash scripts/services/nats.sh install`,
    };
  }
  return { bin, skip: undefined };
}

export class NatsCluster {
  readonly #bin: string;
  readonly #dir: string;
  readonly clientPorts: number[];
  readonly #routePorts: number[];
  readonly #children: (ChildProcess | undefined)[] = [undefined, undefined, undefined];

  private constructor(bin: string, dir: string, clientPorts: number[], routePorts: number[]) {
    this.#bin = bin;
    this.#dir = dir;
    this.clientPorts = clientPorts;
    this.#routePorts = routePorts;
  }

  /** Starts three servers under `dir` and waits until JetStream answers on the cluster. */
  static async start(bin: string, dir: string): Promise<NatsCluster> {
    // Six different ports (a port given back by the system can come again).
    const ports = new Set<number>();
    while (ports.size < 6) ports.add(await restartablePort('tcp'));
    const [c1, c2, c3, r1, r2, r3] = [...ports] as number[];
    const clientPorts = [c1, c2, c3] as number[];
    const routePorts = [r1, r2, r3] as number[];
    const c = new NatsCluster(bin, dir, clientPorts, routePorts);
    try {
      for (let i = 0; i < 3; i++) c.startServer(i);
      await c.ready();
    } catch (err) {
      await c.stop();
      throw err;
    }
    return c;
  }

  /** AFTERSMTP_NATS_URL for the gateways: every server, comma-separated. */
  get url(): string {
    return this.clientPorts.map((p) => `nats://127.0.0.1:${p}`).join(',');
  }

  pid(i: number): number | undefined {
    return this.#children[i]?.pid;
  }

  /** Starts server `i` (again) on its ports and data directory. */
  startServer(i: number): void {
    const home = join(this.#dir, `n${i + 1}`);
    mkdirSync(join(home, 'data'), { recursive: true });
    const routes = this.#routePorts.map((p) => `nats-route://127.0.0.1:${p}`).join(', ');
    writeFileSync(
      join(home, 'nats.conf'),
      `server_name: n${i + 1}
listen: 127.0.0.1:${this.clientPorts[i]}
jetstream {
  store_dir: "${join(home, 'data')}"
  sync_interval: always
}
cluster {
  name: aftersmtp
  listen: 127.0.0.1:${this.#routePorts[i]}
  routes: [${routes}]
}
`,
    );
    const log = openSync(join(home, 'nats.log'), 'a');
    this.#children[i] = spawn(this.#bin, ['-c', join(home, 'nats.conf')], {
      stdio: ['ignore', log, log],
    });
  }

  /** SIGKILL server `i` (a crash); resolves when it is gone. */
  async kill(i: number): Promise<void> {
    const child = this.#children[i];
    this.#children[i] = undefined;
    if (child !== undefined) await stopChild(child, 'SIGKILL');
  }

  /** The end of server `i`'s log (for an error message). */
  logTail(i: number): string {
    try {
      return readFileSync(join(this.#dir, `n${i + 1}`, 'nats.log'), 'utf8')
        .split('\n')
        .slice(-8)
        .join('\n');
    } catch {
      return '';
    }
  }

  /** Resolves when the cluster has a JetStream meta leader (account info answers), within ms. */
  async ready(ms = 60_000): Promise<void> {
    const deadline = Date.now() + ms;
    let last: unknown;
    while (Date.now() < deadline) {
      const dead = this.#children.findIndex((c) => c !== undefined && c.exitCode !== null);
      if (dead >= 0) {
        throw new Error(`nats-server n${dead + 1} exited:\n${this.logTail(dead)}`);
      }
      try {
        const nc = await connect({ servers: this.url.split(','), timeout: 2000 });
        try {
          const jsm = await nc.jetstreamManager({ timeout: 2000 });
          await jsm.getAccountInfo();
          return;
        } finally {
          await nc.close();
        }
      } catch (err) {
        last = err;
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    const logs = [0, 1, 2].map((i) => `n${i + 1}:\n${this.logTail(i)}`).join('\n');
    throw new Error(`the NATS cluster did not become ready: ${String(last)}\n${logs}`);
  }

  async stop(): Promise<void> {
    await Promise.all([0, 1, 2].map((i) => this.kill(i)));
  }
}
