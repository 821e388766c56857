/**
 * A client of SpamAssassin's spamd protocol (spamd/PROTOCOL in the SpamAssassin sources): one TCP
 * connection per scan, the request `SYMBOLS SPAMC/1.5` with Content-length and User headers and
 * the message; the reply `SPAMD/1.x 0 EX_OK`, a `Spam: True|False ; score / threshold` header
 * and, as body, the comma-separated names of the rules that hit. No well-kept npm client of this
 * protocol exists (the packages on the registry are unmaintained or unbounded), so this is a
 * small one of our own.
 *
 * Guarantees: the exchange is bounded in time (`timeoutMs`, the socket is destroyed when it
 * passes) and the reply in size (reading stops at `maxReplyBytes`, before any further buffer is
 * kept); a status other than 0 (EX_OK), a missing or malformed Spam header, or a connection that
 * closes early is a ScannerError, never a score.
 */
import net from 'node:net';
import {
  DEFAULT_MAX_REPLY_BYTES,
  DEFAULT_SCAN_TIMEOUT_MS,
  ScannerError,
  checkScore,
  cleanSymbols,
  type ScanRequest,
  type ScanResult,
  type SpamScanner,
} from './types.js';

export interface SpamdOptions {
  /** spamd://host:port (or host:port); spamd listens on 783 by default. */
  readonly url: string;
  readonly timeoutMs?: number;
  readonly maxReplyBytes?: number;
  /** The User header: whose preferences spamd applies (spamd started with --nouser-config ignores it). */
  readonly user?: string;
}

export function parseSpamdUrl(url: string): { host: string; port: number } {
  const u = new URL(url.includes('://') ? url : `spamd://${url}`);
  if (u.protocol !== 'spamd:') throw new Error(`${url}: expected spamd://host:port`);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = u.port === '' ? 783 : Number(u.port);
  if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535)
    throw new Error(`${url}: expected spamd://host:port`);
  return { host, port };
}

export class SpamdClient implements SpamScanner {
  readonly name = 'spamassassin' as const;
  readonly #host: string;
  readonly #port: number;
  readonly #timeoutMs: number;
  readonly #max: number;
  readonly #user: string;

  constructor(options: SpamdOptions) {
    const { host, port } = parseSpamdUrl(options.url);
    this.#host = host;
    this.#port = port;
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_SCAN_TIMEOUT_MS;
    this.#max = options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES;
    this.#user = (options.user ?? 'aftersmtp').replace(/[^\x21-\x7e]/g, '').slice(0, 64);
  }

  scan(req: ScanRequest): Promise<ScanResult> {
    return new Promise<ScanResult>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const socket = net.connect({ host: this.#host, port: this.#port });
      const done = (err: ScannerError | undefined, result?: ScanResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        if (err !== undefined) reject(err);
        else resolve(result as ScanResult);
      };
      const timer = setTimeout(
        () =>
          done(
            new ScannerError('spamassassin', 'timeout', `no answer within ${this.#timeoutMs} ms`),
          ),
        this.#timeoutMs,
      );
      socket.on('connect', () => {
        socket.write(
          `SYMBOLS SPAMC/1.5\r\nContent-length: ${req.message.length}\r\nUser: ${this.#user}\r\n\r\n`,
        );
        socket.end(req.message);
      });
      socket.on('data', (c: Buffer) => {
        size += c.length;
        if (size > this.#max) {
          done(new ScannerError('spamassassin', 'too-large', `reply over ${this.#max} bytes`));
          return;
        }
        chunks.push(c);
      });
      socket.on('error', (err: NodeJS.ErrnoException) =>
        done(
          new ScannerError(
            'spamassassin',
            'connect',
            `${this.#host}:${this.#port}: ${err.code ?? err.message}`,
            err,
          ),
        ),
      );
      socket.on('close', () => {
        if (settled) return;
        try {
          done(undefined, parseSpamdReply(Buffer.concat(chunks)));
        } catch (err) {
          done(
            err instanceof ScannerError
              ? err
              : new ScannerError('spamassassin', 'protocol', (err as Error).message, err),
          );
        }
      });
    });
  }
}

const STATUS = /^SPAMD\/\d+\.\d+ (\d+) (\S+)/;
const SPAM_HEADER =
  /^Spam:\s*(True|False|Yes|No)\s*;\s*(-?\d+(?:\.\d+)?)\s*\/\s*(-?\d+(?:\.\d+)?)\s*$/i;

/** Reads a SYMBOLS reply; ScannerError('protocol' or 'refused') if it is not a verdict. */
export function parseSpamdReply(reply: Buffer): ScanResult {
  const text = reply.toString('latin1');
  const end = text.indexOf('\r\n\r\n');
  const head = (end < 0 ? text : text.slice(0, end)).split('\r\n');
  const status = STATUS.exec(head[0] ?? '');
  if (status === null) {
    throw new ScannerError(
      'spamassassin',
      'protocol',
      reply.length === 0 ? 'the connection closed without a reply' : 'no SPAMD status line',
    );
  }
  if (status[1] !== '0') {
    throw new ScannerError('spamassassin', 'refused', `spamd answered ${status[1]} ${status[2]}`);
  }
  let score: number | undefined;
  let required: number | undefined;
  for (const line of head.slice(1)) {
    const m = SPAM_HEADER.exec(line);
    if (m !== null) {
      score = Number(m[2]);
      required = Number(m[3]);
    }
  }
  if (score === undefined || required === undefined) {
    throw new ScannerError('spamassassin', 'protocol', 'the reply has no Spam header');
  }
  const body = end < 0 ? '' : text.slice(end + 4).trim();
  return {
    scanner: 'spamassassin',
    score: checkScore('spamassassin', score, 'score'),
    required: checkScore('spamassassin', required, 'threshold'),
    symbols: cleanSymbols(body === '' ? [] : body.split(',').map((s) => s.trim())),
  };
}
