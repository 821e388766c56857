/**
 * Shared fixtures of the QUIC tests: throw-away certificates (made once per process), and a
 * server + client pair on 127.0.0.1 with an ephemeral port, the client pinning the server's SPKI
 * and the server accepting only the client certificates it is told to.
 */
import {
  generateSelfSignedCertificate,
  QuicTransport,
  type InboundMessage,
  type QuicLimits,
  type QuicPeer,
  type CertificateAndKey,
} from '../../src/quic/index.js';

let certs: Promise<CertificateAndKey[]> | undefined;

/** Three certificates: [server, client, stranger]. */
export function testCertificates(): Promise<CertificateAndKey[]> {
  certs ??= Promise.all([
    generateSelfSignedCertificate({ commonName: 'server.test' }),
    generateSelfSignedCertificate({ commonName: 'client.test' }),
    generateSelfSignedCertificate({ commonName: 'stranger.test' }),
  ]);
  return certs;
}

export interface Pair {
  server: QuicTransport;
  client: QuicTransport;
  peer: QuicPeer;
  received: Buffer[];
  close(): void;
}

export interface PairOptions {
  limits?: QuicLimits;
  clientLimits?: QuicLimits;
  onMessage?: (msg: InboundMessage) => Buffer | undefined | Promise<Buffer | undefined>;
  /** The client's certificate (default: the one the server accepts). */
  clientCert?: CertificateAndKey;
  connectionsPerPeer?: number;
  keep?: boolean;
}

export async function startPair(opts: PairOptions = {}): Promise<Pair> {
  const [serverCert, clientCert] = (await testCertificates()) as [
    CertificateAndKey,
    CertificateAndKey,
  ];
  const received: Buffer[] = [];
  const server = QuicTransport.open({
    certPem: serverCert.certPem,
    keyPem: serverCert.keyPem,
    host: '127.0.0.1',
    port: 0,
    limits: opts.limits,
    verifyInboundPeer: (p) => p.spki.equals(clientCert.spki),
    onMessage:
      opts.onMessage ??
      ((m) => {
        if (opts.keep === true) received.push(m.data);
        return Buffer.from(`ok ${m.data.length}`);
      }),
  });
  const mine = opts.clientCert ?? clientCert;
  const client = QuicTransport.open({
    certPem: mine.certPem,
    keyPem: mine.keyPem,
    host: '127.0.0.1',
    port: 0,
    listen: false,
    limits: opts.clientLimits,
    connectionsPerPeer: opts.connectionsPerPeer,
  });
  const peer: QuicPeer = {
    host: '127.0.0.1',
    port: server.port,
    verify: (p) => p.spki.equals(serverCert.spki),
  };
  return {
    server,
    client,
    peer,
    received,
    close() {
      client.close();
      server.close();
    },
  };
}
