/**
 * The SMTP listeners (DESIGN.md §4, §7): port 25 (MX: mail for the domains this gateway serves,
 * no AUTH, never relays unless access_map trusts the client), 587 (submission: STARTTLS, then AUTH
 * is required before MAIL) and 465 (submission over implicit TLS, RFC 8314). An entrance in the
 * sense of DESIGN.md §1b: smtp-server speaks the protocol; each step of the dialogue is asked of
 * the pipeline (connect, MAIL, RCPT), and the message after DATA is handed to it whole; the 250
 * is sent only when the pipeline resolved, i.e. after the queue commit.
 *
 * Around smtp-server, for what it does not bound: a connection guard (caps in total and per
 * address, src/net/guard.ts), a TLS handshake deadline on 465, the byte guard (guard.ts: bare CR,
 * LF, NUL; STARTTLS pipelining; command rate; minimum DATA rate), RFC 5321 limits (512-byte
 * command lines, 1000-byte text lines, 64/255/256-byte address parts, a recipient limit), a
 * message size limit (SIZE), and a cap on failed AUTH per address.
 *
 * Guarantees: no reply carries internal error text; a message whose connection was refused by
 * the guard while its DATA was in flight is never committed; a refused recipient is never part of
 * the message; a message is committed once, for the recipients accepted at RCPT.
 */
import {
  createServer as createNetServer,
  type AddressInfo,
  type Server,
  type Socket,
} from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { randomBytes, randomHex } from '../../random.js';
import { once } from 'node:events';
import type { Readable } from 'node:stream';
import {
  SMTPServer,
  type SMTPServerAddress,
  type SMTPServerAuthentication,
  type SMTPServerAuthenticationResponse,
  type SMTPServerDataStream,
  type SMTPServerSession,
} from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { ConnectionGuard, clientAddress } from '../../net/guard.js';
import { listenError } from '../../net/listen.js';
import type { MessageAuthenticator } from '../../pipeline/authentication.js';
import type { DelayedChecks, Pipeline, RcptAnswer, SmtpState } from '../../pipeline/pipeline.js';
import { mergeEffects, type ClientVerdict } from '../../pipeline/admission.js';
import type { Client, Effects, RecipientPlan, Refusal, Verdict } from '../../pipeline/types.js';
import { markLatency } from '../../latency.js';
import { ConnectionGuardState, type Violation } from './guard.js';
import { CODE, STATUS, refusalReply, type SmtpReply } from './replies.js';

export type ListenerRole = 'mx' | 'submission' | 'submissions';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

/** The setting that chooses each listener's address (for errors an operator can act on). */
const SETTING: Record<ListenerRole, string> = {
  mx: 'AFTERSMTP_SMTP_LISTEN',
  submission: 'AFTERSMTP_SUBMISSION_LISTEN',
  submissions: 'AFTERSMTP_SUBMISSIONS_LISTEN',
};

export interface SmtpLimits {
  /** Largest message accepted (SIZE), in bytes. */
  readonly maxMessageBytes: number;
  /** Recipients per message (RFC 5321 §4.5.3.1.8: at least 100). */
  readonly maxRecipients: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  /** Commands per minute per client address, over all its connections. */
  readonly commandsPerMinute: number;
  /** DATA slower than this (bytes/s, after a 10 s grace) closes the connection (Postfix's 500). */
  readonly minDataRate: number;
  /** No command for this long closes the connection (RFC 5321 §4.5.3.2.7: at least 5 min). */
  readonly idleTimeoutMs: number;
  /** The TLS handshake of port 465 must finish within this. */
  readonly handshakeTimeoutMs: number;
  /** Failed AUTH attempts per address per hour before its connections are closed. */
  readonly authFailuresPerHour: number;
}

export const DEFAULT_SMTP_LIMITS: SmtpLimits = {
  maxMessageBytes: 25 * 1024 * 1024,
  maxRecipients: 100,
  maxConnections: 1000,
  maxConnectionsPerAddress: 20,
  commandsPerMinute: 1200,
  minDataRate: 500,
  idleTimeoutMs: 300_000,
  handshakeTimeoutMs: 10_000,
  authFailuresPerHour: 10,
};

/** Who may log in on submission: `verify` answers the user's DID for a right password. */
export interface SubmissionDirectory {
  verify(login: string, password: string): Promise<{ login: string; did: string } | undefined>;
}

