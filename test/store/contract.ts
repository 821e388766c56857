// The one contract suite that every mailbox store backend passes (STYLE.md: real servers, one
// shared suite). Each backend's test file calls `storeContract` with a factory that opens a fresh,
// isolated store (its own directory, or its own database) and can show the raw stored bytes.
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  StoreCorruptError,
  StoreInputError,
  StoreKeyError,
  StoreQuotaError,
} from '../../src/store/errors.js';
import { generateKey, Keyring } from '../../src/store/keys.js';
import type { DeliverWithReceipt, MailboxStore, StoreLimits } from '../../src/store/types.js';

export interface Harness {
  /** The store as last opened. */
  readonly store: MailboxStore;
  /**
   * Closes the store and opens the same data again with `keyring` (default: the last one given);
   * rejects with what open rejects with.
   */
  reopen(keyring?: Keyring): Promise<void>;
  /** Every stored byte as an attacker with the disk or a database dump sees it. */
  rawDump(): Promise<Buffer>;
  /** Flips bytes inside every stored sealed envelope. */
  corruptEnvelopes(): Promise<void>;
  close(): Promise<void>;
}

export type Open = (keyring: Keyring, limits?: Partial<StoreLimits>) => Promise<Harness>;

export const ALICE = 'did:aftersmtp:a.example:alice';
export const BOB = 'did:aftersmtp:a.example:bob';
export const SENDER = 'did:aftersmtp:b.example:carol';

