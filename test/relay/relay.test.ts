// The gateway-to-gateway relay end to end in one process: two gateways (alpha.test, beta.test),
// each with its own SQLite ledger, lmdb mailbox store, gRPC client API and QUIC endpoint on
// 127.0.0.1, discovered through a real DNS server (unbound) serving their `_aftersmtp._tcp`
// records. A message from alice@alpha to bob@beta is relayed, stored in bob's mailbox, and bob
// opens it with an author verified against alpha's ledger; then the refusals, each with its code.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  decodeEnvelope,
  encodeEnvelope,
  openEnvelope,
  sealEnvelope,
  type Envelope,
} from '../../src/envelope/index.js';
import { addGatewaySignature, verifyGatewaySignature } from '../../src/envelope/gateway.js';
import { verifyReceipt } from '../../src/envelope/receipt.js';
import type { RecipientOutcome } from '../../src/queue/types.js';
import {
  PeerDirectory,
  RelaySender,
  RemoteIdentityResolver,
  classify,
  parseRelayRoutes,
  type RelayOutcome,
} from '../../src/amp/relay/index.js';
import { startClientApi } from '../../src/amp/client-api/server.js';
import { PURPOSE_REVOKE, revokeTranscript } from '../../src/ledger/entries.js';
import { logOrigin } from '../../src/ledger/checkpoint.js';
import { NoteSigner } from '../../src/ledger/note.js';
import {
  QuicTransport,
  generateSelfSignedCertificate,
  type QuicPeer,
} from '../../src/quic/index.js';
import { SecretKeySet as Keys } from '../../src/identity/index.js';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { relayStatePath } from '../../src/amp/relay/index.js';
import type { SecretKeySet, PublicKeyRecord } from '../../src/identity/index.js';
import { unboundMissing, type DnsServer } from '../client-api/helpers.js';
import { startDns, startTestGateway, wireRelay, ZONE, type TestGateway } from './helpers.js';
import { startUnbound } from '../client-api/helpers.js';

const skip = unboundMissing();

function body(text: string) {
  return { subject: `subject ${text}`, contentType: 'text/plain', content: Buffer.from(text) };
}

function seal(
  author: SecretKeySet,
  to: readonly PublicKeyRecord[],
  text: string,
  extra: Partial<Parameters<typeof sealEnvelope>[0]> = {},
): Envelope {
  return sealEnvelope({ author, signedRecipients: to, body: body(text), ...extra });
}

async function inbox(gw: TestGateway, did: string) {
  return (await gw.store.list(did)).envelopes;
}

