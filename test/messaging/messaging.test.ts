// Messaging through the client API of one real `aftersmtp serve` (local delivery): login with a
// signed challenge, DispatchMessage of a sealed envelope, the delivery worker, FetchInbox, the
// receipt, Ack; and the refusals with their codes.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { encodeEnvelope, openEnvelope, sealMessage } from '../../src/envelope/index.js';
import { GatewayClient, receiptFromMsg } from '../../src/amp/client-api/index.js';
import { verifyReceipt } from '../../src/envelope/receipt.js';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  authTranscript,
  encodeTokenPayload,
  formatToken,
  PURPOSE_AUTH,
  PURPOSE_TOKEN,
  signatureToMsg,
} from '../../src/amp/client-api/index.js';
import { readKeyFile, SecretKeySet } from '../../src/identity/index.js';
import type { Gateway } from '../client-api/helpers.js';
import {
  connect,
  did,
  refusal,
  register,
  revoke,
  startMessagingGateway,
  token,
  waitInbox,
} from './helpers.js';

function seal(
  from: SecretKeySet,
  to: SecretKeySet[],
  subject: string,
  body: string,
  bcc: SecretKeySet[] = [],
) {
  return sealMessage({
    author: from,
    to: to.map((k) => k.record),
    bcc: bcc.map((k) => k.record),
    body: { subject, contentType: 'text/plain; charset=utf-8', content: Buffer.from(body) },
  });
}

