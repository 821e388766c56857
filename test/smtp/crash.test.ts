// Crash safety of the SMTP on-ramp (DESIGN.md §5): `aftersmtp serve` is SIGKILLed right after its
// last 250 and while another message's DATA is in flight; after a restart on the same data, every
// message that got a 250 reaches its mailbox exactly once, and the one cut off mid-DATA, never
// acknowledged, does not appear at all.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { openEnvelope } from '../../src/envelope/index.js';
import type { Gateway } from '../client-api/helpers.js';
import {
  connect,
  register,
  startMessagingGateway,
  token,
  waitInbox,
} from '../messaging/helpers.js';
import { DOMAIN, RawSmtp, message } from './helpers.js';

function mxPort(gw: Gateway): number {
  const smtp = gw.ready.smtp as { mx: string };
  return Number(smtp.mx.split(':').at(-1));
}

test('SIGKILL right after 250 and mid-DATA: everything acknowledged is delivered once, nothing else', async () => {
  const env = { AFTERSMTP_QUEUE_LEASE_MS: '1500', AFTERSMTP_DNS_SERVERS: '127.0.0.1:1' };
  let gw: Gateway | undefined = await startMessagingGateway(env);
  const dataDir = gw.env.AFTERSMTP_DATA_DIR as string;
  try {
    let client = await connect(gw);
    const alice = await register(client, 'alice');
    const port = mxPort(gw);
    // Twenty messages over four connections at once; each 250 names the message id.
    const acknowledged: string[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async (_, c) => {
        const s = await RawSmtp.open(port);
        await s.cmd('EHLO crash.test');
        for (let i = 0; i < 5; i++) {
          assert.match(await s.cmd('MAIL FROM:<sender@crash.test>'), /^250 /);
          assert.match(await s.cmd(`RCPT TO:<alice@${DOMAIN}>`), /^250 /);
          assert.match(await s.cmd('DATA'), /^354 /);
          const reply = await s.cmd(`${message({ subject: `m${c}-${i}` })}.`);
          const m = /^250 2\.0\.0 Ok: queued as ([0-9a-f]{32})/.exec(reply);
          assert.ok(m, reply);
          acknowledged.push(m[1] as string);
        }
        s.close();
      }),
    );
    // One more, cut off in the middle of its DATA.
    const cut = await RawSmtp.open(port);
    await cut.cmd('EHLO crash.test');
    await cut.cmd('MAIL FROM:<sender@crash.test>');
    await cut.cmd(`RCPT TO:<alice@${DOMAIN}>`);
    await cut.cmd('DATA');
    cut.write('Subject: never acknowledged\r\n\r\nhalf a mess');
    await new Promise((r) => setTimeout(r, 100));
    gw.child.kill('SIGKILL');
    client.close();
    await new Promise((r) => gw?.child.once('exit', r));
    cut.close();

    gw = await startMessagingGateway({ ...env, AFTERSMTP_DATA_DIR: dataDir });
    client = await connect(gw);
    const items = await waitInbox(client, await token(client, alice), 20, 20_000);
    assert.deepEqual(items.map((i) => i.message_id).sort(), [...acknowledged].sort());
    const subjects = items.map((i) => openEnvelope(i.envelope, alice).subject);
    assert.ok(!subjects.includes('never acknowledged'));
    // Nothing more arrives: each message exactly once.
    await new Promise((r) => setTimeout(r, 1500));
    const all = [];
    for await (const i of client.fetchInbox(await token(client, alice), {})) all.push(i);
    assert.equal(all.length, 20);
    client.close();
  } finally {
    await gw?.stop();
  }
});
