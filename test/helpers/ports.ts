/**
 * Ports for test servers. `freePort`: one the kernel picks (bound, read, released), for a server
 * started once; another process may still take it before the server binds it, so a server that
 * binds it itself is started through `retryOnAddressInUse`. `restartablePort`: for servers a test
 * stops and starts again on the same port (a gateway killed and
 * restarted, a NATS server of a cluster). A port the kernel picked for `listen(0)` lies in its
 * ephemeral range, which is also where every outgoing connection and UDP socket takes its local
 * port: while the server is down, a client of any process may take it, and the restart fails with
 * EADDRINUSE. These ports are chosen below that range (net.ipv4.ip_local_port_range), where the
 * kernel never assigns local ports, and are free (bound and released) when picked.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

const LOWEST = 10_000;

/** The first port of the kernel's ephemeral range (32768 when it cannot be read). */
function ephemeralStart(): number {
  try {
    const first = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').split(/\s+/)[0],
    );
    return Number.isInteger(first) && first > LOWEST + 1000 ? first : 32_768;
  } catch {
    return 32_768;
  }
}

/** Binds `port` on 127.0.0.1 (0: one the kernel picks) and releases it: the port, or undefined. */
function bindAndRelease(kind: 'tcp' | 'udp', port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    if (kind === 'tcp') {
      const s = createServer();
      s.once('error', () => resolve(undefined));
      s.listen(port, '127.0.0.1', () => {
        const bound = (s.address() as { port: number }).port;
        s.close(() => resolve(bound));
      });
      return;
    }
    const s = createSocket('udp4');
    s.once('error', () => {
      s.close();
      resolve(undefined);
    });
    s.bind(port, '127.0.0.1', () => {
      const bound = s.address().port;
      s.close(() => resolve(bound));
    });
  });
}

/** A free port on 127.0.0.1 outside the ephemeral range, for TCP or UDP. */
export async function restartablePort(kind: 'tcp' | 'udp'): Promise<number> {
  const end = ephemeralStart();
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = LOWEST + Math.floor(Math.random() * (end - LOWEST));
    if ((await bindAndRelease(kind, port)) !== undefined) return port;
  }
  throw new Error(`no free ${kind} port between ${LOWEST} and ${end}`);
}

/** A port the kernel picks on 127.0.0.1 for TCP or UDP (bound, read, released). */
export async function freePort(kind: 'tcp' | 'udp'): Promise<number> {
  const port = await bindAndRelease(kind, 0);
  if (port === undefined) throw new Error(`no ${kind} port could be bound on 127.0.0.1`);
  return port;
}

/**
 * Runs `start` (which picks a free port and starts a server on it) again, up to `attempts` times,
 * while it fails because another process bound the port first.
 */
export async function retryOnAddressInUse<T>(start: () => Promise<T>, attempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= attempts || !/Address already in use|EADDRINUSE/.test(String(err))) throw err;
    }
  }
}
