// The local delivery worker in process, over the real LMDB queue, LMDB store and SQLite ledger:
// an envelope that expires while queued is refused (permanent), the queue bounces it, and the
// worker delivers the AMP failure notice, sealed by the gateway, into the sender's mailbox.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  addGatewaySignature,
  encodeEnvelope,
  openEnvelope,
  sealMessage,
} from '../../src/envelope/index.js';
import { DeliveryWorker, FAILURE_NOTICE_CONTENT_TYPE } from '../../src/delivery/worker.js';
import { MailboxWriter } from '../../src/mailbox/writer.js';
import { ampDestination } from '../../src/pipeline/addresses.js';
import { publishGatewayRecord } from '../../src/ledger/gateway-record.js';
import { LmdbQueue } from '../../src/queue/lmdb.js';
import { openStore } from '../../src/store/open.js';
import { DOMAIN, identity, openLedger, registerRequest } from '../ledger/helpers.js';

test('an envelope expired in the queue bounces a failure notice into the sender mailbox', async () => {
  const { ledger, dir, cleanup } = openLedger();
  const queue = new LmdbQueue({ path: join(dir, 'queue'), bounce: { reportingMta: DOMAIN } });
  const store = await openStore({
    dataDir: dir,
    store: 'lmdb',
    postgresUrl: '',
    storeKeyFile: undefined,
    storeKey: randomBytes(32).toString('base64'),
    maxEnvelopeBytes: 1024 * 1024,
  });
  const gateway = identity('gateway');
  const alice = identity('alice');
  const bob = identity('bob');
  publishGatewayRecord(ledger, gateway, randomBytes(32));
  ledger.register(await registerRequest(ledger, alice));
  ledger.register(await registerRequest(ledger, bob));
  const lines: string[] = [];
  const log = {
    info: (_o: object, m: string) => lines.push(m),
    warn: (_o: object, m: string) => lines.push(m),
    error: (o: object, m: string) => lines.push(`${m} ${JSON.stringify(o)}`),
  };
  const worker = new DeliveryWorker({
    queue,
    mailbox: new MailboxWriter({ store, gatewayKeys: gateway }),
    ledger,
    gateway,
    domain: DOMAIN,
    maxEnvelopeBytes: 1024 * 1024,
    log,
    now: () => Date.now() + 3_600_000, // an hour later: the envelope below has expired
  });
  try {
    const [s] = sealMessage({
      author: alice,
      to: [bob.record],
      body: { subject: 'soon stale', contentType: 'text/plain', content: Buffer.from('x') },
      expiresAt: Date.now() + 60_000,
    });
    const env = addGatewaySignature(s!.envelope, gateway);
    const tx = queue.begin({
      messageId: env.messageId.toString('hex'),
      sender: alice.did,
      senderKind: 'amp',
    });
    tx.addRecipient({ address: bob.did, destination: ampDestination(DOMAIN) });
    tx.body(encodeEnvelope(env));
    await tx.commit();
    worker.start();
    let page;
    for (let i = 0; i < 100; i++) {
      page = await store.list(alice.did);
      if (page.envelopes.length > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(page?.envelopes.length, 1, lines.join('\n'));
    assert.equal((await store.list(bob.did)).envelopes.length, 0);
    const notice = openEnvelope(page!.envelopes[0]!.envelope, alice);
    assert.equal(notice.sender.did, gateway.did);
    assert.equal(notice.contentType, FAILURE_NOTICE_CONTENT_TYPE);
    const body = JSON.parse(notice.content.toString()) as {
      originalMessageId: string;
      failures: { recipient: string; reason: string }[];
    };
    assert.equal(body.originalMessageId, env.messageId.toString('hex'));
    assert.equal(body.failures[0]?.recipient, bob.did);
    assert.match(body.failures[0]?.reason ?? '', /ERR_ENVELOPE_EXPIRED/);
  } finally {
    await worker.stop();
    await store.close();
    await queue.close();
    cleanup();
  }
});
