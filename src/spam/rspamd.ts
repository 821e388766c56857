/**
 * A client of Rspamd's HTTP protocol (https://rspamd.com/doc/developers/protocol.html): the
 * message is POSTed to `/checkv2` with what the SMTP dialogue established as request headers
 * (From, Rcpt once per recipient, IP, Helo, Hostname, Queue-Id, User), and the JSON answer gives
 * the score, the reject threshold (`required_score`), the action and the symbols that hit.
 *
 * Guarantees: one request per scan, over node:http with no connection reuse surprises (an agent
 * of its own, keep-alive); the whole exchange is bounded in time (`timeoutMs`, the request is
 * destroyed when it passes) and the reply in size (a Content-Length over `maxReplyBytes` is
 * refused before reading the body, and reading stops at the cap otherwise); every failure is a
 * ScannerError (types.ts). Header values are cleaned of CR, LF and other control characters.
 */
import http from 'node:http';
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

export interface RspamdOptions {
  /** e.g. http://127.0.0.1:11333 (the normal worker). */
  readonly url: string;
  readonly timeoutMs?: number;
  readonly maxReplyBytes?: number;
  /** Rspamd's controller password, if the worker asks for one (the Password header). */
  readonly password?: string;
}

/** A header value without control characters, at most 1000 characters. */
function hv(v: string): string {
  // eslint-disable-next-line no-control-regex
  return v.replace(/[\x00-\x1f\x7f]/g, '').slice(0, 1000);
}

export class RspamdClient implements SpamScanner {
  readonly name = 'rspamd' as const;
  readonly #url: URL;
  readonly #timeoutMs: number;
  readonly #max: number;
  readonly #password?: string;
  readonly #agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(options: RspamdOptions) {
    this.#url = new URL('/checkv2', options.url);
    if (this.#url.protocol !== 'http:') {
      throw new ScannerError('rspamd', 'connect', `${options.url}: only http:// is supported`);
    }
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_SCAN_TIMEOUT_MS;
    this.#max = options.maxReplyBytes ?? DEFAULT_MAX_REPLY_BYTES;
    if (options.password !== undefined) this.#password = options.password;
  }

  scan(req: ScanRequest): Promise<ScanResult> {
    const headers: http.OutgoingHttpHeaders = {
      'Content-Type': 'message/rfc822',
      'Content-Length': String(req.message.length),
      From: hv(req.mailFrom),
      Rcpt: req.recipients.map(hv),
      IP: hv(req.clientAddress),
      'Queue-Id': hv(req.queueId),
      ...(req.helo !== undefined ? { Helo: hv(req.helo) } : {}),
      ...(req.clientHostname !== undefined ? { Hostname: hv(req.clientHostname) } : {}),
      ...(req.user !== undefined ? { User: hv(req.user) } : {}),
      ...(this.#password !== undefined ? { Password: this.#password } : {}),
    };
    return new Promise<ScanResult>((resolve, reject) => {
      let settled = false;
      const fail = (err: ScannerError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        request.destroy();
        reject(err);
      };
      const request = http.request(this.#url, { method: 'POST', headers, agent: this.#agent });
      const timer = setTimeout(
        () => fail(new ScannerError('rspamd', 'timeout', `no answer within ${this.#timeoutMs} ms`)),
        this.#timeoutMs,
      );
      request.on('error', (err: NodeJS.ErrnoException) =>
        fail(
          new ScannerError(
            'rspamd',
            'connect',
            `${this.#url.host}: ${err.code ?? err.message}`,
            err,
          ),
        ),
      );
      request.on('response', (res) => {
        const declared = Number(res.headers['content-length'] ?? NaN);
        if (Number.isFinite(declared) && declared > this.#max) {
          fail(new ScannerError('rspamd', 'too-large', `reply of ${declared} bytes`));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > this.#max) {
            fail(new ScannerError('rspamd', 'too-large', `reply over ${this.#max} bytes`));
            return;
          }
          chunks.push(c);
        });
        res.on('error', (err) => fail(new ScannerError('rspamd', 'connect', err.message, err)));
        res.on('end', () => {
          if (settled) return;
          if (res.statusCode !== 200) {
            fail(new ScannerError('rspamd', 'refused', `HTTP status ${res.statusCode}`));
            return;
          }
          try {
            const result = parseRspamdReply(Buffer.concat(chunks));
            settled = true;
            clearTimeout(timer);
            resolve(result);
          } catch (err) {
            fail(
              err instanceof ScannerError
                ? err
                : new ScannerError('rspamd', 'protocol', 'the reply is not JSON', err),
            );
          }
        });
      });
      request.end(req.message);
    });
  }

  close(): void {
    this.#agent.destroy();
  }
}

/** Reads the /checkv2 JSON answer; ScannerError('protocol') if it is not one. */
export function parseRspamdReply(body: Buffer): ScanResult {
  const v: unknown = JSON.parse(body.toString('utf8'));
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new ScannerError('rspamd', 'protocol', 'the reply is not a JSON object');
  }
  const o = v as Record<string, unknown>;
  const symbols =
    typeof o.symbols === 'object' && o.symbols !== null ? Object.keys(o.symbols).sort() : [];
  return {
    scanner: 'rspamd',
    score: checkScore('rspamd', o.score, 'score'),
    required: checkScore('rspamd', o.required_score, 'required_score'),
    ...(typeof o.action === 'string' ? { action: o.action.slice(0, 32) } : {}),
    symbols: cleanSymbols(symbols),
  };
}
