// The delivery worker's slots (docs/QUEUE.md, "Delivery slots"): at most `perPeer` jobs at once
// for one AMP peer, `perDestination` for one off-ramp destination, `concurrency` in all, and
// bodies of at most `maxHeldBytes` in hand. Jobs are
// committed to a real lmdb queue; the relay and the off-ramp are handlers that hold each job
// until the test lets it go, and count how many they hold at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DeliveryWorker, type DeliveryWorkerOptions } from '../../src/delivery/worker.js';
import type { DeliveryQueue, LeasedJob } from '../../src/queue/types.js';
import { MailboxWriter } from '../../src/mailbox/writer.js';
import { startTestGateway, type TestGateway } from '../relay/helpers.js';
import { until } from '../helpers/wait.js';

/** How many jobs the handlers hold at once, together. */
interface Tally {
  held: number;
  most: number;
}

/** A destination handler that holds its jobs until `release`, counting them. */
class HeldJobs {
  held = 0;
  most = 0;
  done = 0;
  readonly #all: Tally;
  #waiting: (() => void)[] = [];
  #open = false;

  constructor(all: Tally) {
    this.#all = all;
  }

  readonly handle = async (job: LeasedJob) => {
    this.held++;
    this.#all.held++;
    if (!this.#open) {
      // Counted while the jobs are held: what the worker started before any of them finished.
      this.most = Math.max(this.most, this.held);
      this.#all.most = Math.max(this.#all.most, this.#all.held);
      await new Promise<void>((resolve) => this.#waiting.push(resolve));
    }
    this.held--;
    this.#all.held--;
    this.done++;
    return job.recipients.map((recipient) => ({ recipient, status: 'delivered' as const }));
  };

  release(): void {
    this.#open = true;
    for (const go of this.#waiting.splice(0)) go();
  }
}

async function enqueue(
  gw: TestGateway,
  n: number,
  address: string,
  destination: string,
  body = Buffer.from('x'),
) {
  for (let i = 0; i < n; i++) {
    const tx = gw.queue.begin({
      messageId: `${destination}-${i}`,
      sender: 'did:aftersmtp:alpha.test:alice',
      senderKind: 'amp',
    });
    tx.addRecipient({ address, destination });
    tx.body(body);
    await tx.commit();
  }
}

/** A delivery worker of `gw`, quiet, with the given queue, handlers and slots. */
function workerOf(
  gw: TestGateway,
  options: Pick<DeliveryWorkerOptions, 'queue'> &
    Partial<
      Pick<
        DeliveryWorkerOptions,
        | 'remote'
        | 'offramp'
        | 'concurrency'
        | 'perPeer'
        | 'perDestination'
        | 'maxEnvelopeBytes'
        | 'maxHeldBytes'
      >
    >,
): DeliveryWorker {
  return new DeliveryWorker({
    mailbox: new MailboxWriter({ store: gw.store, gatewayKeys: gw.keys }),
    ledger: gw.ledger,
    gateway: gw.keys,
    domain: gw.domain,
    maxEnvelopeBytes: 1024 * 1024,
    log: { info: () => undefined, warn: () => undefined, error: () => undefined },
    ...options,
  });
}

async function runWorker(
  slots: Pick<DeliveryWorkerOptions, 'concurrency' | 'perPeer' | 'perDestination'>,
  jobs: { peer: number; offramp: number },
): Promise<{ peer: HeldJobs; offramp: HeldJobs; all: Tally }> {
  const gw = await startTestGateway('alpha.test');
  const all: Tally = { held: 0, most: 0 };
  const peer = new HeldJobs(all);
  const offramp = new HeldJobs(all);
  const worker = workerOf(gw, {
    queue: gw.queue,
    remote: peer.handle,
    offramp: offramp.handle,
    ...slots,
  });
  try {
    await enqueue(gw, jobs.peer, 'did:aftersmtp:beta.test:bob', 'amp:beta.test');
    await enqueue(gw, jobs.offramp, 'carol@example.net', 'smtp:example.net');
    worker.start();
    const full = (h: HeldJobs, cap: number, total: number) => h.held === Math.min(cap, total);
    await until('both destinations fill their slots', () => {
      const none = all.held === (slots.concurrency ?? 64);
      return (
        (full(peer, slots.perPeer ?? 32, jobs.peer) || none) &&
        (full(offramp, slots.perDestination ?? 16, jobs.offramp) || none)
      );
    });
    await new Promise((r) => setTimeout(r, 300)); // time to take more, were it allowed to
    peer.release();
    offramp.release();
    await until(
      'every job is delivered',
      () => peer.done + offramp.done === jobs.peer + jobs.offramp,
    );
    await until('every job is settled', async () => (await gw.queue.stats()).depth === 0);
    return { peer, offramp, all };
  } finally {
    await worker.stop();
    await gw.close();
  }
}

test('an AMP peer gets at most 32 slots and an off-ramp destination 16, by default', async () => {
  const { peer, offramp } = await runWorker({}, { peer: 50, offramp: 30 });
  assert.equal(peer.most, 32);
  assert.equal(offramp.most, 16);
});

test('the slots are settings; the worker never runs more than its concurrency', async () => {
  // The peer's jobs are committed first, so they are leased first.
  const { peer, offramp, all } = await runWorker(
    { concurrency: 6, perPeer: 4, perDestination: 3 },
    { peer: 10, offramp: 10 },
  );
  assert.equal(peer.most, 4);
  assert.equal(offramp.most, 2, 'what the concurrency leaves');
  assert.equal(all.most, 6);
  const { peer: p2, offramp: o2 } = await runWorker(
    { concurrency: 5, perPeer: 9, perDestination: 9 },
    { peer: 10, offramp: 0 },
  );
  assert.equal(p2.most, 5, 'a cap above the concurrency is the concurrency');
  assert.equal(o2.most, 0);
});

test("a job gives its destination's slot back when the destination has answered", async () => {
  // A job's receipts are kept and it is settled after the destination answered; those are this
  // gateway's own commits. Here no settle may finish until every job has been sent: with two
  // slots, all six are sent only if a job gives its slot back before it is settled.
  const gw = await startTestGateway('alpha.test');
  let openGate!: () => void;
  const gate = new Promise<void>((resolve) => (openGate = resolve));
  let settled = 0;
  const queue: DeliveryQueue = Object.create(gw.queue) as DeliveryQueue;
  queue.lease = async (max, waitMs) =>
    (await gw.queue.lease(max, waitMs)).map((l) => ({
      job: l.job,
      settle: async (outcomes) => {
        await gate;
        settled++;
        return l.settle(outcomes);
      },
    }));
  let answered = 0;
  const worker = workerOf(gw, {
    queue,
    remote: (job) => {
      answered++;
      const outcomes = job.recipients.map((recipient) => ({
        recipient,
        status: 'delivered' as const,
      }));
      return Promise.resolve(outcomes);
    },
    perPeer: 2,
  });
  try {
    await enqueue(gw, 6, 'did:aftersmtp:beta.test:bob', 'amp:beta.test');
    worker.start();
    await until('all six jobs are sent, two slots at a time', () => answered === 6);
    assert.equal(settled, 0, 'no job was settled yet');
  } finally {
    openGate();
    await worker.stop();
    await gw.close();
  }
  assert.equal(settled, 6);
});

test('the bodies in hand stay within maxHeldBytes, and one job is always leased', async () => {
  const KIB = 1024;
  for (const { maxHeldBytes, most } of [
    { maxHeldBytes: 3 * 128 * KIB, most: 3 }, // three of the largest envelopes fit
    { maxHeldBytes: 64 * KIB, most: 1 }, // not even one fits: one at a time
  ]) {
    const gw = await startTestGateway('alpha.test');
    const all: Tally = { held: 0, most: 0 };
    const peer = new HeldJobs(all);
    // The bytes leased and not yet settled: what the worker holds.
    let inHand = 0;
    let mostInHand = 0;
    const queue: DeliveryQueue = Object.create(gw.queue) as DeliveryQueue;
    queue.lease = async (max, waitMs) =>
      (await gw.queue.lease(max, waitMs)).map((l) => {
        inHand += l.job.body.byteLength;
        mostInHand = Math.max(mostInHand, inHand);
        return {
          job: l.job,
          settle: async (outcomes) => {
            const r = await l.settle(outcomes);
            inHand -= l.job.body.byteLength;
            return r;
          },
        };
      });
    const worker = workerOf(gw, {
      queue,
      remote: peer.handle,
      maxEnvelopeBytes: 128 * KIB,
      maxHeldBytes,
    });
    try {
      await enqueue(gw, 8, 'did:aftersmtp:beta.test:bob', 'amp:beta.test', Buffer.alloc(100 * KIB));
      worker.start();
      await until(`${most} jobs are held`, () => peer.held === most);
      await new Promise((r) => setTimeout(r, 300)); // time to lease more, were it allowed to
      assert.equal(peer.most, most);
      assert.equal(mostInHand, most * 100 * KIB);
      peer.release();
      await until('every job is delivered', () => peer.done === 8);
      await until('every job is settled', () => inHand === 0);
      assert.equal((await gw.queue.stats()).depth, 0);
    } finally {
      peer.release(); // a failed check must not leave the worker's stop waiting on held jobs
      await worker.stop();
      await gw.close();
    }
  }
});
