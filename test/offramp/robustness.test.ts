// The off-ramp against SMTP servers that misbehave, scripted on raw sockets (the receiving end
// of `smtp:[127.0.0.1]:port` routes): a greeting that never comes, a reply that never ends, a
// connection dropped in the middle of the data, no reply to the final dot, a STARTTLS handshake
// that fails (retried in clear, as Postfix's `may`, the clear session kept for the next message),
// 421 in the middle of the transaction. Every
// case ends within its timeout with a temporary failure, or delivers.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { createOffRamp, type OffRampMetrics } from '../../src/legacy/offramp/index.js';
import { encodeOutbound } from '../../src/queue/outbound.js';
import type { DestinationHandler } from '../../src/delivery/worker.js';
import { MappingEngine } from '../../src/routing/index.js';
import { job, memoryLog, message } from './helpers.js';

type Behaviour = {
  /** What to do at connect (default: greet). */
  greet?: 'silent';
  /** Offer STARTTLS and answer the handshake with garbage. */
  brokenTls?: boolean;
  /** After the greeting, answer EHLO with an endless line. */
  endlessEhlo?: boolean;
  /** At DATA: drop after 354, be silent after the dot, or 421 at RCPT. */
  data?: 'drop' | 'silent';
  rcpt421?: boolean;
};