export interface SmtpLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/**
 * What the listeners ask of the pipeline: the steps of the dialogue, then the message. Each may
 * answer later (the listener thread asks the main thread, src/legacy/smtp/thread.ts).
 */
export interface SmtpPipeline {
  connect(client: Client): ClientVerdict | Promise<ClientVerdict>;
  mailFrom(state: SmtpState, address: string): Verdict | Promise<Verdict>;
  /** RCPT TO, with the client's and sender's checks when they are still pending (delayed). */
  rcptTo(state: SmtpState, address: string, pending: DelayedChecks): Promise<RcptAnswer>;
  submitLegacy: Pipeline['submitLegacy'];
}

export interface SmtpOptions {
  readonly pipeline: SmtpPipeline;
  readonly users: SubmissionDirectory;
  /** The name in the greeting and EHLO reply. */
  readonly hostname: string;
  readonly tls: { readonly key: string | Buffer; readonly cert: string | Buffer };
  readonly listen: Partial<Record<ListenerRole, ListenAddress>>;
  readonly limits?: Partial<SmtpLimits>;
  /**
   * Postfix's smtpd_delay_reject (default true): the client's check (connect) and the sender's
   * (MAIL FROM) are asked with the first recipient, and a refusal of either is the answer to
   * RCPT TO; false asks each at its own step.
   */
  readonly delayReject?: boolean;
  /**
   * Runs the pipeline's authentication check (SPF, DKIM, DMARC, ARC) here, after DATA, and hands
   * its results in with the message; unset: the pipeline runs it.
   */
  readonly authenticator?: MessageAuthenticator;
  readonly log: SmtpLogger;
  readonly now?: () => number;
  /** Kept at the number of open connections (Atomics: another thread reads it, src/workload.ts). */
  readonly openSessions?: Int32Array;
}

export interface SmtpListeners {
  /** Where each configured listener is bound. */
  readonly addresses: Partial<Record<ListenerRole, AddressInfo>>;
  close(): Promise<void>;
}

/** A reply as smtp-server takes it from a callback: the code, and the text after it. */
function replyError(r: SmtpReply): Error & { responseCode: number } {
  return Object.assign(new Error(`${r.status} ${r.text}`), { responseCode: r.code });
}

function refusalError(r: Refusal): Error & { responseCode: number } {
  return replyError(refusalReply(r));
}

const ENHANCED = /^[245]\.\d{1,3}\.\d{1,3} /;
let patched = false;

type ConnectionInternals = {
  send(code: number, data: unknown, context?: unknown): unknown;
  init(): void;
  _setListeners(callback: () => void): void;
  connectionReady(): void;
};

/**
 * Two changes to smtp-server 3.21's connection (pinned in package-lock.json), made once:
 *
 * - It adds an enhanced status code to every reply from a fixed table by reply code; ours
 *   (replies.ts) are chosen per refusal (a relay denial is 554 5.7.1, not the table's 5.6.0). A
 *   reply whose text starts with an enhanced code is sent as it is; its own replies keep theirs.
 * - It waits 100 ms before the greeting of every connection (to catch clients that talk first).
 *   With a connection per message that wait alone caps a session at 10 messages/s; the byte
 *   guard refuses early talkers' bad bytes anyway, so the greeting goes out at once. (Its init
 *   is otherwise unchanged: the listeners, then the greeting; the client cap is ours.)
 */
function patchSmtpServer(): void {
  if (patched) return;
  patched = true;
  const proto = SMTPConnection.prototype as unknown as ConnectionInternals;
  const send = proto.send;
  proto.send = function (this: unknown, code, data, context) {
    return send.call(
      this,
      code,
      data,
      typeof data === 'string' && ENHANCED.test(data) ? false : context,
    );
  };
  proto.init = function (this: ConnectionInternals) {
    this._setListeners(() => this.connectionReady());
  };
}

/** What one connection has established. */
interface ConnState {
  readonly guard: ConnectionGuardState;
  client: Client;
  trusted: boolean;
  /** The client's verdict; unset until it is judged (at connect, or at the first RCPT). */
  clientVerdict?: Verdict;
  /** The effects of the client's access entry, for every message of the connection. */
  clientEffects: Effects;
  /** The sender's verdict in this transaction; unset until it is judged (at MAIL, or RCPT). */
  senderVerdict?: Verdict;
  /** The transaction's effects (sender's and recipients' access entries). */
  effects: Effects;
  plans: RecipientPlan[];
}

