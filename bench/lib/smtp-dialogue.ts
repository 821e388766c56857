/**
 * One SMTP session at a time, timed at the client: how long each reply takes after the command
 * that asked for it (the banner after the TCP connect, 250 after EHLO, MAIL and RCPT, 354 after
 * DATA, 250 after the message's final dot, 221 after QUIT, and the server's close after 221).
 * The same dialogue against two servers shows which step of a session is slower on one of them,
 * which a rate alone cannot. A reply other than 2xx or 3xx ends the run with an error.
 */
import { connect } from 'node:net';

/** The steps of a session, in order: each is the wait for one reply (or, last, the close). */
export const DIALOGUE_STEPS = [
  'connect to banner',
  'EHLO',
  'MAIL FROM',
  'RCPT TO',
  'DATA (354)',
  'message to 250',
  'QUIT (221)',
  '221 to close',
  'session, whole',
] as const;
export type DialogueStep = (typeof DIALOGUE_STEPS)[number];

export interface DialogueOptions {
  readonly port: number;
  readonly from: string;
  readonly to: string;
  /** Bytes of the message (headers and body, before the final dot). */
  readonly size: number;
  /** Sessions timed, one after the other. */
  readonly sessions: number;
  /** Sessions run first and not timed. */
  readonly warmup: number;
}

/** A message of about `size` bytes: a few headers, then 78-byte lines. */
function message(from: string, to: string, size: number): Buffer {
  const head = `From: <${from}>\r\nTo: <${to}>\r\nSubject: dialogue\r\n\r\n`;
  const line = `${'x'.repeat(76)}\r\n`;
  const lines = Math.max(1, Math.ceil((size - head.length) / line.length));
  return Buffer.from(`${head}${line.repeat(lines)}.\r\n`);
}

/** The time of each step of one session, µs. */
function session(o: DialogueOptions, body: Buffer): Promise<number[]> {
  const commands: (string | Buffer)[] = [
    'EHLO dialogue.example.org\r\n',
    `MAIL FROM:<${o.from}>\r\n`,
    `RCPT TO:<${o.to}>\r\n`,
    'DATA\r\n',
    body,
    'QUIT\r\n',
  ];
  return new Promise((resolve, reject) => {
    const times: number[] = [];
    const start = performance.now();
    let mark = start;
    let reply = '';
    const socket = connect(o.port, '127.0.0.1');
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('latin1');
      // A reply is complete with its last line: three digits, a space, CRLF.
      if (!reply.endsWith('\r\n')) return;
      const before = reply.lastIndexOf('\r\n', reply.length - 3);
      const last = before < 0 ? reply : reply.slice(before + 2);
      if (!/^\d{3} /.test(last)) return;
      const now = performance.now();
      times.push((now - mark) * 1000);
      mark = now;
      if (!/^[23]/.test(last)) {
        socket.destroy();
        reject(new Error(`${DIALOGUE_STEPS[times.length - 1]}: ${last.trim()}`));
        return;
      }
      reply = '';
      const next = commands[times.length - 1];
      if (next !== undefined) socket.write(next);
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const now = performance.now();
      if (times.length !== commands.length + 1) {
        reject(new Error(`the server closed the connection after ${times.length} replies`));
        return;
      }
      resolve([...times, (now - mark) * 1000, (now - start) * 1000]);
    });
  });
}

/** Every timed session's steps, µs: one array per step of DIALOGUE_STEPS. */
export async function timeDialogues(o: DialogueOptions): Promise<Record<DialogueStep, number[]>> {
  const body = message(o.from, o.to, o.size);
  for (let i = 0; i < o.warmup; i++) await session(o, body);
  const out = Object.fromEntries(DIALOGUE_STEPS.map((s) => [s, [] as number[]])) as Record<
    DialogueStep,
    number[]
  >;
  for (let i = 0; i < o.sessions; i++) {
    const times = await session(o, body);
    DIALOGUE_STEPS.forEach((step, k) => out[step].push(times[k] as number));
  }
  return out;
}
