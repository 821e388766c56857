/**
 * Off-ramp benchmark: AMP mail to an ordinary address, out through the gateway into a Postfix
 * receiver, against Postfix relaying the same messages into the same kind of receiver, in the
 * same run, same machine, same message size and session counts.
 *
 * Our side: a real `aftersmtp serve` (lmdb queue, fsync on). An AMP client (gRPC, one TLS
 * connection, `sessions` DispatchMessage calls in flight) hands it envelopes sealed to the
 * gateway's DID, as `aftersmtp send` does for an ordinary address; the gateway opens each one,
 * rewrites it for the legacy internet (docs/PROTOCOL.md §14), signs it with DKIM (rsa-sha256
 * and ed25519-sha256), queues it durably, and its off-ramp delivers it over SMTP (mx_record_map
 * route `smtp:[127.0.0.1]:port`, a session kept for the next message as Postfix's SMTP client
 * keeps its own) to a private Postfix B, which stores it with virtual(8) in a Maildir (fsync). The envelopes are sealed before the clock
 * starts: sealing is the client's work.
 *
 * Postfix's side: ../shared/bench/postfix-twohop.sh (smtp-source -> Postfix A, durable accept,
 * no signing -> Postfix B -> virtual(8) Maildir), the same B configuration.
 *
 * The figure is delivered messages per second (start of the run until the last file appeared in
 * B's Maildir/new), and CPU per message of the relaying side (our serve process; Postfix A's
 * processes). Every run is checked after the clock stops: as many files as messages, distinct
 * Message-IDs, every one DKIM-signed by the gateway (ours).
 *
 * Run as root (Postfix): `node dist/bench/offramp.js` or `aftersmtp bench offramp`. Knobs:
 * OFFRAMP_MESSAGES (default 2000 per run), OFFRAMP_SESSIONS ("1 16 64"), OFFRAMP_SUITES
 * ("classic-v1 hybrid-v1"), OFFRAMP_CONNECTION_CACHE_MS (the gateway's
 * AFTERSMTP_OFFRAMP_CONNECTION_CACHE_MS; 0: a connection per message), OFFRAMP_CPU_PROF_DIR (V8
 * profiles of the gateway for bench/stages.ts, over the last session count's window). It
 * reports; it never asserts.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import MailComposer from 'nodemailer/lib/mail-composer';
import type { GatewayClient } from '../src/amp/client-api/index.js';
import { encodeEnvelope, sealMessage } from '../src/envelope/index.js';
import type { PublicKeyRecord, SecretKeySet, SuiteId } from '../src/identity/index.js';
import { decodeEntry } from '../src/ledger/index.js';
import { RCPT_TO_FIELD } from '../src/pipeline/amp-offramp.js';
import { MappingEngine, mapsDatabasePath } from '../src/routing/index.js';
import { startPostfix, type PostfixInstance } from '../test/helpers/postfix.js';
import {
  DOMAIN,
  connect,
  did,
  register,
  startMessagingGateway,
} from '../test/messaging/helpers.js';
import { cpuProfileArgs, profileWindow } from './lib/profile.js';
import { runSections } from './lib/measure.js';
import { cpuSeconds, postfixBaselineUnavailable, postfixTwoHop } from './lib/postfix.js';

const run = promisify(execFile);
const MESSAGES = Number(process.env.OFFRAMP_MESSAGES ?? 2000);
const SESSIONS = (process.env.OFFRAMP_SESSIONS ?? '1 16 64').split(/\s+/).map(Number);
const SUITES = (process.env.OFFRAMP_SUITES ?? 'classic-v1 hybrid-v1').split(/\s+/);
/** V8 CPU profiles of the gateway, for bench/stages.ts (the last session count's window). */
const PROFILE_DIR = process.env.OFFRAMP_CPU_PROF_DIR;
const CONNECTION_CACHE_MS = process.env.OFFRAMP_CONNECTION_CACHE_MS;
const SIZE = 4096;
const WARMUP = 200;
const RECIPIENT = 'b@example.test';

interface Row {
  side: string;
  sessions: number;
  messages: number;
  acceptSeconds: number;
  deliveredSeconds: number;
  perSecond: number;
  cpuUsPerMessage: number;
  checks: string;
}

/** Postfix B as postfix-twohop.sh configures it: example.test into one Maildir by virtual(8). */
class Receiver {
  private constructor(
    readonly postfix: PostfixInstance,
    private readonly maildir: string,
    private readonly owner: { uid: number; gid: number },
  ) {}

