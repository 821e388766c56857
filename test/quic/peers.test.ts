// Peer authentication and connection admission: certificates that do not match the pinned
// gateway keys are refused on both sides, Retry address validation works, per-address and
// total connection caps answer CONNECTION_REFUSED.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import {
  QuicError,
  QuicTransport,
  type CertificateAndKey,
  type QuicPeerInfo,
} from '../../src/quic/index.js';
import { startPair, testCertificates } from './helpers.js';

async function rejectsWith(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof QuicError, String(err));
    assert.equal(err.code, code, err.message);
    return true;
  });
}

describe('QUIC transport: peers', () => {
  it('refuses a client whose certificate does not match (server side)', async () => {
    const [, , stranger] = (await testCertificates()) as CertificateAndKey[];
    const pair = await startPair({ clientCert: stranger, keep: true });
    try {
      await rejectsWith(pair.client.send(pair.peer, Buffer.from('hi')), 'ERR_QUIC_PEER_REJECTED');
      // The frame may have reached the endpoint, never the application.
      assert.equal(pair.received.length, 0);
    } finally {
      pair.close();
    }
  });

  it('refuses a server whose certificate does not match the pin (client side)', async () => {
    const [, , stranger] = (await testCertificates()) as CertificateAndKey[];
    const pair = await startPair();
    try {
      const wrongPin = {
        ...pair.peer,
        verify: (p: { spki: Buffer }) => p.spki.equals(stranger!.spki),
      };
      await rejectsWith(pair.client.send(wrongPin, Buffer.from('hi')), 'ERR_QUIC_PEER_REJECTED');
      assert.equal(pair.client.stats().framesSent, 0, 'nothing was sent to the wrong peer');
      // The pool forgot the rejected connection: the right pin works.
      assert.equal((await pair.client.send(pair.peer, Buffer.from('hi'))).toString(), 'ok 2');
    } finally {
      pair.close();
    }
  });

  it('checks a pooled connection against the pin of each caller', async () => {
    const [, , stranger] = (await testCertificates()) as CertificateAndKey[];
    const pair = await startPair({ keep: true });
    try {
      assert.equal((await pair.client.send(pair.peer, Buffer.from('one'))).toString(), 'ok 3');
      // Same host and port, but this caller expects another gateway's certificate.
      const otherGateway = {
        ...pair.peer,
        verify: async (p: { spki: Buffer }) => p.spki.equals(stranger!.spki),
      };
      await rejectsWith(
        pair.client.send(otherGateway, Buffer.from('two')),
        'ERR_QUIC_PEER_REJECTED',
      );
      // A different check that accepts, and the opener's own, still use the connection.
      const samePin = { ...pair.peer, verify: (p: QuicPeerInfo) => pair.peer.verify(p) };
      assert.equal((await pair.client.send(samePin, Buffer.from('three'))).toString(), 'ok 5');
      assert.equal((await pair.client.send(pair.peer, Buffer.from('four'))).toString(), 'ok 4');
      assert.deepEqual(
        pair.received.map((b) => b.toString()),
        ['one', 'three', 'four'],
      );
      assert.equal(pair.client.stats().connectionsOutbound, 1);
    } finally {
      pair.close();
    }
  });

  it('validates addresses with Retry when asked to', async () => {
    const pair = await startPair({ limits: { retryThreshold: 0 } });
    try {
      assert.equal((await pair.client.send(pair.peer, Buffer.from('hi'))).toString(), 'ok 2');
      // One Retry per Initial packet without a token (a post-quantum ClientHello spans two).
      assert.ok(pair.server.stats().retriesSent >= 1);
    } finally {
      pair.close();
    }
  });

  it('answers CONNECTION_REFUSED over the per-address cap', async () => {
    const [, clientCert] = (await testCertificates()) as CertificateAndKey[];
    const pair = await startPair({ limits: { maxConnectionsPerAddress: 2 } });
    const many = QuicTransport.open({
      certPem: clientCert!.certPem,
      keyPem: clientCert!.keyPem,
      host: '127.0.0.1',
      port: 0,
      listen: false,
      connectionsPerPeer: 4,
    });
    try {
      await pair.client.send(pair.peer, Buffer.from('first'));
      const results = await Promise.allSettled(
        Array.from({ length: 4 }, () => many.send(pair.peer, Buffer.from('x'))),
      );
      const refused = results.filter(
        (r) =>
          r.status === 'rejected' && (r.reason as QuicError).code === 'ERR_QUIC_CONNECTION_REFUSED',
      );
      assert.ok(refused.length >= 1, JSON.stringify(results.map((r) => r.status)));
      assert.ok(pair.server.stats().refusedConnectionsPerAddress >= 1);
      assert.ok(pair.server.stats().connectionsOpen <= 2);
      assert.equal((await pair.client.send(pair.peer, Buffer.from('again'))).toString(), 'ok 5');
    } finally {
      many.close();
      pair.close();
    }
  });
});
