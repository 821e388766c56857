// The receipts' way into the transit log through the mailbox store's outbox: a delivery's
// commitment is durable with the delivery (one commit), appended to the log in groups, provable
// at once, appended again after a crash, and kept through a failed append.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { NoteSigner } from '../../src/ledger/index.js';
import { TransitOutbox } from '../../src/mailbox/transit-outbox.js';
import { MailboxWriter, type MailboxDelivery } from '../../src/mailbox/writer.js';
import { generateKey, Keyring } from '../../src/store/keys.js';
import { LmdbMailboxStore } from '../../src/store/lmdb.js';
import {
  TransitLog,
  transitCommitment,
  transitOrigin,
  verifyTransitProof,
} from '../../src/transit/index.js';
import { identity, tempDir } from '../ledger/helpers.js';

const DOMAIN = 'example.net';
const gateway = identity('gateway', 'classic-v1', DOMAIN);
const signer = new NoteSigner(transitOrigin(DOMAIN), Buffer.alloc(32, 7));
const keyring = new Keyring([generateKey()]);

function delivery(n: number): MailboxDelivery {
  const envelope = randomBytes(256);
  return {
    recipient: `did:aftersmtp:${DOMAIN}:bob${n % 3}`,
    messageId: randomBytes(16),
    sender: 'did:aftersmtp:example.org:alice',
    receivedAt: Date.now(),
    expiresAt: Date.now() + 3_600_000,
    ciphertextHash: createHash('sha256').update(envelope).digest(),
    envelope,
  };
}

describe('transit outbox', () => {
  const { dir, cleanup } = tempDir();
  after(cleanup);
  const open = async (name: string) => {
    const store = await LmdbMailboxStore.open({ path: join(dir, `${name}-store`), keyring });
    const log = new TransitLog(join(dir, `${name}.sqlite`), DOMAIN, signer);
    return { store, log };
  };

  it('commits with the delivery, appends in groups, proves at once, empties the outbox', async () => {
    const { store, log } = await open('groups');
    const errors: unknown[] = [];
    const outbox = new TransitOutbox({
      store,
      log,
      intervalMs: 60_000,
      onError: (e) => errors.push(e),
    });
    const writer = new MailboxWriter({ store, gatewayKeys: gateway, transit: outbox });
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => writer.deliver(delivery(i))),
    );
    const receipts = results.map((r) => (r.kind === 'stored' ? r.receipt : assert.fail(r.kind)));
    // Acknowledged: durable in the store's outbox, not yet in the log.
    assert.equal((await store.transitOutbox(100)).length, 5);
    assert.equal(log.size(), 0);
    // A proof asked for now appends the group first (one transaction) and verifies.
    const first = receipts[0] as (typeof receipts)[number];
    const proof = await outbox.prove(transitCommitment(first));
    assert.ok(proof !== undefined);
    assert.equal(verifyTransitProof(first, proof, signer.publicKey).size, 5);
    await outbox.close();
    assert.deepEqual(await store.transitOutbox(100), []);
    assert.deepEqual(errors, []);
    log.close();
    await store.close();
  });

  it('appends within its interval without being asked', async () => {
    const { store, log } = await open('interval');
    const outbox = new TransitOutbox({
      store,
      log,
      intervalMs: 5,
      onError: (e) => assert.fail(String(e)),
    });
    const writer = new MailboxWriter({ store, gatewayKeys: gateway, transit: outbox });
    const d = delivery(1);
    await writer.deliver(d);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(log.size(), 1);
    const again = await writer.deliver(d);
    assert.equal(again.kind, 'duplicate');
    assert.equal(log.size(), 1);
    await outbox.close();
    assert.deepEqual(await store.transitOutbox(100), []);
    log.close();
    await store.close();
  });

  it('appends after a crash what the outbox kept', async () => {
    const first = await open('crash');
    // Never flushed: the process "dies" with the commitments in the store's outbox only.
    const lost = new TransitOutbox({
      store: first.store,
      log: first.log,
      intervalMs: 60_000,
      onError: (e) => assert.fail(String(e)),
    });
    const writer = new MailboxWriter({ store: first.store, gatewayKeys: gateway, transit: lost });
    const stored = await writer.deliver(delivery(2));
    assert.equal(stored.kind, 'stored');
    first.log.close();
    await first.store.close();

    const again = await open('crash');
    assert.equal(again.log.size(), 0);
    const outbox = new TransitOutbox({
      store: again.store,
      log: again.log,
      onError: (e) => assert.fail(String(e)),
    });
    assert.equal(await outbox.recover(), 1);
    assert.equal(await outbox.recover(), 0);
    if (stored.kind !== 'stored') return;
    const proof = await outbox.prove(transitCommitment(stored.receipt));
    assert.ok(proof !== undefined);
    verifyTransitProof(stored.receipt, proof, signer.publicKey);
    await outbox.close();
    again.log.close();
    await again.store.close();
  });

  it('keeps the commitments through failed appends and appends them from the store', async () => {
    const { store, log } = await open('failing');
    let failures = 3; // the group's append, then two retries
    let groupsOfThree = 0;
    const errors: unknown[] = [];
    const outbox = new TransitOutbox({
      store,
      log: {
        append: (cs) => {
          if (cs.length === 3) groupsOfThree++;
          if (failures-- > 0) throw new Error('the disk is full');
          return log.append(cs);
        },
        prove: (c) => log.prove(c),
        inclusionProof: (i, s) => log.inclusionProof(i, s),
      },
      intervalMs: 1,
      retryMs: 10,
      onError: (e) => errors.push(e),
    });
    const writer = new MailboxWriter({ store, gatewayKeys: gateway, transit: outbox });
    await Promise.all([3, 4, 5].map((n) => writer.deliver(delivery(n))));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(errors.length, 3);
    for (const e of errors) assert.match(String(e), /the disk is full/);
    // The group, then three tries from the store's outbox (two failed).
    assert.equal(groupsOfThree, 4);
    assert.equal(log.size(), 3);
    await outbox.close();
    assert.deepEqual(await store.transitOutbox(100), []);
    log.close();
    await store.close();
  });
});