let counter = 0;
export function envelope(
  recipient: string,
  overrides: Partial<DeliverWithReceipt> = {},
): DeliverWithReceipt {
  const body =
    overrides.envelope ?? Buffer.from(`envelope ${++counter} ${randomBytes(8).toString('hex')}`);
  const messageId = `m-${randomBytes(12).toString('hex')}`;
  return {
    recipient,
    messageId,
    receipt: Buffer.from(`receipt of ${messageId}`),
    sender: SENDER,
    receivedAt: Date.now(),
    expiresAt: Date.now() + 3_600_000,
    ciphertextHash: createHash('sha256').update(body).digest(),
    envelope: body,
    ...overrides,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function withStore(
  open: Open,
  fn: (h: Harness) => Promise<void>,
  limits?: Partial<StoreLimits>,
  keyring = new Keyring([generateKey()]),
): Promise<void> {
  const h = await open(keyring, limits);
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

export function storeContract(name: string, open: Open): void {
  describe(`mailbox store contract: ${name}`, () => {
    it('delivers durably and returns every field on fetch and list', async () => {
      await withStore(open, async ({ store }) => {
        const e = envelope(ALICE);
        assert.deepEqual(await store.deliver(e), { seq: 1, duplicate: false, receipt: e.receipt });
        const got = await store.fetch(ALICE, e.messageId);
        assert.ok(got);
        assert.equal(got.seq, 1);
        assert.equal(got.size, e.envelope.length);
        assert.equal(got.recipient, ALICE);
        assert.equal(got.sender, SENDER);
        assert.equal(got.messageId, e.messageId);
        assert.equal(got.receivedAt, e.receivedAt);
        assert.equal(got.expiresAt, e.expiresAt);
        assert.deepEqual(Buffer.from(got.ciphertextHash), Buffer.from(e.ciphertextHash));
        assert.deepEqual(Buffer.from(got.envelope), Buffer.from(e.envelope));
        const page = await store.list(ALICE);
        assert.equal(page.envelopes.length, 1);
        assert.deepEqual(page.envelopes[0], got);
        assert.deepEqual(await store.usage(ALICE), {
          count: 1,
          bytes: e.envelope.length,
          lastSeq: 1,
        });
        assert.deepEqual(await store.usage(BOB), { count: 0, bytes: 0, lastSeq: 0 });
      });
    });

    it('files envelopes in folders (inbox, junk): list filters by folder, fetch and reopen keep it', async () => {
      await withStore(open, async (h) => {
        const ham = envelope(ALICE);
        const junk = envelope(ALICE, { folder: 'junk' });
        const ham2 = envelope(ALICE, { folder: 'inbox' });
        for (const e of [ham, junk, ham2]) await h.store.deliver(e);
        await h.reopen();
        const all = await h.store.list(ALICE);
        assert.deepEqual(
          all.envelopes.map((e) => [e.messageId, e.folder ?? 'inbox']),
          [
            [ham.messageId, 'inbox'],
            [junk.messageId, 'junk'],
            [ham2.messageId, 'inbox'],
          ],
        );
        const j = await h.store.list(ALICE, { folder: 'junk' });
        assert.deepEqual(
          j.envelopes.map((e) => e.messageId),
          [junk.messageId],
        );
        assert.equal(j.cursor, 3, 'the cursor passes the envelopes of other folders');
        const i = await h.store.list(ALICE, { folder: 'inbox' });
        assert.deepEqual(
          i.envelopes.map((e) => e.messageId),
          [ham.messageId, ham2.messageId],
        );
        assert.equal((await h.store.fetch(ALICE, junk.messageId))?.folder, 'junk');
        await assert.rejects(
          h.store.list(ALICE, { folder: 'spam' as 'junk' }),
          (err: Error) => err.name === 'StoreInputError',
        );
      });
    });

    it('is idempotent by (recipient, message id), also concurrently and after an ack', async () => {
      await withStore(open, async ({ store }) => {
        const e = envelope(ALICE);
        const results = await Promise.all(Array.from({ length: 8 }, () => store.deliver(e)));
        assert.equal(results.filter((r) => !r.duplicate).length, 1);
        assert.ok(results.every((r) => r.seq === 1));
        // The same message id for another recipient is another envelope.
        assert.deepEqual(await store.deliver({ ...e, recipient: BOB }), {
          seq: 1,
          duplicate: false,
          receipt: e.receipt,
        });
        assert.equal((await store.usage(ALICE)).count, 1);
        assert.equal(await store.ack(ALICE, [e.messageId]), 1);
        // A redelivery answers the first delivery's receipt, not the one it brings.
        const again = await store.deliver({ ...e, receipt: Buffer.from('another receipt') });
        assert.equal(again.seq, 1);
        assert.equal(again.duplicate, true);
        assert.equal(Buffer.from(again.receipt).toString(), Buffer.from(e.receipt).toString());
        assert.equal((await store.list(ALICE)).envelopes.length, 0);
        assert.equal((await store.usage(ALICE)).count, 0);
      });
    });

    it('pages a mailbox by cursor in seq order and resumes after a reopen', async () => {
      await withStore(
        open,
        async (h) => {
          const ids: string[] = [];
          for (let i = 0; i < 25; i++) {
            const e = envelope(ALICE);
            ids.push(e.messageId);
            assert.equal((await h.store.deliver(e)).seq, i + 1);
            if (i % 5 === 0) await h.store.deliver(envelope(BOB));
          }
          const p1 = await h.store.list(ALICE, { limit: 10 });
          assert.deepEqual(
            p1.envelopes.map((e) => e.messageId),
            ids.slice(0, 10),
          );
          assert.equal(p1.cursor, 10);
          assert.equal(p1.more, true);
          // Acking what was seen does not disturb the cursor.
          await h.store.ack(ALICE, ids.slice(0, 10));
          await h.reopen();
          const p2 = await h.store.list(ALICE, { after: p1.cursor, limit: 10 });
          assert.deepEqual(
            p2.envelopes.map((e) => e.seq),
            [11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
          );
          const p3 = await h.store.list(ALICE, { after: p2.cursor, limit: 10 });
          assert.deepEqual(
            p3.envelopes.map((e) => e.messageId),
            ids.slice(20),
          );
          assert.equal(p3.more, false);
          const p4 = await h.store.list(ALICE, { after: p3.cursor });
          assert.deepEqual(p4, { envelopes: [], cursor: 25, more: false, quarantined: 0 });
          // Sequence numbers are never reused, even once the mailbox is empty.
          await h.store.ack(ALICE, ids.slice(10));
          assert.equal((await h.store.deliver(envelope(ALICE))).seq, 26);
          assert.deepEqual(
            (await h.store.list(BOB)).envelopes.map((e) => e.seq),
            [1, 2, 3, 4, 5],
          );
        },
        { maxPageSize: 10 },
      );
    });

    it('stops a page at the byte limit but always returns at least one envelope', async () => {
      await withStore(
        open,
        async ({ store }) => {
          for (let i = 0; i < 3; i++)
            await store.deliver(envelope(ALICE, { envelope: randomBytes(3000) }));
          const p = await store.list(ALICE);
          assert.equal(p.envelopes.length, 2);
          assert.equal(p.more, true);
          const q = await store.list(ALICE, { after: p.cursor });
          assert.equal(q.envelopes.length, 1);
          assert.equal(q.more, false);
        },
        { maxPageBytes: 4000 },
      );
    });

    it("acks only the owner's envelopes", async () => {
      await withStore(open, async ({ store }) => {
        const e = envelope(ALICE);
        await store.deliver(e);
        assert.equal(await store.ack(BOB, [e.messageId]), 0);
        assert.equal(await store.fetch(BOB, e.messageId), undefined);
        assert.ok(await store.fetch(ALICE, e.messageId));
        assert.equal(await store.ack(ALICE, [e.messageId, e.messageId]), 1);
        assert.equal(await store.ack(ALICE, [e.messageId]), 0);
        assert.equal(await store.fetch(ALICE, e.messageId), undefined);
        assert.equal(await store.ack(ALICE, ['never-delivered']), 0);
      });
    });

    it('never returns an expired envelope and purges it with its tombstone and receipt', async () => {
      await withStore(open, async ({ store }) => {
        const soon = envelope(ALICE, { expiresAt: Date.now() + 300 });
        const later = envelope(ALICE);
        await store.deliver(soon);
        await store.deliver(later);
        assert.equal((await store.list(ALICE)).envelopes.length, 2);
        await sleep(400);
        assert.equal(await store.fetch(ALICE, soon.messageId), undefined);
        assert.deepEqual(
          (await store.list(ALICE)).envelopes.map((e) => e.messageId),
          [later.messageId],
        );
        assert.equal(await store.getReceipt(ALICE, soon.messageId), undefined);
        assert.ok(await store.getReceipt(ALICE, later.messageId));
        assert.equal(await store.purgeExpired(), 2, 'the envelope and its receipt');
        assert.equal(await store.purgeExpired(), 0);
        assert.deepEqual(await store.usage(ALICE), {
          count: 1,
          bytes: later.envelope.length,
          lastSeq: 2,
        });
        // Acked envelopes leave tombstones; they go at their expiry too.
        await store.ack(ALICE, [later.messageId]);
        assert.equal(await store.purgeExpired(later.expiresAt), 2, 'the tombstone and the receipt');
        assert.deepEqual(await store.usage(ALICE), { count: 0, bytes: 0, lastSeq: 2 });
      });
    });

    it('a purged message is gone: envelope, tombstone, receipt and key share, before the local clock says so', async () => {
      await withStore(open, async ({ store }) => {
        // The purge is given the trusted time (docs/EXPIRY.md): ahead of the local clock, it
        // deletes what the local clock still thinks is valid.
        const e = envelope(ALICE, { expiresAt: Date.now() + 3_600_000 });
        const kept = envelope(ALICE, { expiresAt: Date.now() + 7_200_000 });
        await store.deliver(e);
        await store.deliver(kept);
        const share = randomBytes(32);
        await store.keepShare({ ...e, share });
        assert.deepEqual(
          Buffer.from((await store.releaseShare(ALICE, e.messageId, Date.now()))!),
          share,
        );
        assert.equal(await store.getReceipt(ALICE, e.messageId, e.expiresAt), undefined);
        assert.ok(await store.getReceipt(ALICE, e.messageId, e.expiresAt - 1));
        assert.equal(await store.purgeExpired(e.expiresAt - 1), 0);
        assert.equal(
          await store.purgeExpired(e.expiresAt),
          3,
          'the envelope, its receipt and share',
        );
        assert.equal(await store.fetch(ALICE, e.messageId), undefined);
        assert.deepEqual(
          (await store.list(ALICE)).envelopes.map((x) => x.messageId),
          [kept.messageId],
        );
        assert.equal(await store.getReceipt(ALICE, e.messageId), undefined);
        assert.equal(await store.releaseShare(ALICE, e.messageId, Date.now()), undefined);
        assert.equal(await store.ack(ALICE, [e.messageId]), 0);
        assert.deepEqual(await store.usage(ALICE), {
          count: 1,
          bytes: kept.envelope.length,
          lastSeq: 2,
        });
        assert.equal(await store.purgeExpired(e.expiresAt), 0, 'nothing of it is left');
      });
    });

    it('keeps a key share for its recipient until its expiry, judged by the time it is given', async () => {
      const k1 = generateKey();
      const k2 = generateKey();
      await withStore(
        open,
        async (h) => {
          const expiresAt = Date.now() + 60_000;
          const share = randomBytes(32);
          const m = { recipient: ALICE, messageId: 'eph-1', expiresAt };
          await h.store.keepShare({ ...m, share });
          await h.store.keepShare({ ...m, share: randomBytes(32) }); // the first stays
          const now = Date.now();
          assert.deepEqual(Buffer.from((await h.store.releaseShare(ALICE, 'eph-1', now))!), share);
          assert.equal(await h.store.releaseShare(BOB, 'eph-1', now), undefined, 'another mailbox');
          // A trusted time at or past the expiry refuses, whatever the local clock says.
          assert.equal(await h.store.releaseShare(ALICE, 'eph-1', expiresAt), undefined);
          await assert.rejects(
            h.store.keepShare({ ...m, messageId: 'eph-2', share: randomBytes(31) }),
            StoreInputError,
          );
          await assert.rejects(
            h.store.keepShare({ ...m, messageId: 'eph-3', share, expiresAt: now - 1 }),
            StoreInputError,
          );
          // Rotation re-seals shares too; the old key then retires.
          await h.reopen(new Keyring([k2, k1]));
          assert.equal((await h.store.rewrap()).rewrapped, 1);
          await h.reopen(new Keyring([k2]));
          assert.deepEqual(Buffer.from((await h.store.releaseShare(ALICE, 'eph-1', now))!), share);
          assert.equal(await h.store.purgeExpired(expiresAt), 1);
          assert.equal(await h.store.releaseShare(ALICE, 'eph-1', now), undefined, 'erased');
        },
        undefined,
        new Keyring([k1]),
      );
    });

    it('stores the receipt with its envelope, by (recipient, message id), until its expiry', async () => {
      await withStore(open, async ({ store }) => {
        const e = envelope(ALICE, { expiresAt: Date.now() + 60_000 });
        assert.equal(await store.getReceipt(ALICE, e.messageId), undefined);
        await store.deliver(e);
        assert.equal(
          Buffer.from((await store.getReceipt(ALICE, e.messageId)) ?? []).toString(),
          Buffer.from(e.receipt).toString(),
        );
        assert.equal(await store.getReceipt(BOB, e.messageId), undefined);
        assert.equal(await store.getReceipt(ALICE, 'm-2'), undefined);
        // Acked, the envelope goes; its receipt stays until the expiry.
        await store.ack(ALICE, [e.messageId]);
        assert.ok(await store.getReceipt(ALICE, e.messageId));
        assert.equal(await store.purgeExpired(e.expiresAt - 1), 0);
        assert.equal(await store.purgeExpired(e.expiresAt), 2, 'the tombstone and the receipt');
        assert.equal(await store.getReceipt(ALICE, e.messageId), undefined);
      });
    });

    it('keeps a receipt of a relayed message without a mailbox: the first stays, until its expiry', async () => {
      await withStore(open, async ({ store }) => {
        const kept = { recipient: BOB, messageId: 'relayed-1', expiresAt: Date.now() + 60_000 };
        await store.keepReceipt({ ...kept, receipt: Buffer.from('first') });
        await store.keepReceipt({ ...kept, receipt: Buffer.from('second') });
        assert.equal(
          Buffer.from((await store.getReceipt(BOB, 'relayed-1')) ?? []).toString(),
          'first',
        );
        assert.equal(await store.getReceipt(ALICE, 'relayed-1'), undefined);
        assert.deepEqual(await store.usage(BOB), { count: 0, bytes: 0, lastSeq: 0 });
        await assert.rejects(
          store.keepReceipt({ ...kept, receipt: Buffer.alloc(0) }),
          StoreInputError,
        );
        await assert.rejects(
          store.keepReceipt({ ...kept, expiresAt: Date.now() - 1, receipt: Buffer.from('x') }),
          StoreInputError,
        );
        assert.equal(await store.purgeExpired(kept.expiresAt), 1);
        assert.equal(await store.getReceipt(BOB, 'relayed-1'), undefined);
      });
    });

    it('writes no envelope without its receipt: a refused delivery leaves neither', async () => {
      await withStore(
        open,
        async ({ store }) => {
          const e = envelope(ALICE, { receipt: Buffer.alloc(65) });
          await assert.rejects(store.deliver(e), StoreInputError);
          assert.equal(await store.fetch(ALICE, e.messageId), undefined);
          assert.equal(await store.getReceipt(ALICE, e.messageId), undefined);
          await store.deliver(envelope(ALICE));
          const full = envelope(ALICE);
          await assert.rejects(store.deliver(full), StoreQuotaError);
          assert.equal(await store.getReceipt(ALICE, full.messageId), undefined);
        },
        { maxReceiptBytes: 64, maxMailboxCount: 1 },
      );
    });

    it("keeps a receipt's transit commitment in the outbox with the delivery, until transitLogged", async () => {
      await withStore(open, async (h) => {
        const sorted = (bs: Buffer[]): string[] => bs.map((b) => b.toString('hex')).sort();
        const c1 = randomBytes(32);
        const c2 = randomBytes(32);
        const first = envelope(ALICE, { transitCommitment: c1 });
        await h.store.deliver(first);
        await h.store.deliver(envelope(BOB, { transitCommitment: c2 }));
        await h.store.deliver(envelope(BOB)); // none given, none kept
        // A duplicate writes nothing, not even its own commitment.
        const again = await h.store.deliver({ ...first, transitCommitment: randomBytes(32) });
        assert.equal(again.duplicate, true);
        assert.deepEqual(sorted(await h.store.transitOutbox(100)), sorted([c1, c2]));
        assert.equal((await h.store.transitOutbox(1)).length, 1);
        await h.reopen(); // durable with the delivery
        assert.deepEqual(sorted(await h.store.transitOutbox(100)), sorted([c1, c2]));
        await h.store.transitLogged([c1]);
        assert.deepEqual(sorted(await h.store.transitOutbox(100)), sorted([c2]));
        await h.store.transitLogged([c1, c2]); // removing twice is no error
        assert.deepEqual(await h.store.transitOutbox(100), []);
        // Bounded before anything is written.
        await assert.rejects(
          h.store.deliver(envelope(ALICE, { transitCommitment: randomBytes(31) })),
          StoreInputError,
        );
        await assert.rejects(h.store.transitOutbox(0), StoreInputError);
        await assert.rejects(h.store.transitOutbox(10_001), StoreInputError);
        await assert.rejects(h.store.transitLogged([randomBytes(33)]), StoreInputError);
        await assert.rejects(
          h.store.transitLogged(Array.from({ length: 10_001 }, () => c1)),
          StoreInputError,
        );
        assert.deepEqual(await h.store.transitOutbox(100), []);
      });
    });

    it('bounds every input with a StoreInputError, and a full mailbox with a StoreQuotaError', async () => {
      await withStore(
        open,
        async ({ store }) => {
          const bad: Partial<DeliverWithReceipt>[] = [
            { recipient: 'alice@a.example' },
            { recipient: `did:aftersmtp:a.example:${'x'.repeat(600)}` },
            { sender: 'nobody' },
            { messageId: '' },
            { messageId: 'has space' },
            { messageId: 'x'.repeat(129) },
            { envelope: Buffer.alloc(0) },
            { envelope: Buffer.alloc(1025) },
            { ciphertextHash: Buffer.alloc(31) },
            { expiresAt: Date.now() - 1 },
            { receivedAt: -1 },
            { receivedAt: 1.5 },
            { receipt: Buffer.alloc(0) },
            { receipt: Buffer.alloc(65) },
          ];
          for (const b of bad)
            await assert.rejects(
              store.deliver(envelope(ALICE, b)),
              StoreInputError,
              JSON.stringify(b),
            );
          await assert.rejects(store.list(ALICE, { limit: 0 }), StoreInputError);
          await assert.rejects(store.list(ALICE, { limit: 11 }), StoreInputError);
          await assert.rejects(store.list(ALICE, { after: -1 }), StoreInputError);
          await assert.rejects(store.list('not-a-did'), StoreInputError);
          await assert.rejects(
            store.ack(
              ALICE,
              Array.from({ length: 6 }, (_, i) => `m${i}`),
            ),
            StoreInputError,
          );
          assert.equal((await store.usage(ALICE)).lastSeq, 0, 'nothing was written');
          for (let i = 0; i < 3; i++) await store.deliver(envelope(ALICE));
          await assert.rejects(store.deliver(envelope(ALICE)), StoreQuotaError);
          assert.equal((await store.usage(ALICE)).count, 3);
        },
        {
          maxEnvelopeBytes: 1024,
          maxPageSize: 10,
          maxAckIds: 5,
          maxReceiptBytes: 64,
          maxMailboxCount: 3,
        },
      );
    });

    it('keeps no plaintext DID, message id, subject, body or receipt in the stored bytes', async () => {
      await withStore(open, async (h) => {
        const recipient = 'did:aftersmtp:plain.example:plaintext-recipient';
        const sender = 'did:aftersmtp:plain.example:plaintext-sender';
        const body = Buffer.from(
          'Subject: PLAINTEXT-SUBJECT-MARKER\r\n\r\nPLAINTEXT-BODY-MARKER '.repeat(20),
        );
        const messageId = 'PLAINTEXT-MESSAGE-ID-MARKER';
        await h.store.deliver(
          envelope(recipient, {
            sender,
            envelope: body,
            messageId,
            receipt: Buffer.from('PLAINTEXT-RECEIPT-MARKER'),
          }),
        );
        await h.store.deliver(envelope(recipient, { sender, envelope: body }));
        const raw = await h.rawDump();
        assert.ok(raw.length > 2 * body.length, 'the dump holds the stored records');
        for (const marker of [
          'plaintext-recipient',
          'plaintext-sender',
          'plain.example',
          'PLAINTEXT-SUBJECT-MARKER',
          'PLAINTEXT-BODY-MARKER',
          'PLAINTEXT-MESSAGE-ID-MARKER',
          'PLAINTEXT-RECEIPT-MARKER',
        ]) {
          assert.equal(
            raw.indexOf(Buffer.from(marker)),
            -1,
            `${marker} appears in the stored bytes`,
          );
          assert.equal(
            raw.indexOf(Buffer.from(Buffer.from(marker).toString('hex'))),
            -1,
            `${marker} appears as hex`,
          );
        }
        // And the data is all still there for the right key.
        assert.equal((await h.store.list(recipient)).envelopes.length, 2);
      });
    });

    it('rotates keys: the old key stays readable, rewrap moves everything, then it retires', async () => {
      const k1 = generateKey();
      const k2 = generateKey();
      await withStore(
        open,
        async (h) => {
          const first = [envelope(ALICE), envelope(ALICE), envelope(BOB)];
          for (const e of first) await h.store.deliver(e);
          // Rotate: k2 writes, k1 still opens.
          await h.reopen(new Keyring([k2, k1]));
          const late = envelope(ALICE);
          await h.store.deliver(late);
          assert.deepEqual([...(await h.store.keyStatus()).inUse].sort(), [k1.id, k2.id].sort());
          assert.equal((await h.store.list(ALICE)).envelopes.length, 3);
          // Retiring k1 before rewrap is refused at open, naming the key.
          await assert.rejects(
            h.reopen(new Keyring([k2])),
            (err: unknown) => err instanceof StoreKeyError && err.message.includes(k1.id),
          );
          await h.reopen(new Keyring([k2, k1]));
          const r = await h.store.rewrap();
          assert.equal(r.rewrapped, 6, 'three envelopes and their receipts were sealed with k1');
          assert.deepEqual(r.retirable, [k1.id]);
          assert.deepEqual((await h.store.keyStatus()).inUse, [k2.id]);
          assert.equal((await h.store.rewrap()).rewrapped, 0);
          // Now k1 can go: everything opens with k2 alone.
          await h.reopen(new Keyring([k2]));
          assert.deepEqual(
            (await h.store.list(ALICE)).envelopes.map((e) => e.messageId),
            [first[0]!.messageId, first[1]!.messageId, late.messageId],
          );
          assert.equal((await h.store.list(BOB)).envelopes.length, 1);
          assert.equal(
            Buffer.from((await h.store.getReceipt(ALICE, first[0]!.messageId)) ?? []).toString(),
            Buffer.from(first[0]!.receipt).toString(),
          );
          assert.equal(await h.store.quarantined(), 0);
        },
        undefined,
        new Keyring([k1]),
      );
    });

    it('takes a new keyring while open: the new write key seals, rewrap moves the rest, then it reopens with it alone', async () => {
      const k1 = generateKey();
      const k2 = generateKey();
      await withStore(
        open,
        async (h) => {
          const first = [envelope(ALICE), envelope(BOB)];
          for (const e of first) await h.store.deliver(e);
          await h.store.useKeyring(new Keyring([k2, k1]));
          const late = envelope(ALICE);
          await h.store.deliver(late);
          const status = await h.store.keyStatus();
          assert.equal(status.writeKeyId, k2.id);
          assert.deepEqual([...status.inUse].sort(), [k1.id, k2.id].sort());
          const r = await h.store.rewrap();
          assert.equal(r.rewrapped, 4, 'two envelopes and their receipts were sealed with k1');
          assert.deepEqual(r.retirable, [k1.id]);
          assert.deepEqual((await h.store.keyStatus()).inUse, [k2.id]);
          // Durable: the data opens with k2 alone after a reopen.
          await h.reopen(new Keyring([k2]));
          assert.deepEqual(
            (await h.store.list(ALICE)).envelopes.map((e) => e.messageId),
            [first[0]!.messageId, late.messageId],
          );
          assert.ok(await h.store.fetch(BOB, first[1]!.messageId));
          assert.equal(await h.store.quarantined(), 0);
        },
        undefined,
        new Keyring([k1]),
      );
    });

    it('refuses a new keyring that lacks a key records are sealed with, and keeps the one in force', async () => {
      const k1 = generateKey();
      const k2 = generateKey();
      await withStore(
        open,
        async (h) => {
          const e = envelope(ALICE);
          await h.store.deliver(e);
          await assert.rejects(
            h.store.useKeyring(new Keyring([k2])),
            (err: unknown) => err instanceof StoreKeyError && err.message.includes(k1.id),
          );
          const status = await h.store.keyStatus();
          assert.equal(status.writeKeyId, k1.id);
          assert.deepEqual(status.inUse, [k1.id]);
          const after = envelope(ALICE);
          await h.store.deliver(after);
          await h.reopen(new Keyring([k1]));
          assert.equal((await h.store.list(ALICE)).envelopes.length, 2);
        },
        undefined,
        new Keyring([k1]),
      );
    });

    it('runs a keyring change given during a rewrap after it, so the new write key stays in use', async () => {
      const k1 = generateKey();
      const k2 = generateKey();
      const k3 = generateKey();
      await withStore(
        open,
        async (h) => {
          for (let i = 0; i < 4; i++) await h.store.deliver(envelope(ALICE));
          await h.store.useKeyring(new Keyring([k2, k1]));
          // Both at once: the rewrap (to k2) ends before k3 is taken, and k3's wrap is kept.
          const [r] = await Promise.all([
            h.store.rewrap(),
            h.store.useKeyring(new Keyring([k3, k2, k1])),
          ]);
          assert.equal(r.rewrapped, 8);
          await h.store.deliver(envelope(BOB));
          assert.deepEqual([...(await h.store.keyStatus()).inUse].sort(), [k2.id, k3.id].sort());
          await h.store.rewrap();
          await h.reopen(new Keyring([k3]));
          assert.equal((await h.store.list(ALICE)).envelopes.length, 4);
          assert.equal((await h.store.list(BOB)).envelopes.length, 1);
        },
        undefined,
        new Keyring([k1]),
      );
    });

    it('refuses to open with a wrong key (typed error), and opens again with the right one', async () => {
      const right = generateKey();
      await withStore(
        open,
        async (h) => {
          const e = envelope(ALICE);
          await h.store.deliver(e);
          await assert.rejects(h.reopen(new Keyring([generateKey()])), StoreKeyError);
          await h.reopen(new Keyring([right]));
          assert.ok(await h.store.fetch(ALICE, e.messageId));
        },
        undefined,
        new Keyring([right]),
      );
    });

    it('quarantines a corrupted record with a typed error and serves the rest', async () => {
      await withStore(open, async (h) => {
        const bad = envelope(ALICE);
        await h.store.deliver(bad);
        await h.corruptEnvelopes();
        const good = envelope(ALICE);
        await h.store.deliver(good);
        await assert.rejects(h.store.fetch(ALICE, bad.messageId), StoreCorruptError);
        assert.equal(await h.store.quarantined(), 1);
        assert.equal(await h.store.fetch(ALICE, bad.messageId), undefined, 'gone from the mailbox');
        const page = await h.store.list(ALICE);
        assert.deepEqual(
          page.envelopes.map((e) => e.messageId),
          [good.messageId],
        );
        assert.deepEqual(await h.store.usage(ALICE), {
          count: 1,
          bytes: good.envelope.length,
          lastSeq: 2,
        });
        // A redelivery of the quarantined id is still recognised as a duplicate.
        assert.equal((await h.store.deliver(bad)).duplicate, true);

        // Found by list instead of fetch: skipped, counted, quarantined.
        const bad2 = envelope(BOB);
        await h.store.deliver(bad2);
        await h.corruptEnvelopes();
        const p = await h.store.list(BOB);
        assert.equal(p.envelopes.length, 0);
        assert.equal(p.quarantined, 1);
        assert.ok((await h.store.quarantined()) >= 2);
      });
    });
  });
}
