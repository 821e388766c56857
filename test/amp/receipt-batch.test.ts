// Delivery receipts signed in batches (docs/PROTOCOL.md §3.3, §12.4): the signer, verification,
// and every form a receipt travels in (the store's record, the client API message).
import { strict as assert } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { receiptFromMsg, receiptToMsg } from '../../src/amp/client-api/messages.js';
import {
  ReceiptSigner,
  decodeStoredReceipt,
  encodeStoredReceipt,
  verifyReceipt,
  type DeliveryReceipt,
  type UnsignedReceipt,
} from '../../src/envelope/receipt.js';
import { AfterSmtpError } from '../../src/errors.js';
import { VerifiedBatches } from '../../src/identity/batch-signature.js';
import { Packr } from 'msgpackr';
import { NOW, cast, flip } from './helpers.js';

const code = (c: string) => (err: unknown) => err instanceof AfterSmtpError && err.code === c;

const unsigned = (i: number): UnsignedReceipt => ({
  messageId: randomBytes(16),
  ciphertextHash: randomBytes(32),
  recipient: `did:aftersmtp:example.com:user${i}`,
  sender: 'did:aftersmtp:example.org:alice',
  deliveredAt: NOW + i,
});

for (const suite of ['classic-v1', 'hybrid-v1'] as const) {
  describe(`receipts signed in batches, ${suite}`, () => {
    const { gateway } = cast(suite);

    it('receipts asked for together share a signature and each verifies in every form', async () => {
      const signer = new ReceiptSigner(gateway);
      const receipts = await Promise.all([0, 1, 2, 3].map((i) => signer.sign(unsigned(i))));
      receipts.forEach((r, i) => {
        assert.deepEqual({ index: r.batch?.index, size: r.batch?.size }, { index: i, size: 4 });
        verifyReceipt(r, gateway.record);
        const stored = decodeStoredReceipt(encodeStoredReceipt(r));
        assert.deepEqual(stored, r);
        const served = receiptFromMsg(receiptToMsg(r));
        assert.deepEqual(served, r);
        verifyReceipt(served, gateway.record);
      });
    });

    it('a receipt alone has the plain signature', async () => {
      const r = await new ReceiptSigner(gateway).sign(unsigned(0));
      assert.equal(r.batch, undefined);
      verifyReceipt(decodeStoredReceipt(encodeStoredReceipt(r)), gateway.record);
    });

    it('refuses a changed field, a place of another receipt, and a forged signature with the cache warm', async () => {
      const signer = new ReceiptSigner(gateway);
      const [a, b] = (await Promise.all([0, 1].map((i) => signer.sign(unsigned(i))))) as [
        DeliveryReceipt,
        DeliveryReceipt,
      ];
      const batches = new VerifiedBatches();
      verifyReceipt(a, gateway.record, batches);
      const refused = (r: DeliveryReceipt): void =>
        assert.throws(
          () => verifyReceipt(r, gateway.record, batches),
          code('ERR_RECEIPT_SIGNATURE'),
        );
      refused({ ...b, recipient: 'did:aftersmtp:example.com:mallory' });
      refused({ ...b, deliveredAt: b.deliveredAt + 1 });
      refused({ ...b, batch: a.batch });
      refused({ ...b, signature: { ...b.signature, ed25519: flip(b.signature.ed25519, 1) } });
      refused({ ...b, batch: undefined });
      verifyReceipt(b, gateway.record, batches);
    });
  });
}

describe('receipt batch places that cannot be', () => {
  const { gateway } = cast('classic-v1');
  const packr = new Packr({ useRecords: false, mapsAsObjects: true });
  const h = Buffer.alloc(32, 9);
  const places: [string, unknown][] = [
    ['a batch of one', [0, 1, []]],
    ['an index outside its batch', [2, 2, [h]]],
    ['a short path', [0, 4, [h]]],
    ['a path of 31-byte hashes', [0, 2, [h.subarray(1)]]],
    ['a place that is not a triple', [0, 2]],
  ];
  for (const [what, b] of places) {
    it(`refuses ${what}, stored and served`, async () => {
      const r = await new ReceiptSigner(gateway).sign(unsigned(0));
      const raw = packr.unpack(encodeStoredReceipt(r)) as Record<string, unknown>;
      assert.throws(
        () => decodeStoredReceipt(packr.pack({ ...raw, b })),
        code('ERR_RECEIPT_FORMAT'),
      );
      if (Array.isArray(b) && b.length === 3) {
        const msg = { ...receiptToMsg(r), batch: { index: b[0], size: b[1], path: b[2] } };
        assert.throws(() => receiptFromMsg(msg), code('ERR_CLIENT_API_REQUEST'));
      }
    });
  }
});
