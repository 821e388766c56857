// Expiry end to end through one real `aftersmtp serve` (docs/EXPIRY.md): an ephemeral message
// opens before its expiry; after it the gateway no longer serves it, refuses its key share, and
// the client refuses it even with its clock set back a day (the gateway's signed time decides);
// DispatchMessage refuses expired envelopes and malformed ephemeral ones. The message lives 3 s.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { ExpiryOpener, GatewayClient, type InboxItemMsg } from '../../src/amp/client-api/index.js';
import { encodeEnvelope, openEnvelope, sealMessage } from '../../src/envelope/index.js';
import { readKeyFile, type PublicKeyRecord, type SecretKeySet } from '../../src/identity/index.js';
import type { Gateway } from '../client-api/helpers.js';
import {
  connect,
  did,
  refusal,
  register,
  startMessagingGateway,
  token,
  waitInbox,
} from './helpers.js';

const DAY = 86_400_000;

describe('expiring messages on one gateway', () => {
  let gw: Gateway;
  let client: GatewayClient;
  let alice: SecretKeySet;
  let bob: SecretKeySet;
  let gwRecord: PublicKeyRecord;

  before(async () => {
    gw = await startMessagingGateway({ AFTERSMTP_MAILBOX_PURGE_INTERVAL: '1' });
    client = await connect(gw);
    [alice, bob] = await Promise.all([register(client, 'alice'), register(client, 'bob')]);
    gwRecord = (await readKeyFile(join(gw.dataDir, 'gateway.key'), 'gateway pass')).record;
  });

  after(async () => {
    client?.close();
    await gw?.stop();
  });

  const seal = (expiresAt: number, ephemeral: string | undefined, createdAt = Date.now()) =>
    sealMessage({
      author: alice,
      to: [bob.record],
      body: { subject: 'burn', contentType: 'text/plain', content: Buffer.from('read me once') },
      createdAt,
      expiresAt,
      ...(ephemeral !== undefined ? { ephemeral: { holder: ephemeral } } : {}),
    })[0]!;

  test('an ephemeral message opens before its expiry, and after it nobody opens it', async () => {
    const ta = await token(client, alice);
    const tb = await token(client, bob);
    const expiresAt = Date.now() + 3000;
    const s = seal(expiresAt, did('gateway'));
    const sent = await client.dispatchMessage(ta, {
      envelope: encodeEnvelope(s.envelope),
      key_share: s.share!,
    });
    assert.deepEqual(sent.recipients, [bob.did]);

    const [item] = await waitInbox(client, tb, 1);
    const { envelope, message_id: id } = item as InboxItemMsg;
    const opener = (local?: () => number) =>
      new ExpiryOpener({
        client,
        token: tb,
        gateway: async () => gwRecord,
        ...(local ? { local } : {}),
      });
    const now = opener();
    await now.refresh();
    assert.ok(Math.abs(now.now() - Date.now()) < 5000);
    assert.equal((await now.open(envelope, id, [bob])).content.toString(), 'read me once');
    // Only its recipient gets the share.
    let e = await refusal(client.releaseKey(ta, { message_id: id, nonce: randomBytes(16) }));
    assert.equal(e.code, 'ERR_KEY_RELEASE_REFUSED');
    assert.equal(e.grpcCode, status.NOT_FOUND);

    await sleep(Math.max(0, expiresAt - Date.now()) + 50);

    // The gateway stops serving it and refuses the share.
    const left = [];
    for await (const i of client.fetchInbox(tb, {})) left.push(i);
    assert.equal(left.length, 0);
    e = await refusal(client.releaseKey(tb, { message_id: id, nonce: randomBytes(16) }));
    assert.equal(e.code, 'ERR_KEY_RELEASE_REFUSED');

    // The client, its clock set back a day, still refuses: the gateway's signed time decides.
    const back = opener(() => Date.now() - DAY);
    await back.refresh();
    assert.ok(back.now() >= expiresAt);
    await assert.rejects(back.open(envelope, id, [bob]), { code: 'ERR_ENVELOPE_EXPIRED' });
    // A client that skips the check still has no share: the content key is incomplete.
    assert.throws(() => openEnvelope(envelope, bob, { now: expiresAt - 1000 }), {
      code: 'ERR_ENVELOPE_SHARE_MISSING',
    });
    // And after the purge (every second here) the share is gone for good.
    await sleep(1200);
    e = await refusal(client.releaseKey(tb, { message_id: id, nonce: randomBytes(16) }));
    assert.equal(e.code, 'ERR_KEY_RELEASE_REFUSED');
    // The gateway saved its trusted time, the floor of its clock after a restart.
    const saved = Number(readFileSync(join(gw.dataDir, 'trusted-time'), 'utf8'));
    assert.ok(saved >= expiresAt, `saved ${saved}`);
  });

  test('DispatchMessage refuses expired and malformed ephemeral envelopes', async () => {
    const ta = await token(client, alice);
    const later = Date.now() + 60_000;
    const dispatch = (s: ReturnType<typeof seal>, share?: Buffer) =>
      refusal(
        client.dispatchMessage(ta, {
          envelope: encodeEnvelope(s.envelope),
          ...(share !== undefined ? { key_share: share } : {}),
        }),
      );
    let e = await dispatch(seal(Date.now() - 1000, undefined, Date.now() - 60_000));
    assert.equal(e.code, 'ERR_ENVELOPE_EXPIRED');
    assert.equal(e.grpcCode, status.FAILED_PRECONDITION);
    e = await dispatch(seal(later, did('gateway')));
    assert.equal(e.code, 'ERR_EPHEMERAL_SHARE', 'ephemeral without its share');
    assert.equal(e.grpcCode, status.INVALID_ARGUMENT);
    e = await dispatch(seal(later, did('gateway')), randomBytes(31));
    assert.equal(e.code, 'ERR_EPHEMERAL_SHARE', 'a share of the wrong size');
    e = await dispatch(seal(later, undefined), randomBytes(32));
    assert.equal(e.code, 'ERR_EPHEMERAL_SHARE', 'a share for an ordinary envelope');
    const elsewhere = seal(later, 'did:aftersmtp:other.example:gateway');
    e = await dispatch(elsewhere, elsewhere.share);
    assert.equal(e.code, 'ERR_EPHEMERAL_HOLDER');
    assert.equal(e.grpcCode, status.FAILED_PRECONDITION);
  });

  test('GetTime needs a token and answers the nonce, signed by the gateway', async () => {
    const nonce = randomBytes(16);
    const e = await refusal(client.getTime('', { nonce }));
    assert.equal(e.grpcCode, status.UNAUTHENTICATED);
    const t = await client.getTime(await token(client, bob), { nonce });
    assert.ok(Buffer.from(t.nonce).equals(nonce));
    assert.equal(t.gateway, did('gateway'));
    assert.match(t.checkpoint, /^example\.org\/aftersmtp-ledger\/v1\n/);
    const bad = await refusal(client.getTime(await token(client, bob), { nonce: randomBytes(8) }));
    assert.equal(bad.grpcCode, status.INVALID_ARGUMENT);
  });
});
