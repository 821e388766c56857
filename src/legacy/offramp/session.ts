/**
 * One SMTP client session of the off-ramp to one address of one host: connect, greeting, EHLO,
 * STARTTLS as the TLS policy says, the policy's check of the TLS session BEFORE MAIL FROM (so
 * nothing of the message leaves when it fails), then one transaction with per-recipient
 * results. nodemailer's SMTPConnection speaks the protocol (PIPELINING when offered, dot
 * stuffing, reply parsing); this module decides what its outcomes mean.
 *
 * TLS policies (what the caller asks for):
 * - `opportunistic`: STARTTLS when offered, certificate not checked (Postfix's `may`); a failed
 *   handshake ends the session (`handshake-failed`) and the caller may retry in plaintext.
 * - `plaintext`: no STARTTLS (the retry after a failed opportunistic handshake).
 * - `dane`: TLS required; the chain must match a usable TLSA record (dane.ts); with none usable,
 *   TLS alone is required (RFC 7672 §2.2).
 * - `sts`: TLS required in `enforce` mode, with a certificate that verifies (WebPKI roots plus
 *   the configured CAs) for the MX host name; `testing` checks the same, reports, and sends.
 * - `verified`: TLS required with a certificate that verifies for the host name, as `sts` in
 *   `enforce` mode: what a session that logs in (`login`, credentials.ts) needs before AUTH.
 * - `implicit`: as `verified`, over TLS from the first byte instead of STARTTLS (an `smtps:`
 *   route, RFC 8314 §3; Postfix's smtp_tls_wrappermode); a failed handshake is a policy failure.
 *
 * Bounds: connect, greeting (with STARTTLS), each command's reply (inactivity) and the whole
 * message transfer are timed; a reply larger than `maxReplyBytes` ends the session.
 *
 * Connection cache (SessionCache), as Postfix's smtp_connection_cache_on_demand: a session whose
 * transaction ended with the server's replies is kept open for a while, and the next message to
 * the same address, port, host name and TLS requirement goes over it, after an RSET that the
 * server must answer 250 (Postfix checks a cached session the same way). A kept session that
 * fails its RSET, has closed, or is older than the reuse limit is closed and a new one opened,
 * before anything of the message is sent. A reused session is no new TLS session: it counts no
 * TLS-RPT result again (`reused`). At a stop (`SessionCache.close`) every kept session is ended
 * with QUIT, and the stop waits for the servers' replies for at most a second.
 */
import { rootCertificates, TLSSocket } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { NodemailerError } from 'nodemailer/lib/errors';
import { verifyDane, type Tlsa } from './dane.js';
import type { Credentials } from './credentials.js';
import type { TlsFailure, TlsPolicyType } from './metrics.js';

export type TlsRequirement =
  | { readonly kind: 'opportunistic' }
  | { readonly kind: 'plaintext' }
  | { readonly kind: 'dane'; readonly records: readonly Tlsa[]; readonly refs: readonly string[] }
  | { readonly kind: 'sts'; readonly mode: 'enforce' | 'testing' }
  | { readonly kind: 'verified' }
  | { readonly kind: 'implicit' };

export interface SessionTimeouts {
  readonly connectMs: number;
  /** The greeting, EHLO and the STARTTLS handshake. */
  readonly greetingMs: number;
  /** Longest silence while waiting for a reply. */
  readonly commandMs: number;
  /** The whole transaction, MAIL FROM to the reply after the final dot. */
  readonly dataMs: number;
}

export interface SessionInput {
  readonly address: string;
  readonly port: number;
  /** The host's name (SNI, certificate checks); undefined for an IP literal route. */
  readonly hostName: string | undefined;
  readonly helo: string;
  readonly tls: TlsRequirement;
  readonly ca?: readonly (string | Buffer)[];
  /** SMTP AUTH once TLS is up; only with `tls.kind` `verified` or `implicit`. */
  readonly login?: Credentials;
  readonly timeouts: SessionTimeouts;
  readonly maxReplyBytes: number;
  readonly mailFrom: string;
  readonly recipients: readonly string[];
  readonly message: Buffer;
  readonly now: () => number;
}

export interface RecipientResult {
  readonly status: 'delivered' | 'temporary' | 'permanent';
  readonly reply: string;
}

/** What the session measured against its TLS policy (TLS-RPT), when it got that far. */
export interface TlsReport {
  readonly policy: TlsPolicyType;
  readonly result: 'success' | TlsFailure;
}

