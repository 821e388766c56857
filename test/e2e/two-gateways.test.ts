// Two organisations end to end (issue 6): two real `aftersmtp serve` processes for alpha.test
// and beta.test on 127.0.0.1, discovery through a real DNS server (unbound, `_aftersmtp._tcp`
// TXT with p= the QUIC relay, c= the client API, k= the log key, naming host names that the same
// server resolves; no relay routes anywhere), users
// made with the real CLI (keygen, register with hashcash), mail sent with `aftersmtp send` and
// read with `aftersmtp inbox --json` across the two domains, in both directions; refusals of
// unknown and revoked remote recipients; and crash safety with SIGKILL on either side.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { encodeEnvelope, sealMessage } from '../../src/envelope/index.js';
import { GatewayClient } from '../../src/amp/client-api/index.js';
import { readKeyFile, SecretKeySet } from '../../src/identity/index.js';
import { tempDir } from '../helpers/cli.js';
import { startUnbound, unboundMissing, type DnsServer } from '../client-api/helpers.js';
import { refusal, revoke } from '../messaging/helpers.js';
import {
  E2eGateway,
  USER_PASS,
  cli,
  makeUser,
  userArgs,
  type E2eUser,
  type LogLine,
} from './helpers.js';

const skip = unboundMissing(); // under CI=true a missing unbound throws: a failure, not a skip

interface Shown {
  messageId: string;
  sender: string;
  subject?: string;
  body?: string;
  to?: string[];
  author: { verified: boolean; keyId?: string; error?: string };
  receipt: { verified: boolean; gateway?: string; error?: string };
  error?: { code: string; message: string };
}

