// Real peers for the off-ramp tests: a private Postfix that receives mail for test domains and
// keeps each message as it stored it (a pipe transport writes the queue file's content, one file
// per recipient), unbound serving test zones (plain, or DNSSEC-signed with ldns-signzone behind a
// second, validating unbound that has the zone's trust anchor), an HTTPS server for MTA-STS
// policies on 127.0.0.x:443, and a test CA (@peculiar/x509) for their certificates.
import { spawn, spawnSync, execFile } from 'node:child_process';
import { webcrypto, X509Certificate, createPrivateKey, randomInt } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { DnsClient } from '../../src/net/dns.js';
import type { LeasedJob } from '../../src/queue/types.js';
import { stopChild, tempDir } from '../helpers/cli.js';
import { postfixUnavailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { freePort, retryOnAddressInUse } from '../helpers/ports.js';
import type { SMTPServerOptions } from 'smtp-server';
import type { SessionInput, SessionResult } from '../../src/legacy/offramp/session.js';

const run = promisify(execFile);

/** A tool's absence: the reason to skip, or under CI=true a failure. */
export function unavailable(tool: string, why: string | undefined): string | false {
  if (why === undefined) return false;
  if (process.env.CI === 'true') throw new Error(`${tool}: ${why} (CI needs it)`);
  return why;
}

const UNBOUND = '/usr/sbin/unbound';
export const unboundMissing = (): string | false =>
  unavailable(
    'unbound',
    spawnSync(UNBOUND, ['-V']).status === 0
      ? undefined
      : 'unbound is not installed (Debian package unbound)',
  );
export const ldnsMissing = (): string | false =>
  unavailable(
    'ldns-signzone',
    existsSync('/usr/bin/ldns-signzone') && existsSync('/usr/bin/ldns-keygen')
      ? undefined
      : 'ldns-signzone is not installed (Debian package ldnsutils)',
  );
export const postfixMissing = (): string | false => unavailable('postfix', postfixUnavailable());

export { tempDir };

// --- a test CA ---------------------------------------------------------------------------

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };

export interface Issued {
  readonly certPem: string;
  readonly keyPem: string;
  readonly cert: X509Certificate;
}

export interface TestCa extends Issued {
  issue(dnsNames: readonly string[], o?: { notBefore?: Date; notAfter?: Date }): Promise<Issued>;
}

async function keyPemOf(k: webcrypto.CryptoKey): Promise<string> {
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', k));
  return createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' })
    .export({ type: 'pkcs8', format: 'pem' })
    .toString();
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(12)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

export async function makeCa(name = 'AfterSMTP test CA'): Promise<TestCa> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const caCert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: serial(),
      name: `CN=${name}`,
      notBefore: new Date(Date.now() - 86_400_000),
      notAfter: new Date(Date.now() + 30 * 86_400_000),
      signingAlgorithm: ALG,
      keys: keys as never,
      extensions: [
        new x509.BasicConstraintsExtension(true, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as never),
      ],
    },
    webcrypto as never,
  );
  const certPem = caCert.toString('pem');
  return {
    certPem,
    keyPem: await keyPemOf(keys.privateKey),
    cert: new X509Certificate(certPem),
    async issue(dnsNames, o = {}) {
      const leafKeys = (await webcrypto.subtle.generateKey(ALG, true, [
        'sign',
        'verify',
      ])) as webcrypto.CryptoKeyPair;
      const leaf = await x509.X509CertificateGenerator.create(
        {
          serialNumber: serial(),
          subject: `CN=${dnsNames[0] ?? 'server'}`,
          issuer: caCert.subject,
          notBefore: o.notBefore ?? new Date(Date.now() - 3_600_000),
          notAfter: o.notAfter ?? new Date(Date.now() + 7 * 86_400_000),
          signingAlgorithm: ALG,
          publicKey: leafKeys.publicKey as never,
          signingKey: keys.privateKey as never,
          extensions: [
            new x509.BasicConstraintsExtension(false, undefined, true),
            new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
            new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
            new x509.SubjectAlternativeNameExtension(
              dnsNames.map((value) => ({ type: 'dns' as const, value })),
            ),
            await x509.AuthorityKeyIdentifierExtension.create(caCert as never),
          ],
        },
        webcrypto as never,
      );
      const pem = leaf.toString('pem');
      return {
        certPem: pem,
        keyPem: await keyPemOf(leafKeys.privateKey),
        cert: new X509Certificate(pem),
      };
    },
  };
}

// --- DNS ---------------------------------------------------------------------------------

export interface Dns {
  /** For AFTERSMTP_DNS_SERVERS. */
  readonly server: string;
  close(): Promise<void>;
}