export type SessionResult =
  /** No SMTP greeting: refused, timed out, closed. Nothing was sent. */
  | { readonly kind: 'unreachable'; readonly reason: string }
  /** A greeting or EHLO that refused us, or a protocol error before MAIL FROM. */
  | { readonly kind: 'refused'; readonly reason: string }
  /** The opportunistic STARTTLS handshake failed; a plaintext retry may follow. */
  | { readonly kind: 'handshake-failed'; readonly reason: string }
  /** The server refused our login (or offers no AUTH); nothing of the message was sent. */
  | { readonly kind: 'auth-failed'; readonly reason: string }
  /** The TLS policy was not met; the session ended before MAIL FROM. */
  | {
      readonly kind: 'policy-failed';
      readonly report: TlsReport;
      readonly reason: string;
    }
  /** The transaction ran: one result per recipient. */
  | {
      readonly kind: 'done';
      readonly results: ReadonlyMap<string, RecipientResult>;
      readonly report: TlsReport;
      readonly tls: boolean;
      /** Over a session kept from an earlier message (its TLS result was counted then). */
      readonly reused?: boolean;
    }
  /** The session broke during the transaction: every recipient is temporary. */
  | {
      readonly kind: 'lost';
      readonly reason: string;
      readonly report: TlsReport;
      readonly reused?: boolean;
    };

/** One line of a server reply, bounded, for logs and reasons. */
export function replyText(s: string | undefined): string {
  return (s ?? '')
    .replace(/[\r\n]+/g, ' ')
    .replace(/[^\x20-\x7e]/g, '?')
    .slice(0, 400);
}

function statusOf(code: number | undefined): 'temporary' | 'permanent' {
  return code !== undefined && code >= 500 && code < 600 ? 'permanent' : 'temporary';
}

interface PrivateEnvelope {
  readonly accepted?: string[];
  readonly rejectedErrors?: NodemailerError[];
}

function policyType(t: TlsRequirement): TlsPolicyType {
  return t.kind === 'dane' ? 'tlsa' : t.kind === 'sts' ? 'sts' : 'no-policy-found';
}

/** The WebPKI check of MTA-STS, from node's verification of the chain against `servername`. */
function webpkiFailure(socket: TLSSocket): TlsFailure | undefined {
  if (socket.authorized) return undefined;
  const code = String(socket.authorizationError ?? '');
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') return 'certificate-expired';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') return 'certificate-host-mismatch';
  return 'certificate-not-trusted';
}

/** A session open after a transaction, waiting for the next message to the same place. */
interface KeptSession {
  readonly key: string;
  readonly conn: SMTPConnection;
  readonly secure: boolean;
  readonly report: TlsReport;
  readonly openedAt: number;
  timer?: NodeJS.Timeout;
}

export interface SessionCacheOptions {
  /** How long a session is kept idle, ms (Postfix's smtp_connection_cache_time_limit: 2 s). */
  readonly idleMs: number;
  /** No reuse once a session is this old, ms (smtp_connection_reuse_time_limit: 300 s). */
  readonly maxAgeMs?: number;
  /** Idle sessions kept at most, all destinations together (default 64). */
  readonly maxIdle?: number;
}

/** The off-ramp's idle SMTP sessions (see the module comment). */
export class SessionCache {
  readonly #idleMs: number;
  readonly #maxAgeMs: number;
  readonly #maxIdle: number;
  /** Oldest first. */
  readonly #idle: KeptSession[] = [];
  #closed = false;

  constructor(o: SessionCacheOptions) {
    this.#idleMs = o.idleMs;
    this.#maxAgeMs = o.maxAgeMs ?? 300_000;
    this.#maxIdle = o.maxIdle ?? 64;
  }

  get size(): number {
    return this.#idle.length;
  }

  /** The most recently kept open session for `key`, taken out of the cache; stale ones closed. */
  take(key: string, now: number): KeptSession | undefined {
    for (let at = this.#idle.length - 1; at >= 0; at--) {
      const kept = this.#idle[at] as KeptSession;
      if (kept.key !== key) continue;
      this.#idle.splice(at, 1);
      clearTimeout(kept.timer);
      if (kept.conn.destroyed || now - kept.openedAt >= this.#maxAgeMs) {
        void quit(kept.conn);
        continue;
      }
      holdProcess(kept.conn, true);
      return kept;
    }
    return undefined;
  }

