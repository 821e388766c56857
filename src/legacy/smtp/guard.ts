/**
 * The byte-level guard in front of each SMTP connection (DESIGN.md §7), reading the same bytes as
 * the SMTP parser and before it. It refuses what the parser would let through:
 *
 * - a bare CR, a bare LF or a NUL anywhere in the plaintext stream, commands and DATA alike
 *   (RFC 5321 §2.3.8: CR and LF occur only together; SMTP smuggling relies on servers that
 *   accept `\n.\n`, `\r\n.\n`, `\n.\r\n` or `\r.\r` as the end of DATA): the client gets
 *   `521 5.5.2` and the connection is closed;
 * - bytes pipelined after STARTTLS in plaintext (RFC 3207 §4.2, command injection): the
 *   connection is dropped without a reply (they must not reach the TLS session);
 * - commands faster than the per-address rate: `421 4.7.0`, closed;
 * - DATA slower than the minimum rate (after a grace period): `421 4.4.2`, closed (slowloris).
 *
 * It follows the dialogue only as far as it must: command lines, and DATA from the server's 354
 * (`startData`, called by the listener when it accepts DATA) to the CRLF.CRLF that ends it. A guarded connection that has been refused is marked, so that a
 * message whose DATA was in flight is never committed. After TLS starts, the guard is attached to
 * the TLS socket (the cleartext inside it) and the raw socket is no longer read by it.
 */
import type { Duplex } from 'node:stream';

export type Violation =
  | 'bare-cr'
  | 'bare-lf'
  | 'nul'
  | 'starttls-pipelining'
  | 'command-rate'
  | 'slow-data'
  | 'auth-failures';

export interface GuardOptions {
  /** Called once, with the first violation, after the connection was closed. */
  readonly onViolation: (kind: Violation) => void;
  /** Takes one command from the client's budget; false when over its rate. */
  readonly takeCommand: () => boolean;
}

const LF = 0x0a;
const CR = 0x0d;
const END_OF_DATA = Buffer.from('\r\n.\r\n');

/** Per-connection state of the guard; `refused` is set once it closed the connection. */
export class ConnectionGuardState {
  refused: Violation | undefined;
  /** In DATA (after the DATA command, until CRLF.CRLF). */
  inData = false;
  /** Bytes of DATA received so far, and since when (for the minimum rate). */
  dataBytes = 0;
  dataSince = 0;
  /** The last byte seen was a CR (a CRLF may straddle two chunks). */
  #pendingCr = false;
  /** The start of a command line not yet ended by CRLF (bounded by the parser's line limit). */
  #line = '';
  /** The last bytes of DATA, to find CRLF.CRLF across chunks. */
  #tail = Buffer.alloc(0);
  #socket: Duplex | undefined;
  readonly #o: GuardOptions;

  constructor(options: GuardOptions) {
    this.#o = options;
  }

  /** Starts guarding `socket` (the raw one, or the TLS one after STARTTLS). */
  attach(socket: Duplex): void {
    this.#socket = socket;
    this.#pendingCr = false;
    this.#line = '';
    socket.on('data', (chunk: Buffer) => this.#inspect(chunk));
  }

  /** The server answered DATA with 354: what follows is message content until CRLF.CRLF. */
  startData(): void {
    this.inData = true;
    this.dataBytes = 0;
    this.dataSince = Date.now();
    this.#tail = Buffer.from('\r\n');
  }

  /** Closes the connection for `kind`, with `reply` (none for STARTTLS pipelining). */
  refuse(kind: Violation, reply?: string): void {
    if (this.refused !== undefined) return;
    this.refused = kind;
    const s = this.#socket;
    if (s !== undefined && !s.destroyed) {
      if (reply === undefined) {
        s.destroy();
      } else {
        s.end(`${reply}\r\n`);
        // Whatever else the client sends is not read.
        setImmediate(() => s.destroy());
      }
    }
    this.#o.onViolation(kind);
  }

  #inspect(chunk: Buffer): void {
    if (this.refused !== undefined) return;
    const bad = this.#badBytes(chunk);
    if (bad !== undefined) {
      this.refuse(bad, '521 5.5.2 Error: bare <CR>, bare <LF> or NUL received (RFC 5321 2.3.8)');
      return;
    }
    let pos = 0;
    while (pos < chunk.length && this.refused === undefined) {
      pos = this.inData ? this.#data(chunk, pos) : this.#command(chunk, pos);
    }
  }

  /** The first bare CR, bare LF or NUL of the chunk, given the byte before it. */
  #badBytes(chunk: Buffer): Violation | undefined {
    if (chunk.indexOf(0) >= 0) return 'nul';
    if (this.#pendingCr && chunk[0] !== LF) return 'bare-cr';
    for (let i = chunk.indexOf(LF); i >= 0; i = chunk.indexOf(LF, i + 1)) {
      const before = i === 0 ? (this.#pendingCr ? CR : -1) : chunk[i - 1];
      if (before !== CR) return 'bare-lf';
    }
    for (let i = chunk.indexOf(CR); i >= 0; i = chunk.indexOf(CR, i + 1)) {
      if (i + 1 < chunk.length && chunk[i + 1] !== LF) return 'bare-cr';
    }
    this.#pendingCr = chunk[chunk.length - 1] === CR;
    return undefined;
  }

  /** Reads command lines from `pos`; returns where it stopped. */
  #command(chunk: Buffer, pos: number): number {
    const lf = chunk.indexOf(LF, pos);
    if (lf < 0) {
      // Only the start of a line matters (the verb); the parser bounds the line's length.
      if (this.#line.length < 16) this.#line += chunk.toString('latin1', pos, pos + 16);
      return chunk.length;
    }
    const line = (this.#line + chunk.toString('latin1', pos, Math.min(lf, pos + 16)))
      .replace(/\r$/, '')
      .trim()
      .toUpperCase();
    this.#line = '';
    if (!this.#o.takeCommand()) {
      this.refuse('command-rate', '421 4.7.0 Error: too many commands from your address');
      return chunk.length;
    }
    if (line === 'STARTTLS' && lf + 1 < chunk.length) {
      this.refuse('starttls-pipelining');
      return chunk.length;
    }
    return lf + 1;
  }

  /** Reads DATA from `pos` until CRLF.CRLF; returns where it stopped. */
  #data(chunk: Buffer, pos: number): number {
    const rest = chunk.subarray(pos);
    const joined = Buffer.concat([this.#tail, rest]);
    const end = joined.indexOf(END_OF_DATA);
    if (end < 0) {
      this.dataBytes += rest.length;
      this.#tail = Buffer.from(joined.subarray(Math.max(0, joined.length - 4)));
      return chunk.length;
    }
    const consumed = end + END_OF_DATA.length - this.#tail.length;
    this.dataBytes += consumed;
    this.inData = false;
    this.#tail = Buffer.alloc(0);
    return pos + consumed;
  }
}