function unboundConf(dir: string, port: number, lines: readonly string[]): string {
  const conf = join(dir, `unbound-${port}.conf`);
  writeFileSync(
    conf,
    [
      'server:',
      `  interface: 127.0.0.1@${port}`,
      `  port: ${port}`,
      '  do-daemonize: no',
      '  do-ip6: no',
      '  do-tcp: yes',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${dir}"`,
      '  pidfile: ""',
      '  use-syslog: no',
      '  logfile: ""',
      '  verbosity: 0',
      '  num-threads: 1',
      '  access-control: 127.0.0.0/8 allow',
      // RFC 6761 makes test. a local zone by default; our zones live under it.
      '  local-zone: "test." nodefault',
      ...lines,
      'remote-control:',
      '  control-enable: no',
      '',
    ].join('\n'),
  );
  return conf;
}

async function runUnbound(conf: string, port: number, probe: string): Promise<() => Promise<void>> {
  const child = spawn(UNBOUND, ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const client = new DnsClient({ servers: [`127.0.0.1:${port}`], timeoutMs: 200, tries: 1 });
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`unbound exited: ${stderr}`);
    try {
      await client.query(probe, 'A');
      break;
    } catch (err) {
      if (i > 50) throw new Error(`unbound did not answer on ${port}: ${String(err)} ${stderr}`);
      await sleep(100);
    }
  }
  return async () => {
    await stopChild(child);
  };
}

/**
 * unbound with `lines` on a port that was free when picked. Another process may bind it first
 * (unbound binds UDP and TCP): then another port, up to five times.
 */
async function unboundOnFreePort(
  dir: string,
  lines: readonly string[],
  probe: string,
): Promise<{ port: number; stop: () => Promise<void> }> {
  return retryOnAddressInUse(async () => {
    const port = await freePort('udp');
    return { port, stop: await runUnbound(unboundConf(dir, port, lines), port, probe) };
  });
}

