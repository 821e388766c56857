// Bounded under attack, against the real endpoint: clients that open streams and never finish
// them, and a client that opens many connections, do not push the server's buffered bytes past
// its budget, and a well-behaved client is served meanwhile. The slow streams are answered
// TIMEOUT when the stream timeout expires, and their reservations are released.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { QuicError, QuicTransport, type CertificateAndKey } from '../../src/quic/index.js';
import { startPair, testCertificates } from './helpers.js';

const MiB = 1024 * 1024;

function header(len: number): Buffer {
  const h = Buffer.alloc(5);
  h[0] = 0x01;
  h.writeUInt32BE(len, 1);
  return h;
}

describe('QUIC transport: flood', () => {
  it('keeps memory within budget under slowloris streams and a connection flood', async () => {
    const [, clientCert] = (await testCertificates()) as CertificateAndKey[];
    const budget = 10 * MiB;
    const pair = await startPair({
      limits: {
        maxFrameBytes: MiB,
        connectionWindowBytes: 2 * MiB + 64 * 1024,
        maxBufferedBytes: budget,
        maxConnectionsPerAddress: 4,
        maxStreamsPerConnection: 64,
        streamTimeoutMs: 1500,
      },
    });
    const open = (perPeer: number) =>
      QuicTransport.open({
        certPem: clientCert!.certPem,
        keyPem: clientCert!.keyPem,
        host: '127.0.0.1',
        port: 0,
        listen: false,
        connectionsPerPeer: perPeer,
        limits: { streamTimeoutMs: 10_000 },
      });
    const slow = open(3);
    const many = open(12);
    try {
      // The well-behaved client holds its connection first, then the slow client its three
      // (one message each opens them, round robin), so that the flood finds the address's
      // four slots taken.
      await pair.client.send(pair.peer, Buffer.from('hello'));
      await Promise.all([1, 2, 3].map(() => slow.send(pair.peer, Buffer.from('hi'))));
      // Slowloris: on each of 3 connections, 8 streams that announce 1 MiB, send 100 bytes
      // and never finish (the 3 connections may reserve 6 MiB of the 10 MiB budget).
      const partial = Buffer.concat([header(MiB), Buffer.alloc(100, 0x61)]);
      const slowSends = Array.from({ length: 24 }, () =>
        slow.sendRaw(pair.peer, partial, false).then(
          () => 'acked',
          (err: QuicError) =>
            err.code === 'ERR_QUIC_CLOSED' ? `${err.code}: ${err.message}` : err.code,
        ),
      );
      // A connection flood from the same address.
      const flood = Array.from({ length: 24 }, () =>
        many.send(pair.peer, Buffer.from('x')).then(
          () => 'acked',
          (err: QuicError) => err.code,
        ),
      );
      // Meanwhile the well-behaved client sends 40 messages of 64 KiB.
      const good = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          pair.client.send(pair.peer, Buffer.alloc(64 * 1024, i)),
        ),
      );
      assert.equal(good.length, 40);
      const during = pair.server.stats();
      assert.ok(during.bufferedBytesPeak <= budget, `peak ${during.bufferedBytesPeak}`);
      assert.ok(during.connectionsOpen <= 4, `open ${during.connectionsOpen}`);

      const slowResults = await Promise.all(slowSends);
      const floodResults = await Promise.all(flood);
      // Each slow connection could reserve at most two 1 MiB frames (its window); its other
      // streams waited unread. All of them timed out.
      for (const r of slowResults) assert.equal(r, 'ERR_QUIC_TIMEOUT');
      assert.ok(floodResults.includes('ERR_QUIC_CONNECTION_REFUSED'), floodResults.join());

      const after = pair.server.stats();
      assert.ok(after.bufferedBytesPeak <= budget);
      assert.equal(
        after.bufferedBytes,
        0,
        `every reservation was released: ${JSON.stringify(after)}`,
      );
      assert.ok(after.refusedTimeout >= 1);
      assert.ok(after.refusedConnectionsPerAddress >= 1);
      // And the good client is still served after the storm.
      assert.equal((await pair.client.send(pair.peer, Buffer.from('bye'))).toString(), 'ok 3');
    } finally {
      slow.close();
      many.close();
      pair.close();
    }
  });
});