  static async start(): Promise<Receiver> {
    const { stdout: uid } = await run('id', ['-u', 'nobody']);
    const { stdout: gid } = await run('id', ['-g', 'nobody']);
    const owner = { uid: Number(uid), gid: Number(gid) };
    const base = mkdtempSync('/var/tmp/aftersmtp-offramp-vmail-');
    chownSync(base, owner.uid, owner.gid);
    const postfix = await startPostfix({
      myhostname: 'b.localdomain',
      mainCf: [
        'virtual_mailbox_domains = example.test',
        'virtual_mailbox_maps = static:sink/',
        `virtual_mailbox_base = ${base}`,
        `virtual_uid_maps = static:${uid.trim()}`,
        `virtual_gid_maps = static:${gid.trim()}`,
      ],
      masterCf: () => ['virtual    unix  -       n       n       -       -       virtual'],
    });
    return new Receiver(postfix, join(base, 'sink'), owner);
  }

  private files(): string[] {
    const dir = join(this.maildir, 'new');
    return existsSync(dir) ? readdirSync(dir).map((f) => join(dir, f)) : [];
  }

  /** Resolves with the epoch ms at which the n-th file was linked into new/ (its ctime). */
  async delivered(n: number, timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const files = this.files();
      if (files.length >= n) return Math.max(...files.map((f) => statSync(f).ctimeMs));
      if (Date.now() > deadline) {
        throw new Error(
          `${files.length} of ${n} delivered; Postfix B log:\n${this.postfix.log().slice(-2000)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** Checks the run's files and moves them aside so that the next run starts empty. */
  check(n: number): string {
    const files = this.files();
    const ids = new Set<string>();
    let signed = 0;
    for (const f of files) {
      const text = readFileSync(f, 'latin1');
      const head = text.slice(0, text.indexOf('\n\n'));
      const id = /^Message-ID:\s*(\S+)/im.exec(head)?.[1];
      if (id !== undefined) ids.add(id);
      if (new RegExp(`^DKIM-Signature:[^]*?d=${DOMAIN.replace('.', '\\.')};`, 'im').test(head)) {
        signed++;
      }
    }
    renameSync(
      join(this.maildir, 'new'),
      join(this.maildir, `done-${randomBytes(4).toString('hex')}`),
    );
    mkdirSync(join(this.maildir, 'new'), { mode: 0o700 });
    chownSync(join(this.maildir, 'new'), this.owner.uid, this.owner.gid);
    const ok = files.length === n && ids.size === n && signed === n;
    return `${ok ? 'ok' : 'FAILED'}: ${files.length} files, ${ids.size} ids, ${signed} signed`;
  }

  async stop(): Promise<void> {
    const base = join(this.maildir, '..');
    await this.postfix.stop();
    rmSync(base, { recursive: true, force: true });
  }
}

/** n envelopes sealed to the gateway DID, each an RFC 5322 message for RECIPIENT. */
async function sealForGateway(
  client: GatewayClient,
  author: SecretKeySet,
  n: number,
): Promise<Buffer[]> {
  const answer = await client.resolveIdentity({ did: did('gateway') });
  const entry = decodeEntry(answer.inclusion?.entry ?? Buffer.alloc(0));
  if (entry.type === 'revoke') throw new Error('the gateway DID is revoked');
  const gateway: PublicKeyRecord = entry.record;
  const body = 'x'
    .repeat(75)
    .concat('\n')
    .repeat(Math.ceil(SIZE / 76))
    .slice(0, SIZE);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const content = await new MailComposer({
      from: `${author.did.split(':')[3]}@${DOMAIN}`,
      to: RECIPIENT,
      subject: `off-ramp ${i}`,
      messageId: `<${i}.${randomBytes(8).toString('hex')}@${DOMAIN}>`,
      date: new Date(),
      headers: { [RCPT_TO_FIELD]: RECIPIENT },
      text: body,
    })
      .compile()
      .build();
    const [sealed] = sealMessage({
      author,
      to: [gateway],
      body: { subject: `off-ramp ${i}`, contentType: 'message/rfc822', content },
    });
    out.push(encodeEnvelope((sealed as NonNullable<typeof sealed>).envelope));
  }
  return out;
}

/** Dispatches every envelope, `sessions` calls in flight; resolves when all were accepted. */
async function dispatchAll(
  client: GatewayClient,
  token: string,
  envelopes: Buffer[],
  sessions: number,
): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < envelopes.length) {
      const envelope = envelopes[next++] as Buffer;
      await client.dispatchMessage(token, { envelope });
    }
  };
  await Promise.all(Array.from({ length: sessions }, lane));
}

async function ours(suite: string, rx: Receiver): Promise<Row[]> {
  const gw = await startMessagingGateway(
    {
      AFTERSMTP_SUITE: suite,
      AFTERSMTP_MAPS_POLL_MS: '50',
      ...(CONNECTION_CACHE_MS !== undefined
        ? { AFTERSMTP_OFFRAMP_CONNECTION_CACHE_MS: CONNECTION_CACHE_MS }
        : {}),
    },
    cpuProfileArgs(PROFILE_DIR, `${suite}-offramp`),
  );
  const rows: Row[] = [];
  try {
    const maps = MappingEngine.open({ path: mapsDatabasePath(gw.dataDir), pollMs: 0 });
    maps.set('mx_record_map', 'example.test', `smtp:[127.0.0.1]:${rx.postfix.port}`);
    maps.close();
    await new Promise((r) => setTimeout(r, 500)); // the gateway polls the maps every 50 ms
    const client = await connect(gw);
    try {
      const alice = await register(client, 'alice', suite as SuiteId);
      const { token } = await client.login(alice);
      const pid = gw.child.pid as number;
      await dispatchAll(client, token, await sealForGateway(client, alice, WARMUP), 16);
      await rx.delivered(WARMUP, 120_000);
      rx.check(WARMUP);
      for (const s of SESSIONS) {
        const envelopes = await sealForGateway(client, alice, MESSAGES);
        const c0 = cpuSeconds(pid);
        const closeWindow = profileWindow(PROFILE_DIR, suite);
        const t0 = Date.now();
        await dispatchAll(client, token, envelopes, s);
        const accepted = Date.now();
        const last = await rx.delivered(MESSAGES, 900_000);
        const cpu = cpuSeconds(pid) - c0;
        closeWindow(MESSAGES);
        rows.push({
          side: `AfterSMTP ${suite}`,
          sessions: s,
          messages: MESSAGES,
          acceptSeconds: (accepted - t0) / 1000,
          deliveredSeconds: (last - t0) / 1000,
          perSecond: MESSAGES / ((last - t0) / 1000),
          cpuUsPerMessage: (1e6 * cpu) / MESSAGES,
          checks: rx.check(MESSAGES),
        });
        await new Promise((r) => setTimeout(r, 2000)); // as the Postfix script: let it settle
      }
    } finally {
      client.close();
    }
  } finally {
    await gw.stop();
    rmSync(gw.dataDir, { recursive: true, force: true });
  }
  return rows;
}

async function postfix(): Promise<Row[]> {
  const runs = await postfixTwoHop({
    messages: MESSAGES,
    size: SIZE,
    sessions: SESSIONS,
    warmup: WARMUP,
  });
  return runs.map((r) => ({
    side: `Postfix ${r.version}`,
    sessions: r.sessions,
    messages: r.messages,
    acceptSeconds: r.acceptSeconds,
    deliveredSeconds: r.deliveredSeconds,
    perSecond: r.deliveredPerSecond,
    cpuUsPerMessage: r.aCpuUsPerMessage,
    checks: `${r.checksOk ? 'ok' : 'FAILED'}: ${r.maildirFiles} files, ${r.distinctMessageIds} ids, unsigned`,
  }));
}

async function main(): Promise<void> {
  const unavailable = postfixBaselineUnavailable();
  if (unavailable !== undefined) throw new Error(unavailable);
  const baseline = await postfix();
  const rows: Row[] = [...baseline];
  const rx = await Receiver.start();
  try {
    for (const suite of SUITES) rows.push(...(await ours(suite, rx)));
  } finally {
    await rx.stop();
  }
  const ratio = (r: Row): string => {
    const p = baseline.find((b) => b.sessions === r.sessions);
    return p === undefined ? '-' : `${(r.perSecond / p.perSecond).toFixed(2)}x`;
  };
  await runSections([
    {
      id: 'offramp',
      title: `Off-ramp: delivered messages/s into a Postfix receiver (virtual(8) Maildir), ${SIZE} B bodies, ${MESSAGES} per run`,
      run: () =>
        Promise.resolve({
          headers: [
            'side',
            'sessions',
            'accept s',
            'delivered s',
            'msg/s',
            'vs Postfix',
            'CPU µs/msg',
            'checks',
          ],
          rows: rows.map((r) => [
            r.side,
            String(r.sessions),
            r.acceptSeconds.toFixed(2),
            r.deliveredSeconds.toFixed(2),
            r.perSecond.toFixed(0),
            ratio(r),
            r.cpuUsPerMessage.toFixed(0),
            r.checks,
          ]),
          notes: [
            'Postfix: smtp-source -> A (durable accept, no signing) -> B (../shared/bench/postfix-twohop.sh); sessions = smtp-source connections.',
            'AfterSMTP: gRPC DispatchMessage of envelopes sealed to the gateway DID (sessions = calls in flight) -> open, rewrite, DKIM rsa + ed25519, durable queue -> SMTP to B, ' +
              (CONNECTION_CACHE_MS === '0'
                ? 'a connection per message.'
                : `each session kept ${CONNECTION_CACHE_MS ?? '2000'} ms for the next message (Postfix keeps its own too).`),
            "delivered = start of the run until the last file in B's Maildir/new; CPU µs/msg: the relaying side only (serve; Postfix A), from /proc.",
          ],
          json: rows.map((r) => ({ ...r, vsPostfix: ratio(r) })),
        }),
    },
  ]);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