/** unbound answering for `zone` from `records` (zone-file lines, names absolute), unsigned. */
export async function startZone(zone: string, records: readonly string[]): Promise<Dns> {
  const dir = tempDir('zone');
  const { port, stop } = await unboundOnFreePort(
    dir,
    [
      '  module-config: "iterator"',
      `  local-zone: "${zone}." static`,
      ...records.map((r) => `  local-data: '${r}'`),
    ],
    `probe.${zone}`,
  );
  return {
    server: `127.0.0.1:${port}`,
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * `zone` signed with a fresh ECDSA P-256 key (ldns-keygen, ldns-signzone), served by an
 * authoritative unbound; the returned server is a second unbound that validates it with the key
 * as its trust anchor (it sets AD on what validates, SERVFAIL on what does not).
 */
export async function startSignedZone(zone: string, records: readonly string[]): Promise<Dns> {
  const dir = tempDir('signed-zone');
  const file = join(dir, 'zone');
  writeFileSync(
    file,
    [
      `$ORIGIN ${zone}.`,
      '$TTL 60',
      `@ IN SOA ns.${zone}. hostmaster.${zone}. 1 3600 600 86400 60`,
      `@ IN NS ns.${zone}.`,
      `ns.${zone}. IN A 127.0.0.1`,
      ...records,
      '',
    ].join('\n'),
  );
  const { stdout } = await run('ldns-keygen', ['-a', 'ECDSAP256SHA256', '-k', zone], { cwd: dir });
  const key = stdout.trim();
  await run('ldns-signzone', ['-f', `${file}.signed`, file, key], { cwd: dir });
  const dnskey = readFileSync(join(dir, `${key}.key`), 'utf8')
    .split('\n')
    .find((l) => l.includes('DNSKEY'))
    ?.replace(/;.*$/, '')
    .replace(/\s+/g, ' ')
    .trim();
  if (dnskey === undefined) throw new Error('ldns-keygen wrote no DNSKEY');
  const { port: authPort, stop: stopAuth } = await unboundOnFreePort(
    dir,
    [
      '  module-config: "iterator"',
      'auth-zone:',
      `  name: "${zone}."`,
      `  zonefile: "${file}.signed"`,
      '  for-downstream: yes',
      '  for-upstream: no',
    ],
    `ns.${zone}`,
  );
  let validator: { port: number; stop: () => Promise<void> };
  try {
    validator = await unboundOnFreePort(
      dir,
      [
        '  module-config: "validator iterator"',
        '  do-not-query-localhost: no',
        `  trust-anchor: "${dnskey}"`,
        'stub-zone:',
        `  name: "${zone}."`,
        `  stub-addr: 127.0.0.1@${authPort}`,
      ],
      `ns.${zone}`,
    );
  } catch (err) {
    await stopAuth();
    throw err;
  }
  const { port, stop: stopVal } = validator;
  return {
    server: `127.0.0.1:${port}`,
    async close() {
      await stopVal();
      await stopAuth();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// --- the receiving Postfix ---------------------------------------------------------------

export interface Captured {
  readonly recipient: string;
  /** The reverse path Postfix received it with (its qmgr log line), '' for the null sender. */
  readonly sender: string | undefined;
  /** What Postfix stored (LF line ends), whole. */
  readonly stored: Buffer;
  /** The same with CRLF line ends and Postfix's own Received line removed. */
  readonly message: Buffer;
}

export interface Receiver {
  readonly port: number;
  readonly postfix: PostfixInstance;
  captured(): Captured[];
  waitFor(n: number, ms?: number): Promise<Captured[]>;
  close(): Promise<void>;
}

export interface ReceiverOptions {
  /** Domains it accepts mail for. */
  readonly domains: readonly string[];
  /** Addresses that exist (others: 550 5.1.1). */
  readonly users: readonly string[];
  /** Addresses answered 450 4.2.1 at RCPT. */
  readonly busy?: readonly string[];
  /** STARTTLS with this key and chain (leaf first). */
  readonly tls?: { readonly keyPem: string; readonly chainPem: string };
  /** Another listener on this address (same port) that offers no STARTTLS. */
  readonly plainAddress?: string;
}

/** Drops the first header field when it is a Received line (folded lines included). */
function withoutFirstReceived(lines: string[]): string[] {
  if (!/^Received:/i.test(lines[0] ?? '')) return lines;
  let i = 1;
  while (i < lines.length && /^[ \t]/.test(lines[i] as string)) i++;
  return lines.slice(i);
}

export async function startReceiver(o: ReceiverOptions): Promise<Receiver> {
  const dir = mkdtempSync('/var/tmp/aftersmtp-capture-');
  chmodSync(dir, 0o755);
  const box = join(dir, 'box');
  mkdirSync(box);
  chmodSync(box, 0o777); // the pipe runs as nobody
  const script = join(dir, 'capture.sh');
  // Written under a dot name and renamed when whole: captured() skips dot names, so a test never
  // reads a message Postfix is still delivering.
  writeFileSync(
    script,
    '#!/bin/sh\nset -e\ntmp="$(dirname "$1")/.$(basename "$1")"\ncat > "$tmp"\nmv "$tmp" "$1"\n',
    { mode: 0o755 },
  );
  const main = [
    `relay_domains = ${o.domains.join(', ')}`,
    `relay_recipient_maps = inline:{ ${[...o.users, ...(o.busy ?? [])].map((u) => `${u}=ok`).join(', ')} }`,
    'relay_transport = capture',
    'capture_destination_recipient_limit = 1',
    'local_header_rewrite_clients =',
    `smtpd_recipient_restrictions = ${
      o.busy !== undefined && o.busy.length > 0
        ? `check_recipient_access inline:{ ${o.busy.map((u) => `{ ${u}=450 4.2.1 Mailbox busy }`).join(', ')} }, `
        : ''
    }permit_mynetworks, reject_unauth_destination`,
  ];
  if (o.tls !== undefined) {
    writeFileSync(join(dir, 'key.pem'), o.tls.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'chain.pem'), o.tls.chainPem);
    main.push(
      'smtpd_tls_security_level = may',
      `smtpd_tls_chain_files = ${join(dir, 'key.pem')}, ${join(dir, 'chain.pem')}`,
      'smtpd_tls_received_header = yes',
      'smtpd_tls_loglevel = 1',
    );
  }
  const postfix = await startPostfix({
    mainCf: main,
    myhostname: 'receiver.localdomain',
    masterCf: (port) => [
      `capture unix - n n - - pipe user=nobody argv=${script} ${box}/\${queue_id}.\${recipient}`,
      'tlsmgr unix - - n 1000? 1 tlsmgr',
      ...(o.plainAddress !== undefined
        ? [`${o.plainAddress}:${port} inet n - n - - smtpd -o smtpd_tls_security_level=none`]
        : []),
    ],
  });
  const senders = (): Map<string, string> =>
    new Map(
      [...postfix.log().matchAll(/ ([0-9A-F]{6,}): from=<([^>]*)>/g)].map(
        (m) => [m[1] as string, m[2] as string] as const,
      ),
    );
  const captured = (): Captured[] => {
    const from = senders();
    return readdirSync(box)
      .filter((f) => !f.startsWith('.'))
      .sort()
      .map((f) => {
        const stored = readFileSync(join(box, f));
        const lines = withoutFirstReceived(stored.toString('latin1').split('\n'));
        if (lines[lines.length - 1] === '') lines.pop();
        return {
          recipient: f.slice(f.indexOf('.') + 1),
          sender: from.get(f.slice(0, f.indexOf('.'))),
          stored,
          message: Buffer.from(lines.map((l) => `${l}\r\n`).join(''), 'latin1'),
        };
      });
  };
  return {
    port: postfix.port,
    postfix,
    captured,
    async waitFor(n, ms = 10_000) {
      const until = Date.now() + ms;
      for (;;) {
        const got = captured();
        if (got.length >= n) return got;
        if (Date.now() > until) {
          throw new Error(`${got.length} of ${n} messages stored; Postfix log:\n${postfix.log()}`);
        }
        await sleep(100);
      }
    },
    async close() {
      await postfix.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// --- MTA-STS policy server ---------------------------------------------------------------

export interface PolicyServer {
  /** The 127.0.0.x address it listens on, port 443. */
  readonly address: string;
  /** The policy text each mta-sts.<domain> host serves (absent: 404). */
  readonly policies: Map<string, string>;
  readonly requests: string[];
  close(): Promise<void>;
}

/** HTTPS on a free 127.0.0.x:443 with one certificate naming every `mta-sts.<domain>`. */
export async function startPolicyServer(
  ca: TestCa,
  domains: readonly string[],
): Promise<PolicyServer> {
  const cert = await ca.issue(domains.map((d) => `mta-sts.${d}`));
  const policies = new Map<string, string>();
  const requests: string[] = [];
  const server: Server = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => {
    const host = String(req.headers.host ?? '').toLowerCase();
    requests.push(`${host}${req.url ?? ''}`);
    const body = policies.get(host);
    if (req.url !== '/.well-known/mta-sts.txt' || body === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(body);
  });
  for (let i = 0; ; i++) {
    const address = `127.0.0.${randomInt(10, 250)}`;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(443, address, () => {
          server.off('error', reject);
          resolve();
        });
      });
      return {
        address,
        policies,
        requests,
        close: () => new Promise<void>((resolve) => server.close(() => resolve())),
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || i > 20) throw err;
    }
  }
}

// --- jobs and messages -------------------------------------------------------------------

export function message(subject: string, to: string, extra = ''): Buffer {
  return Buffer.from(
    [
      'From: Alice <alice@example.org>',
      `To: <${to}>`,
      `Subject: ${subject}`,
      'Date: Tue, 01 Dec 2026 10:00:00 +0000',
      `Message-ID: <${randomInt(1e9)}@example.org>`,
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'DKIM-Signature: v=1; a=ed25519-sha256; d=example.org; s=sel; h=from:to:subject;',
      '\tbh=AAAA; b=BBBB',
      '',
      'Hello,',
      '.a line that starts with a dot',
      '',
      `${extra}Bye.`,
      '',
    ].join('\r\n'),
  );
}

export function job(destination: string, recipients: readonly string[], body: Buffer): LeasedJob {
  return {
    jobId: `j${randomInt(1e9)}`,
    entryId: `e${randomInt(1e9)}`,
    messageId: `m${randomInt(1e9)}`,
    sender: 'alice@example.org',
    senderKind: 'legacy',
    bounce: false,
    destination,
    recipients,
    body,
    enqueuedAt: Date.now(),
    deliveries: 0,
  };
}

export interface LogLine {
  readonly level: 'info' | 'warn';
  readonly obj: object;
  readonly msg: string;
}

export function memoryLog(): {
  lines: LogLine[];
  info: (o: object, m: string) => void;
  warn: (o: object, m: string) => void;
} {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (obj, msg) => lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => lines.push({ level: 'warn', obj, msg }),
  };
}

/** smtp-server's `onData` that keeps each message's Subject in `subjects`. */
export function keepSubjects(subjects: string[]): NonNullable<SMTPServerOptions['onData']> {
  return (stream, _session, callback) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const subject = /^Subject: (.*)$/m.exec(Buffer.concat(chunks).toString('latin1'));
      subjects.push(subject?.[1]?.trim() ?? '');
      callback();
    });
  };
}

/** One message from alice@a.test to bob@dest.test over a session to 127.0.0.1:`port`. */
export function sessionInput(
  port: number,
  subject: string,
  over: Partial<SessionInput> = {},
): SessionInput {
  return {
    address: '127.0.0.1',
    port,
    hostName: undefined,
    helo: 'gw.a.test',
    tls: { kind: 'opportunistic' },
    timeouts: { connectMs: 5_000, greetingMs: 5_000, commandMs: 5_000, dataMs: 10_000 },
    maxReplyBytes: 64 * 1024,
    mailFrom: 'alice@a.test',
    recipients: ['bob@dest.test'],
    message: Buffer.from(
      `From: alice@a.test\r\nTo: bob@dest.test\r\nSubject: ${subject}\r\n\r\nHi.\r\n`,
    ),
    now: Date.now,
    ...over,
  };
}

/** Whether a session of `sessionInput` delivered its message to bob@dest.test. */
export function deliveredToBob(r: SessionResult): boolean {
  return r.kind === 'done' && r.results.get('bob@dest.test')?.status === 'delivered';
}