/** A token bucket per client address (commands, AUTH failures), swept of idle entries. */
class AddressBuckets {
  readonly #buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    readonly capacity: number,
    readonly periodMs: number,
    readonly now: () => number,
  ) {}

  take(address: string): boolean {
    const now = this.now();
    const b = this.#buckets.get(address) ?? { tokens: this.capacity, at: now };
    b.tokens = Math.min(this.capacity, b.tokens + ((now - b.at) * this.capacity) / this.periodMs);
    b.at = now;
    this.#buckets.set(address, b);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  empty(address: string): boolean {
    const b = this.#buckets.get(address);
    if (b === undefined) return false;
    const tokens = Math.min(
      this.capacity,
      b.tokens + ((this.now() - b.at) * this.capacity) / this.periodMs,
    );
    return tokens < 1;
  }

  sweep(): void {
    const idle = this.now() - this.periodMs;
    for (const [a, b] of this.#buckets) if (b.at < idle) this.#buckets.delete(a);
  }
}

/** A step's answer, now or later; a step that throws is a rejected promise. */
function answerOf<T>(step: () => T | Promise<T>): Promise<T> {
  try {
    return Promise.resolve(step());
  } catch (err) {
    return Promise.reject(err);
  }
}

/** RFC 5321 §4.5.3.1: local part 64, domain 255, path 256 octets. */
function addressTooLong(address: string): boolean {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  const domain = at < 0 ? '' : address.slice(at + 1);
  return (
    Buffer.byteLength(local) > 64 ||
    Buffer.byteLength(domain) > 255 ||
    Buffer.byteLength(address) + 2 > 256
  );
}

/** The first text line over 1000 octets with its CRLF (RFC 5321 §4.5.3.1.6), if any. */
class LineLengthCheck {
  #run = 0;
  tooLong = false;

