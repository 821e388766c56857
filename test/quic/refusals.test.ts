// Bad input and caps, against the real endpoint: each refusal is a typed error on that stream
// only, and the same connection keeps serving well-formed messages afterwards.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';
import { QuicError } from '../../src/quic/index.js';
import { startPair } from './helpers.js';

function header(type: number, len: number): Buffer {
  const h = Buffer.alloc(5);
  h[0] = type;
  h.writeUInt32BE(len, 1);
  return h;
}

async function rejectsWith(p: Promise<unknown>, code: string): Promise<QuicError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof QuicError, `not a QuicError: ${String(err)}`);
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`resolved, expected ${code}`);
}

describe('QUIC transport: refusals', () => {
  it('refuses a frame over the cap with ERR_QUIC_TOO_LARGE before buffering it', async () => {
    const pair = await startPair({ limits: { maxFrameBytes: 64 * 1024 } });
    try {
      const err = await rejectsWith(
        pair.client.send(pair.peer, Buffer.alloc(64 * 1024 + 1)),
        'ERR_QUIC_TOO_LARGE',
      );
      assert.equal(err.wireCode, 0x0002);
      assert.equal(
        (await pair.client.send(pair.peer, Buffer.alloc(64 * 1024))).toString(),
        'ok 65536',
      );
      const s = pair.server.stats();
      assert.equal(s.refusedTooLarge, 1);
      assert.equal(s.bufferedBytesPeak, 64 * 1024, 'the refused frame reserved nothing');
    } finally {
      pair.close();
    }
  });

  it('closes only the stream of a malformed frame', async () => {
    const pair = await startPair();
    try {
      await pair.client.send(pair.peer, Buffer.from('warm-up'));
      const cases: Array<[string, Buffer]> = [
        ['unknown type', Buffer.concat([header(0x7f, 3), Buffer.from('abc')])],
        ['an ACK sent as a request', Buffer.concat([header(0x02, 3), Buffer.from('abc')])],
        ['bytes after the frame', Buffer.concat([header(0x01, 3), Buffer.from('abcdef')])],
        ['truncated body', Buffer.concat([header(0x01, 10), Buffer.from('abc')])],
        ['truncated header', Buffer.from([0x01, 0x00])],
        ['empty stream', Buffer.alloc(0)],
      ];
      for (const [name, bytes] of cases) {
        const err = await rejectsWith(
          pair.client.sendRaw(pair.peer, bytes, true),
          'ERR_QUIC_MALFORMED',
        );
        assert.equal(err.wireCode, 0x0003, name);
      }
      assert.equal(
        (await pair.client.send(pair.peer, Buffer.from('still fine'))).toString(),
        'ok 10',
      );
      const s = pair.server.stats();
      assert.equal(s.refusedMalformed, cases.length);
      assert.equal(s.connectionsInbound, 1, 'the connection survived');
      assert.equal(s.bufferedBytes, 0);
    } finally {
      pair.close();
    }
  });

  it('refuses new streams with ERR_QUIC_BUSY while the application queue is full', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let delivered = 0;
    let firstTwo!: () => void;
    const bothIn = new Promise<void>((r) => (firstTwo = r));
    const pair = await startPair({
      limits: { queueDepth: 2 },
      onMessage: async () => {
        if (++delivered === 2) firstTwo();
        await gate;
        return undefined;
      },
    });
    try {
      const a = pair.client.send(pair.peer, Buffer.from('a'));
      const b = pair.client.send(pair.peer, Buffer.from('b'));
      await bothIn;
      assert.equal(pair.server.stats().queueLength, 2);
      await rejectsWith(pair.client.send(pair.peer, Buffer.from('c')), 'ERR_QUIC_BUSY');
      release();
      assert.deepEqual(
        (await Promise.all([a, b])).map((r) => r.length),
        [0, 0],
      );
      await pair.client.send(pair.peer, Buffer.from('d'));
      assert.equal(pair.server.stats().refusedBusy, 1);
    } finally {
      pair.close();
    }
  });

  it('hands a refusal from the application to the peer with its code', async () => {
    const { QuicRefusal } = await import('../../src/quic/index.js');
    const pair = await startPair({
      onMessage: (m) => {
        if (m.data.toString() === 'spam') throw new QuicRefusal('policy says no', 0x1004);
        if (m.data.toString() === 'bug') throw new Error('internal detail');
        return undefined;
      },
    });
    try {
      const err = await rejectsWith(
        pair.client.send(pair.peer, Buffer.from('spam')),
        'ERR_QUIC_APPLICATION',
      );
      assert.equal(err.wireCode, 0x1004);
      assert.equal(err.message, 'policy says no');
      const bug = await rejectsWith(
        pair.client.send(pair.peer, Buffer.from('bug')),
        'ERR_QUIC_INTERNAL',
      );
      assert.match(bug.message, /^temporary failure, tx [0-9a-f-]{36}$/);
      assert.doesNotMatch(bug.message, /internal detail/);
    } finally {
      pair.close();
    }
  });
});
