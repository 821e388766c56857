/**
 * A TLS listener (node:tls Server) with the bounds every TCP/TLS entrance of the gateway needs
 * (DESIGN.md §4, §7): the connection caps in total and per address (ConnectionGuard, checked in
 * the 'connection' event, before a byte is read), a handshake deadline (tls.Server's
 * handshakeTimeout: a client that has not completed its TLS handshake that long after accept is
 * dropped, so slow or partial ClientHellos hold a slot for that long at most), and an idle
 * deadline on the socket. Secured sockets are handed to `onSecure` (the client API hands
 * them to grpc-js; the SMTP listeners use the guard the same way).
 *
 * Guarantees: at most `limits.maxConnections` sockets are open through this listener (TLS
 * handshakes in progress included), `limits.maxPerAddress` per address; a socket is destroyed
 * at its handshake deadline unless its handshake completed; every refusal is counted by reason.
 */
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type TLSSocket } from 'node:tls';
import { clientAddress, ConnectionGuard, type ConnectionLimits } from './guard.js';

export interface TlsListenerOptions {
  readonly host: string;
  readonly port: number;
  readonly certPem: string;
  readonly keyPem: string;
  /** ALPN protocols offered (e.g. ['h2'] for gRPC); a client must pick one of them. */
  readonly alpn?: readonly string[];
  readonly limits: ConnectionLimits;
  readonly handshakeTimeoutMs: number;
  /** A socket whose TLS handshake completed. */
  readonly onSecure: (socket: TLSSocket) => void;
}

export interface TlsListenerStats {
  /** Sockets open (handshakes in progress included). */
  connections: number;
  accepted: number;
  refusedTotal: number;
  refusedAddress: number;
  handshakeTimeouts: number;
  /** Handshakes that failed (bad ClientHello, no common ALPN, reset; refused sockets too). */
  handshakeFailures: number;
}

export interface TlsListener {
  readonly address: AddressInfo;
  stats(): TlsListenerStats;
  /** Stops accepting; open sockets are left to their owner (grpc-js drains its sessions). */
  close(): Promise<void>;
  /** Destroys every socket still open. */
  destroyAll(): void;
}

export async function listenTls(opts: TlsListenerOptions): Promise<TlsListener> {
  const counters = {
    accepted: 0,
    refusedTotal: 0,
    refusedAddress: 0,
    handshakeTimeouts: 0,
    handshakeFailures: 0,
  };
  const guard = new ConnectionGuard(opts.limits, {
    onRefused: (reason) => {
      if (reason === 'total') counters.refusedTotal++;
      else counters.refusedAddress++;
    },
  });
  const open = new Set<Socket>();
  const server = createServer({
    cert: opts.certPem,
    key: opts.keyPem,
    ALPNProtocols: opts.alpn === undefined ? undefined : [...opts.alpn],
    handshakeTimeout: opts.handshakeTimeoutMs,
    requestCert: false,
  });
  // Before tls.Server wraps the socket: a refused one is destroyed before a byte is read.
  server.prependListener('connection', (socket: Socket) => {
    if (!guard.admit(socket)) return;
    counters.accepted++;
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException, tls: TLSSocket) => {
    if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') counters.handshakeTimeouts++;
    else counters.handshakeFailures++;
    tls.destroy();
  });
  server.on('secureConnection', (tls: TLSSocket) => {
    // Errors after the handshake belong to whoever owns the socket now; one listener here
    // keeps an unowned error from crashing the process.
    tls.on('error', () => undefined);
    if (opts.alpn !== undefined && !opts.alpn.includes(String(tls.alpnProtocol))) {
      counters.handshakeFailures++;
      tls.destroy();
      return;
    }
    opts.onSecure(tls);
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    address: server.address() as AddressInfo,
    stats: () => ({ connections: guard.count(), ...counters }),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    destroyAll: () => {
      for (const s of open) s.destroy();
    },
  };
}

export { clientAddress };
