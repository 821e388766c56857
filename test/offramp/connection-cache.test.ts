// The off-ramp's connection cache (src/legacy/offramp/session.ts, SessionCache) against a real
// SMTP server (smtp-server): messages to one server in a row share one connection, each checked
// with RSET first; a kept session the server has dropped is replaced before anything is sent, and
// every message arrives once; a session is not shared across EHLO names or TLS requirements; an
// idle session is closed when its time is up.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import {
  runSession,
  SessionCache,
  type SessionInput,
  type SessionResult,
} from '../../src/legacy/offramp/session.js';

interface Server {
  readonly port: number;
  connections: number;
  readonly messages: string[];
  readonly commands: string[];
  close(): Promise<void>;
}

/** An SMTP server that counts its connections and keeps each message's Subject. */
async function startServer(socketTimeout?: number): Promise<Server> {
  const state = { connections: 0, messages: [] as string[], commands: [] as string[] };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    ...(socketTimeout !== undefined ? { socketTimeout } : {}),
    onConnect(_session, callback) {
      state.connections++;
      callback();
    },
    onData(stream, _session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const subject = /^Subject: (.*)$/m.exec(Buffer.concat(chunks).toString('latin1'));
        state.messages.push(subject?.[1]?.trim() ?? '');
        callback();
      });
    },
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return Object.assign(state, {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

function input(port: number, subject: string, over: Partial<SessionInput> = {}): SessionInput {
  return {
    address: '127.0.0.1',
    port,
    hostName: undefined,
    helo: 'gw.a.test',
    tls: { kind: 'opportunistic' },
    timeouts: { connectMs: 5_000, greetingMs: 5_000, commandMs: 5_000, dataMs: 10_000 },
    maxReplyBytes: 64 * 1024,
    mailFrom: 'alice@a.test',
    recipients: ['bob@dest.test'],
    message: Buffer.from(
      `From: alice@a.test\r\nTo: bob@dest.test\r\nSubject: ${subject}\r\n\r\nHi.\r\n`,
    ),
    now: Date.now,
    ...over,
  };
}

function delivered(r: SessionResult): boolean {
  return r.kind === 'done' && r.results.get('bob@dest.test')?.status === 'delivered';
}

const reusedOf = (r: SessionResult): boolean => 'reused' in r && r.reused === true;

describe('the off-ramp keeps a session for the next message to the same server', () => {
  let server: Server;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  test('five messages in a row: one connection, each message once', async () => {
    const cache = new SessionCache({ idleMs: 5_000 });
    const start = server.connections;
    const results = [];
    for (let n = 1; n <= 5; n++) results.push(await runSession(input(server.port, `m${n}`), cache));
    assert.ok(results.every(delivered));
    assert.deepEqual(results.map(reusedOf), [false, true, true, true, true]);
    assert.equal(server.connections - start, 1);
    assert.deepEqual(server.messages.slice(-5), ['m1', 'm2', 'm3', 'm4', 'm5']);
    assert.equal(cache.size, 1);
    cache.close();
    assert.equal(cache.size, 0);
  });

  test('another EHLO name or TLS requirement gets a session of its own', async () => {
    const cache = new SessionCache({ idleMs: 5_000 });
    const start = server.connections;
    assert.ok(delivered(await runSession(input(server.port, 'a'), cache)));
    assert.ok(
      delivered(await runSession(input(server.port, 'b', { helo: 'other.a.test' }), cache)),
    );
    const plain = await runSession(input(server.port, 'c', { tls: { kind: 'plaintext' } }), cache);
    assert.ok(delivered(plain));
    assert.equal(reusedOf(plain), false);
    assert.equal(server.connections - start, 3);
    assert.equal(cache.size, 3);
    cache.close();
  });

  test('an idle session is closed when its time is up, and the next message opens a new one', async () => {
    const cache = new SessionCache({ idleMs: 100 });
    const start = server.connections;
    assert.ok(delivered(await runSession(input(server.port, 'before'), cache)));
    assert.equal(cache.size, 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(cache.size, 0);
    const r = await runSession(input(server.port, 'after'), cache);
    assert.ok(delivered(r));
    assert.equal(reusedOf(r), false);
    assert.equal(server.connections - start, 2);
    cache.close();
  });

  test('without a cache every message has its own connection', async () => {
    const start = server.connections;
    for (const s of ['x', 'y']) assert.ok(delivered(await runSession(input(server.port, s))));
    assert.equal(server.connections - start, 2);
  });
});

describe('a kept session the server has dropped', () => {
  let server: Server;
  before(async () => {
    // The server closes a connection idle for 200 ms (421 and the close).
    server = await startServer(200);
  });
  after(() => server.close());

  test('is replaced before anything of the message is sent: it arrives once', async () => {
    const cache = new SessionCache({ idleMs: 10_000 });
    const start = server.connections;
    assert.ok(delivered(await runSession(input(server.port, 'first'), cache)));
    await new Promise((r) => setTimeout(r, 500));
    const r = await runSession(input(server.port, 'second'), cache);
    assert.ok(delivered(r));
    assert.equal(reusedOf(r), false);
    assert.equal(server.connections - start, 2);
    assert.deepEqual(server.messages.slice(-2), ['first', 'second']);
    cache.close();
  });
});
