// Anchoring against a real Substrate runtime (chopsticks, scripts/services/substrate.sh): anchors
// land through the durable queue and verify; forged anchor records are refused; registrations go
// on while the chain is down; a restarted chain (fresh from genesis) is anchored again.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AnchorStore,
  Anchorer,
  SubstrateChain,
  anchorAccountFromUri,
  anchorCommitment,
  checkAnchored,
  type AnchorRecord,
} from '../../src/anchor/index.js';
import { DeliveryWorker } from '../../src/delivery/worker.js';
import { parseCheckpoint, parseNote, parseVerifierKey } from '../../src/ledger/index.js';
import { LmdbQueue } from '../../src/queue/lmdb.js';
import { identity, openLedger, registerRequest } from '../ledger/helpers.js';
import { chainSkip, startChain, type TestChain } from './chain.js';
import { until } from '../helpers/wait.js';

/** A chain or a witness answers in seconds: look every 100 ms, for up to 20 s. */
const SLOW = { ms: 20_000, everyMs: 100 };

const skip = chainSkip();
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe('anchoring on a Substrate chain', { skip, timeout: 180_000 }, () => {
  let chain: TestChain;
  let sub: SubstrateChain;
  const alice = anchorAccountFromUri('//Alice', true);
  const bob = anchorAccountFromUri('//Bob', true);
  const env = openLedger();
  let queue: LmdbQueue;
  let store: AnchorStore;
  let worker: DeliveryWorker;
  let anchorer: Anchorer;
  let n = 0;

  const register = async (count: number): Promise<void> => {
    for (let i = 0; i < count; i++) {
      const keys = identity(`user${n++}`);
      env.ledger.register(await registerRequest(env.ledger, keys));
    }
  };

  before(async () => {
    chain = await startChain();
    await chain.fund(alice.address);
    await chain.fund(bob.address);
    sub = new SubstrateChain({ url: chain.url, timeoutMs: 3000 });
    queue = new LmdbQueue({
      path: join(env.dir, 'queue'),
      bounce: { reportingMta: 'mx.test' },
      retry: { baseMs: 200, capMs: 1000, maxAgeMs: 600_000 },
    });
    store = new AnchorStore(join(env.dir, 'anchors.sqlite'));
    anchorer = new Anchorer({
      source: env.ledger,
      chain: sub,
      account: alice,
      store,
      queue,
      intervalMs: 2000,
      everyEntries: 2,
      tickMs: 100,
      log: quiet,
    });
    worker = new DeliveryWorker({
      queue,
      mailbox: undefined as never,
      ledger: undefined as never,
      gateway: undefined as never,
      domain: 'example.org',
      maxEnvelopeBytes: 1024,
      log: quiet,
      handlers: { 'anchor:': anchorer.deliver },
      deadDestinationMs: 500,
    });
    worker.start();
    anchorer.start();
  });

  after(async () => {
    await anchorer?.stop();
    await worker?.stop();
    await queue?.close();
    store?.close();
    await sub?.close();
    await chain?.close();
    env.cleanup();
  });

  it('anchors a checkpoint after every N entries, and the anchor verifies', async () => {
    await register(2);
    const a = await until('an anchor of size 2', () => store.latest(env.ledger.origin), SLOW);
    assert.equal(a.record.size, 2);
    const cp = env.ledger.checkpoint();
    assert.ok(a.record.root.equals(cp.root));
    assert.ok(a.record.commitment.equals(anchorCommitment({ ...cp, origin: env.ledger.origin })));
    assert.equal(a.note, cp.note);
    const { blockTime } = await sub.verify(a.record, a.record, alice.address);
    assert.equal(blockTime, a.record.blockTime);
    assert.ok(Math.abs(blockTime - Date.now()) < 10 * 60_000);
  });

  it('refuses forged anchor records', async () => {
    const a = store.latest(env.ledger.origin)!.record;
    const refused = async (r: AnchorRecord, cp = r, account?: string): Promise<void> =>
      assert.rejects(sub.verify(r, cp, account), { code: 'ERR_ANCHOR_INVALID' });
    // Another checkpoint (a forked root of the same size): the commitment does not match.
    const forked = { ...a, root: Buffer.alloc(32, 9) };
    await refused(a, forked);
    await refused({ ...forked, commitment: anchorCommitment(forked) });
    // The right commitment, pointed at another extrinsic (timestamp.set) or event.
    await refused({ ...a, extrinsicIndex: 0 });
    await refused({ ...a, eventIndex: a.eventIndex + 1 });
    // A block that is not the chain's, or a height beyond its head.
    await refused({ ...a, blockHash: `0x${'11'.repeat(32)}` });
    await refused({ ...a, blockNumber: a.blockNumber + 1000 });
    await refused({ ...a, genesisHash: `0x${'22'.repeat(32)}` });
    // The same commitment remarked by someone else is not the gateway's anchor.
    const other = await sub.anchor(a, bob);
    await sub.verify(other, a);
    await refused(other, a, alice.address);
  });

  it('a resolver policy requires a recent anchor consistent with the answer', async () => {
    const a = store.latest(env.ledger.origin)!;
    const now = env.ledger.checkpoint();
    const answer = parseCheckpoint(parseNote(now.note).text);
    const logKey = parseVerifierKey(env.ledger.verifierKey);
    const candidate = {
      note: a.note,
      record: a.record,
      proof: env.ledger.consistencyProof(a.record.size, now.size),
    };
    const policy = { chain: sub, maxAgeMs: 10 * 60_000, account: alice.address };
    const ok = await checkAnchored(answer, [candidate], logKey, policy);
    assert.equal(ok.record.blockHash, a.record.blockHash);
    // Too old by the block's own time, another account, a record of another checkpoint.
    await assert.rejects(
      checkAnchored(answer, [candidate], logKey, { ...policy, maxAgeMs: 1 }, ok.blockTime + 1000),
      {
        code: 'ERR_ANCHOR_REQUIRED',
      },
    );
    await assert.rejects(
      checkAnchored(answer, [candidate], logKey, { ...policy, account: bob.address }),
      {
        code: 'ERR_ANCHOR_REQUIRED',
      },
    );
    const forged = { ...candidate, record: { ...a.record, extrinsicIndex: 0 } };
    await assert.rejects(checkAnchored(answer, [forged], logKey, policy), {
      code: 'ERR_ANCHOR_REQUIRED',
    });
    await assert.rejects(checkAnchored(answer, [], logKey, policy), {
      code: 'ERR_ANCHOR_REQUIRED',
    });
  });

  it('anchors after an interval even below N entries', async () => {
    await register(1);
    const a = await until('an anchor of size 3', () => {
      const l = store.latest(env.ledger.origin);
      return l !== undefined && l.record.size === 3 ? l : undefined;
    });
    await sub.verify(a.record, a.record, alice.address);
  });

  it('registers while the chain is down, and anchors again on a restarted chain', async () => {
    await chain.stop();
    const t0 = Date.now();
    await register(2);
    assert.ok(Date.now() - t0 < 5000, 'registrations do not wait for the chain');
    assert.equal(env.ledger.checkpoint().size, 5);
    await sleep(1500);
    assert.equal(store.latest(env.ledger.origin)!.record.size, 3, 'not anchored while down');
    // A fresh chain from genesis: the old anchors are gone from it.
    await chain.start();
    await chain.fund(alice.address);
    const a = await until(
      'an anchor of size 5 on the new chain',
      () => {
        const l = store.latest(env.ledger.origin);
        return l !== undefined && l.record.size === 5 ? l : undefined;
      },
      { ...SLOW, ms: 60_000 },
    );
    await sub.verify(a.record, a.record, alice.address);
    // The anchor of size 3 was on the old chain only; once rechecked it is dropped and the
    // current checkpoint is what is anchored (and verifies) on the new one.
  });

  it('re-anchors when the chain no longer holds the latest anchor', async () => {
    const before = store.latest(env.ledger.origin)!.record;
    await chain.stop();
    await chain.start();
    await chain.fund(alice.address);
    const a = await until(
      'a re-anchor of size 5',
      () => {
        const l = store.latest(env.ledger.origin);
        return l !== undefined && l.record.size === 5 && l.record.blockHash !== before.blockHash
          ? l
          : undefined;
      },
      { ...SLOW, ms: 60_000 },
    );
    await sub.verify(a.record, a.record, alice.address);
    await assert.rejects(sub.verify(before, before), { code: 'ERR_ANCHOR_INVALID' });
  });
});