describe('two gateways, discovery through real DNS', { skip }, () => {
  const work = tempDir('e2e');
  let dns: DnsServer;
  let alpha: E2eGateway;
  let beta: E2eGateway;
  let env: Record<string, string>;
  const u: Record<string, E2eUser> = {};

  async function send(from: E2eUser, extra: string[], body: string) {
    const bodyFile = join(work, `body-${Math.random().toString(36).slice(2)}.txt`);
    writeFileSync(bodyFile, body);
    return cli(['send', ...userArgs(from), ...extra, '--body-file', bodyFile, '--json'], env);
  }

  async function sendOk(from: E2eUser, extra: string[], body: string) {
    const r = await send(from, extra, body);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as {
      envelopes: { messageId: string; queueEntryId: string; recipients: string[]; bcc: boolean }[];
    };
  }

  /** `inbox --json --ack` until `n` messages arrived (each must open and verify: exit 0). */
  async function inbox(who: E2eUser, n: number, ms = 20_000): Promise<Shown[]> {
    const got: Shown[] = [];
    const deadline = Date.now() + ms;
    for (;;) {
      const r = await cli(['inbox', ...userArgs(who), '--json', '--ack'], env);
      assert.equal(r.code, 0, `${who.did}: ${r.stderr}${r.stdout}`);
      got.push(...(JSON.parse(r.stdout) as { messages: Shown[] }).messages);
      if (got.length >= n) break;
      assert.ok(Date.now() < deadline, `${who.did}: ${got.length}/${n} messages within ${ms} ms`);
      await sleep(250);
    }
    assert.equal(got.length, n);
    return got;
  }

  function assertVerified(m: Shown, from: E2eUser, gw: E2eGateway): void {
    assert.equal(m.error, undefined, JSON.stringify(m));
    assert.equal(m.sender, from.did);
    assert.equal(m.author.verified, true, JSON.stringify(m.author));
    assert.equal(m.receipt.verified, true, JSON.stringify(m.receipt));
    assert.equal(m.receipt.gateway, `did:aftersmtp:${gw.domain}:gateway`);
  }

  /** The sending gateway's "delivery settled" line for a queue entry towards another domain. */
  function settled(gw: E2eGateway, entry: string, pred: (l: LogLine) => boolean, ms = 20_000) {
    return gw.waitLog((l) => l.msg === 'delivery settled' && l.entry === entry && pred(l), ms);
  }

  const delivered = (l: LogLine) => (l.delivered as number) > 0;

  async function login(user: E2eUser): Promise<{ client: GatewayClient; token: string }> {
    const keys = await readKeyFile(user.keyFile, USER_PASS);
    const client = await GatewayClient.connect({
      target: user.gateway.grpc,
      pin: { spki: user.gateway.spki },
    });
    return { client, token: (await client.login(keys)).token };
  }

  before(async () => {
    const gwEnv = {
      AFTERSMTP_QUEUE_RETRY_BASE_MS: '200',
      AFTERSMTP_QUEUE_RETRY_CAP_MS: '1000',
      AFTERSMTP_QUEUE_LEASE_MS: '1500',
      // A peer killed under a pooled connection is noticed by these timeouts (temporary failure).
      AFTERSMTP_QUIC_HANDSHAKE_TIMEOUT_MS: '1000',
      AFTERSMTP_QUIC_IDLE_TIMEOUT_MS: '2000',
      AFTERSMTP_QUIC_STREAM_TIMEOUT_MS: '3000',
    };
    alpha = await E2eGateway.prepare(work, 'alpha.test', {
      ...gwEnv,
      AFTERSMTP_SUITE: 'classic-v1',
    });
    beta = await E2eGateway.prepare(work, 'beta.test', { ...gwEnv, AFTERSMTP_SUITE: 'hybrid-v1' });
    // The records name the gateways by host name, as operators publish them: every name is
    // resolved at AFTERSMTP_DNS_SERVERS (unbound), by the gateways and by the CLI alike.
    dns = await startUnbound(
      'test',
      {
        '_aftersmtp._tcp.alpha.test': [alpha.txt('relay.alpha.test')],
        '_aftersmtp._tcp.beta.test': [beta.txt('relay.beta.test')],
      },
      { 'relay.alpha.test': ['127.0.0.1'], 'relay.beta.test': ['127.0.0.1'] },
    );
    env = { AFTERSMTP_DNS_SERVERS: dns.server };
    for (const gw of [alpha, beta]) Object.assign(gw.env, env);
    await Promise.all([alpha.start(), beta.start()]);
    assert.equal(alpha.ready?.logKey, alpha.logKey, 'serve uses the log key made beforehand');
    assert.equal(beta.ready?.quic, `127.0.0.1:${beta.quicPort}`);
    const made = await Promise.all([
      makeUser(work, alpha, 'alice', 'classic-v1', env),
      makeUser(work, alpha, 'carol', 'hybrid-v1', env),
      makeUser(work, alpha, 'amy', 'classic-v1', env),
      makeUser(work, alpha, 'ann', 'classic-v1', env),
      makeUser(work, beta, 'bob', 'classic-v1', env),
      makeUser(work, beta, 'dave', 'hybrid-v1', env),
      makeUser(work, beta, 'bea', 'classic-v1', env),
      makeUser(work, beta, 'ben', 'classic-v1', env),
      makeUser(work, beta, 'rex', 'classic-v1', env),
    ]);
    for (const m of made) u[m.did.split(':')[3] as string] = m;
  });

  after(async () => {
    const running = [alpha, beta].filter((g) => g?.running);
    const codes = await Promise.all(running.map((g) => g.stop()));
    await dns?.close();
    assert.deepEqual(
      codes,
      running.map(() => 0),
      'the gateways stop cleanly on SIGTERM',
    );
  });

  test('classic-v1: alice@alpha sends to bob@beta; bob sees the body and a verified author', async () => {
    const alice = u.alice as E2eUser;
    const bob = u.bob as E2eUser;
    const sent = await sendOk(
      alice,
      ['--to', bob.did, '--subject', 'hello beta'],
      'classic body\n',
    );
    assert.deepEqual(sent.envelopes[0]?.recipients, [bob.did]);
    const [m] = await inbox(bob, 1);
    assertVerified(m as Shown, alice, beta);
    assert.equal(m?.messageId, sent.envelopes[0]?.messageId);
    assert.equal(m?.subject, 'hello beta');
    assert.equal(m?.body, 'classic body\n');
    const keys = await readKeyFile(alice.keyFile, USER_PASS);
    assert.equal(m?.author.keyId, keys.keyId.toString('base64'));

    // alice asks her own gateway what became of it: beta's receipt, kept by alpha once the
    // relay ACK came back (bob may have read the message a moment before), verified.
    type Status = { state: string; receipt?: { verified: boolean; gateway: string } };
    let s: Status | undefined;
    for (let i = 0; i < 20 && s?.state !== 'delivered'; i++) {
      if (i > 0) await sleep(250);
      const st = await cli(
        ['status', m?.messageId as string, ...userArgs(alice), '--recipient', bob.did, '--json'],
        env,
      );
      assert.equal(st.code, 0, st.stderr);
      s = (JSON.parse(st.stdout) as { recipients: Status[] }).recipients[0];
    }
    assert.equal(s?.state, 'delivered');
    assert.deepEqual(
      { verified: s?.receipt?.verified, gateway: s?.receipt?.gateway },
      { verified: true, gateway: 'did:aftersmtp:beta.test:gateway' },
    );
  });

  test('hybrid-v1, the other direction: dave@beta sends to carol@alpha', async () => {
    const dave = u.dave as E2eUser;
    const carol = u.carol as E2eUser;
    const sent = await sendOk(dave, ['--to', carol.did, '--subject', 'pq'], 'hybrid body');
    const [m] = await inbox(carol, 1);
    assertVerified(m as Shown, dave, alpha);
    assert.equal(m?.messageId, sent.envelopes[0]?.messageId);
    assert.equal(m?.body, 'hybrid body');
  });

  test('one message to five recipients on two domains (classic-v1, a remote Bcc)', async () => {
    const { alice, ann, amy, bob, ben, bea } = u as Record<string, E2eUser>;
    const sent = await sendOk(
      alice!,
      [
        '--to',
        bob!.did,
        '--to',
        ann!.did,
        '--cc',
        ben!.did,
        '--cc',
        amy!.did,
        '--bcc',
        bea!.did,
        '--subject',
        'five',
      ],
      'to five on two domains',
    );
    assert.equal(sent.envelopes.length, 2);
    assert.deepEqual(
      [...(sent.envelopes[0]?.recipients ?? [])].sort(),
      [bob!.did, ann!.did, ben!.did, amy!.did].sort(),
    );
    assert.deepEqual(sent.envelopes[1]?.recipients, [bea!.did]);
    for (const [who, gw] of [
      [bob, beta],
      [ben, beta],
      [bea, beta],
      [ann, alpha],
      [amy, alpha],
    ] as const) {
      const [m] = await inbox(who!, 1);
      assertVerified(m as Shown, alice!, gw);
      assert.equal(m?.body, 'to five on two domains');
      if (who === bea) assert.ok(m?.to?.includes(bea!.did));
      else assert.ok(!m?.to?.includes(bea!.did), 'visible recipients never learn of the Bcc');
    }
  });

  test('refusals: an unknown and a revoked remote recipient, by the CLI and by the gateway', async () => {
    const alice = u.alice as E2eUser;
    const rex = u.rex as E2eUser;
    const ghost = 'did:aftersmtp:beta.test:nobody';
    let r = await send(alice, ['--to', ghost, '--subject', 'x'], 'x');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_RECIPIENT_UNKNOWN/);
    assert.match(r.stderr, /did:aftersmtp:beta\.test:nobody is not registered/);

    r = await send(alice, ['--to', 'did:aftersmtp:nowhere.test:x', '--subject', 'x'], 'x');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_RELAY_UNREACHABLE_DOMAIN/);

    const rexKeys = await readKeyFile(rex.keyFile, USER_PASS);
    const b = await login(rex);
    await revoke(b.client, rexKeys);
    b.client.close();
    r = await send(alice, ['--to', rex.did, '--subject', 'x'], 'x');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /ERR_RECIPIENT_REVOKED/);

    // A client that skips those checks is refused by its gateway, which resolves remotely too.
    const aliceKeys = await readKeyFile(alice.keyFile, USER_PASS);
    const a = await login(alice);
    try {
      const seal = (to: SecretKeySet) =>
        encodeEnvelope(
          sealMessage({
            author: aliceKeys,
            to: [to.record],
            body: { subject: 'x', contentType: 'text/plain', content: Buffer.from('x') },
          })[0]!.envelope,
        );
      const unknown = await refusal(
        a.client.dispatchMessage(a.token, {
          envelope: seal(SecretKeySet.generate(ghost, 'classic-v1')),
        }),
      );
      assert.equal(unknown.code, 'ERR_RECIPIENT_UNKNOWN');
      const revoked = await refusal(a.client.dispatchMessage(a.token, { envelope: seal(rexKeys) }));
      assert.equal(revoked.code, 'ERR_RECIPIENT_REVOKED');
    } finally {
      a.client.close();
    }
  });

  test("the CLI takes AFTERSMTP_RELAY_ROUTES over DNS for another domain's gateway", async () => {
    const alice = u.alice as E2eUser;
    const bob = u.bob as E2eUser;
    const route = (api: number) => ({
      ...env,
      AFTERSMTP_RELAY_ROUTES: `beta.test=127.0.0.1:${beta.quicPort}/127.0.0.1:${api}`,
    });
    const body = join(work, 'routed.txt');
    writeFileSync(body, 'routed');
    const args = [
      'send',
      ...userArgs(alice),
      '--to',
      bob.did,
      '--subject',
      'r',
      '--body-file',
      body,
    ];
    const wrong = await cli(args, route(alpha.quicPort)); // nothing listens on TCP there
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /ERR_RELAY_UNAVAILABLE/);
    const misrouted = await cli(args, route(alpha.grpcPort)); // alpha's API: not beta's gateway
    assert.equal(misrouted.code, 1);
    assert.match(misrouted.stderr, /ERR_DOMAIN_NOT_SERVED/, misrouted.stderr);
    const right = await cli(args, route(beta.grpcPort));
    assert.equal(right.code, 0, right.stderr);
    assert.equal((await inbox(bob, 1))[0]?.body, 'routed');
  });

  test('SIGKILL of the receiving gateway right after it acknowledged: the mail survives', async () => {
    const alice = u.alice as E2eUser;
    const bob = u.bob as E2eUser;
    const sent = await sendOk(alice, ['--to', bob.did, '--subject', 'acked'], 'acked then killed');
    const entry = sent.envelopes[0]?.queueEntryId as string;
    await settled(alpha, entry, (l) => l.destination === 'amp:beta.test' && delivered(l));
    assert.notEqual(await beta.stop('SIGKILL'), 0);
    await beta.start();
    const [m] = await inbox(bob, 1);
    assertVerified(m as Shown, alice, beta);
    assert.equal(m?.body, 'acked then killed');
  });

  test('SIGKILL of the sending gateway with mail queued for a peer that was down: delivered after restart', async () => {
    const alice = u.alice as E2eUser;
    const bob = u.bob as E2eUser;
    const bea = u.bea as E2eUser;
    // Sealed while beta is up (the CLI reads bob's and bea's keys from beta's gateway)...
    const aliceKeys = await readKeyFile(alice.keyFile, USER_PASS);
    const records = await Promise.all(
      [bob, bea].map(async (x) => (await readKeyFile(x.keyFile, USER_PASS)).record),
    );
    const envelopes = Array.from({ length: 3 }, (_, i) =>
      encodeEnvelope(
        sealMessage({
          author: aliceKeys,
          to: records,
          body: {
            subject: `queued ${i}`,
            contentType: 'text/plain',
            content: Buffer.from(`q${i}`),
          },
        })[0]!.envelope,
      ),
    );
    // A first message while beta is up: alpha resolves (verifies, caches) the two records.
    const first = await sendOk(alice, ['--to', bob.did, '--to', bea.did, '--subject', 'w'], 'w');
    const firstEntry = first.envelopes[0]?.queueEntryId as string;
    await settled(alpha, firstEntry, (l) => l.delivered === 2);
    for (const who of [bob, bea]) assert.equal((await inbox(who, 1))[0]?.body, 'w');
    // ...then dispatched while beta is down: alpha knows the records and queues.
    assert.notEqual(await beta.stop('SIGKILL'), 0);
    const a = await login(alice);
    const entries: string[] = [];
    try {
      for (const envelope of envelopes) {
        entries.push((await a.client.dispatchMessage(a.token, { envelope })).queue_entry_id);
      }
    } finally {
      a.client.close();
    }
    for (const entry of entries) {
      const l = await settled(alpha, entry, (x) => (x.retried as number) > 0);
      assert.equal(l.delivered, 0);
    }
    assert.notEqual(await alpha.stop('SIGKILL'), 0);
    await Promise.all([beta.start(), alpha.start()]);
    for (const entry of entries) await settled(alpha, entry, delivered, 30_000);
    for (const who of [bob, bea]) {
      const got = await inbox(who, 3);
      for (const m of got) assertVerified(m, alice, beta);
      assert.deepEqual(got.map((m) => m.body).sort(), ['q0', 'q1', 'q2']);
    }
  });
});