  /** Keeps a session for the idle time (it holds no process alive), closing the oldest over the bound. */
  keep(kept: KeptSession): void {
    if (this.#closed) {
      void quit(kept.conn); // a session that finished after the stop began
      return;
    }
    holdProcess(kept.conn, false);
    kept.timer = setTimeout(() => {
      const at = this.#idle.indexOf(kept);
      if (at >= 0) this.#idle.splice(at, 1);
      void quit(kept.conn);
    }, this.#idleMs);
    kept.timer.unref();
    this.#idle.push(kept);
    while (this.#idle.length > this.#maxIdle) {
      const oldest = this.#idle.shift() as KeptSession;
      clearTimeout(oldest.timer);
      void quit(oldest.conn);
    }
  }

  /**
   * Ends every kept session with QUIT; resolves when each has closed, at most `waitMs` later
   * (a server that does not answer has its connection closed then). The sockets hold the
   * process alive meanwhile, so the QUITs are sent and answered before a stop exits.
   */
  async close(waitMs = 1_000): Promise<void> {
    this.#closed = true;
    const closing = this.#idle.splice(0).map((kept) => {
      clearTimeout(kept.timer);
      holdProcess(kept.conn, true);
      return quit(kept.conn, waitMs);
    });
    await Promise.all(closing);
  }
}

/** What a kept session must match: the same server, name, EHLO, TLS requirement and login. */
function cacheKey(i: SessionInput): string {
  return JSON.stringify([
    i.address,
    i.port,
    i.hostName ?? null,
    i.helo,
    i.tls,
    i.ca?.length ?? 0,
    i.login?.user ?? null,
  ]);
}

/** Whether a session's socket keeps the process alive (an idle kept session does not). */
function holdProcess(conn: SMTPConnection, hold: boolean): void {
  const socket = conn._socket;
  if (!socket) return;
  if (hold) socket.ref();
  else socket.unref();
}

/** QUIT, and the connection closed in any case within `ms`; resolves once it has. */
function quit(conn: SMTPConnection, ms = 2_000): Promise<void> {
  if (conn.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => conn.close(), ms);
    timer.unref();
    conn.once('end', () => {
      clearTimeout(timer);
      holdProcess(conn, false); // a server slow to close its side holds nothing up
      resolve();
    });
    try {
      conn.quit();
    } catch {
      conn.close();
    }
  });
}

/** The longest wait for a kept session's RSET reply (Postfix's smtp_rset_timeout). */
const RSET_TIMEOUT_MS = 20_000;

/** RSET on a kept session: true when the server answered 2xx within `ms`. */
function stillUsable(conn: SMTPConnection, ms: number): Promise<boolean> {
  if (conn.destroyed) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      conn.removeListener('end', onEnd);
      resolve(ok);
    };
    const onEnd = (): void => done(false);
    const timer = setTimeout(() => done(false), ms);
    conn.once('end', onEnd);
    conn.reset((err) => done(err === null || err === undefined));
  });
}

/** Whether a session may carry the next message: its transaction ended with the server's replies. */
function reusable(r: SessionResult, conn: SMTPConnection): boolean {
  return r.kind === 'done' && !conn.destroyed;
}

/**
 * One message over a kept session to the same place when the cache has one that answers RSET,
 * else over a new session; the session is kept afterwards when it may carry the next.
 */
export async function runSession(i: SessionInput, cache?: SessionCache): Promise<SessionResult> {
  if (cache === undefined) return openSession(i, undefined);
  const key = cacheKey(i);
  for (let kept = cache.take(key, i.now()); kept !== undefined; kept = cache.take(key, i.now())) {
    if (!(await stillUsable(kept.conn, Math.min(RSET_TIMEOUT_MS, i.timeouts.commandMs)))) {
      void quit(kept.conn);
      continue;
    }
    const r = await transaction(kept.conn, i, kept.report, kept.secure);
    if (reusable(r, kept.conn)) cache.keep(kept);
    else void quit(kept.conn);
    return r.kind === 'done' || r.kind === 'lost' ? { ...r, reused: true } : r;
  }
  return openSession(i, (conn, secure, report) =>
    cache.keep({ key, conn, secure, report, openedAt: i.now() }),
  );
}

