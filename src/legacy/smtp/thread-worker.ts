/**
 * The SMTP listener thread's side (thread.ts): `startSmtp` with a pipeline and a user directory
 * that ask the main thread, a log that hands each line to it, and the authentication check's DNS
 * cache, whose misses it asks of the main thread's DNS client.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { DnsCache } from '../../net/dns-cache.js';
import type { DnsResolver } from '../../net/dns.js';
import { mailAuthenticator } from '../../pipeline/authentication.js';
import { startSmtp, type SmtpListeners, type SmtpLogger, type SmtpPipeline } from './server.js';
import {
  errorText,
  rebuilt,
  withBuffers,
  type MainMessage,
  type Step,
  type ThreadMessage,
  type ThreadSettings,
} from './thread.js';

const port = parentPort;
if (port === null) throw new Error('thread-worker.js runs as a worker thread');
const settings = workerData as ThreadSettings;
const send = (m: ThreadMessage): void => port.postMessage(m);

const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
let nextId = 1;

function ask<T>(step: Step, ...args: unknown[]): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const id = nextId++;
    waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
    send({ t: 'ask', id, step, args });
  });
}

/** A log line for the main thread's logger; fields that cannot cross are given as text. */
function logLine(level: keyof SmtpLogger): (obj: object, msg: string) => void {
  return (obj, msg) => {
    try {
      send({ t: 'log', level, obj, msg });
    } catch {
      const plain = Object.fromEntries(
        Object.entries(obj).map(([k, v]) => [k, v instanceof Error ? errorText(v) : String(v)]),
      );
      send({ t: 'log', level, obj: plain, msg });
    }
  };
}

const pipeline: SmtpPipeline = {
  connect: (client) => ask('connect', client),
  mailFrom: (state, address) => ask('mailFrom', state, address),
  rcptTo: (state, address, pending) => ask('rcptTo', state, address, pending),
  submitLegacy: (sub) => ask('submitLegacy', sub),
};

let listeners: SmtpListeners | undefined;

port.on('message', (m: MainMessage) => {
  if (m.t === 'answer') {
    const w = waiting.get(m.id);
    if (w === undefined) return;
    waiting.delete(m.id);
    if (m.error === undefined) w.resolve(withBuffers(m.value));
    else w.reject(rebuilt(m.error));
    return;
  }
  void (listeners?.close() ?? Promise.resolve()).then(() => send({ t: 'closed' }));
});

const { authenticate, dnsCacheEntries, ...smtpSettings } = settings;

/** The authentication check's resolver: the thread's cache, in front of the main thread's client. */
function resolver(): DnsResolver {
  const main: DnsResolver = { query: (name, type) => ask('dns', name, type) };
  if (dnsCacheEntries === 0) return main;
  const cache = new DnsCache(main, { maxEntries: dnsCacheEntries });
  let sent = -1;
  setInterval(() => {
    const stats = cache.stats();
    const lookups = stats.hits + stats.misses + stats.shared;
    if (lookups === sent) return;
    sent = lookups;
    send({ t: 'dnsStats', stats });
  }, 1000).unref();
  return cache;
}

startSmtp({
  ...smtpSettings,
  ...(authenticate
    ? {
        authenticator: mailAuthenticator({
          hostname: settings.hostname,
          dns: resolver(),
        }),
      }
    : {}),
  pipeline,
  users: { verify: (login, password) => ask('verify', login, password) },
  log: { info: logLine('info'), warn: logLine('warn'), error: logLine('error') },
}).then(
  (l) => {
    listeners = l;
    send({ t: 'listening', addresses: l.addresses });
  },
  (err: unknown) => send({ t: 'failed', error: errorText(err) }),
);
