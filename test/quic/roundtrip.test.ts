// Round trips against the real endpoint on 127.0.0.1: one message and its receipt, 10,000
// messages over one pooled connection, 1,000 concurrent streams, and the counters on both sides.
import { strict as assert } from 'node:assert';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { QuicError } from '../../src/quic/index.js';
import { startPair, type Pair } from './helpers.js';

describe('QUIC transport: round trips', () => {
  it('delivers a message and resolves with the peer receipt', async () => {
    const pair = await startPair({ keep: true });
    try {
      const receipt = await pair.client.send(pair.peer, Buffer.from('hello, gateway'));
      assert.equal(receipt.toString(), 'ok 14');
      assert.equal(pair.received[0]?.toString(), 'hello, gateway');
      const s = pair.server.stats();
      assert.equal(s.framesReceived, 1);
      assert.equal(s.acksSent, 1);
      assert.equal(s.handshakesCompleted, 1);
      assert.equal(s.bufferedBytes, 0, 'the reservation is released once answered');
      assert.equal(pair.client.stats().acksReceived, 1);
    } finally {
      pair.close();
    }
  });

  it('carries empty and 1 MiB messages byte-exactly', async () => {
    const pair = await startPair({ keep: true });
    try {
      const big = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff;
      assert.equal((await pair.client.send(pair.peer, Buffer.alloc(0))).toString(), 'ok 0');
      assert.equal((await pair.client.send(pair.peer, big)).toString(), `ok ${big.length}`);
      assert.equal(pair.received[0]?.length, 0);
      assert.ok(pair.received[1]?.equals(big));
    } finally {
      pair.close();
    }
  });

  it('hands over concurrent messages of every size byte-exactly, kept after the answer', async () => {
    // Small bodies share pages (native/src/quic/batch.rs), larger ones have buffers of their
    // own: sizes around the page and small-body limits, all in flight at once, each distinct.
    const sizes = [1, 5, 1000, 1024, 4096, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 40_000, 65_536];
    const msgs = Array.from({ length: 600 }, (_, i) => {
      const m = Buffer.alloc(sizes[i % sizes.length] as number);
      for (let j = 0; j < m.length; j++) m[j] = (i * 7 + j * 13) & 0xff;
      return m;
    });
    const digest = (b: Buffer) => createHash('sha256').update(b).digest('hex');
    const kept: Buffer[] = [];
    const pair = await startPair({
      limits: { maxStreamsPerConnection: 600 },
      onMessage: (m) => {
        kept.push(m.data);
        return Buffer.from(digest(m.data));
      },
    });
    try {
      const receipts = await Promise.all(msgs.map((m) => pair.client.send(pair.peer, m)));
      receipts.forEach((r, i) => assert.equal(r.toString(), digest(msgs[i] as Buffer), `#${i}`));
      // What the handler kept is unchanged once every later message has arrived.
      assert.deepEqual(kept.map(digest).sort(), msgs.map(digest).sort());
    } finally {
      pair.close();
    }
  });

  it('settles every send when a handler closes the receiving transport mid-batch', async () => {
    // The close reports its own events while the batch is still being read: they must not
    // disturb the rest of that batch (native/src/node_loop.rs, `arguments`).
    let handled = 0;
    const holder: { pair?: Pair } = {};
    const pair = await startPair({
      onMessage: (m) => {
        if (++handled === 3) holder.pair?.server.close();
        return Buffer.from(`ok ${m.data.length}`);
      },
    });
    holder.pair = pair;
    try {
      const sends = Array.from({ length: 32 }, () =>
        pair.client.send(pair.peer, Buffer.alloc(100)),
      );
      const results = await Promise.allSettled(sends);
      const failed = results.filter((r) => r.status === 'rejected');
      assert.ok(failed.length > 0, 'the sends after the close fail');
      for (const r of failed) assert.ok(r.reason instanceof QuicError, String(r.reason));
      for (const r of results) {
        if (r.status === 'fulfilled') assert.equal(r.value.toString(), 'ok 100');
      }
    } finally {
      pair.close();
    }
  });

  it('sends 10,000 messages over one connection', async () => {
    const pair = await startPair();
    try {
      const total = 10_000;
      const window = 200;
      let next = 0;
      let acked = 0;
      const worker = async () => {
        while (next < total) {
          const i = next++;
          const r = await pair.client.send(pair.peer, Buffer.from(`message ${i}`));
          assert.equal(r.toString(), `ok ${`message ${i}`.length}`);
          acked++;
        }
      };
      await Promise.all(Array.from({ length: window }, worker));
      assert.equal(acked, total);
      const s = pair.server.stats();
      assert.equal(s.connectionsInbound, 1, 'one connection, reused');
      assert.equal(s.framesReceived, total);
      assert.equal(s.acksSent, total);
      assert.equal(pair.client.stats().connectionsOutbound, 1);
    } finally {
      pair.close();
    }
  });

  it('runs 1,000 concurrent streams on one connection', async () => {
    const pair = await startPair({ limits: { maxStreamsPerConnection: 1000 } });
    try {
      const msgs = Array.from({ length: 1000 }, (_, i) => Buffer.alloc(1024, i & 0xff));
      const receipts = await Promise.all(msgs.map((m) => pair.client.send(pair.peer, m)));
      assert.equal(receipts.length, 1000);
      for (const r of receipts) assert.equal(r.toString(), 'ok 1024');
      const s = pair.server.stats();
      assert.equal(s.streamsInbound, 1000);
      assert.equal(s.connectionsInbound, 1);
      assert.equal(s.refusedBusy, 0);
    } finally {
      pair.close();
    }
  });
});