describe('messaging on one gateway', () => {
  let gw: Gateway;
  let client: GatewayClient;
  let alice: SecretKeySet;
  let bob: SecretKeySet;

  before(async () => {
    gw = await startMessagingGateway({ AFTERSMTP_MAX_ENVELOPE_BYTES: '16384' });
    client = await connect(gw);
    [alice, bob] = await Promise.all([register(client, 'alice'), register(client, 'bob')]);
  });

  after(async () => {
    client?.close();
    await gw?.stop();
  });

  test('alice sends to bob: dispatched, delivered, fetched, opened, receipt, acked', async () => {
    const ta = await token(client, alice);
    const [sealed] = seal(alice, [bob], 'hello', 'hi bob');
    const env = encodeEnvelope(sealed!.envelope);
    const res = await client.dispatchMessage(ta, { envelope: env });
    assert.equal(res.message_id, sealed!.envelope.messageId.toString('hex'));
    assert.deepEqual(res.recipients, [bob.did]);
    assert.ok(res.queue_entry_id.length > 0);

    const tb = await token(client, bob);
    const [item] = await waitInbox(client, tb, 1);
    assert.equal(item!.sender, alice.did);
    const opened = openEnvelope(item!.envelope, bob);
    assert.equal(opened.subject, 'hello');
    assert.equal(opened.content.toString(), 'hi bob');
    assert.equal(opened.sender.did, alice.did);
    assert.ok(opened.gatewaySignature !== null);
    const receipt = receiptFromMsg(item!.receipt);
    assert.equal(receipt.recipient, bob.did);
    assert.equal(receipt.gateway, did('gateway'));

    const viaSender = await client.getReceipt(ta, {
      message_id: item!.message_id,
      recipient: bob.did,
    });
    assert.equal(receiptFromMsg(viaSender.receipt).messageId.toString('hex'), item!.message_id);

    // The copy is readable once the mailbox writer committed it; the queue settles just after.
    let metrics = '';
    for (let i = 0; i < 100; i++) {
      metrics = await (await fetch(`${String(gw.ready.admin)}/metrics`)).text();
      if (/^aftersmtp_queue_depth 0$/m.test(metrics)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.match(
      metrics,
      /^aftersmtp_messages_in_total\{entrance="client-api",result="accepted"\} 1$/m,
    );
    assert.match(metrics, /^aftersmtp_messages_out_total\{result="delivered"\} 1$/m);
    assert.match(metrics, /^aftersmtp_queue_depth 0$/m);
    assert.match(metrics, /^aftersmtp_store_latency_seconds_count\{op="deliver"\} 1$/m);
    const acked = await client.ack(tb, { message_ids: [item!.message_id] });
    assert.equal(acked.deleted, 1);
    const rest = [];
    for await (const i of client.fetchInbox(tb, {})) rest.push(i);
    assert.equal(rest.length, 0);
    const gwRecord = (await readKeyFile(join(gw.dataDir, 'gateway.key'), 'gateway pass')).record;
    verifyReceipt(receipt, gwRecord);
  });

  test('no token, a garbage token: UNAUTHENTICATED with a code', async () => {
    let e = await refusal(client.ack('', { message_ids: ['x'] }));
    assert.equal(e.grpcCode, status.UNAUTHENTICATED);
    e = await refusal(client.ack('abc.def', { message_ids: ['x'] }));
    assert.equal(e.grpcCode, status.UNAUTHENTICATED);
    assert.match(e.code, /^ERR_TOKEN_/);
  });

  test('refusals: unknown, revoked and remote recipients, a stale key, expired and oversized', async () => {
    const ta = await token(client, alice);
    const dispatch = (e: SecretKeySet[] | ReturnType<typeof seal>) => {
      const sealed =
        Array.isArray(e) && e[0] instanceof SecretKeySet
          ? seal(alice, e as SecretKeySet[], 's', 'b')
          : (e as ReturnType<typeof seal>);
      return client.dispatchMessage(ta, { envelope: encodeEnvelope(sealed[0]!.envelope) });
    };
    let e = await refusal(dispatch([SecretKeySet.generate(did('nobody'), 'classic-v1')]));
    assert.equal(e.code, 'ERR_RECIPIENT_UNKNOWN');
    assert.equal(e.grpcCode, status.NOT_FOUND);

    const gone = await register(client, 'gone');
    await revoke(client, gone);
    e = await refusal(dispatch([bob, gone]));
    assert.equal(e.code, 'ERR_RECIPIENT_REVOKED');
    assert.equal(e.grpcCode, status.FAILED_PRECONDITION);

    // A domain with neither a route nor a _aftersmtp._tcp record is not AMP-reachable.
    e = await refusal(
      dispatch([SecretKeySet.generate('did:aftersmtp:example.net:zoe', 'classic-v1')]),
    );
    assert.equal(e.code, 'ERR_RELAY_UNREACHABLE_DOMAIN');
    assert.equal(e.grpcCode, status.FAILED_PRECONDITION);

    e = await refusal(dispatch([SecretKeySet.generate(bob.did, 'classic-v1')]));
    assert.equal(e.code, 'ERR_RECIPIENT_KEY_STALE');

    const now = Date.now();
    const old = sealMessage({
      author: alice,
      to: [bob.record],
      body: { subject: 'late', contentType: 'text/plain', content: Buffer.from('x') },
      createdAt: now - 10_000,
      expiresAt: now - 5_000,
    });
    e = await refusal(dispatch(old));
    assert.equal(e.code, 'ERR_ENVELOPE_EXPIRED');

    e = await refusal(dispatch(seal(alice, [bob], 'big', 'x'.repeat(20_000))));
    assert.equal(e.code, 'ERR_ENVELOPE_TOO_LARGE');
    assert.equal(e.grpcCode, status.RESOURCE_EXHAUSTED);

    e = await refusal(client.dispatchMessage(ta, { envelope: randomBytes(100) }));
    assert.match(e.code, /^ERR_ENVELOPE_/);
    assert.equal(e.grpcCode, status.INVALID_ARGUMENT);
  });

  test('forged author: an envelope naming another sender is refused; a wrong author key is caught by the recipient', async () => {
    const mallory = await register(client, 'mallory');
    const tm = await token(client, mallory);
    const fakeAlice = SecretKeySet.generate(alice.did, 'classic-v1');
    const [forged] = seal(fakeAlice, [bob], 'from alice, honest', 'pay me');
    const e = await refusal(
      client.dispatchMessage(tm, { envelope: encodeEnvelope(forged!.envelope) }),
    );
    assert.equal(e.code, 'ERR_SENDER_MISMATCH');
    assert.equal(e.grpcCode, status.PERMISSION_DENIED);

    // With alice's own token (the gateway cannot see inside), bob's client still sees that the
    // author key is not alice's key in the ledger.
    const ta = await token(client, alice);
    await client.dispatchMessage(ta, { envelope: encodeEnvelope(forged!.envelope) });
    const tb = await token(client, bob);
    const [item] = await waitInbox(client, tb, 1);
    const opened = openEnvelope(item!.envelope, bob);
    assert.equal(opened.sender.did, alice.did);
    assert.ok(
      !opened.sender.keyId.equals(alice.keyId),
      'the embedded author key is not the ledger key',
    );
    await client.ack(tb, { message_ids: [item!.message_id] });
  });

  test('tokens: forged, expired, from another gateway key, and challenges used twice or signed wrongly', async () => {
    const good = await token(client, alice);
    const [p, sig] = good.split('.') as [string, string];
    const flipped = Buffer.from(sig, 'base64url');
    flipped[0] = (flipped[0] as number) ^ 1;
    let e = await refusal(
      client.ack(`${p}.${flipped.toString('base64url')}`, { message_ids: ['x'] }),
    );
    assert.equal(e.code, 'ERR_TOKEN_SIGNATURE');
    assert.equal(e.grpcCode, status.UNAUTHENTICATED);

    const gwKeys = await readKeyFile(join(gw.dataDir, 'gateway.key'), 'gateway pass');
    const claims = {
      did: alice.did,
      gateway: gwKeys.did,
      gatewayKeyId: gwKeys.keyId,
      issuedAt: Date.now() - 120_000,
      expiresAt: Date.now() - 60_000,
      tokenId: randomBytes(16),
    };
    const mint = (k: SecretKeySet, c: typeof claims) => {
      const payload = encodeTokenPayload(c);
      return formatToken(payload, k.sign(payload, PURPOSE_TOKEN));
    };
    e = await refusal(client.ack(mint(gwKeys, claims), { message_ids: ['x'] }));
    assert.equal(e.code, 'ERR_TOKEN_EXPIRED');

    const other = SecretKeySet.generate(gwKeys.did, 'classic-v1');
    const live = {
      ...claims,
      gateway: other.did,
      gatewayKeyId: other.keyId,
      expiresAt: Date.now() + 60_000,
    };
    e = await refusal(client.ack(mint(other, live), { message_ids: ['x'] }));
    assert.equal(e.code, 'ERR_TOKEN_WRONG_GATEWAY');

    const c = await client.requestChallenge({ did: alice.did });
    const t = authTranscript(c.challenge, alice.did, c.gateway, c.gateway_key_id, c.expires_at);
    e = await refusal(
      client.authenticate({
        did: alice.did,
        challenge: c.challenge,
        signature: signatureToMsg(bob.sign(t, PURPOSE_AUTH)),
      }),
    );
    assert.equal(e.code, 'ERR_AUTH_SIGNATURE');
    // A failed answer leaves no state: the right signature still logs in, once.
    const answer = {
      did: alice.did,
      challenge: c.challenge,
      signature: signatureToMsg(alice.sign(t, PURPOSE_AUTH)),
    };
    await client.authenticate(answer);
    e = await refusal(client.authenticate(answer));
    assert.equal(e.code, 'ERR_CHALLENGE_UNKNOWN', 'a challenge is answered successfully once');
    const cb = await client.requestChallenge({ did: bob.did });
    const tb = authTranscript(
      cb.challenge,
      alice.did,
      cb.gateway,
      cb.gateway_key_id,
      cb.expires_at,
    );
    e = await refusal(
      client.authenticate({
        did: alice.did,
        challenge: cb.challenge,
        signature: signatureToMsg(alice.sign(tb, PURPOSE_AUTH)),
      }),
    );
    assert.equal(e.code, 'ERR_CHALLENGE_UNKNOWN', "bob's challenge does not log alice in");
  });

  test('a token stops working once its DID is revoked', async () => {
    const frank = await register(client, 'frank');
    const tf = await token(client, frank);
    await client.ack(tf, { message_ids: ['none'] });
    await revoke(client, frank);
    const e = await refusal(client.ack(tf, { message_ids: ['none'] }));
    assert.equal(e.code, 'ERR_DID_REVOKED');
    assert.equal(e.grpcCode, status.FAILED_PRECONDITION);
  });

  test("another DID's mailbox: nothing to read, ack or receipt through one's own token", async () => {
    const ta = await token(client, alice);
    const [sealed] = seal(alice, [bob], 'private', 'for bob only');
    const sent = await client.dispatchMessage(ta, { envelope: encodeEnvelope(sealed!.envelope) });
    const tb = await token(client, bob);
    await waitInbox(client, tb, 1);
    const eve = await register(client, 'eve');
    const te = await token(client, eve);
    const mine = [];
    for await (const i of client.fetchInbox(te, {})) mine.push(i);
    assert.equal(mine.length, 0);
    assert.equal((await client.ack(te, { message_ids: [sent.message_id] })).deleted, 0);
    const e = await refusal(
      client.getReceipt(te, { message_id: sent.message_id, recipient: bob.did }),
    );
    assert.equal(e.code, 'ERR_RECEIPT_UNKNOWN');
    assert.equal(e.grpcCode, status.NOT_FOUND);
    const [still] = await waitInbox(client, tb, 1);
    assert.equal(still!.message_id, sent.message_id);
    assert.equal((await client.ack(tb, { message_ids: [sent.message_id] })).deleted, 1);
  });
});
