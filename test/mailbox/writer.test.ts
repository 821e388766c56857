// The one mailbox writer with a receipt signed ahead (the on-ramp signs a local copy's receipt
// while the gateway signature is being made): that receipt is the one stored and answered, and a
// receipt signed for another delivery is refused before anything is written.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ciphertextHash, verifyReceipt } from '../../src/envelope/receipt.js';
import { MailboxWriter, type MailboxDelivery } from '../../src/mailbox/writer.js';
import { generateKey, Keyring } from '../../src/store/keys.js';
import { LmdbMailboxStore } from '../../src/store/lmdb.js';
import { identity, tempDir } from '../ledger/helpers.js';

const DOMAIN = 'example.net';

function delivery(recipient: string): MailboxDelivery {
  const envelope = randomBytes(256);
  return {
    recipient,
    messageId: randomBytes(16),
    sender: 'did:aftersmtp:example.org:alice',
    receivedAt: Date.now(),
    expiresAt: Date.now() + 3_600_000,
    ciphertextHash: ciphertextHash({ ciphertext: envelope }),
    envelope,
  };
}

describe('mailbox writer: a receipt signed ahead', () => {
  const { dir, cleanup } = tempDir();
  after(cleanup);

  for (const suite of ['classic-v1', 'hybrid-v1'] as const) {
    it(`stores and answers the receipt signed ahead (${suite}), and refuses another's`, async () => {
      const gateway = identity('gateway', suite, DOMAIN);
      const store = await LmdbMailboxStore.open({
        path: join(dir, suite),
        keyring: new Keyring([generateKey()]),
      });
      try {
        const writer = new MailboxWriter({ store, gatewayKeys: gateway });
        const d = delivery(`did:aftersmtp:${DOMAIN}:bob`);
        const ahead = writer.signReceipt(d);
        const stored = await writer.deliver(d, ahead);
        assert.equal(stored.kind, 'stored');
        const receipt = stored.kind === 'stored' ? stored.receipt : assert.fail();
        assert.equal(receipt, await ahead, 'the receipt signed ahead, not a second one');
        verifyReceipt(receipt, gateway.record);
        const again = await writer.deliver(d);
        assert.equal(again.kind, 'duplicate');
        assert.deepEqual(again.kind === 'duplicate' && again.receipt.signature, receipt.signature);

        const other = delivery(`did:aftersmtp:${DOMAIN}:carol`);
        await assert.rejects(
          writer.deliver(other, writer.signReceipt(d)),
          /the receipt signed ahead is for another delivery/,
        );
        assert.equal(
          await store.getReceipt(other.recipient, other.messageId.toString('hex')),
          undefined,
          'nothing written',
        );
      } finally {
        await store.close();
      }
    });
  }
});
