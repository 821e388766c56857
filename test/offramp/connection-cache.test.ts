// The off-ramp's connection cache (src/legacy/offramp/session.ts, SessionCache) against a real
// SMTP server (smtp-server): messages to one server in a row share one connection, each checked
// with RSET first; a kept session the server has dropped is replaced before anything is sent, and
// every message arrives once; a session is not shared across EHLO names or TLS requirements; an
// idle session is closed when its time is up; a stop ends the kept sessions with QUIT and waits for
// the replies, for a bounded time when a server gives none.
import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SMTPServer, type SMTPServerOptions } from 'smtp-server';
import { runSession, SessionCache, type SessionResult } from '../../src/legacy/offramp/session.js';
import { deliveredToBob, keepSubjects, sessionInput } from './helpers.js';

interface Server {
  readonly port: number;
  connections: number;
  readonly messages: string[];
  readonly commands: string[];
  close(): Promise<void>;
}

/** A logger for smtp-server that keeps the name of each command a client sent. */
function commandLogger(commands: string[]): SMTPServerOptions['logger'] {
  const none = (): void => undefined;
  const debug = (entry: { tnx?: string; command?: string }): void => {
    if (entry.tnx === 'command' && entry.command !== undefined) commands.push(entry.command);
  };
  return { debug, trace: none, info: none, warn: none, error: none, fatal: none } as never;
}

/** An SMTP server that counts its connections and keeps each message's Subject and commands. */
async function startServer(socketTimeout?: number): Promise<Server> {
  const state = { connections: 0, messages: [] as string[], commands: [] as string[] };
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    // smtp-server's debug lines name each command the client sent.
    logger: commandLogger(state.commands),
    ...(socketTimeout !== undefined ? { socketTimeout } : {}),
    onConnect(_session, callback) {
      state.connections++;
      callback();
    },
    onData: keepSubjects(state.messages),
  });
  server.on('error', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.server.address() as AddressInfo).port;
  return Object.assign(state, {
    port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
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
    for (let n = 1; n <= 5; n++)
      results.push(await runSession(sessionInput(server.port, `m${n}`), cache));
    assert.ok(results.every(deliveredToBob));
    assert.deepEqual(results.map(reusedOf), [false, true, true, true, true]);
    assert.equal(server.connections - start, 1);
    assert.deepEqual(server.messages.slice(-5), ['m1', 'm2', 'm3', 'm4', 'm5']);
    assert.equal(cache.size, 1);
    await cache.close();
    assert.equal(cache.size, 0);
  });

  test('another EHLO name or TLS requirement gets a session of its own', async () => {
    const cache = new SessionCache({ idleMs: 5_000 });
    const start = server.connections;
    assert.ok(deliveredToBob(await runSession(sessionInput(server.port, 'a'), cache)));
    assert.ok(
      deliveredToBob(
        await runSession(sessionInput(server.port, 'b', { helo: 'other.a.test' }), cache),
      ),
    );
    const plain = await runSession(
      sessionInput(server.port, 'c', { tls: { kind: 'plaintext' } }),
      cache,
    );
    assert.ok(deliveredToBob(plain));
    assert.equal(reusedOf(plain), false);
    assert.equal(server.connections - start, 3);
    assert.equal(cache.size, 3);
    await cache.close();
  });

  test('an idle session is closed when its time is up, and the next message opens a new one', async () => {
    const cache = new SessionCache({ idleMs: 100 });
    const start = server.connections;
    assert.ok(deliveredToBob(await runSession(sessionInput(server.port, 'before'), cache)));
    assert.equal(cache.size, 1);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(cache.size, 0);
    const r = await runSession(sessionInput(server.port, 'after'), cache);
    assert.ok(deliveredToBob(r));
    assert.equal(reusedOf(r), false);
    assert.equal(server.connections - start, 2);
    await cache.close();
  });

  test('without a cache every message has its own connection', async () => {
    const start = server.connections;
    for (const s of ['x', 'y'])
      assert.ok(deliveredToBob(await runSession(sessionInput(server.port, s))));
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
    assert.ok(deliveredToBob(await runSession(sessionInput(server.port, 'first'), cache)));
    await new Promise((r) => setTimeout(r, 500));
    const r = await runSession(sessionInput(server.port, 'second'), cache);
    assert.ok(deliveredToBob(r));
    assert.equal(reusedOf(r), false);
    assert.equal(server.connections - start, 2);
    assert.deepEqual(server.messages.slice(-2), ['first', 'second']);
    await cache.close();
  });
});

describe('a stop ends the kept sessions', () => {
  let server: Server;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  test('with QUIT, and waits for the replies', async () => {
    const cache = new SessionCache({ idleMs: 60_000 });
    assert.ok(deliveredToBob(await runSession(sessionInput(server.port, 'one'), cache)));
    assert.ok(
      deliveredToBob(
        await runSession(sessionInput(server.port, 'two', { helo: 'b.a.test' }), cache),
      ),
    );
    assert.equal(cache.size, 2);
    const quits = server.commands.filter((c) => c === 'QUIT').length;
    await cache.close();
    assert.equal(cache.size, 0);
    assert.equal(server.commands.filter((c) => c === 'QUIT').length - quits, 2);
    // A session that ends after the stop began is not kept: QUIT at once.
    assert.ok(deliveredToBob(await runSession(sessionInput(server.port, 'three'), cache)));
    assert.equal(cache.size, 0);
    for (let t = 0; t < 50 && server.commands.filter((c) => c === 'QUIT').length < quits + 3; t++)
      await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.commands.filter((c) => c === 'QUIT').length - quits, 3);
  });

  test('a server that never answers QUIT holds the stop for the wait only', async () => {
    const silent = await startSilentOnQuit();
    try {
      const cache = new SessionCache({ idleMs: 60_000 });
      const r = await runSession(
        sessionInput(silent.port, 'x', { tls: { kind: 'plaintext' } }),
        cache,
      );
      assert.ok(deliveredToBob(r));
      const started = Date.now();
      await cache.close(300);
      const waited = Date.now() - started;
      assert.ok(waited >= 250 && waited < 5_000, `waited ${waited} ms`);
      assert.equal(silent.quits(), 1);
    } finally {
      await silent.close();
    }
  });
});

/**
 * A minimal SMTP server, by hand, that takes one message and then ignores QUIT (no reply, the
 * connection left open): what a stop must not wait on for long.
 */
async function startSilentOnQuit(): Promise<{
  port: number;
  quits(): number;
  close(): Promise<void>;
}> {
  let quits = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let inData = false;
    let pending = '';
    socket.write('220 silent.test ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let at = pending.indexOf('\r\n'); at >= 0; at = pending.indexOf('\r\n')) {
        const line = pending.slice(0, at);
        pending = pending.slice(at + 2);
        if (inData) {
          if (line === '.') {
            inData = false;
            socket.write('250 2.0.0 queued\r\n');
          }
          continue;
        }
        const verb = line.slice(0, 4).toUpperCase();
        if (verb === 'QUIT') quits++;
        else if (verb === 'EHLO') socket.write('250-silent.test\r\n250 8BITMIME\r\n');
        else if (verb === 'DATA') {
          inData = true;
          socket.write('354 go on\r\n');
        } else socket.write('250 2.0.0 ok\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    quits: () => quits,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
