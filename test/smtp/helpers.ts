// A gateway's SMTP side in one process, for the on-ramp tests: the real ledger (SQLite), mailbox
// store and queue (LMDB), pipeline, delivery worker and SMTP listeners (ports 25, 587, 465 on
// 127.0.0.1, port 0), with users registered in the ledger. Messages are sent with real clients
// (nodemailer; raw sockets for byte-exact cases) and read back by opening the envelopes that
// reached the mailboxes.
import { connect as netConnect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { generateSelfSignedCertificate } from '../../src/quic/index.js';
import { DeliveryWorker, type DestinationHandler } from '../../src/delivery/worker.js';
import type { PolicyCheck } from '../../src/pipeline/policy.js';
import type { RetryPolicy } from '../../src/queue/types.js';
import { openEnvelope, type OpenedMessage } from '../../src/envelope/index.js';
import { decodeEnvelope } from '../../src/envelope/codec.js';
import type { SecretKeySet } from '../../src/identity/keys.js';
import { publishGatewayRecord } from '../../src/ledger/gateway-record.js';
import type { IdentityLedger } from '../../src/ledger/ledger.js';
import { MailboxWriter } from '../../src/mailbox/writer.js';
import type { SmtpLimits, SmtpListeners } from '../../src/legacy/smtp/server.js';
import { startSmtpThread } from '../../src/legacy/smtp/thread.js';
import { DnsClient } from '../../src/net/dns.js';
import { SubmissionUsers } from '../../src/legacy/users.js';
import { createOffRamp, type OffRampHandler } from '../../src/legacy/offramp/index.js';
import { DkimKeys } from '../../src/mail/dkim-keys.js';
import { loadSrsSecret, Srs } from '../../src/mail/srs.js';
import type { Pipeline, PipelineOptions } from '../../src/pipeline/pipeline.js';
import { LmdbQueue } from '../../src/queue/lmdb.js';
import { MappingEngine, mapsDatabasePath, type MapName } from '../../src/routing/index.js';
import { until } from '../helpers/wait.js';
import { Keyring, generateKey } from '../../src/store/keys.js';
import { LmdbMailboxStore } from '../../src/store/lmdb.js';
import type { Envelope } from '../../src/envelope/codec.js';
import { DOMAIN, identity, openLedger, registerRequest } from '../ledger/helpers.js';
import { QUIET, testPipeline } from '../helpers/pipeline.js';

export { DOMAIN };

export interface SmtpGateway {
  readonly ledger: IdentityLedger;
  readonly store: LmdbMailboxStore;
  readonly queue: LmdbQueue;
  readonly keys: SecretKeySet;
  readonly pipeline: Pipeline;
  readonly smtp: SmtpListeners;
  readonly users: SubmissionUsers;
  /** The gateway's maps (a file in `dir`; another engine on it is what `aftersmtp maps` does). */
  readonly maps: MappingEngine;
  readonly dir: string;
  /** With `outbound`: the DKIM keys (DOMAIN has one rsa and one ed25519) and the SRS secret. */
  readonly dkim?: DkimKeys;
  readonly srs?: Srs;
  readonly port: { mx: number; submission: number; submissions: number };
  readonly tlsCert: string;
  /** Registers a user of DOMAIN and returns its keys. */
  user(localpart: string): Promise<SecretKeySet>;
  /** Waits for `n` envelopes in the user's mailbox and opens them. */
  inbox(user: SecretKeySet, n: number, ms?: number): Promise<Received[]>;
  close(): Promise<void>;
}

export interface Received {
  readonly envelope: Envelope;
  readonly opened: OpenedMessage;
}

export interface SmtpGatewayOptions {
  readonly limits?: Partial<SmtpLimits>;
  /** smtpd_delay_reject (default: the listener's, yes). */
  readonly delayReject?: boolean;
  readonly dnsServers?: readonly string[];
  /** Checks of the policy stage (spam, MailScript), or a function that makes them once the maps
   * and data dir exist. */
  readonly policy?:
    | readonly PolicyCheck[]
    | ((ctx: { maps: MappingEngine; dir: string }) => readonly PolicyCheck[]);
  /** The delivery worker's handler of `webhook:` jobs. */
  readonly webhook?: DestinationHandler;
  /** The DNS checks of port 25's clients and senders (blocklists, the sender's domain). */
  readonly dnsChecks?: Pick<PipelineOptions, 'dnsbl' | 'rhsbl' | 'senderDomains'>;
  /** The queue's retry policy (default: the queue's). */
  readonly retry?: RetryPolicy;
  /** Mail out: DKIM keys of DOMAIN made in the data dir, SRS, and the off-ramp. */
  readonly outbound?: {
    /** The off-ramp's DNS (MX lookups); routes in the maps need none. */
    readonly dnsServers?: readonly string[];
    /** Port of the MX hosts (the test's receiver). */
    readonly port?: number;
    /** DKIM keys the test made (default: new ones in the data dir). */
    readonly dkim?: DkimKeys;
  };
}

export async function startSmtpGateway(opts: SmtpGatewayOptions = {}): Promise<SmtpGateway> {
  const { ledger, dir, cleanup } = openLedger();
  const keys = identity('gateway');
  const cert = await generateSelfSignedCertificate({ commonName: DOMAIN });
  publishGatewayRecord(ledger, keys, cert.spki);
  const store = await LmdbMailboxStore.open({
    path: join(dir, 'mailboxes'),
    keyring: new Keyring([generateKey()]),
  });
  const queue = new LmdbQueue({
    path: join(dir, 'queue'),
    bounce: { reportingMta: DOMAIN },
    ...(opts.retry !== undefined ? { retry: opts.retry } : {}),
  });
  const maps = MappingEngine.open({ path: mapsDatabasePath(dir), pollMs: 50 });
  let outbound: { dkim: DkimKeys; srs: Srs; offramp: OffRampHandler } | undefined;
  if (opts.outbound !== undefined) {
    const dkim = opts.outbound.dkim ?? new DkimKeys(dir, 'the test gateway passphrase');
    await dkim.ensure(DOMAIN);
    outbound = {
      dkim,
      srs: new Srs({ secret: await loadSrsSecret(dir) }),
      offramp: createOffRamp({
        maps: () => maps.snapshot(),
        ...(opts.outbound.dnsServers !== undefined
          ? { dnsServers: opts.outbound.dnsServers }
          : { dnsServers: ['127.0.0.1:1'] }),
        hostname: `mx.${DOMAIN}`,
        log: QUIET,
        ...(opts.outbound.port !== undefined ? { port: opts.outbound.port } : {}),
        timeouts: { connectMs: 3000, dnsMs: 1000 },
      }),
    };
  }
  const pipeline = testPipeline({
    domain: DOMAIN,
    ledger,
    keys,
    store,
    queue,
    maps,
    ...(opts.dnsServers !== undefined ? { dnsServers: opts.dnsServers } : {}),
    overrides: {
      ...(outbound !== undefined ? { dkimKeys: outbound.dkim, srs: outbound.srs } : {}),
      ...opts.dnsChecks,
      ...(opts.policy !== undefined
        ? { policy: typeof opts.policy === 'function' ? opts.policy({ maps, dir }) : opts.policy }
        : {}),
    },
  });
  const worker = new DeliveryWorker({
    queue,
    mailbox: new MailboxWriter({ store, gatewayKeys: keys }),
    ledger,
    gateway: keys,
    domain: DOMAIN,
    maxEnvelopeBytes: 32 * 1024 * 1024,
    log: QUIET,
    ...(outbound !== undefined ? { offramp: outbound.offramp } : {}),
    ...(opts.webhook !== undefined ? { handlers: { 'webhook:': opts.webhook } } : {}),
  });
  worker.start();
  const users = SubmissionUsers.open(dir);
  const any = { host: '127.0.0.1', port: 0 };
  // The listeners as the gateway runs them: on their own thread (src/legacy/smtp/thread.ts).
  const smtp = await startSmtpThread({
    pipeline,
    // The authentication check on the listener thread, as serve runs it (the pipeline's servers).
    dns: new DnsClient({ servers: opts.dnsServers ?? ['127.0.0.1:1'], timeoutMs: 5000, tries: 2 }),
    users,
    hostname: `mx.${DOMAIN}`,
    tls: { cert: cert.certPem, key: cert.keyPem },
    listen: { mx: any, submission: any, submissions: any },
    limits: opts.limits,
    ...(opts.delayReject !== undefined ? { delayReject: opts.delayReject } : {}),
    log: QUIET,
  });
  const a = smtp.addresses;
  return {
    ledger,
    store,
    queue,
    keys,
    pipeline,
    smtp,
    users,
    maps,
    dir,
    ...(outbound !== undefined ? { dkim: outbound.dkim, srs: outbound.srs } : {}),
    tlsCert: cert.certPem,
    port: {
      mx: a.mx?.port ?? 0,
      submission: a.submission?.port ?? 0,
      submissions: a.submissions?.port ?? 0,
    },
    async user(localpart) {
      const u = identity(localpart);
      ledger.register(await registerRequest(ledger, u));
      return u;
    },
    async inbox(user, n, ms = 10_000) {
      const deadline = Date.now() + ms;
      for (;;) {
        const page = await store.list(user.did);
        if (page.envelopes.length >= n || Date.now() > deadline) {
          return page.envelopes.map((e) => ({
            envelope: decodeEnvelope(e.envelope),
            opened: openEnvelope(e.envelope, user),
          }));
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    async close() {
      await smtp.close();
      await worker.stop();
      users.close();
      maps.close();
      await queue.close();
      await store.close();
      cleanup();
    },
  };
}

/**
 * Sets a map entry as `aftersmtp maps set` does (another engine on the gateway's maps file) and
 * waits until the gateway's snapshot has it.
 */
export async function setMapEntry(
  gw: SmtpGateway,
  map: MapName,
  key: string,
  value: string,
): Promise<void> {
  const admin = MappingEngine.open({ path: mapsDatabasePath(gw.dir), pollMs: 0 });
  try {
    const w = admin.set(map, key, value);
    await until(
      `${map} ${key} in the gateway's maps`,
      () => gw.maps.snapshot().version >= w.version,
    );
  } finally {
    admin.close();
  }
}

/** A raw SMTP client for byte-exact dialogues: send bytes, read replies. */
export class RawSmtp {
  readonly socket: Socket;
  /** The server's first reply (its greeting, or its refusal at connect). */
  greeting = '';
  #buffer = '';
  #closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => (this.#buffer += d.toString('latin1')));
    socket.on('close', () => (this.#closed = true));
    socket.on('error', () => undefined);
  }

  /** `localAddress`: the client's own address (another 127.0.0.x for an access_map entry). */
  static async open(port: number, localAddress?: string): Promise<RawSmtp> {
    const socket = netConnect({
      port,
      host: '127.0.0.1',
      ...(localAddress !== undefined ? { localAddress } : {}),
    });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const c = new RawSmtp(socket);
    c.greeting = await c.reply();
    return c;
  }

  /**
   * One session as far as RCPT, from `localAddress` (default 127.0.0.1): EHLO, MAIL FROM `from`,
   * RCPT TO `to`; the RCPT reply, or the MAIL reply when that was not 250. The connection is
   * closed after.
   */
  static async rcptReply(
    port: number,
    from: string,
    to: string,
    localAddress?: string,
  ): Promise<string> {
    const c = await RawSmtp.open(port, localAddress);
    try {
      await c.cmd('EHLO client.test');
      const mail = await c.cmd(`MAIL FROM:<${from}>`);
      return mail.startsWith('250 ') ? await c.cmd(`RCPT TO:<${to}>`) : mail;
    } finally {
      c.close();
    }
  }

  get closed(): boolean {
    return this.#closed;
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next complete reply (all its lines), or what arrived before the connection closed. */
  async reply(ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = /^(?:\d{3}-[^\r\n]*\r\n)*\d{3}(?: [^\r\n]*)?\r\n/.exec(this.#buffer);
      if (m !== null) {
        this.#buffer = this.#buffer.slice(m[0].length);
        return m[0];
      }
      if (this.#closed || Date.now() > deadline) {
        const rest = this.#buffer;
        this.#buffer = '';
        return rest;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** Sends a command line (CRLF added) and returns its reply. */
  async cmd(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  /** Waits until the server closes the connection (true) or `ms` passes (false). */
  async waitClosed(ms = 3000): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!this.#closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.#closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A small RFC 5322 message. */
export function message(
  opts: { from?: string; to?: string; subject?: string; body?: string } = {},
): string {
  return [
    `From: ${opts.from ?? 'Sender <sender@example.net>'}`,
    `To: ${opts.to ?? `alice@${DOMAIN}`}`,
    `Subject: ${opts.subject ?? 'hello'}`,
    `Message-ID: <${randomBytes(8).toString('hex')}@example.net>`,
    `Date: ${new Date().toUTCString()}`,
    '',
    opts.body ?? 'Hello from the legacy internet.',
    '',
  ].join('\r\n');
}
