// A gateway acting as a witness (src/witness/server.ts) beside litewitness: both cosign the same
// checkpoints sent by the witnesser through the queue, so a resolver's 2-of-2 policy holds; ours
// refuses a forked checkpoint (422), a wrong old size (409 with the size it knows), an unknown
// log (403) and malformed requests (400).
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Server } from 'node:http';
import { DeliveryWorker } from '../../src/delivery/worker.js';
import { parseCheckpoint, parseNote, parseVerifierKey } from '../../src/ledger/index.js';
import { LmdbQueue } from '../../src/queue/lmdb.js';
import {
  CosignatureSigner,
  WitnessService,
  WitnessStore,
  Witnesser,
  addCheckpoint,
  checkWitnessed,
  parseWitnessKey,
  parseWitnessList,
  startWitnessServer,
} from '../../src/witness/index.js';
import { identity, logSigner, openLedger, registerRequest } from '../ledger/helpers.js';
import { startWitness, witnessSkip, type TestWitness } from './litewitness.js';
import { until } from '../helpers/wait.js';

const skip = witnessSkip();
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

describe('a gateway as a witness, beside litewitness', { skip, timeout: 120_000 }, () => {
  let lite: TestWitness;
  let ours: WitnessService;
  let server: Server;
  let url: string;
  const env = openLedger();
  const fork = openLedger();
  let queue: LmdbQueue;
  let store: WitnessStore;
  let worker: DeliveryWorker;
  let witnesser: Witnesser;
  let n = 0;

  const register = async (ledger = env.ledger, count = 1): Promise<void> => {
    for (let i = 0; i < count; i++) {
      ledger.register(await registerRequest(ledger, identity(`user${n++}`)));
    }
  };

  before(async () => {
    lite = await startWitness();
    await lite.addLog(env.ledger.origin, env.ledger.verifierKey);
    ours = new WitnessService({
      path: join(env.dir, 'witnessing.sqlite'),
      signer: new CosignatureSigner('peer.example/aftersmtp-witness/v1', Buffer.alloc(32, 4)),
      logs: [env.ledger.verifierKey],
    });
    const started = await startWitnessServer(ours, '127.0.0.1', 0);
    server = started.server;
    url = `http://127.0.0.1:${started.port}`;
    queue = new LmdbQueue({
      path: join(env.dir, 'queue'),
      bounce: { reportingMta: 'mx.test' },
      retry: { baseMs: 200, capMs: 1000, maxAgeMs: 600_000 },
    });
    store = new WitnessStore(join(env.dir, 'witness.sqlite'));
    witnesser = new Witnesser({
      source: env.ledger,
      witnesses: parseWitnessList(`${lite.vkey}@${lite.url}, ${ours.vkey}@${url}`),
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
    await new Promise((resolve) => server?.close(resolve));
    ours?.close();
    await lite?.close();
    env.cleanup();
    fork.cleanup();
  });

  it('both witnesses cosign the same checkpoints: a 2-of-2 policy holds', async () => {
    await register(env.ledger, 2);
    await register(env.ledger, 2);
    const c = await until(
      'a checkpoint of size 4 with both cosignatures',
      () => {
        const latest = store.latest(env.ledger.origin);
        return latest?.size === 4 && latest.witnesses.length === 2 ? latest : undefined;
      },
      { ms: 20_000, everyMs: 100 },
    );
    const now = env.ledger.checkpoint();
    const answer = parseCheckpoint(parseNote(now.note).text);
    const vouch = checkWitnessed(
      answer,
      [{ note: c.note, proof: [] }],
      parseVerifierKey(env.ledger.verifierKey),
      { witnesses: [parseWitnessKey(lite.vkey), parseWitnessKey(ours.vkey)], k: 2 },
    );
    assert.equal(vouch.length, 2);
  });

  it('refuses forks, wrong old sizes, unknown logs and malformed requests', async () => {
    await register(fork.ledger, 6);
    const forked = fork.ledger.checkpoint();
    await assert.rejects(addCheckpoint(url, 4, fork.ledger.consistencyProof(4, 6), forked.note), {
      code: 'ERR_WITNESS_REFUSED',
      status: 422,
    });
    const fork4 = openLedger();
    try {
      await register(fork4.ledger, 4);
      await assert.rejects(addCheckpoint(url, 4, [], fork4.ledger.checkpoint().note), {
        status: 422,
      });
    } finally {
      fork4.cleanup();
    }
    assert.deepEqual(await addCheckpoint(url, 2, [], forked.note), {
      kind: 'conflict',
      knownSize: 4,
    });
    const stranger = openLedger({
      signer: logSigner('other.example', 9),
      domains: ['other.example'],
    });
    try {
      await assert.rejects(addCheckpoint(url, 0, [], stranger.ledger.checkpoint().note), {
        status: 403,
      });
    } finally {
      stranger.cleanup();
    }
    const res = await fetch(`${url}/add-checkpoint`, { method: 'POST', body: 'nonsense' });
    assert.equal(res.status, 400);
  });
});