/** A scripted SMTP server; behaviours are used one per connection, the last one repeating. */
async function fakeSmtp(
  behaviours: Behaviour[],
): Promise<{ port: number; server: Server; got: string[]; connections(): number }> {
  const got: string[] = [];
  let n = 0;
  const server = createServer((sock: Socket) => {
    const b = behaviours[Math.min(n++, behaviours.length - 1)] as Behaviour;
    sock.on('error', () => undefined);
    if (b.greet === 'silent') return;
    sock.write('220 fake ESMTP\r\n');
    let buf = '';
    let inData = false;
    sock.on('data', (d: Buffer) => {
      buf += d.toString('latin1');
      for (;;) {
        if (inData) {
          const end = buf.indexOf('\r\n.\r\n');
          if (end < 0) {
            if (b.data === 'drop') sock.destroy();
            return;
          }
          got.push(buf.slice(0, end + 2));
          buf = buf.slice(end + 5);
          inData = false;
          if (b.data === 'silent') return;
          sock.write('250 2.0.0 queued\r\n');
          continue;
        }
        const nl = buf.indexOf('\r\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 2);
        const cmd = line.slice(0, 4).toUpperCase();
        if (cmd === 'EHLO') {
          if (b.endlessEhlo) {
            const chunk = '250-'.padEnd(8192, 'x');
            const flood = (): void => {
              if (!sock.destroyed && sock.write(chunk)) setImmediate(flood);
              else sock.once('drain', flood);
            };
            flood();
            return;
          }
          sock.write(`250-fake\r\n${b.brokenTls ? '250-STARTTLS\r\n' : ''}250 SIZE 1000000\r\n`);
        } else if (cmd === 'STAR') {
          sock.write('220 2.0.0 go ahead\r\n');
          sock.once('data', () => sock.end('this is not TLS at all\r\n'.repeat(10)));
          return;
        } else if (cmd === 'MAIL') sock.write('250 2.1.0 ok\r\n');
        else if (cmd === 'RCPT')
          sock.write(b.rcpt421 ? '421 4.3.2 shutting down\r\n' : '250 2.1.5 ok\r\n');
        else if (cmd === 'DATA') {
          sock.write('354 go\r\n');
          inData = true;
        } else if (cmd === 'RSET') sock.write('250 2.0.0 ok\r\n');
        else if (cmd === 'QUIT') sock.end('221 bye\r\n');
        else sock.write('502 5.5.2 what\r\n');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    server,
    got,
    connections: () => n,
  };
}

describe('off-ramp against misbehaving servers', () => {
  const maps = MappingEngine.open({ path: ':memory:', pollMs: 0 });
  const servers: Server[] = [];
  const counted: string[] = [];
  const metrics: OffRampMetrics = {
    tls: (p, r) => counted.push(`${p}/${r}`),
    recipients: () => undefined,
  };

  after(() => {
    maps.close();
    for (const s of servers) s.close();
  });

  async function deliver(domain: string, behaviours: Behaviour[], messages = 1) {
    const fake = await fakeSmtp(behaviours);
    servers.push(fake.server);
    maps.set('mx_record_map', domain, `smtp:[127.0.0.1]:${fake.port}`);
    // What the delivery worker takes for `smtp:` destinations.
    const offramp = createOffRamp({
      maps: () => maps.snapshot(),
      dnsServers: ['127.0.0.1:9'],
      hostname: 'gateway.example.org',
      log: memoryLog(),
      metrics,
      maxReplyBytes: 16 * 1024,
      timeouts: { connectMs: 500, greetingMs: 300, commandMs: 300, dataMs: 600 },
    });
    const handler: DestinationHandler = offramp;
    const started = Date.now();
    let out: Awaited<ReturnType<DestinationHandler>> = [];
    for (let m = 0; m < messages; m++) {
      out = await handler(
        job(
          `smtp:${domain}`,
          [`a@${domain}`, `b@${domain}`],
          encodeOutbound({
            mailFrom: 'alice@example.org',
            message: message(domain, `a@${domain}`),
          }),
        ),
      );
    }
    const ms = Date.now() - started;
    await offramp.close();
    return { out, ms, got: fake.got, connections: fake.connections() };
  }

  test('a greeting that never comes: ERR_SMTP_UNREACHABLE within the greeting timeout', async () => {
    const { out, ms } = await deliver('silent.example', [{ greet: 'silent' }]);
    assert.deepEqual(
      out.map((o) => [o.status, o.code]),
      [
        ['temporary', 'ERR_SMTP_UNREACHABLE'],
        ['temporary', 'ERR_SMTP_UNREACHABLE'],
      ],
    );
    assert.ok(ms < 3000, `${ms} ms`);
  });

  test('a reply that never ends is cut at the reply bound', async () => {
    const { out, ms } = await deliver('endless.example', [{ endlessEhlo: true }]);
    assert.equal(out[0]?.status, 'temporary');
    assert.equal(out[0]?.code, 'ERR_SMTP_DEFERRED');
    assert.ok(ms < 3000, `${ms} ms`);
  });

  test('a connection dropped during the data: temporary for every recipient', async () => {
    const { out } = await deliver('drop.example', [{ data: 'drop' }]);
    assert.deepEqual(
      out.map((o) => [o.status, o.code]),
      [
        ['temporary', 'ERR_SMTP_CONNECTION_LOST'],
        ['temporary', 'ERR_SMTP_CONNECTION_LOST'],
      ],
    );
  });

  test('no reply to the final dot: lost after the transaction bound', async () => {
    const { out, ms } = await deliver('mute.example', [{ data: 'silent' }]);
    assert.equal(out[0]?.code, 'ERR_SMTP_CONNECTION_LOST');
    assert.ok(ms < 3000, `${ms} ms`);
  });

  test('421 during RCPT: temporary for all, nothing sent', async () => {
    const { out, got } = await deliver('closing.example', [{ rcpt421: true }]);
    assert.deepEqual(
      out.map((o) => o.status),
      ['temporary', 'temporary'],
    );
    assert.equal(got.length, 0);
  });

  test('a STARTTLS handshake that fails is retried in clear (opportunistic)', async () => {
    const before = counted.length;
    const { out, got } = await deliver('badtls.example', [{ brokenTls: true }, {}]);
    assert.deepEqual(
      out.map((o) => o.status),
      ['delivered', 'delivered'],
    );
    assert.equal(got.length, 1);
    assert.deepEqual(counted.slice(before), ['no-policy-found/validation-failure']);
  });

  test('the plaintext session after a failed handshake carries the next such message', async () => {
    const before = counted.length;
    // Connections: a handshake that fails, the plaintext retry, the next message's failing
    // handshake; its retry takes the kept plaintext session (a fourth would be refused below).
    const { out, got, connections } = await deliver(
      'badtls2.example',
      [{ brokenTls: true }, {}, { brokenTls: true }, { greet: 'silent' }],
      2,
    );
    assert.deepEqual(
      out.map((o) => o.status),
      ['delivered', 'delivered'],
    );
    assert.equal(got.length, 2);
    assert.equal(connections, 3);
    assert.deepEqual(counted.slice(before), [
      'no-policy-found/validation-failure',
      'no-policy-found/validation-failure',
    ]);
  });
});
