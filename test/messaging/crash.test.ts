// Crash safety of DispatchMessage: the answer is sent only after the queue committed the
// envelope, so a gateway SIGKILLed right after answering delivers everything after a restart,
// each message exactly once in the mailbox (the store is idempotent by recipient + message id).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { encodeEnvelope, openEnvelope, sealMessage } from '../../src/envelope/index.js';
import type { Gateway } from '../client-api/helpers.js';
import { connect, register, startMessagingGateway, token, waitInbox } from './helpers.js';

test('SIGKILL right after DispatchMessage returned: after a restart the mail reaches bob', async () => {
  // Leases held by the killed process expire after AFTERSMTP_QUEUE_LEASE_MS; short here.
  const env = { AFTERSMTP_QUEUE_LEASE_MS: '1500' };
  let gw: Gateway | undefined = await startMessagingGateway(env);
  const dataDir = gw.env.AFTERSMTP_DATA_DIR as string;
  try {
    let client = await connect(gw);
    const alice = await register(client, 'alice');
    const bob = await register(client, 'bob');
    const ta = await token(client, alice);
    const ids = await Promise.all(
      Array.from({ length: 20 }, async (_, i) => {
        const [s] = sealMessage({
          author: alice,
          to: [bob.record],
          body: { subject: `n${i}`, contentType: 'text/plain', content: Buffer.from(`m${i}`) },
        });
        return (await client.dispatchMessage(ta, { envelope: encodeEnvelope(s!.envelope) }))
          .message_id;
      }),
    );
    gw.child.kill('SIGKILL');
    client.close();
    await new Promise((r) => gw?.child.once('exit', r));

    gw = await startMessagingGateway({ ...env, AFTERSMTP_DATA_DIR: dataDir });
    client = await connect(gw);
    const items = await waitInbox(client, await token(client, bob), 20);
    assert.deepEqual(items.map((i) => i.message_id).sort(), [...ids].sort());
    const bodies = items.map((i) => openEnvelope(i.envelope, bob).content.toString()).sort();
    assert.deepEqual(bodies, Array.from({ length: 20 }, (_, i) => `m${i}`).sort());
    client.close();
  } finally {
    await gw?.stop();
  }
});
