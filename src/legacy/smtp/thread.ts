/**
 * The SMTP listeners on a thread of their own (docs/ARCHITECTURE.md, "The SMTP listener
 * thread"). smtp-server's dialogue, the byte guard, TLS and the sockets run in a worker thread
 * (thread-worker.ts runs `startSmtp` there), and so, when `dns` is given, does the pipeline's
 * authentication check (mailauth's SPF, DKIM, DMARC and ARC: the same `mailAuthenticator`). Its
 * DNS questions go through a DnsCache on the thread (the gateway's cache class and rules, of
 * `dnsCacheEntries` answers), whose misses are asked of the main thread's DNS client: a hit
 * costs no hand-off between the threads. Every decision stays on the main thread: the worker
 * asks each step (connect, MAIL and RCPT, or with smtpd_delay_reject all three at the first RCPT;
 * the message after DATA with its authentication results; a submission login) over the worker's
 * message port, and the main thread answers from the one pipeline and the one user directory. A
 * gateway with two cores spends one on the dialogue while the other admits, seals and commits.
 *
 * Guarantees: the same as `startSmtp` (a 250 only after the pipeline's commit resolved, on the
 * main thread); the listeners' addresses, bind errors (ERR_SMTP_BIND) and log lines are the
 * thread's own, reported here. If the thread ends unasked, its connections are gone and
 * `onFailure` is told; an answer the thread can no longer take is dropped (the client got no
 * 250, so it sends again).
 */
import { Worker } from 'node:worker_threads';
import { AfterSmtpError, EnvironmentError } from '../../errors.js';
import { DnsError, type DnsResolver } from '../../net/dns.js';
import type { DnsCacheStats } from '../../net/dns-cache.js';
import { countWorkElsewhere } from '../../workload.js';
import type { SmtpListeners, SmtpLogger, SmtpOptions } from './server.js';

/** What the listener thread is given when it starts. */
export interface ThreadSettings extends Pick<
  SmtpOptions,
  'hostname' | 'tls' | 'listen' | 'limits' | 'delayReject' | 'openSessions'
> {
  /** The thread runs the authentication check (its DNS questions are asked as `dns` steps). */
  readonly authenticate: boolean;
  /** Answers the thread's DNS cache holds (0: none, every question is a `dns` step). */
  readonly dnsCacheEntries: number;
}

/** The steps the thread may ask of the main thread. */
export type Step = 'connect' | 'mailFrom' | 'rcptTo' | 'submitLegacy' | 'verify' | 'dns';

/** An error as it crosses between the threads: enough to rebuild it and to log it. */
export interface ErrorText {
  readonly name: string;
  readonly message: string;
  readonly code?: string;
}

/** From the thread. */
export type ThreadMessage =
  | { readonly t: 'ask'; readonly id: number; readonly step: Step; readonly args: unknown[] }
  | {
      readonly t: 'log';
      readonly level: keyof SmtpLogger;
      readonly obj: object;
      readonly msg: string;
    }
  | { readonly t: 'dnsStats'; readonly stats: DnsCacheStats }
  | { readonly t: 'listening'; readonly addresses: SmtpListeners['addresses'] }
  | { readonly t: 'failed'; readonly error: ErrorText }
  | { readonly t: 'closed' };

/** To the thread. */
export type MainMessage =
  | {
      readonly t: 'answer';
      readonly id: number;
      readonly value?: unknown;
      readonly error?: ErrorText;
    }
  | { readonly t: 'close' };

export function errorText(err: unknown): ErrorText {
  const e = err as { name?: unknown; message?: unknown; code?: unknown } | null;
  return {
    name: typeof e?.name === 'string' ? e.name : 'Error',
    message: typeof e?.message === 'string' ? e.message : String(err),
    ...(typeof e?.code === 'string' ? { code: e.code } : {}),
  };
}

/** An error from the other thread as the same kind of error here (ERR_SMTP_BIND, DnsError). */
export function rebuilt(e: ErrorText): Error {
  if (e.code === undefined) return Object.assign(new Error(e.message), { name: e.name });
  if (e.name === 'EnvironmentError') return new EnvironmentError(e.code, e.message);
  if (e.name === 'DnsError') return new DnsError(e.code, e.message);
  return new AfterSmtpError(e.code, e.message);
}

/**
 * A value as the other thread sent it, with every byte array a Buffer again (a message port
 * clones a Buffer as a plain Uint8Array; the pipeline's values hold Buffers: keys, key ids).
 * The Buffers share the clone's memory.
 */
export function withBuffers<T>(value: T): T {
  if (value instanceof Uint8Array) {
    return (
      Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.length)
    ) as T;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = withBuffers(value[i]);
    return value;
  }
  if (value !== null && typeof value === 'object') {
    const o = value as Record<string, unknown>;
    for (const k of Object.keys(o)) o[k] = withBuffers(o[k]);
  }
  return value;
}

