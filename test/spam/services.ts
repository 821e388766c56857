// Where the spam tests find the real scanners (scripts/services/rspamd.sh and spamassassin.sh,
// started by .ci/run). Locally a missing scanner skips those tests with the command that starts
// it; under CI (CI=true) it fails them: CI must never pass without the real scanners.
import { createServer, type Server, type Socket } from 'node:net';
import { service, type Service } from '../queue/services.js';

export function rspamd(): Promise<Service> {
  return service('AFTERSMTP_RSPAMD_URL', 'http://127.0.0.1:11333', 'rspamd.sh');
}

export function spamd(): Promise<Service> {
  return service('AFTERSMTP_SPAMD_URL', 'spamd://127.0.0.1:783', 'spamassassin.sh');
}

/** A port on 127.0.0.1 where nothing listens (taken, then released). */
export async function deadPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A TCP server that accepts, reads and never answers (a scanner that hangs). */
export async function silentServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  // allowHalfOpen: the client's end of its request does not close our side (we never answer).
  const s: Server = createServer({ allowHalfOpen: true }, (c) => {
    sockets.add(c);
    c.on('data', () => undefined);
    c.on('error', () => undefined);
    c.on('close', () => sockets.delete(c));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    port: (s.address() as { port: number }).port,
    close: () =>
      new Promise<void>((r) => {
        for (const c of sockets) c.destroy();
        s.close(() => r());
      }),
  };
}

/** A TCP server that answers every connection with `reply` and closes. */
export async function answeringServer(
  reply: Buffer,
): Promise<{ port: number; close(): Promise<void> }> {
  const s: Server = createServer((c) => {
    c.on('error', () => undefined);
    c.once('data', () => c.end(reply));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    port: (s.address() as { port: number }).port,
    close: () => new Promise<void>((r) => s.close(() => r())),
  };
}

export const GTUBE = 'XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X';

/** A message both scanners score between 6 and 15 (no GTUBE): lottery spam in HTML. */
export function spammy(to: string): Buffer {
  return Buffer.from(
    [
      'From: "Prize Dept" <winner@lottery.example>',
      `To: ${to}`,
      'Subject: =?utf-8?B?WU9VIEhBVkUgV09OICQxLDAwMCwwMDAgISEh?=',
      'MIME-Version: 1.0',
      'Content-Type: text/html; charset=utf-8',
      '',
      '<html><body><font size=7 color=red>CONGRATULATIONS!!! YOU HAVE WON $1,000,000 USD</font><br>',
      'Dear friend, 100% FREE, no cost, act now! Click here to claim your prize:',
      '<a href="http://198.51.100.7/claim">http://www.paypal.com/claim</a><br>',
      'Viagra Cialis cheap meds, lose weight fast, make money fast, work from home, risk free, guaranteed.',
      '</body></html>',
      '',
    ].join('\r\n'),
  );
}

/** An ordinary message. */
export function plain(to: string, subject = 'lunch on Thursday'): Buffer {
  return Buffer.from(
    [
      'From: Bob Example <bob@sender.test>',
      `To: ${to}`,
      `Subject: ${subject}`,
      `Date: ${new Date().toUTCString().replace(/GMT$/, '+0000')}`,
      `Message-ID: <${Date.now()}.${Math.random().toString(36).slice(2)}@sender.test>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      '',
      'Hi, shall we meet for lunch on Thursday at noon? The usual place.',
      '',
      'Bob',
      '',
    ].join('\r\n'),
  );
}
