// Regression: one batch of leased jobs waited on Promise.all, so a slow destination held up every
// other destination's mail. Here the delivery worker of alpha.test has jobs for beta.test (a live
// gateway) and gamma.test, whose client API accepts connections and never answers (its identity
// lookups hang until their 3 s deadline): beta's mail is delivered at once, gamma's waits alone, and
// once gamma has failed it is left alone for a while (its next jobs are put back, not attempted).
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { test } from 'node:test';
import { encodeEnvelope, sealEnvelope } from '../../src/envelope/index.js';
import { addGatewaySignature } from '../../src/envelope/gateway.js';
import { SecretKeySet } from '../../src/identity/index.js';
import { DeliveryWorker } from '../../src/delivery/worker.js';
import { MailboxWriter } from '../../src/mailbox/writer.js';
import { ampDestination } from '../../src/pipeline/addresses.js';
import { unboundMissing, startUnbound, type DnsServer } from '../client-api/helpers.js';
import { startTestGateway, wireRelay, ZONE, type TestGateway } from '../relay/helpers.js';

const skip = unboundMissing();

test('a slow destination delays only its own recipients', { skip }, async () => {
  let worker: DeliveryWorker | undefined;
  let alpha: TestGateway | undefined;
  let beta: TestGateway | undefined;
  let dns: DnsServer | undefined;
  // gamma's client API: accepts TCP and never says a word.
  const silent: Server = createServer(() => undefined);
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  const silentPort = (silent.address() as { port: number }).port;
  try {
    alpha = await startTestGateway('alpha.test');
    beta = await startTestGateway('beta.test');
    dns = await startUnbound(ZONE, {
      '_aftersmtp._tcp.alpha.test': [alpha.txt()],
      '_aftersmtp._tcp.beta.test': [beta.txt()],
      '_aftersmtp._tcp.gamma.test': [
        `v=aftersmtp1; p=127.0.0.1:9; k=${beta.ledger.verifierKey}; c=127.0.0.1:${silentPort}`,
      ],
    });
    await wireRelay(alpha, dns, { lookupTimeoutMs: 3000 });
    await wireRelay(beta, dns);
    const alice = await alpha.user('alice');
    const bob = await beta.user('bob');
    const ghost = SecretKeySet.generate('did:aftersmtp:gamma.test:ghost', 'classic-v1');
    const logs: { msg: string; line: object }[] = [];
    worker = new DeliveryWorker({
      queue: alpha.queue,
      mailbox: new MailboxWriter({ store: alpha.store, gatewayKeys: alpha.keys }),
      ledger: alpha.ledger,
      gateway: alpha.keys,
      domain: alpha.domain,
      maxEnvelopeBytes: 1024 * 1024,
      log: {
        info: (line, msg) => logs.push({ msg, line }),
        warn: (line, msg) => logs.push({ msg, line }),
        error: (line, msg) => logs.push({ msg, line }),
      },
      remote: (job) => (alpha as TestGateway).sender!.relayJob(job),
      deadDestinationMs: 60_000,
    });
    const enqueue = async (to: SecretKeySet['record'], n: number): Promise<void> => {
      const env = addGatewaySignature(
        sealEnvelope({
          author: alice,
          signedRecipients: [to],
          body: {
            subject: `to ${to.did} ${n}`,
            contentType: 'text/plain',
            content: Buffer.from('x'),
          },
        }),
        (alpha as TestGateway).keys,
      );
      const tx = (alpha as TestGateway).queue.begin({
        messageId: env.messageId.toString('hex'),
        sender: alice.did,
        senderKind: 'amp',
      });
      tx.addRecipient({
        address: to.did,
        destination: ampDestination(to.did.split(':')[2] as string),
      });
      tx.body(encodeEnvelope(env));
      await tx.commit();
    };
    // Gamma's jobs first, so a batch-at-a-time worker would lease them with beta's.
    for (let i = 0; i < 4; i++) await enqueue(ghost.record, i);
    for (let i = 0; i < 8; i++) await enqueue(bob.record, i);
    const t0 = Date.now();
    worker.start();
    let delivered = 0;
    while (delivered < 8 && Date.now() - t0 < 8000) {
      delivered = (await beta.store.list(bob.did)).envelopes.length;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(delivered, 8, 'beta got all its mail');
    const gammaSettled = logs.filter(
      (l) =>
        l.msg === 'delivery settled' &&
        (l.line as { destination?: string }).destination === 'amp:gamma.test',
    );
    // Gamma's lookups hang until their 3 s deadline: none has finished, yet beta is done.
    assert.equal(gammaSettled.length, 0, 'gamma is still being tried when beta is done');
  } finally {
    await worker?.stop();
    silent.close();
    await alpha?.close();
    await beta?.close();
    await dns?.close();
  }
});
