// A peer gateway that crashes and comes back on the same address with the same key: the
// restarted endpoint answers the old connection's packets with a stateless reset (RFC 9000
// §10.3), so the sender's pooled connection closes at once and the next message reconnects,
// instead of waiting for the stream or idle timeout.
import { strict as assert } from 'node:assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { QuicError, QuicTransport, type CertificateAndKey } from '../../src/quic/index.js';
import { testCertificates } from './helpers.js';

/** A QUIC server in a process of its own (so that it can be killed), answering `ok <n>`. */
async function serverProcess(
  cert: CertificateAndKey,
  port: number,
): Promise<{ child: ChildProcess; port: number }> {
  const quic = new URL('../../src/quic/index.js', import.meta.url).href;
  const script = `
    const { QuicTransport } = await import(${JSON.stringify(quic)});
    const t = QuicTransport.open({
      certPem: process.env.CERT, keyPem: process.env.KEY, host: '127.0.0.1', port: ${port},
      verifyInboundPeer: () => true,
      onMessage: (m) => Buffer.from('ok ' + m.data.length),
    });
    process.stdout.write(t.port + '\\n');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, CERT: cert.certPem, KEY: cert.keyPem },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await Promise.race([
    once(child.stdout, 'data').then(([d]) => String(d).trim()),
    once(child, 'exit').then(() => 'exited'),
  ]);
  assert.match(line, /^[0-9]+$/, `the server process started (${line})`);
  return { child, port: Number(line) };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}

describe('QUIC transport: a peer restarted', () => {
  it('resets the connections of its previous run, and the next message reconnects', async () => {
    const [serverCert, clientCert] = (await testCertificates()) as [
      CertificateAndKey,
      CertificateAndKey,
    ];
    const client = QuicTransport.open({
      certPem: clientCert.certPem,
      keyPem: clientCert.keyPem,
      host: '127.0.0.1',
      port: 0,
      listen: false,
      // Far longer than the test may take: a send that waited for it would fail the test.
      limits: { streamTimeoutMs: 600_000, idleTimeoutMs: 600_000 },
    });
    const first = await serverProcess(serverCert, 0);
    const peer = {
      host: '127.0.0.1',
      port: first.port,
      verify: (p: { spki: Buffer }) => p.spki.equals(serverCert.spki),
    };
    let second: { child: ChildProcess } | undefined;
    try {
      assert.equal((await client.send(peer, Buffer.from('before'))).toString(), 'ok 6');
      await kill(first.child);
      second = await serverProcess(serverCert, first.port);
      // The pooled connection belongs to the killed process: reset, not left to time out.
      await assert.rejects(client.send(peer, Buffer.from('lost')), (err: unknown) => {
        assert.ok(err instanceof QuicError, String(err));
        assert.equal(err.code, 'ERR_QUIC_CLOSED', err.message);
        assert.match(err.message, /restarted/);
        return true;
      });
      assert.equal((await client.send(peer, Buffer.from('after'))).toString(), 'ok 5');
      assert.equal(client.stats().connectionsOutbound, 2);
    } finally {
      client.close();
      await kill(first.child);
      if (second) await kill(second.child);
    }
  });
});