export interface SmtpThreadOptions extends Omit<SmtpOptions, 'now' | 'authenticator'> {
  /**
   * The gateway's DNS client: given, the thread runs the authentication check (the pipeline's
   * `mailAuthenticator`, named by `hostname`) and asks the questions its own cache cannot answer
   * of this resolver.
   */
  readonly dns?: DnsResolver;
  /** Answers the thread's DNS cache holds (AFTERSMTP_DNS_CACHE_ENTRIES; 0 or absent: none). */
  readonly dnsCacheEntries?: number;
  /** The thread's DNS cache statistics, at most once a second while they change (metrics). */
  readonly onDnsStats?: (stats: DnsCacheStats) => void;
  /** The thread ended unasked (an uncaught error in it): the SMTP listeners are gone. */
  readonly onFailure?: (err: Error) => void;
}

/**
 * The outcome of a message, as much as the listener uses: receipts (the relay's) stay here.
 */
async function submitLegacy(
  o: SmtpThreadOptions,
  sub: Parameters<SmtpOptions['pipeline']['submitLegacy']>[0],
): Promise<unknown> {
  const outcome = await o.pipeline.submitLegacy(sub);
  if (outcome.kind === 'refused') return outcome;
  return {
    ...outcome,
    recipients: outcome.recipients.map(({ recipient, refusal }) =>
      refusal === undefined ? { recipient } : { recipient, refusal },
    ),
  };
}

/** Starts the listeners on their thread; resolves once every one is bound. */
export function startSmtpThread(o: SmtpThreadOptions): Promise<SmtpListeners> {
  // The thread's open connections, read here: each besides the one whose message is in the
  // pipeline is a message on its way (src/workload.ts).
  const openSessions = new Int32Array(new SharedArrayBuffer(4));
  const uncount = countWorkElsewhere(() => Math.max(0, Atomics.load(openSessions, 0) - 1));
  const settings: ThreadSettings = {
    hostname: o.hostname,
    tls: o.tls,
    listen: o.listen,
    ...(o.limits !== undefined ? { limits: o.limits } : {}),
    ...(o.delayReject !== undefined ? { delayReject: o.delayReject } : {}),
    authenticate: o.dns !== undefined,
    dnsCacheEntries: o.dnsCacheEntries ?? 0,
    openSessions,
  };
  const steps: Record<Step, (...args: never[]) => unknown> = {
    connect: (client: Parameters<SmtpOptions['pipeline']['connect']>[0]) =>
      o.pipeline.connect(client),
    mailFrom: (...a: Parameters<SmtpOptions['pipeline']['mailFrom']>) => o.pipeline.mailFrom(...a),
    rcptTo: (...a: Parameters<SmtpOptions['pipeline']['rcptTo']>) => o.pipeline.rcptTo(...a),
    submitLegacy: (sub: Parameters<SmtpOptions['pipeline']['submitLegacy']>[0]) =>
      submitLegacy(o, sub),
    verify: (login: string, password: string) => o.users.verify(login, password),
    dns: (...a: Parameters<DnsResolver['query']>) => {
      if (o.dns === undefined) throw new Error('the SMTP listener thread has no resolver');
      return o.dns.query(...a);
    },
  };
  const worker = new Worker(new URL('./thread-worker.js', import.meta.url), {
    workerData: settings,
  });
  const send = (m: MainMessage): void => worker.postMessage(m);

  function answer(id: number, step: Step, args: unknown[]): void {
    // The executor turns a step that throws into a rejection.
    new Promise((resolve) =>
      resolve((steps[step] as (...a: unknown[]) => unknown)(...withBuffers(args))),
    ).then(
      (value) => {
        try {
          send({ t: 'answer', id, value });
        } catch (err) {
          send({ t: 'answer', id, error: errorText(err) }); // a value that cannot cross
        }
      },
      (err: unknown) => send({ t: 'answer', id, error: errorText(err) }),
    );
  }

  return new Promise<SmtpListeners>((resolve, reject) => {
    let state: 'starting' | 'serving' | 'closing' | 'closed' = 'starting';
    let closed: (() => void) | undefined;
    worker.on('message', (m: ThreadMessage) => {
      switch (m.t) {
        case 'ask':
          answer(m.id, m.step, m.args);
          return;
        case 'log':
          o.log[m.level](m.obj, m.msg);
          return;
        case 'dnsStats':
          o.onDnsStats?.(m.stats);
          return;
        case 'listening':
          state = 'serving';
          resolve({
            addresses: m.addresses,
            close: () =>
              new Promise<void>((done) => {
                if (state === 'closed') return done();
                state = 'closing';
                closed = done;
                send({ t: 'close' });
              }),
          });
          return;
        case 'failed':
          state = 'closed';
          void worker.terminate();
          reject(rebuilt(m.error));
          return;
        case 'closed':
          state = 'closed';
          void worker.terminate().then(() => closed?.());
          return;
      }
    });
    worker.on('error', (err) => o.log.error({ err }, 'the SMTP listener thread failed'));
    worker.on('exit', (code) => {
      uncount();
      const was = state;
      state = 'closed';
      closed?.();
      if (was === 'closing' || was === 'closed') return;
      const err = new AfterSmtpError(
        'ERR_SMTP_THREAD',
        `the SMTP listener thread ended (exit code ${code})`,
      );
      if (was === 'starting') reject(err);
      else o.onFailure?.(err);
    });
  });
}
