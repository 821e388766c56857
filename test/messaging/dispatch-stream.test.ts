// DispatchStream through the client API of one real `aftersmtp serve`: many envelopes over one
// call, answered in order as DispatchMessage would answer each; a refusal answers its own
// request and the call goes on; the call's token is checked; the gate's reservation of request
// bytes is given back as each request is answered; a request over the size limit ends the call.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { encodeEnvelope, sealMessage } from '../../src/envelope/index.js';
import { ClientApiError, GatewayClient } from '../../src/amp/client-api/index.js';
import { SecretKeySet } from '../../src/identity/index.js';
import type { Gateway } from '../client-api/helpers.js';
import { connect, did, register, startMessagingGateway, token, waitInbox } from './helpers.js';

const MAX_ENVELOPE_BYTES = 16384;

function envelopeFor(from: SecretKeySet, to: SecretKeySet, subject: string) {
  const [sealed] = sealMessage({
    author: from,
    to: [to.record],
    body: { subject, contentType: 'text/plain; charset=utf-8', content: Buffer.from(subject) },
  });
  return {
    id: sealed!.envelope.messageId.toString('hex'),
    bytes: encodeEnvelope(sealed!.envelope),
  };
}

async function rejection(p: Promise<unknown>): Promise<ClientApiError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof ClientApiError, `expected a ClientApiError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a refusal');
}

describe('DispatchStream', () => {
  let gw: Gateway;
  let client: GatewayClient;
  let alice: SecretKeySet;
  let bob: SecretKeySet;

  const metric = async (name: string): Promise<number> => {
    const text = await (await fetch(`${String(gw.ready.admin)}/metrics`)).text();
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    assert.ok(m !== null, `${name} is exported`);
    return Number(m[1]);
  };

  before(async () => {
    gw = await startMessagingGateway({
      AFTERSMTP_MAX_ENVELOPE_BYTES: String(MAX_ENVELOPE_BYTES),
      AFTERSMTP_GRPC_MAX_MESSAGE_BYTES: String(MAX_ENVELOPE_BYTES + 1024),
      AFTERSMTP_GRPC_MAX_UNAUTHENTICATED_BYTES: String(MAX_ENVELOPE_BYTES),
    });
    client = await connect(gw);
    [alice, bob] = await Promise.all([register(client, 'alice'), register(client, 'bob')]);
  });

  after(async () => {
    client?.close();
    await gw?.stop();
  });

  test('many envelopes over one call, all sent at once, answered in order and delivered', async () => {
    const ta = await token(client, alice);
    const stream = client.dispatchStream(ta);
    const sent = Array.from({ length: 100 }, (_, i) => envelopeFor(alice, bob, `m${i}`));
    const answers = await Promise.all(sent.map((e) => stream.dispatch({ envelope: e.bytes })));
    await stream.end();
    assert.deepEqual(
      answers.map((a) => a.message_id),
      sent.map((e) => e.id),
    );
    for (const a of answers) {
      assert.deepEqual(a.recipients, [bob.did]);
      assert.ok(a.queue_entry_id.length > 0);
    }
    const inbox = await waitInbox(client, await token(client, bob), sent.length);
    assert.deepEqual(new Set(inbox.map((i) => i.message_id)), new Set(sent.map((e) => e.id)));
    // Each request was reserved as it arrived (many at once), and given back when answered.
    const largest = Math.max(...sent.map((e) => e.bytes.length));
    assert.ok((await metric('aftersmtp_client_api_inflight_peak_bytes')) > 4 * largest);
    assert.equal(await metric('aftersmtp_client_api_inflight_bytes'), 0);
  });

  test("an answered request's bytes are given back while the call stays open", async () => {
    const stream = client.dispatchStream(await token(client, alice));
    const e = envelopeFor(alice, bob, 'one');
    assert.equal((await stream.dispatch({ envelope: e.bytes })).message_id, e.id);
    assert.equal(await metric('aftersmtp_client_api_inflight_bytes'), 0);
    await stream.end();
  });

  test('a refused request is answered with its refusal; the call goes on', async () => {
    const ta = await token(client, alice);
    const stream = client.dispatchStream(ta);
    const nobody = SecretKeySet.generate(did('nobody'), 'classic-v1');
    const first = envelopeFor(alice, bob, 'before');
    const refused = envelopeFor(alice, nobody, 'refused');
    const last = envelopeFor(alice, bob, 'after');
    const answers = [first, refused, last].map((e) => stream.dispatch({ envelope: e.bytes }));
    const garbage = stream.dispatch({ envelope: Buffer.from('not an envelope') });
    assert.equal((await answers[0])!.message_id, first.id);
    const e = await rejection(answers[1]!);
    assert.equal(e.code, 'ERR_RECIPIENT_UNKNOWN');
    assert.equal(e.grpcCode, status.NOT_FOUND);
    assert.equal((await answers[2])!.message_id, last.id);
    const g = await rejection(garbage);
    assert.equal(g.grpcCode, status.INVALID_ARGUMENT);
    assert.match(g.code, /^ERR_ENVELOPE_/);
    // Still open after the refusals.
    const again = envelopeFor(alice, bob, 'again');
    assert.equal((await stream.dispatch({ envelope: again.bytes })).message_id, again.id);
    await stream.end();
  });

  test('the token is checked: none, or not the sender', async () => {
    const none = client.dispatchStream('');
    const e = await rejection(none.dispatch({ envelope: envelopeFor(alice, bob, 'x').bytes }));
    assert.equal(e.grpcCode, status.UNAUTHENTICATED);
    assert.equal(e.code, 'ERR_TOKEN_MISSING');
    await none.end();

    const asBob = client.dispatchStream(await token(client, bob));
    const m = await rejection(asBob.dispatch({ envelope: envelopeFor(alice, bob, 'y').bytes }));
    assert.equal(m.code, 'ERR_SENDER_MISMATCH');
    assert.equal(m.grpcCode, status.PERMISSION_DENIED);
    await asBob.end();
  });

  test('a request over the size limit ends the call; the requests before it are answered', async () => {
    const ta = await token(client, alice);
    const stream = client.dispatchStream(ta);
    const ok = envelopeFor(alice, bob, 'fits');
    const fits = stream.dispatch({ envelope: ok.bytes });
    assert.equal((await fits).message_id, ok.id);
    const big = stream.dispatch({ envelope: Buffer.alloc(MAX_ENVELOPE_BYTES + 4096, 1) });
    const e = await rejection(big);
    assert.equal(e.code, 'ERR_REQUEST_TOO_LARGE');
    assert.equal(e.grpcCode, status.RESOURCE_EXHAUSTED);
    const after = await rejection(stream.dispatch({ envelope: ok.bytes }));
    assert.equal(after.code, 'ERR_REQUEST_TOO_LARGE');
    await stream.end();
    assert.equal(await metric('aftersmtp_client_api_inflight_bytes'), 0);
  });

  // Last: it stops the gateway.
  test('at shutdown an open call is ended by the gateway (OK), not cut', async () => {
    const stream = client.dispatchStream(await token(client, alice));
    const e = envelopeFor(alice, bob, 'before shutdown');
    assert.equal((await stream.dispatch({ envelope: e.bytes })).message_id, e.id);
    await gw.stop();
    const late = await rejection(stream.dispatch({ envelope: e.bytes }));
    // ERR_DISPATCH_STREAM_ENDED follows the gateway's OK status; a call cut by the server's
    // forced shutdown would fail with GRPC_CANCELLED or GRPC_UNAVAILABLE instead.
    assert.equal(late.code, 'ERR_DISPATCH_STREAM_ENDED');
    await stream.end();
  });
});