/** A new session for one message; `keep` takes it afterwards when it may carry the next. */
async function openSession(
  i: SessionInput,
  keep: ((conn: SMTPConnection, secure: boolean, report: TlsReport) => void) | undefined,
): Promise<SessionResult> {
  const verifiesName = i.tls.kind === 'verified' || i.tls.kind === 'implicit';
  if (i.login !== undefined && !verifiesName) {
    throw new Error('a session that logs in must require verified TLS');
  }
  const required =
    i.tls.kind === 'dane' || verifiesName || (i.tls.kind === 'sts' && i.tls.mode === 'enforce');
  const conn = new SMTPConnection({
    host: i.address,
    port: i.port,
    secure: i.tls.kind === 'implicit',
    name: i.helo,
    ...(i.hostName !== undefined ? { servername: i.hostName } : {}),
    connectionTimeout: i.timeouts.connectMs,
    greetingTimeout: i.timeouts.greetingMs,
    socketTimeout: i.timeouts.commandMs,
    maxResponseSize: i.maxReplyBytes,
    socketCloseTimeout: 2000,
    ignoreTLS: i.tls.kind === 'plaintext',
    requireTLS: required,
    opportunisticTLS: !required,
    logger: false,
    tls: {
      // The policy checks the session itself below, before MAIL FROM.
      rejectUnauthorized: false,
      ...(i.hostName !== undefined ? { servername: i.hostName } : {}),
      ...(i.ca !== undefined && i.ca.length > 0 ? { ca: [...rootCertificates, ...i.ca] } : {}),
    },
  });
  let lastError: NodemailerError | undefined;
  conn.on('error', (err: NodemailerError) => (lastError = err));
  const policy = policyType(i.tls);
  let kept = false;
  try {
    const connectError = await new Promise<NodemailerError | undefined>((resolve) => {
      let connected = false;
      // The error (and its stack) is made only for a connection that ends before its greeting:
      // 'end' comes after every session, and an Error made there was 20 µs of the event loop.
      conn.once('end', () => {
        if (!connected) resolve(lastError ?? connectionClosed());
      });
      conn.connect((err) => {
        connected = true;
        resolve(err);
      });
    });
    if (connectError !== undefined) return connectFailure(conn, connectError, i.tls);

    const socket = conn._socket;
    const secure = conn.secure && socket instanceof TLSSocket;
    let report: TlsReport = { policy, result: 'success' };
    if (!secure) {
      if (required) {
        return {
          kind: 'policy-failed',
          report: { policy, result: 'starttls-not-supported' },
          reason: 'the server offers no STARTTLS',
        };
      }
      report = { policy, result: 'starttls-not-supported' };
    } else if (i.tls.kind === 'dane' && i.tls.records.length > 0) {
      const v = verifyDane(i.tls.records, socket.getPeerCertificate(true), i.tls.refs, i.now());
      if (!v.ok) {
        return { kind: 'policy-failed', report: { policy, result: v.result }, reason: v.reason };
      }
    } else if (i.tls.kind === 'sts' || verifiesName) {
      const failure = webpkiFailure(socket);
      if (failure !== undefined) {
        const reason = `${i.tls.kind === 'sts' ? 'MTA-STS: ' : ''}the certificate does not verify for ${i.hostName ?? i.address} (${String(socket.authorizationError)})`;
        if (required) return { kind: 'policy-failed', report: { policy, result: failure }, reason };
        report = { policy, result: failure };
      }
    }
    if (i.login !== undefined) {
      const refused = await login(conn, i.login);
      if (refused !== undefined) return { kind: 'auth-failed', reason: refused };
    }
    const r = await transaction(conn, i, report, secure);
    if (keep !== undefined && reusable(r, conn)) {
      keep(conn, secure, report);
      kept = true;
    }
    return r;
  } finally {
    if (!kept) void quit(conn);
  }
}

/** SMTP AUTH (the mechanism nodemailer picks from EHLO); the server's refusal, or undefined. */
function login(conn: SMTPConnection, c: Credentials): Promise<string | undefined> {
  return new Promise((resolve) => {
    conn.login({ user: c.user, pass: c.pass }, (err) => {
      if (err === null || err === undefined) resolve(undefined);
      else resolve(`AUTH: ${replyText(err.response ?? err.message)}`);
    });
  });
}

function connectionClosed(): NodemailerError {
  const e = new Error('connection closed') as NodemailerError;
  e.code = 'ECONNECTION';
  return e;
}

/** An error of OpenSSL or of node's TLS layer (the handshake), not of the TCP connection. */
function isTlsError(err: NodemailerError): boolean {
  return /^ERR_(SSL|TLS)_/.test(String(err.originalCode ?? '')) || err.code === 'ETLS';
}