describe('relay between two gateways', { skip, timeout: 90_000 }, () => {
  let alpha: TestGateway;
  let beta: TestGateway;
  let dns: DnsServer;
  let gamma: TestGateway;
  let delta: TestGateway;
  let alice: SecretKeySet;
  let bob: SecretKeySet;
  let carol: SecretKeySet;

  before(async () => {
    alpha = await startTestGateway('alpha.test');
    beta = await startTestGateway('beta.test');
    // gamma: a hybrid-v1 gateway key and a small QUIC frame cap (the oversized case)
    gamma = await startTestGateway('gamma.test', {
      suite: 'hybrid-v1',
      limits: { maxFrameBytes: 256 * 1024 },
    });
    // delta: wired by openRelay from AFTERSMTP_* settings, as serve does
    delta = await startTestGateway('delta.test', { openRelay: true });
    dns = await startDns([alpha, beta, gamma, delta]);
    for (const g of [alpha, beta, gamma, delta]) await wireRelay(g, dns);
    alice = await alpha.user('alice');
    bob = await beta.user('bob');
    carol = await gamma.user('carol');
  });

  after(async () => {
    await alpha?.close();
    await beta?.close();
    await gamma?.close();
    await delta?.close();
    await dns?.close();
  });

  test('alice@alpha -> bob@beta (classic-v1): relayed, stored, opened, author verified', async () => {
    // alpha's gateway resolves bob's keys from beta's ledger, verified against beta's DNS log key
    const bobRemote = await alpha.identities!.resolve(bob.did);
    assert.equal(bobRemote.revoked, false);
    assert.ok(bobRemote.record?.keyId.equals(bob.keyId));
    const env = seal(alice, [bobRemote.record as PublicKeyRecord], 'hello bob');
    const outcomes = await alpha.sender!.relay(addGatewaySignature(env, alpha.keys), [bob.did]);
    assert.equal(outcomes.length, 1);
    const o = outcomes[0] as RelayOutcome;
    assert.equal(o.status, 'delivered', JSON.stringify(o));
    assert.ok(o.status === 'delivered');
    assert.equal(o.receipt.gateway, 'did:aftersmtp:beta.test:gateway');
    assert.ok(o.receipt.messageId.equals(env.messageId));
    verifyReceipt(o.receipt, beta.keys.record);

    const stored = await inbox(beta, bob.did);
    assert.equal(stored.length, 1);
    const opened = openEnvelope(Buffer.from(stored[0]!.envelope), bob);
    assert.equal(opened.content.toString(), 'hello bob');
    assert.equal(opened.sender.did, alice.did);
    // bob's side verifies the author against alpha's ledger (remote resolution from beta)
    const aliceRemote = await beta.identities!.resolve(alice.did);
    assert.ok(aliceRemote.record?.keyId.equals(opened.sender.keyId));
    assert.ok(opened.gatewaySignature !== null);
  });

  /** Relays one envelope from alpha (signed by alpha's gateway) and returns the outcomes by DID. */
  async function relay(env: Envelope, to: readonly string[]): Promise<Map<string, RelayOutcome>> {
    const out = await alpha.sender!.relay(env, to);
    assert.equal(out.length, new Set(to).size);
    return new Map(out.map((o) => [o.recipient, o]));
  }

  function refusal(o: RelayOutcome | undefined): { status: string; code: string } {
    assert.ok(o !== undefined);
    assert.notEqual(o.status, 'delivered', 'expected a refusal');
    return { status: o.status, code: o.status === 'delivered' ? '' : o.code };
  }

  /** Sends raw bytes from alpha's QUIC endpoint to beta and returns the refusal code. */
  async function rawToBeta(bytes: Buffer, from: QuicTransport = alpha.transport): Promise<string> {
    const peer: QuicPeer = {
      host: '127.0.0.1',
      port: beta.transport.port,
      verify: (p) => p.spki.equals(beta.cert.spki),
    };
    const err = await from.send(peer, bytes).then(
      () => assert.fail('expected a refusal'),
      (e: unknown) => e,
    );
    return classify(err).code;
  }

  test('hybrid-v1 alice -> carol@gamma (a hybrid-v1 gateway): delivered and opened', async () => {
    const hAlice = await alpha.user('alice-h', 'hybrid-v1');
    const hCarol = await gamma.user('carol-h', 'hybrid-v1');
    const rec = (await alpha.identities!.resolve(hCarol.did)).record as PublicKeyRecord;
    const env = seal(hAlice, [rec], 'post-quantum hello');
    const out = await relay(env, [hCarol.did]);
    const o = out.get(hCarol.did);
    assert.equal(o?.status, 'delivered', JSON.stringify(o));
    assert.ok(o?.status === 'delivered');
    verifyReceipt(o.receipt, gamma.keys.record);
    assert.ok(o.receipt.signature.mldsa65 !== undefined);
    const stored = await inbox(gamma, hCarol.did);
    const opened = openEnvelope(Buffer.from(stored[0]!.envelope), hCarol);
    assert.equal(opened.content.toString(), 'post-quantum hello');
    assert.equal(opened.sender.did, hAlice.did);
    assert.equal(opened.suite, 'hybrid-v1');
  });

  test('one message to recipients on two domains: one copy per domain, all delivered', async () => {
    const bob2 = await beta.user('bob2');
    const carol2 = await gamma.user('carol2');
    const to = [bob.record, bob2.record, carol.record, carol2.record];
    const env = seal(alice, to, 'to two domains');
    const out = await relay(
      env,
      to.map((r) => r.did),
    );
    for (const r of to) assert.equal(out.get(r.did)?.status, 'delivered', r.did);
    for (const [gw, u] of [
      [beta, bob2],
      [gamma, carol2],
      [gamma, carol],
    ] as const) {
      const mine = (await inbox(gw, u.did)).map((e) => decodeEnvelope(e.envelope));
      const copy = mine.find((e) => e.messageId.equals(env.messageId));
      assert.ok(copy, `${u.did} got the message`);
      // each domain's copy carries only the wraps of its own recipients
      assert.ok(copy.wraps.every((w) => w.recipient.includes(`:${gw.domain}:`)));
      assert.equal(openEnvelope(copy, u).content.toString(), 'to two domains');
    }
  });

  test('a redelivered message is stored once and gets the first receipt', async () => {
    const env = seal(alice, [bob.record], 'twice');
    const first = (await relay(env, [bob.did])).get(bob.did);
    const second = (await relay(env, [bob.did])).get(bob.did);
    assert.ok(first?.status === 'delivered' && second?.status === 'delivered');
    assert.equal(first.receipt.deliveredAt, second.receipt.deliveredAt);
    const copies = (await inbox(beta, bob.did)).filter((e) =>
      decodeEnvelope(e.envelope).messageId.equals(env.messageId),
    );
    assert.equal(copies.length, 1);
  });

  test('unknown recipient: permanent ERR_RELAY_UNKNOWN_RECIPIENT; the known one is delivered', async () => {
    const ghost = Keys.generate('did:aftersmtp:beta.test:ghost', 'classic-v1');
    const alone = await relay(seal(alice, [ghost.record], 'boo'), [ghost.did]);
    assert.deepEqual(refusal(alone.get(ghost.did)), {
      status: 'permanent',
      code: 'ERR_RELAY_UNKNOWN_RECIPIENT',
    });
    const mixed = await relay(seal(alice, [bob.record, ghost.record], 'mixed'), [
      bob.did,
      ghost.did,
    ]);
    assert.equal(mixed.get(bob.did)?.status, 'delivered');
    assert.deepEqual(refusal(mixed.get(ghost.did)), {
      status: 'permanent',
      code: 'ERR_RELAY_UNKNOWN_RECIPIENT',
    });
  });

  test('revoked recipient: permanent ERR_RELAY_RECIPIENT_REVOKED', async () => {
    const dave = await beta.user('dave');
    const leaf = beta.ledger.lookup(dave.did).leafIndex;
    const reason = 'lost device';
    beta.ledger.revoke({
      did: dave.did,
      prevLeaf: leaf,
      keyId: dave.keyId,
      reason,
      signature: dave.sign(revokeTranscript(dave.did, leaf, dave.keyId, reason), PURPOSE_REVOKE),
    });
    const out = await relay(seal(alice, [dave.record], 'too late'), [dave.did]);
    assert.deepEqual(refusal(out.get(dave.did)), {
      status: 'permanent',
      code: 'ERR_RELAY_RECIPIENT_REVOKED',
    });
    // and a resolver sees the revocation, verified
    const seen = await alpha.identities!.resolve(dave.did);
    assert.equal(seen.revoked, true);
  });

  test('forged gateway signature: refused with ERR_RELAY_GATEWAY_SIGNATURE', async () => {
    const impostor = Keys.generate('did:aftersmtp:alpha.test:gateway', 'classic-v1');
    const env = addGatewaySignature(seal(alice, [bob.record], 'forged'), impostor);
    assert.equal(await rawToBeta(encodeEnvelope(env)), 'ERR_RELAY_GATEWAY_SIGNATURE');
    // a signature by alpha's real key over other routing fields does not verify either
    const good = addGatewaySignature(seal(alice, [bob.record], 'tampered'), alpha.keys);
    const tampered: Envelope = { ...good, expiresAt: good.expiresAt - 1 };
    assert.equal(await rawToBeta(encodeEnvelope(tampered)), 'ERR_RELAY_GATEWAY_SIGNATURE');
    // no gateway signature at all
    assert.equal(
      await rawToBeta(encodeEnvelope(seal(alice, [bob.record], 'unsigned'))),
      'ERR_RELAY_GATEWAY_SIGNATURE',
    );
    const ids = (await inbox(beta, bob.did)).map((e) => decodeEnvelope(e.envelope).messageId);
    for (const e of [env, tampered]) assert.ok(!ids.some((id) => id.equals(e.messageId)));
  });

  test('a peer whose QUIC certificate is not its gateway record: ERR_RELAY_PEER_MISMATCH', async () => {
    // mallory holds a validly signed envelope of alpha's (replayed) but not alpha's TLS key
    const cert = await generateSelfSignedCertificate({ commonName: 'mallory.test' });
    const mallory = QuicTransport.open({
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      host: '127.0.0.1',
      port: 0,
      listen: false,
    });
    try {
      const env = addGatewaySignature(seal(alice, [bob.record], 'replayed'), alpha.keys);
      assert.equal(await rawToBeta(encodeEnvelope(env), mallory), 'ERR_RELAY_PEER_MISMATCH');
    } finally {
      mallory.close();
    }
  });

  test('expired envelope: refused by the receiver (ERR_RELAY_EXPIRED) and not sent by the sender', async () => {
    const now = Date.now();
    const env = addGatewaySignature(
      seal(alice, [bob.record], 'old', { createdAt: now - 10_000, expiresAt: now - 1000 }),
      alpha.keys,
    );
    assert.equal(await rawToBeta(encodeEnvelope(env)), 'ERR_RELAY_EXPIRED');
    const out = await relay(env, [bob.did]);
    assert.deepEqual(refusal(out.get(bob.did)), { status: 'permanent', code: 'ERR_RELAY_EXPIRED' });
  });

  test('oversized message: permanent ERR_QUIC_TOO_LARGE from the peer frame cap', async () => {
    const env = sealEnvelope({
      author: alice,
      signedRecipients: [carol.record],
      body: {
        subject: 'big',
        contentType: 'application/octet-stream',
        content: randomBytes(300 * 1024),
      },
    });
    const out = await relay(env, [carol.did]);
    assert.deepEqual(refusal(out.get(carol.did)), {
      status: 'permanent',
      code: 'ERR_QUIC_TOO_LARGE',
    });
  });

  test('a domain with neither a route nor a DNS record: permanent ERR_RELAY_UNREACHABLE_DOMAIN', async () => {
    const far = Keys.generate('did:aftersmtp:nowhere.test:someone', 'classic-v1');
    const out = await relay(seal(alice, [far.record], 'anyone?'), [far.did]);
    assert.deepEqual(refusal(out.get(far.did)), {
      status: 'permanent',
      code: 'ERR_RELAY_UNREACHABLE_DOMAIN',
    });
  });

  test('a log key that changed in DNS is refused loudly (ERR_LEDGER_KEY_CHANGED)', async () => {
    const other = new NoteSigner(logOrigin('beta.test'), randomBytes(32)).verifierKey;
    const forged = await startUnbound(ZONE, {
      '_aftersmtp._tcp.beta.test': [
        `v=aftersmtp1; p=127.0.0.1:${beta.transport.port}; k=${other}; c=127.0.0.1:${beta.api.port}`,
      ],
    });
    try {
      // alpha restarts against this DNS: same resolver state file (its pins), empty cache
      await wireRelay(alpha, forged);
      await assert.rejects(alpha.identities!.resolve(bob.did), { code: 'ERR_LEDGER_KEY_CHANGED' });
      const out = await relay(seal(alice, [bob.record], 'split?'), [bob.did]);
      assert.deepEqual(refusal(out.get(bob.did)), {
        status: 'permanent',
        code: 'ERR_LEDGER_KEY_CHANGED',
      });
    } finally {
      await wireRelay(alpha, dns);
      await forged.close();
    }
    // with the genuine record back, the pinned key works again
    assert.equal(
      (await relay(seal(alice, [bob.record], 'ok again'), [bob.did])).get(bob.did)?.status,
      'delivered',
    );
  });

  /** A sender on alpha whose directory routes beta.test to `api` (and beta's real QUIC port). */
  async function routedSender(api: number) {
    const directory = new PeerDirectory({
      dnsServers: [dns.server],
      routes: parseRelayRoutes(`beta.test=127.0.0.1:${beta.transport.port}/127.0.0.1:${api}`),
    });
    const identities = await RemoteIdentityResolver.open({ directory });
    const sender = new RelaySender({
      transport: alpha.transport,
      identities,
      gatewayKeys: alpha.keys,
    });
    return { identities, sender };
  }

  test('queued bytes carrying our signature over every wrap go out as they are; a copy with fewer wraps is signed anew', async () => {
    const dave = await delta.user('dave');
    const sent: Buffer[] = [];
    const sender = new RelaySender({
      transport: {
        send: (peer: QuicPeer, data: Uint8Array) => {
          sent.push(Buffer.from(data));
          return alpha.transport.send(peer, data);
        },
      },
      identities: alpha.identities!,
      gatewayKeys: alpha.keys,
    });
    // As the pipeline queues AMP from a client: the encoded envelope with alpha's signature. A
    // field no decoder knows (99, varint) is kept only by bytes sent as they are: encoding anew
    // would drop it (a classic-v1 signature anew would be the same bytes, Ed25519 is deterministic).
    const queued = Buffer.concat([
      encodeEnvelope(addGatewaySignature(seal(alice, [bob.record], 'as queued'), alpha.keys)),
      Buffer.from([0x98, 0x06, 0x01]),
    ]);
    const [o] = await sender.relay(queued, [bob.did]);
    assert.equal(o?.status, 'delivered', JSON.stringify(o));
    assert.deepEqual(sent, [queued]);

    // Without our signature: signed before it goes.
    sent.length = 0;
    const unsigned = encodeEnvelope(seal(alice, [bob.record], 'unsigned'));
    const [u] = await sender.relay(unsigned, [bob.did]);
    assert.equal(u?.status, 'delivered', JSON.stringify(u));
    assert.equal(decodeEnvelope(sent[0]!).gatewaySignature?.gateway, alpha.keys.did);

    // Two domains: each copy keeps only its own wrap, so each is signed anew and verifies.
    sent.length = 0;
    const both = encodeEnvelope(
      addGatewaySignature(seal(alice, [bob.record, dave.record], 'two domains'), alpha.keys),
    );
    const outcomes = await sender.relay(both, [bob.did, dave.did]);
    assert.deepEqual(
      outcomes.map((x) => x.status),
      ['delivered', 'delivered'],
      JSON.stringify(outcomes),
    );
    assert.equal(sent.length, 2);
    for (const copy of sent) {
      assert.notDeepEqual(copy, both);
      const env = decodeEnvelope(copy);
      assert.equal(env.wraps.length, 1);
      verifyGatewaySignature(env, alpha.keys.record);
    }
  });

  test('an administrator route wins over DNS and delivers', async () => {
    const { identities, sender } = await routedSender(beta.api.port);
    try {
      const [o] = await sender.relay(seal(alice, [bob.record], 'routed'), [bob.did]);
      assert.equal(o?.status, 'delivered', JSON.stringify(o));
    } finally {
      identities.close();
    }
  });

  test('a gateway of several nodes: messages spread over them, a dead node is passed over', async () => {
    // A UDP port nobody answers on stands for a node that is down; beta's endpoint is the other.
    const dead = createSocket('udp4');
    await new Promise<void>((resolve) => dead.bind(0, '127.0.0.1', resolve));
    const deadPort = dead.address().port;
    const warnings: { obj: object; msg: string }[] = [];
    const directory = new PeerDirectory({
      dnsServers: [dns.server],
      routes: parseRelayRoutes(
        `beta.test=127.0.0.1:${deadPort}+127.0.0.1:${beta.transport.port}/127.0.0.1:${beta.api.port}`,
      ),
    });
    const identities = await RemoteIdentityResolver.open({ directory });
    const sender = new RelaySender({
      transport: alpha.transport,
      identities,
      gatewayKeys: alpha.keys,
      log: {
        info: () => undefined,
        warn: (obj: object, msg: string) => warnings.push({ obj, msg }),
      },
    });
    try {
      // The first message starts at the dead node (the first published), the second at beta.
      for (const text of ['first', 'second']) {
        const [o] = await sender.relay(seal(alice, [bob.record], text), [bob.did]);
        assert.equal(o?.status, 'delivered', JSON.stringify(o));
      }
      const passed = warnings.filter((w) => /trying its next one/.test(w.msg));
      assert.equal(passed.length, 1, JSON.stringify(warnings));
      assert.deepEqual(
        { ...passed[0]?.obj, code: undefined },
        {
          peer: 'did:aftersmtp:beta.test:gateway',
          endpoint: `127.0.0.1:${deadPort}`,
          code: undefined,
        },
      );
    } finally {
      identities.close();
      dead.close();
    }
  });

  test('bootstrap: a client API whose TLS key is not the gateway record is refused', async () => {
    // beta's real ledger, served behind a certificate that is not the one beta's record publishes
    const cert = await generateSelfSignedCertificate({ commonName: 'beta.test' });
    const quiet = { info: () => undefined, error: () => undefined };
    const fake = await startClientApi({
      host: '127.0.0.1',
      port: 0,
      certPem: cert.certPem,
      keyPem: cert.keyPem,
      ledger: beta.ledger,
      maxMessageBytes: 64 * 1024,
      log: quiet,
    });
    const { identities, sender } = await routedSender(fake.port);
    try {
      await assert.rejects(identities.resolve(bob.did), { code: 'ERR_TLS_PIN_MISMATCH' });
      // every attempt fails alike (nothing learnt over the refused channel is used), and the
      // queue retries: the path, not the peer's published state, is at fault
      for (let i = 0; i < 2; i++) {
        const [o] = await sender.relay(seal(alice, [bob.record], 'via mitm'), [bob.did]);
        assert.deepEqual(refusal(o), { status: 'temporary', code: 'ERR_TLS_PIN_MISMATCH' });
      }
    } finally {
      identities.close();
      await fake.close(0);
    }
  });

  test('openRelay (the serve wiring): delta <-> beta both ways, outcomes fit the queue', async () => {
    const dan = await delta.user('dan');
    const there = await delta.sender!.relay(seal(dan, [bob.record], 'from delta'), [bob.did]);
    // the delivery worker settles these into the queue as they are
    const settled: RecipientOutcome[] = there;
    assert.equal(settled[0]?.status, 'delivered', JSON.stringify(there));
    const back = await beta.sender!.relay(seal(bob, [dan.record], 'from beta'), [dan.did]);
    assert.equal(back[0]?.status, 'delivered', JSON.stringify(back));
    const stored = await inbox(delta, dan.did);
    assert.equal(
      openEnvelope(Buffer.from(stored[0]!.envelope), dan).content.toString(),
      'from beta',
    );
    assert.equal(delta.relay?.announce.quic, `127.0.0.1:${delta.transport.port}`);
  });

  test('malformed bytes: ERR_RELAY_ENVELOPE_FORMAT', async () => {
    assert.equal(await rawToBeta(randomBytes(300)), 'ERR_RELAY_ENVELOPE_FORMAT');
  });

  test('20 messages at once over the pooled connection: all delivered', async () => {
    const envs = Array.from({ length: 20 }, (_, i) => seal(alice, [bob.record], `burst ${i}`));
    const outs = await Promise.all(envs.map((e) => relay(e, [bob.did])));
    for (const o of outs) assert.equal(o.get(bob.did)?.status, 'delivered');
  });

  test('a checkpoint inconsistent with the newest one seen fails the lookup loudly', async () => {
    const path = relayStatePath(alpha.dir);
    const original = readFileSync(path, 'utf8');
    const state = JSON.parse(original) as { logs: Record<string, { root: string }> };
    assert.ok(state.logs['beta.test'], 'alpha pinned beta.test');
    state.logs['beta.test'].root = randomBytes(32).toString('base64'); // another "history"
    writeFileSync(path, JSON.stringify(state));
    try {
      await wireRelay(alpha, dns); // a restart: the state is read again, the cache is empty
      const err = await alpha.identities!.resolve(bob.did).then(
        () => assert.fail('expected a refusal'),
        (e: unknown) => e as { code: string },
      );
      assert.ok(['ERR_LEDGER_SPLIT_VIEW', 'ERR_LEDGER_CONSISTENCY'].includes(err.code), err.code);
      const out = await relay(seal(alice, [bob.record], 'forked?'), [bob.did]);
      assert.equal(refusal(out.get(bob.did)).status, 'permanent');
    } finally {
      writeFileSync(path, original);
      await wireRelay(alpha, dns);
    }
  });
});
