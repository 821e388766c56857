// The benchmark's one-session-at-a-time SMTP client (bench/lib/smtp-dialogue.ts), against an
// smtp-server on this machine: it times every step of every session (multi-line replies such as
// EHLO's included), delivers the message whole, and stops with the server's own reply when a
// step is refused.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { SMTPServer } from 'smtp-server';
import { DIALOGUE_STEPS, timeDialogues } from '../../bench/lib/smtp-dialogue.js';

/** An smtp-server on 127.0.0.1 that keeps each message's bytes; `refuse` is refused at RCPT. */
async function server(refuse?: string) {
  const messages: Buffer[] = [];
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo(address, _session, cb) {
      if (address.address === refuse) {
        cb(Object.assign(new Error('no such user'), { responseCode: 550 }));
        return;
      }
      cb();
    },
    onData(stream, _session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        messages.push(Buffer.concat(chunks));
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', resolve));
  const port = (smtp.server.address() as AddressInfo).port;
  return { port, messages, close: () => new Promise<void>((r) => smtp.close(() => r())) };
}

test('every step of every timed session is timed, and each message arrives whole', async () => {
  const s = await server();
  try {
    const times = await timeDialogues({
      port: s.port,
      from: 'a@example.org',
      to: 'b@example.test',
      size: 4096,
      sessions: 3,
      warmup: 2,
    });
    assert.deepEqual(Object.keys(times), [...DIALOGUE_STEPS]);
    for (const step of DIALOGUE_STEPS) {
      assert.equal(times[step].length, 3, step);
      for (const us of times[step]) assert.ok(us > 0 && Number.isFinite(us), `${step}: ${us}`);
    }
    const steps = DIALOGUE_STEPS.filter((s) => s !== 'session, whole');
    times['session, whole'].forEach((whole, i) => {
      const sum = steps.reduce((t, step) => t + (times[step][i] as number), 0);
      assert.ok(Math.abs(whole - sum) < 1, `whole ${whole} against the steps' ${sum}`);
    });
    assert.equal(s.messages.length, 5); // the warm-up's two and the three timed
    for (const m of s.messages) {
      assert.ok(m.length >= 4096 - 80 && m.length <= 4096 + 80, `${m.length} bytes`);
      assert.match(m.toString('latin1'), /^From: <a@example\.org>\r\nTo: <b@example\.test>\r\n/);
    }
  } finally {
    await s.close();
  }
});

test('a refused step ends the run with the server reply', async () => {
  const s = await server('nobody@example.test');
  try {
    await assert.rejects(
      timeDialogues({
        port: s.port,
        from: 'a@example.org',
        to: 'nobody@example.test',
        size: 1000,
        sessions: 1,
        warmup: 0,
      }),
      /^Error: RCPT TO: 550 no such user$/,
    );
    assert.equal(s.messages.length, 0);
  } finally {
    await s.close();
  }
});