  feed(chunk: Buffer): void {
    let start = 0;
    for (let i = chunk.indexOf(0x0a); i >= 0; i = chunk.indexOf(0x0a, i + 1)) {
      if (this.#run + (i + 1 - start) > 1000) this.tooLong = true;
      this.#run = 0;
      start = i + 1;
    }
    this.#run += chunk.length - start;
    if (this.#run > 1000) this.tooLong = true;
  }
}

export async function startSmtp(o: SmtpOptions): Promise<SmtpListeners> {
  patchSmtpServer();
  const limits: SmtpLimits = { ...DEFAULT_SMTP_LIMITS, ...o.limits };
  const delayReject = o.delayReject ?? true;
  const now = o.now ?? Date.now;
  const commands = new AddressBuckets(limits.commandsPerMinute, 60_000, now);
  const authFailures = new AddressBuckets(limits.authFailuresPerHour, 3_600_000, now);
  const connections = new Map<string, ConnState>();
  const caps = new ConnectionGuard(
    {
      maxConnections: limits.maxConnections,
      maxPerAddress: limits.maxConnectionsPerAddress,
      idleTimeoutMs: 0, // smtp-server's own idle timeout (421) applies
    },
    {
      onRefused: (reason, address) =>
        o.log.warn({ address, reason }, 'smtp connection refused: over the connection cap'),
    },
  );

  const sweep = setInterval(() => {
    commands.sweep();
    authFailures.sweep();
    const t = now();
    for (const c of connections.values()) {
      const g = c.guard;
      const elapsed = (t - g.dataSince) / 1000;
      if (g.inData && elapsed > 10 && g.dataBytes / elapsed < limits.minDataRate) {
        g.refuse('slow-data', `421 4.4.2 ${o.hostname} Error: data arrives too slowly`);
      }
    }
  }, 1000);
  sweep.unref();

  const servers: { role: ListenerRole; server: Server; smtp: SMTPServer }[] = [];
  const addresses: Partial<Record<ListenerRole, AddressInfo>> = {};

  function stateOf(session: SMTPServerSession): ConnState {
    const s = connections.get(session.id);
    if (s === undefined) throw new Error(`no state for SMTP session ${session.id}`);
    return s;
  }

  function smtpState(c: ConnState, session: SMTPServerSession): SmtpState {
    const user = session.user as { login: string; did: string } | undefined;
    c.client = {
      ...c.client,
      tls: session.secure,
      ...(session.hostNameAppearsAs ? { helo: session.hostNameAppearsAs } : {}),
      ...(user !== undefined ? { login: user.login, did: user.did } : {}),
    };
    return { client: c.client, trusted: c.trusted };
  }

  /** Keeps the client's verdict for the connection (and says in the log that it was refused). */
  function judgedClient(c: ConnState, v: ClientVerdict, role: ListenerRole): void {
    c.clientVerdict = v.verdict;
    c.trusted = v.trusted;
    if (v.verdict.kind === 'refuse') {
      o.log.info(
        { client: c.client.address, listener: role, code: v.verdict.refusal.code },
        'smtp client refused',
      );
    } else {
      c.clientEffects = mergeEffects(c.clientEffects, v.verdict.effects);
    }
  }

  /** Keeps the sender's verdict for the transaction. */
  function judgedSender(c: ConnState, v: Verdict): void {
    c.senderVerdict = v;
    if (v.kind === 'continue') c.effects = mergeEffects(c.effects, v.effects);
  }

  /** The client's refusal for the connection, else the sender's for the transaction, if any. */
  function priorRefusal(c: ConnState): Refusal | undefined {
    if (c.clientVerdict?.kind === 'refuse') return c.clientVerdict.refusal;
    if (c.senderVerdict?.kind === 'refuse') return c.senderVerdict.refusal;
    return undefined;
  }

  /** A failed step: logged, and a temporary failure that says nothing of why. */
  function internalError(
    cb: (err?: Error | null) => void,
    c: ConnState,
    step: string,
  ): (err: unknown) => void {
    return (err) => {
      o.log.error({ err, client: c.client.address }, `smtp ${step}: internal error`);
      cb(
        replyError({
          code: CODE.LOCAL_ERROR,
          status: STATUS.SYSTEM_TEMPORARY,
          text: 'Error: try again later',
        }),
      );
    };
  }

  function makeServer(role: ListenerRole): SMTPServer {
    const implicit = role === 'submissions';
    const smtp: SMTPServer = new SMTPServer({
      name: o.hostname,
      banner: 'AfterSMTP',
      key: o.tls.key,
      cert: o.tls.cert,
      secure: implicit,
      secured: implicit,
      logger: false,
      disableReverseLookup: true,
      size: limits.maxMessageBytes,
      maxRecipients: limits.maxRecipients,
      // RFC 5321 §4.5.3.1.4: 512 octets with the CRLF.
      maxCommandLength: 510,
      socketTimeout: limits.idleTimeoutMs,
      closeTimeout: 5000,
      hideENHANCEDSTATUSCODES: false,
      hideSMTPUTF8: true,
      hideDSN: true,
      authMethods: ['PLAIN', 'LOGIN'],
      // Port 25 offers no AUTH; submission requires it before MAIL, and only over TLS.
      authOptional: role === 'mx',
      disabledCommands: role === 'mx' ? ['AUTH'] : implicit ? ['STARTTLS'] : [],
      allowInsecureAuth: false,

      onConnect(session, cb) {
        markLatency('smtp.connect', session.id);
        if (delayReject) {
          cb();
          return;
        }
        const c = stateOf(session);
        answerOf(() => o.pipeline.connect(c.client)).then(
          (verdict) => {
            judgedClient(c, verdict, role);
            if (verdict.verdict.kind === 'refuse') cb(refusalError(verdict.verdict.refusal));
            else cb();
          },
          internalError(cb, c, 'connect'),
        );
      },

      onSecure(socket, session, cb) {
        // STARTTLS: from now on the guard reads the cleartext inside TLS.
        if (!implicit) stateOf(session).guard.attach(socket as TLSSocket);
        cb();
      },

      onAuth(auth: SMTPServerAuthentication, session, cb) {
        const c = stateOf(session);
        const address = c.client.address;
        if (authFailures.empty(address)) {
          c.guard.refuse('auth-failures', `421 4.7.0 ${o.hostname} Error: too many failed logins`);
          cb(
            replyError({
              code: CODE.SERVICE_UNAVAILABLE,
              status: STATUS.SECURITY_TEMPORARY,
              text: 'Error: too many failed logins',
            }),
          );
          return;
        }
        const login = auth.username ?? '';
        o.users.verify(login, auth.password ?? '').then(
          (user) => {
            if (user === undefined) {
              authFailures.take(address);
              o.log.info({ client: address, login }, 'smtp login failed');
              cb(
                replyError({
                  code: CODE.AUTH_FAILED,
                  status: STATUS.AUTH_INVALID,
                  text: 'Error: authentication failed',
                }),
              );
              return;
            }
            cb(null, { user } as unknown as SMTPServerAuthenticationResponse);
          },
          (err: unknown) => {
            o.log.error({ err, client: address }, 'smtp login: internal error');
            cb(
              replyError({
                code: CODE.LOCAL_ERROR,
                status: STATUS.SYSTEM_TEMPORARY,
                text: 'Error: try again later',
              }),
            );
          },
        );
      },

      onMailFrom(address: SMTPServerAddress, session, cb) {
        const c = stateOf(session);
        c.plans = [];
        c.effects = {};
        c.senderVerdict = undefined;
        const from = address.address;
        if (addressTooLong(from)) {
          cb(
            replyError({
              code: CODE.SYNTAX_ERROR,
              status: '5.1.7',
              text: 'Error: sender address too long (RFC 5321 4.5.3.1)',
            }),
          );
          return;
        }
        if (delayReject) {
          cb();
          return;
        }
        answerOf(() => o.pipeline.mailFrom(smtpState(c, session), from)).then(
          (v) => {
            judgedSender(c, v);
            if (v.kind === 'refuse') cb(refusalError(v.refusal));
            else cb();
          },
          internalError(cb, c, 'MAIL'),
        );
      },

      onRcptTo(address: SMTPServerAddress, session, cb) {
        markLatency('smtp.rcpt', session.id);
        const c = stateOf(session);
        const rcpt = address.address;
        if (addressTooLong(rcpt)) {
          cb(
            replyError({
              code: CODE.SYNTAX_ERROR,
              status: STATUS.BAD_MAILBOX_SYNTAX,
              text: 'Error: recipient address too long (RFC 5321 4.5.3.1)',
            }),
          );
          return;
        }
        // A client or sender refused before: every recipient is refused so, without asking.
        const before = priorRefusal(c);
        if (before !== undefined) {
          cb(refusalError(before));
          return;
        }
        const state = {
          ...smtpState(c, session),
          mailFrom: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
        };
        const pending = {
          client: c.clientVerdict === undefined,
          ...(c.senderVerdict === undefined ? { sender: state.mailFrom } : {}),
        };
        o.pipeline.rcptTo(state, rcpt, pending).then(
          (answer) => {
            markLatency('smtp.rcpt.answered', session.id);
            if (answer.client !== undefined) judgedClient(c, answer.client, role);
            if (answer.sender !== undefined) judgedSender(c, answer.sender);
            const refused = priorRefusal(c);
            if (refused !== undefined) {
              cb(refusalError(refused));
              return;
            }
            const r = answer.rcpt;
            if (r === undefined) {
              internalError(
                cb,
                c,
                'RCPT',
              )(new Error('the pipeline answered RCPT without a verdict'));
              return;
            }
            if (r.kind === 'refused') {
              cb(refusalError(r.refusal));
              return;
            }
            c.plans = [
              ...c.plans.filter((p) => p.address.toLowerCase() !== rcpt.toLowerCase()),
              r.plan,
            ];
            c.effects = mergeEffects(c.effects, r.effects);
            cb();
          },
          internalError(cb, c, 'RCPT'),
        );
      },

      onData(stream: SMTPServerDataStream, session, cb) {
        const c = stateOf(session);
        c.guard.startData();
        readMessage(stream, limits.maxMessageBytes)
          .then(async (m) => {
            markLatency('smtp.received', session.id);
            if (c.guard.refused !== undefined) {
              cb(
                replyError({
                  code: CODE.TRANSACTION_FAILED,
                  status: STATUS.SYNTAX,
                  text: 'Error: connection refused',
                }),
              );
              return;
            }
            if (m.tooBig || stream.sizeExceeded) {
              cb(
                replyError({
                  code: CODE.EXCEEDED_STORAGE,
                  status: STATUS.TOO_BIG,
                  text: 'Error: message too big',
                }),
              );
              return;
            }
            if (m.longLine) {
              cb(
                replyError({
                  code: CODE.MAILBOX_UNAVAILABLE,
                  status: STATUS.MEDIA,
                  text: 'Error: a line is longer than 1000 octets (RFC 5321 4.5.3.1.6)',
                }),
              );
              return;
            }
            const state = smtpState(c, session);
            const transaction = randomHex(8);
            const mailFrom = session.envelope.mailFrom ? session.envelope.mailFrom.address : '';
            const auth = await o.authenticator?.check(m.message, state.client, mailFrom);
            markLatency('smtp.authenticated', session.id, transaction);
            const outcome = await o.pipeline.submitLegacy({
              transaction,
              client: state.client,
              mailFrom,
              ...(auth !== undefined ? { auth } : {}),
              recipients: c.plans,
              trusted: state.trusted,
              effects: mergeEffects(c.clientEffects, c.effects),
              message: m.message,
              receivedAt: now(),
            });
            c.plans = [];
            c.effects = {};
            if (outcome.kind === 'refused') {
              cb(refusalError(outcome.refusal));
              return;
            }
            markLatency('smtp.replied', session.id);
            cb(null, `${STATUS.OK} Ok: queued as ${outcome.messageId}`);
          })
          .catch(internalError(cb, c, 'DATA'));
      },

      onClose(session) {
        markLatency('smtp.close', session.id);
        connections.delete(session.id);
      },
    });
    smtp.on('error', (err) =>
      o.log.warn({ err: (err as Error).message, listener: role }, 'smtp connection error'),
    );
    return smtp;
  }

  /** Counts the socket in, puts the byte guard on it, and hands it to smtp-server. */
  function accept(role: ListenerRole, smtp: SMTPServer, socket: Socket | TLSSocket): void {
    const address = clientAddress(socket);
    const guard = new ConnectionGuardState({
      takeCommand: () => commands.take(address),
      onViolation: (kind: Violation) =>
        o.log.warn(
          { client: address, listener: role, violation: kind },
          'smtp connection closed by the guard',
        ),
    });
    guard.attach(socket);
    const open = o.openSessions;
    if (open !== undefined) {
      Atomics.add(open, 0, 1);
      socket.once('close', () => Atomics.sub(open, 0, 1));
    }
    // Our id for smtp-server's session, so its callbacks find this connection's state.
    const id = randomBytes(9).toString('base64url');
    connections.set(id, {
      guard,
      client: {
        entrance: role === 'mx' ? 'smtp' : 'submission',
        address,
        port: socket.remotePort ?? 0,
        tls: role === 'submissions',
      },
      trusted: false,
      clientEffects: {},
      effects: {},
      plans: [],
    });
    smtp.connect(socket, { id });
  }

  for (const role of ['mx', 'submission', 'submissions'] as const) {
    const where = o.listen[role];
    if (where === undefined) continue;
    const smtp = makeServer(role);
    let server: Server;
    if (role === 'submissions') {
      const tlsServer = createTlsServer({
        key: o.tls.key,
        cert: o.tls.cert,
        minVersion: 'TLSv1.2',
        handshakeTimeout: limits.handshakeTimeoutMs,
      });
      tlsServer.on('connection', (raw: Socket) => {
        if (!caps.admit(raw)) return;
      });
      tlsServer.on('secureConnection', (tlsSocket: TLSSocket) => {
        accept(role, smtp, tlsSocket);
      });
      tlsServer.on('tlsClientError', () => undefined);
      server = tlsServer;
    } else {
      server = createNetServer((socket) => {
        if (!caps.admit(socket)) return;
        accept(role, smtp, socket);
      });
    }
    server.on('error', (err) => o.log.error({ err, listener: role }, 'smtp listener error'));
    server.listen(where.port, where.host);
    try {
      await once(server, 'listening');
    } catch (err) {
      clearInterval(sweep);
      for (const s of servers) s.server.close();
      throw listenError(
        'ERR_SMTP_BIND',
        { protocol: 'TCP', ...where, setting: SETTING[role] },
        err,
      );
    }
    addresses[role] = server.address() as AddressInfo;
    servers.push({ role, server, smtp });
  }

  return {
    addresses,
    async close() {
      clearInterval(sweep);
      await Promise.all(
        servers.map(
          ({ server, smtp }) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              smtp.close(() => undefined);
            }),
        ),
      );
    },
  };
}

/** Reads a message from DATA within the size limit, checking its line lengths. */
async function readMessage(
  stream: Readable,
  max: number,
): Promise<{ message: Buffer; tooBig: boolean; longLine: boolean }> {
  const chunks: Buffer[] = [];
  const lines = new LineLengthCheck();
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > max) continue; // read to the end, keep nothing more
    lines.feed(chunk);
    chunks.push(chunk);
  }
  return { message: Buffer.concat(chunks), tooBig: size > max, longLine: lines.tooLong };
}
