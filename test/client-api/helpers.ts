// Test servers for the client API: a real `aftersmtp serve` process on 127.0.0.1 with port 0
// (its "aftersmtp serving" log line says which ports it got, and its TLS pin and log key), and a
// real DNS server (Debian's unbound) on 127.0.0.1 and a free port, answering local-data TXT
// records. Both are stopped by the returned close(). Under CI (CI=true) a missing unbound fails.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { localServeEnv, startServe, stopChild, tempDir } from '../helpers/cli.js';
import { freePort, retryOnAddressInUse } from '../helpers/ports.js';

export const DOMAIN = 'example.org';

export interface Gateway {
  readonly child: ChildProcess;
  readonly dataDir: string;
  readonly env: Record<string, string>;
  readonly ready: Record<string, unknown>;
  /** host:port of the gRPC listener. */
  readonly grpc: string;
  readonly spki: string;
  readonly logKey: string;
  readonly certFile: string;
  stop(): Promise<number | string | null>;
  /** What the process wrote to stderr so far. */
  stderr(): string;
}

export async function startGateway(
  extra: Record<string, string> = {},
  nodeArgs: readonly string[] = [],
): Promise<Gateway> {
  const dataDir = join(tempDir('client-api'), 'data');
  const env = {
    ...localServeEnv(dataDir),
    AFTERSMTP_DOMAIN: DOMAIN,
    AFTERSMTP_LEDGER_POLICY: `${DOMAIN}=open-pow:12`,
    AFTERSMTP_LEDGER_RATE_LIMIT: '1000/1',
    ...extra,
  };
  const { child, ready, stderr } = await startServe(env, { nodeArgs, keepLog: false });
  return {
    child,
    dataDir,
    env,
    ready,
    grpc: String(ready.grpc),
    spki: String(ready.tlsSpki),
    logKey: String(ready.logKey),
    certFile: String(ready.tlsCert),
    stop: () => stopChild(child),
    stderr,
  };
}

export function unboundPath(): string | undefined {
  for (const p of ['/usr/sbin/unbound', '/usr/local/sbin/unbound']) {
    if (spawnSync(p, ['-V']).status === 0) return p;
  }
  return undefined;
}

/** Why DNS tests cannot run here, or undefined. Under CI this is a failure, not a skip. */
export function unboundMissing(): string | undefined {
  if (unboundPath() !== undefined) return undefined;
  const why = 'unbound is not installed (apt-get install unbound)';
  if (process.env.CI === 'true') throw new Error(`${why}: required under CI`);
  return why;
}

export interface DnsServer {
  /** For AFTERSMTP_DNS_SERVERS. */
  readonly server: string;
  close(): Promise<void>;
}

/** A TXT value as quoted character-strings of at most 255 octets each (RFC 1035 3.3.14). */
function txtStrings(value: string): string {
  const parts: string[] = [];
  for (let i = 0; i < value.length; i += 255) parts.push(value.slice(i, i + 255));
  return parts.map((p) => `"${p.replace(/"/g, '\\"')}"`).join(' ');
}

/**
 * Starts unbound answering `records` (name -> TXT strings) and `addresses` (name -> IPv4 or
 * IPv6 addresses: A and AAAA records) authoritatively for their zone.
 */
export async function startUnbound(
  zone: string,
  records: Record<string, string[]>,
  addresses: Record<string, string[]> = {},
): Promise<DnsServer> {
  // The port is free for UDP when picked; unbound also binds TCP on it, and another process may
  // take either before unbound does: try another port then.
  return retryOnAddressInUse(() => startUnboundOnce(zone, records, addresses));
}

async function startUnboundOnce(
  zone: string,
  records: Record<string, string[]>,
  addresses: Record<string, string[]>,
): Promise<DnsServer> {
  const bin = unboundPath();
  if (bin === undefined) throw new Error('unbound is not installed');
  const dir = tempDir('unbound');
  const port = await freePort('udp');
  const data = Object.entries(records).flatMap(([name, texts]) =>
    texts.map((t) => `  local-data: '${name}. 60 IN TXT ${txtStrings(t)}'`),
  );
  for (const [name, ips] of Object.entries(addresses)) {
    for (const ip of ips) {
      data.push(`  local-data: '${name}. 60 IN ${ip.includes(':') ? 'AAAA' : 'A'} ${ip}'`);
    }
  }
  const conf = join(dir, 'unbound.conf');
  writeFileSync(
    conf,
    [
      'server:',
      `  interface: 127.0.0.1@${port}`,
      `  port: ${port}`,
      '  do-daemonize: no',
      '  do-ip6: no',
      '  do-tcp: yes',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      '  pidfile: ""',
      '  use-syslog: no',
      '  logfile: ""',
      '  verbosity: 0',
      '  access-control: 127.0.0.0/8 allow',
      '  module-config: "iterator"',
      '  num-threads: 1',
      `  local-zone: "${zone}." static`,
      ...data,
      'remote-control:',
      '  control-enable: no',
      '',
    ].join('\n'),
  );
  const child = spawn(bin, ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const server = `127.0.0.1:${port}`;
  const probe = new Resolver({ timeout: 200, tries: 1 });
  probe.setServers([server]);
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`unbound exited: ${stderr}`);
    try {
      await probe.resolveTxt(`nothing.${zone}`);
      break;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTFOUND' || code === 'ENODATA') break; // it answered
      if (i > 50) throw new Error(`unbound did not answer on ${server}: ${stderr}`);
      await sleep(100);
    }
  }
  return {
    server,
    close: async () => {
      await stopChild(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