function connectFailure(
  conn: SMTPConnection,
  err: NodemailerError,
  tls: TlsRequirement,
): SessionResult {
  const reply = replyText(err.response);
  const greeted = conn.lastServerResponse !== false;
  if (!greeted && tls.kind === 'implicit' && isTlsError(err)) {
    // The connection was made; TLS from the first byte was not (e.g. a server that greets in clear).
    return {
      kind: 'policy-failed',
      report: { policy: policyType(tls), result: 'validation-failure' },
      reason: `TLS handshake failed: ${replyText(err.message)}`,
    };
  }
  if (!greeted) {
    return {
      kind: 'unreachable',
      reason: `${err.code ?? 'ECONNECTION'}${err.originalCode !== undefined ? `/${err.originalCode}` : ''}: ${replyText(err.message)}`,
    };
  }
  if (err.code === 'ETLS' || conn.upgrading === true) {
    const refusedStarttls = err.command === 'STARTTLS' && err.response !== undefined;
    if (tls.kind === 'opportunistic' && !refusedStarttls) {
      return { kind: 'handshake-failed', reason: replyText(err.message) };
    }
    if (tls.kind !== 'opportunistic' && tls.kind !== 'plaintext') {
      return {
        kind: 'policy-failed',
        report: {
          policy: policyType(tls),
          result: refusedStarttls ? 'starttls-not-supported' : 'validation-failure',
        },
        reason: refusedStarttls
          ? `STARTTLS refused: ${reply}`
          : `TLS handshake failed: ${replyText(err.message)}`,
      };
    }
  }
  return { kind: 'refused', reason: reply !== '' ? reply : replyText(err.message) };
}

function transaction(
  conn: SMTPConnection,
  i: SessionInput,
  report: TlsReport,
  tls: boolean,
): Promise<SessionResult> {
  return new Promise<SessionResult>((resolve) => {
    let settled = false;
    const finish = (r: SessionResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.removeListener('end', onEnd);
      resolve(r);
    };
    const timer = setTimeout(() => {
      conn.close();
      finish({ kind: 'lost', reason: 'the transaction took too long', report });
    }, i.timeouts.dataMs);
    const onEnd = (): void =>
      finish({ kind: 'lost', reason: 'the server closed the connection', report });
    conn.once('end', onEnd);
    const eightBit = i.message.some((b) => b >= 0x80);
    conn.send(
      {
        from: i.mailFrom,
        to: [...i.recipients],
        size: i.message.length,
        use8BitMime: eightBit,
      },
      i.message,
      (err, info) => {
        const results = new Map<string, RecipientResult>();
        const env = (conn as unknown as { _envelope?: PrivateEnvelope | false })._envelope;
        const rejected = (list: readonly NodemailerError[] | undefined): void => {
          for (const e of list ?? []) {
            const r = (e as NodemailerError & { recipient?: string }).recipient;
            if (r !== undefined) {
              results.set(r, { status: statusOf(e.responseCode), reply: replyText(e.response) });
            }
          }
        };
        if (err === null || err === undefined) {
          for (const r of info.accepted) {
            results.set(r, { status: 'delivered', reply: replyText(info.response) });
          }
          rejected(info.rejectedErrors);
          finish({ kind: 'done', results, report, tls });
          return;
        }
        const e = err as NodemailerError & { rejectedErrors?: NodemailerError[] };
        const reply = replyText(e.response);
        if (e.code === 'EMESSAGE' && e.command === 'MAIL FROM') {
          // The server's SIZE limit: RFC 1870 §6.2 makes it permanent (552 5.3.4).
          for (const r of i.recipients) {
            results.set(r, {
              status: 'permanent',
              reply: `message size ${i.message.length} exceeds the server's SIZE limit`,
            });
          }
          finish({ kind: 'done', results, report, tls });
          return;
        }
        if (e.code === 'EENVELOPE' && e.command === 'MAIL FROM' && e.responseCode !== undefined) {
          for (const r of i.recipients) {
            results.set(r, { status: statusOf(e.responseCode), reply });
          }
          finish({ kind: 'done', results, report, tls });
          return;
        }
        if (e.code === 'EENVELOPE' && e.command === 'RCPT TO') {
          rejected(e.rejectedErrors);
          for (const r of i.recipients) {
            if (!results.has(r)) results.set(r, { status: statusOf(e.responseCode), reply });
          }
          finish({ kind: 'done', results, report, tls });
          return;
        }
        if ((e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && e.command === 'DATA') {
          // DATA refused, or the reply after the final dot: for every accepted recipient.
          if (e.responseCode !== undefined && e.responseCode !== 421 && env) {
            rejected(env.rejectedErrors);
            for (const r of env.accepted ?? []) {
              results.set(r, { status: statusOf(e.responseCode), reply });
            }
            for (const r of i.recipients) {
              if (!results.has(r)) results.set(r, { status: statusOf(e.responseCode), reply });
            }
            finish({ kind: 'done', results, report, tls });
            return;
          }
        }
        finish({
          kind: 'lost',
          reason: `${e.code ?? 'ECONNECTION'}: ${reply !== '' ? reply : replyText(e.message)}`,
          report,
        });
      },
    );
  });
}
