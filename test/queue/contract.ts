// The one contract suite that every queue backend passes (STYLE.md: backends are tested against
// the real servers with one shared suite). Each backend's test file calls `queueContract` with a
// factory that opens a fresh, isolated queue (own directory, stream or queue names).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeAmpNotice } from '../../src/queue/amp-notice.js';
import { QueueStateError } from '../../src/queue/errors.js';
import { decodeOutbound } from '../../src/queue/outbound.js';
import type {
  DeliveryQueue,
  EnvelopeInfo,
  Lease,
  RecipientInput,
  RetryPolicy,
} from '../../src/queue/types.js';

export interface OpenOptions {
  readonly retry: RetryPolicy;
  readonly leaseMs: number;
}

export interface Harness {
  readonly queue: DeliveryQueue;
  /** Puts bytes that are not a valid record where the backend's next lease will read them. */
  injectGarbage(bytes: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export type Open = (options: OpenOptions) => Promise<Harness>;

export const FAST_RETRY: RetryPolicy = { baseMs: 40, capMs: 200, maxAgeMs: 60_000 };

export async function enqueue(
  queue: DeliveryQueue,
  recipients: RecipientInput[],
  info: Partial<EnvelopeInfo> = {},
  body: Uint8Array = Buffer.from('Subject: hi\r\n\r\nhello\r\n'),
): Promise<string> {
  const tx = queue.begin({
    messageId: info.messageId ?? `m-${Math.random().toString(36).slice(2)}`,
    sender: info.sender ?? 'alice@sender.example',
    senderKind: info.senderKind ?? 'legacy',
    ...(info.bounce !== undefined ? { bounce: info.bounce } : {}),
  });
  for (const r of recipients) tx.addRecipient(r);
  tx.body(body);
  return tx.commit();
}

/** Leases until `count` leases are gathered or `ms` elapse. */
export async function leaseAll(queue: DeliveryQueue, count: number, ms = 5000): Promise<Lease[]> {
  const out: Lease[] = [];
  const end = Date.now() + ms;
  while (out.length < count && Date.now() < end) {
    out.push(...(await queue.lease(count - out.length, Math.min(200, end - Date.now()))));
  }
  return out;
}

export const rcpt = (address: string, destination = 'smtp:rcpt.example'): RecipientInput => ({
  address,
  destination,
});

async function withQueue(
  open: Open,
  fn: (h: Harness) => Promise<void>,
  options: Partial<OpenOptions> = {},
): Promise<void> {
  const h = await open({ retry: FAST_RETRY, leaseMs: 5000, ...options });
  try {
    await fn(h);
  } finally {
    await h.close();
  }
}

export function queueContract(name: string, open: Open): void {
  describe(`queue contract: ${name}`, () => {
    it('commits, leases the job with its body, and forgets it once delivered', async () => {
      await withQueue(open, async ({ queue }) => {
        const body = Buffer.from('Subject: contract\r\n\r\nbody\r\n');
        const id = await enqueue(queue, [rcpt('bob@rcpt.example')], { messageId: 'msg-1' }, body);
        assert.match(id, /^[0-9a-f]{32}$/);
        const [lease, ...more] = await leaseAll(queue, 1);
        assert.ok(lease);
        assert.equal(more.length, 0);
        assert.equal(lease.job.entryId, id);
        assert.equal(lease.job.messageId, 'msg-1');
        assert.equal(lease.job.destination, 'smtp:rcpt.example');
        assert.deepEqual(lease.job.recipients, ['bob@rcpt.example']);
        assert.deepEqual(Buffer.from(lease.job.body), body);
        assert.equal(lease.job.deliveries, 0);
        const r = await lease.settle([{ recipient: 'bob@rcpt.example', status: 'delivered' }]);
        assert.equal(r.delivered, 1);
        assert.deepEqual(await queue.lease(10, 150), []);
        assert.equal((await queue.stats()).depth, 0);
      });
    });

    it('enforces the transaction contract: one body, a recipient, used once, abort writes nothing', async () => {
      await withQueue(open, async ({ queue }) => {
        const info = { messageId: 'm', sender: 'a@b.example', senderKind: 'legacy' as const };
        const noRcpt = queue.begin(info);
        noRcpt.body(Buffer.from('x'));
        await assert.rejects(noRcpt.commit(), QueueStateError);
        const noBody = queue.begin(info);
        noBody.addRecipient(rcpt('x@y.example'));
        await assert.rejects(noBody.commit(), QueueStateError);
        const twice = queue.begin(info);
        twice.body(Buffer.from('x'));
        assert.throws(() => twice.body(Buffer.from('y')), QueueStateError);
        const aborted = queue.begin(info);
        aborted.addRecipient(rcpt('x@y.example'));
        aborted.body(Buffer.from('x'));
        aborted.abort();
        assert.throws(() => aborted.addRecipient(rcpt('z@y.example')), QueueStateError);
        await assert.rejects(aborted.commit(), QueueStateError);
        const done = queue.begin(info);
        done.addRecipient(rcpt('x@y.example'));
        done.body(Buffer.from('x'));
        await done.commit();
        assert.throws(() => done.addRecipient(rcpt('z@y.example')), QueueStateError);
        const leases = await leaseAll(queue, 2, 600);
        assert.equal(leases.length, 1, 'only the committed entry is queued');
        await leases[0]?.settle([{ recipient: 'x@y.example', status: 'delivered' }]);
      });
    });

    it('schedules each destination on its own: a failing one does not delay the others', async () => {
      await withQueue(
        open,
        async ({ queue }) => {
          const id = await enqueue(queue, [
            rcpt('a1@down.example', 'smtp:down.example'),
            rcpt('b1@up.example', 'smtp:up.example'),
          ]);
          const leases = await leaseAll(queue, 2);
          assert.equal(leases.length, 2);
          assert.ok(leases.every((l) => l.job.entryId === id));
          const down = leases.find((l) => l.job.destination === 'smtp:down.example');
          const up = leases.find((l) => l.job.destination === 'smtp:up.example');
          assert.ok(down && up);
          const r = await down.settle([
            { recipient: 'a1@down.example', status: 'temporary', reason: '421 try later' },
          ]);
          assert.equal(r.retried, 1);
          await up.settle([{ recipient: 'b1@up.example', status: 'delivered' }]);
          // A later entry for the healthy destination goes straight through, whatever the
          // failing one does meanwhile (full jitter may retry it at once: it fails again).
          await enqueue(queue, [rcpt('b2@up.example', 'smtp:up.example')]);
          const end = Date.now() + 3000;
          let upLease: Lease | undefined;
          while (!upLease && Date.now() < end) {
            for (const l of await queue.lease(4, 200)) {
              if (l.job.destination === 'smtp:up.example') upLease = l;
              else
                await l.settle([
                  { recipient: 'a1@down.example', status: 'temporary', reason: 'still down' },
                ]);
            }
          }
          assert.ok(upLease, 'the healthy destination was not delayed');
          await upLease.settle([{ recipient: 'b2@up.example', status: 'delivered' }]);
          // The failed one comes back after its backoff, counted as a redelivery.
          const [retry] = await leaseAll(queue, 1, 10_000);
          assert.equal(retry?.job.destination, 'smtp:down.example');
          assert.ok((retry?.job.deliveries ?? 0) >= 1);
          await retry?.settle([{ recipient: 'a1@down.example', status: 'delivered' }]);
          assert.ok((await queue.stats()).retries >= 1);
        },
        { retry: { baseMs: 600, capMs: 600, maxAgeMs: 60_000 } },
      );
    });

    it('keeps per-recipient outcomes: only the failed recipient is retried', async () => {
      await withQueue(open, async ({ queue }) => {
        await enqueue(queue, [rcpt('ok@rcpt.example'), rcpt('later@rcpt.example')]);
        const [first] = await leaseAll(queue, 1);
        assert.deepEqual([...(first?.job.recipients ?? [])].sort(), [
          'later@rcpt.example',
          'ok@rcpt.example',
        ]);
        await first?.settle([
          { recipient: 'ok@rcpt.example', status: 'delivered' },
          { recipient: 'later@rcpt.example', status: 'temporary', reason: 'busy' },
        ]);
        const [second] = await leaseAll(queue, 1);
        assert.deepEqual(second?.job.recipients, ['later@rcpt.example']);
        await second?.settle([{ recipient: 'later@rcpt.example', status: 'delivered' }]);
        assert.deepEqual(await queue.lease(5, 300), []);
      });
    });

    it('dead-letters a permanent failure and bounces a DSN to a legacy sender; the bounce never bounces', async () => {
      await withQueue(open, async ({ queue }) => {
        await enqueue(queue, [rcpt('gone@rcpt.example')], {
          sender: 'alice@sender.example',
          messageId: '<orig@sender.example>',
        });
        const [lease] = await leaseAll(queue, 1);
        const r = await lease?.settle([
          { recipient: 'gone@rcpt.example', status: 'permanent', reason: '550 5.1.1 no such user' },
        ]);
        assert.equal(r?.dead, 1);
        const [bounce] = await leaseAll(queue, 1);
        assert.ok(bounce);
        assert.equal(bounce.job.sender, '');
        assert.equal(bounce.job.bounce, true);
        assert.deepEqual(bounce.job.recipients, ['alice@sender.example']);
        assert.equal(bounce.job.destination, 'smtp:sender.example');
        // An off-ramp record with the null reverse path, holding the DSN.
        const record = decodeOutbound(bounce.job.body);
        assert.equal(record.mailFrom, '');
        const text = record.message.toString('utf8');
        assert.match(text, /Content-Type: multipart\/report; report-type=delivery-status;/);
        assert.match(text, /Final-Recipient: rfc822; gone@rcpt\.example/);
        assert.match(text, /Status: 5\.1\.1/);
        // The bounce fails too: it is dead-lettered, and nothing new is queued.
        const r2 = await bounce.settle([
          { recipient: 'alice@sender.example', status: 'permanent', reason: '550 no' },
        ]);
        assert.equal(r2.dead, 1);
        assert.equal(r2.bounceEntryId, undefined);
        assert.deepEqual(await queue.lease(5, 300), []);
        assert.equal((await queue.stats()).deadLetters, 2);
      });
    });

    it('sends an AMP sender an AMP failure notice, and expires recipients after the maximum age', async () => {
      await withQueue(
        open,
        async ({ queue }) => {
          await enqueue(queue, [rcpt('did:aftersmtp:rcpt.example:bob', 'amp:rcpt.example')], {
            sender: 'did:aftersmtp:sender.example:alice',
            senderKind: 'amp',
            messageId: 'amp-1',
          });
          // Temporary failures until the maximum age (300 ms) has passed.
          let notice: Lease | undefined;
          const end = Date.now() + 10_000;
          while (!notice && Date.now() < end) {
            for (const l of await queue.lease(5, 200)) {
              if (l.job.bounce) notice = l;
              else
                await l.settle([
                  {
                    recipient: l.job.recipients[0] ?? '',
                    status: 'temporary',
                    reason: 'peer down',
                  },
                ]);
            }
          }
          assert.ok(notice, 'a failure notice was queued');
          assert.equal(notice.job.destination, 'amp:sender.example');
          const decoded = decodeAmpNotice(notice.job.body);
          assert.equal(decoded.originalMessageId, 'amp-1');
          assert.equal(decoded.failures[0]?.kind, 'expired');
          assert.equal(decoded.failures[0]?.recipient, 'did:aftersmtp:rcpt.example:bob');
          await notice.settle([{ recipient: notice.job.recipients[0] ?? '', status: 'delivered' }]);
        },
        { retry: { baseMs: 50, capMs: 100, maxAgeMs: 300 } },
      );
    });

    it('makes a job deliverable again when its lease expires', async () => {
      await withQueue(
        open,
        async ({ queue }) => {
          await enqueue(queue, [rcpt('x@rcpt.example')], { messageId: 'lease-1' });
          const [first] = await leaseAll(queue, 1);
          assert.equal(first?.job.messageId, 'lease-1');
          // The worker "crashes": no settle. After the lease (1 s) it is handed out again.
          const [again] = await leaseAll(queue, 1, 15_000);
          assert.equal(again?.job.messageId, 'lease-1');
          assert.ok((again?.job.deliveries ?? 0) >= 1);
          await again?.settle([{ recipient: 'x@rcpt.example', status: 'delivered' }]);
        },
        { leaseMs: 1000 },
      );
    });

    it('quarantines a record it cannot decode and keeps delivering', async () => {
      await withQueue(open, async (h) => {
        await h.injectGarbage(Buffer.from([0xc1, 0xff, 0x00, 0x13]));
        await enqueue(h.queue, [rcpt('after@rcpt.example')], { messageId: 'after-garbage' });
        const [lease] = await leaseAll(h.queue, 1);
        assert.equal(lease?.job.messageId, 'after-garbage');
        await lease?.settle([{ recipient: 'after@rcpt.example', status: 'delivered' }]);
        assert.deepEqual(await h.queue.lease(5, 200), []);
        assert.equal((await h.queue.stats()).quarantined, 1);
      });
    });

    it('delivers every one of many concurrent enqueues', async () => {
      await withQueue(open, async ({ queue }) => {
        const n = 200;
        const ids = await Promise.all(
          Array.from({ length: n }, (_, i) =>
            enqueue(queue, [rcpt(`u${i}@rcpt.example`)], { messageId: `c-${i}` }),
          ),
        );
        assert.equal(new Set(ids).size, n);
        const seen = new Set<string>();
        const end = Date.now() + 20_000;
        while (seen.size < n && Date.now() < end) {
          const leases = await queue.lease(64, 200);
          await Promise.all(
            leases.map(async (l) => {
              seen.add(l.job.messageId);
              await l.settle(l.job.recipients.map((r) => ({ recipient: r, status: 'delivered' })));
            }),
          );
        }
        assert.equal(seen.size, n);
        assert.equal((await queue.stats()).depth, 0);
      });
    });
  });
}
