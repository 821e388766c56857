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
 *
 * Bounds: connect, greeting (with STARTTLS), each command's reply (inactivity) and the whole
 * message transfer are timed; a reply larger than `maxReplyBytes` ends the session.
 */
import { rootCertificates, TLSSocket } from 'node:tls';
import SMTPConnection from 'nodemailer/lib/smtp-connection';
import type { NodemailerError } from 'nodemailer/lib/errors';
import { verifyDane, type Tlsa } from './dane.js';
import type { TlsFailure, TlsPolicyType } from './metrics.js';

export type TlsRequirement =
  | { readonly kind: 'opportunistic' }
  | { readonly kind: 'plaintext' }
  | { readonly kind: 'dane'; readonly records: readonly Tlsa[]; readonly refs: readonly string[] }
  | { readonly kind: 'sts'; readonly mode: 'enforce' | 'testing' };

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
    }
  /** The session broke during the transaction: every recipient is temporary. */
  | { readonly kind: 'lost'; readonly reason: string; readonly report: TlsReport };

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

export async function runSession(i: SessionInput): Promise<SessionResult> {
  const required = i.tls.kind === 'dane' || (i.tls.kind === 'sts' && i.tls.mode === 'enforce');
  const conn = new SMTPConnection({
    host: i.address,
    port: i.port,
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
    } else if (i.tls.kind === 'sts') {
      const failure = webpkiFailure(socket);
      if (failure !== undefined) {
        const reason = `MTA-STS: the certificate does not verify for ${i.hostName ?? i.address} (${String(socket.authorizationError)})`;
        if (i.tls.mode === 'enforce') {
          return { kind: 'policy-failed', report: { policy, result: failure }, reason };
        }
        report = { policy, result: failure };
      }
    }
    return await transaction(conn, i, report, secure);
  } finally {
    setTimeout(() => conn.close(), 2000).unref();
    try {
      if (!conn.destroyed) conn.quit();
    } catch {
      conn.close();
    }
  }
}

function connectionClosed(): NodemailerError {
  const e = new Error('connection closed') as NodemailerError;
  e.code = 'ECONNECTION';
  return e;
}

function connectFailure(
  conn: SMTPConnection,
  err: NodemailerError,
  tls: TlsRequirement,
): SessionResult {
  const reply = replyText(err.response);
  const greeted = conn.lastServerResponse !== false;
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
    if (tls.kind === 'dane' || tls.kind === 'sts') {
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
      resolve(r);
    };
    const timer = setTimeout(() => {
      conn.close();
      finish({ kind: 'lost', reason: 'the transaction took too long', report });
    }, i.timeouts.dataMs);
    conn.once('end', () =>
      finish({ kind: 'lost', reason: 'the server closed the connection', report }),
    );
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
