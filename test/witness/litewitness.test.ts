// Witnesses against an independent implementation: litewitness (filippo.io/torchwood) cosigns
// the log's checkpoints sent through the durable queue (C2SP tlog-witness add-checkpoint with a
// consistency proof), its cosignatures verify (C2SP tlog-cosignature), a resolver's k-of-n
// policy counts them, and it refuses a forked checkpoint of the log.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DeliveryWorker } from '../../src/delivery/worker.js';
import { parseCheckpoint, parseNote, parseVerifierKey } from '../../src/ledger/index.js';
import { LmdbQueue } from '../../src/queue/lmdb.js';
import {
  CosignatureSigner,
  WitnessStore,
  Witnesser,
  addCheckpoint,
  checkWitnessed,
  parseWitnessKey,
  parseWitnessList,
  verifyCosignatures,
} from '../../src/witness/index.js';
import { identity, openLedger, registerRequest } from '../ledger/helpers.js';
import { startWitness, witnessSkip, type TestWitness } from './litewitness.js';
import { until } from '../helpers/wait.js';

/** A chain or a witness answers in seconds: look every 100 ms, for up to 20 s. */
const SLOW = { ms: 20_000, everyMs: 100 };

const skip = witnessSkip();
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe('witnesses: litewitness cosigns our checkpoints', { skip, timeout: 120_000 }, () => {
  let witness: TestWitness;
  const env = openLedger();
  // The same log key, other entries: a fork of the log.
  const fork = openLedger();
  let queue: LmdbQueue;
  let store: WitnessStore;
  let worker: DeliveryWorker;
  let witnesser: Witnesser;
  let n = 0;

  const register = async (ledger = env.ledger, count = 1): Promise<void> => {
    for (let i = 0; i < count; i++) {
      const keys = identity(`user${n++}`);
      ledger.register(await registerRequest(ledger, keys));
    }
  };
  const cosignedSize = (size: number) => () => {
    const l = store.latest(env.ledger.origin);
    return l !== undefined && l.size === size ? l : undefined;
  };

  before(async () => {
    witness = await startWitness();
    await witness.addLog(env.ledger.origin, env.ledger.verifierKey);
    queue = new LmdbQueue({
      path: join(env.dir, 'queue'),
      bounce: { reportingMta: 'mx.test' },
      retry: { baseMs: 200, capMs: 1000, maxAgeMs: 600_000 },
    });
    store = new WitnessStore(join(env.dir, 'witness.sqlite'));
    witnesser = new Witnesser({
      source: env.ledger,
      witnesses: parseWitnessList(`${witness.vkey}@${witness.url}`),
      store,
      queue,
      intervalMs: 60_000,
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
      handlers: { 'witness:': witnesser.deliver },
    });
    worker.start();
    witnesser.start();
  });

  after(async () => {
    await witnesser?.stop();
    await worker?.stop();
    await queue?.close();
    store?.close();
    await witness?.close();
    env.cleanup();
    fork.cleanup();
  });

  it('cosigns a checkpoint, and the cosignature verifies with the witness key', async () => {
    await register(env.ledger, 2);
    const c = await until('a cosignature of size 2', cosignedSize(2), SLOW);
    const key = parseWitnessKey(witness.vkey);
    const [s] = verifyCosignatures(c.note, [key]);
    assert.equal(s?.witness, key.name);
    assert.ok(Math.abs(s.time * 1000 - Date.now()) < 60_000);
    // A resolver that requires 1 of its known witnesses accepts the current checkpoint through
    // it; one that requires 2 does not.
    await register(env.ledger, 1);
    const now = env.ledger.checkpoint();
    const answer = parseCheckpoint(parseNote(now.note).text);
    const logKey = parseVerifierKey(env.ledger.verifierKey);
    const other = new CosignatureSigner('other.test/witness', Buffer.alloc(32, 3));
    const candidate = { note: c.note, proof: env.ledger.consistencyProof(2, now.size) };
    assert.deepEqual(
      checkWitnessed(answer, [candidate], logKey, {
        witnesses: [key, parseWitnessKey(other.vkey)],
        k: 1,
      }),
      [key.name],
    );
    assert.throws(() => checkWitnessed(answer, [candidate], logKey, { witnesses: [key], k: 2 }), {
      code: 'ERR_WITNESS_QUORUM',
    });
    // Stale cosignatures do not count under a maximum age.
    assert.throws(
      () =>
        checkWitnessed(
          answer,
          [candidate],
          logKey,
          { witnesses: [key], k: 1, maxAgeMs: 1 },
          Date.now() + 10_000,
        ),
      { code: 'ERR_WITNESS_QUORUM' },
    );
  });

  it('cosigns the next checkpoint with a consistency proof from the one it saw', async () => {
    await register(env.ledger, 1);
    const c = await until('a cosignature of size 4', cosignedSize(4), SLOW);
    assert.equal(verifyCosignatures(c.note, [parseWitnessKey(witness.vkey)]).length, 1);
  });

  it('our own cosigner writes lines that verify, and a tampered line is refused', () => {
    const signer = new CosignatureSigner('gateway.test/witness', Buffer.alloc(32, 5));
    const key = parseWitnessKey(signer.vkey);
    const note = env.ledger.checkpoint().note;
    const text = parseNote(note).text;
    const good = note + signer.cosign(text, 1_800_000_000);
    assert.equal(verifyCosignatures(good, [key])[0]?.time, 1_800_000_000);
    const tampered = note + signer.cosign(text.replace(/\n\d+\n/, '\n999\n'), 1_800_000_000);
    assert.throws(() => verifyCosignatures(tampered, [key]), { code: 'ERR_WITNESS_COSIGNATURE' });
  });

  it('refuses a forked checkpoint of the log', async () => {
    // The fork has as many entries as the log the witness saw, and more, but other roots.
    await register(fork.ledger, 6);
    const seen = 4;
    const forked = fork.ledger.checkpoint();
    assert.equal(forked.size, 6);
    // add-checkpoint from the size the witness saw, with the fork's own consistency proof.
    await assert.rejects(
      addCheckpoint(witness.url, seen, fork.ledger.consistencyProof(seen, 6), forked.note),
      (err: Error & { code?: string; status?: number }) =>
        err.code === 'ERR_WITNESS_REFUSED' && err.status === 422,
    );
    // A different root for the very size the witness saw.
    const fork4 = openLedger();
    try {
      await register(fork4.ledger, 4);
      await assert.rejects(addCheckpoint(witness.url, seen, [], fork4.ledger.checkpoint().note), {
        code: 'ERR_WITNESS_REFUSED',
      });
    } finally {
      fork4.cleanup();
    }
    // Through the witnesser, the refusal is a permanent failure of the job (logged as an error).
    const outcomes = await witnesser.deliver({
      jobId: 'j',
      entryId: 'e',
      messageId: 'm',
      sender: '',
      senderKind: 'amp',
      bounce: true,
      destination: `witness:${parseWitnessKey(witness.vkey).name}`,
      recipients: ['w'],
      body: Buffer.from(forked.note),
      enqueuedAt: Date.now(),
      deliveries: 0,
    });
    assert.equal(outcomes[0]?.status, 'permanent');
    // The witness still holds the real log's size 4: the next real checkpoint is cosigned.
    await register(env.ledger, 2);
    await until('a cosignature of size 6 of the real log', cosignedSize(6), SLOW);
  });
});
