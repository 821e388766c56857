// `aftersmtp serve` with AFTERSMTP_WITNESSES naming a real litewitness: the gateway sends its
// checkpoints through the queue, and GetCheckpoint and ResolveIdentity answers carry the
// cosigned checkpoint, which a resolver's k-of-n policy accepts.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { GatewayClient } from '../../src/amp/client-api/client.js';
import { parseCheckpoint, parseNote, parseVerifierKey } from '../../src/ledger/index.js';
import {
  CosignatureSigner,
  checkWitnessed,
  cosignatureKeyId,
  parseWitnessKey,
} from '../../src/witness/index.js';
import { E2eGateway, cli } from '../e2e/helpers.js';
import { tempDir } from '../helpers/cli.js';
import { startWitness, witnessSkip, type TestWitness } from './litewitness.js';

const skip = witnessSkip();

describe('serve sends its checkpoints to witnesses', { skip, timeout: 120_000 }, () => {
  let witness: TestWitness;
  let gw: E2eGateway;
  let client: GatewayClient;
  const work = tempDir('witness-serve');

  before(async () => {
    witness = await startWitness();
    gw = await E2eGateway.prepare(work, 'witnessed.example', {
      AFTERSMTP_WITNESS_INTERVAL: '1',
      AFTERSMTP_WITNESS_EVERY_ENTRIES: '1',
      AFTERSMTP_QUEUE_RETRY_BASE_MS: '500',
    });
    await witness.addLog(`${gw.domain}/aftersmtp-ledger/v1`, gw.logKey);
    gw.env.AFTERSMTP_WITNESSES = `${witness.vkey}@${witness.url}`;
    await gw.start();
    client = await GatewayClient.connect({ target: gw.grpc, pin: { spki: gw.spki } });
  });

  after(async () => {
    client?.close();
    await gw?.stop();
    await witness?.close();
  });

  it('aftersmtp resolve --require-witnesses accepts the answer only with k known cosignatures', async () => {
    await gw.waitLog((l) => l.msg === 'witness: checkpoint cosigned', 30_000);
    const did = String(gw.ready?.gateway);
    const base = [
      'resolve',
      did,
      '--gateway',
      gw.grpc,
      '--gateway-spki',
      gw.spki,
      '--log-key',
      gw.logKey,
      '--json',
    ];
    const ok = await cli(
      [
        ...base,
        '--state',
        join(work, 'a.json'),
        '--require-witnesses',
        '1',
        '--witness',
        witness.vkey,
      ],
      {},
    );
    assert.equal(ok.code, 0, ok.stderr);
    const out = JSON.parse(ok.stdout) as { verified: boolean; witnessedBy: string[] };
    assert.equal(out.verified, true);
    assert.deepEqual(out.witnessedBy, [parseWitnessKey(witness.vkey).name]);
    const stranger = new CosignatureSigner('other.test/w', Buffer.alloc(32, 2)).vkey;
    const refused = await cli(
      [...base, '--state', join(work, 'b.json'), '--require-witnesses', '1', '--witness', stranger],
      {},
    );
    assert.equal(refused.code, 1);
    assert.match(refused.stdout + refused.stderr, /ERR_WITNESS_QUORUM/);
  });

  it('serves the cosigned checkpoint with lookups', async () => {
    await gw.waitLog((l) => l.msg === 'witness: checkpoint cosigned', 30_000);
    const logKey = parseVerifierKey(gw.logKey);
    const policy = { witnesses: [parseWitnessKey(witness.vkey)], k: 1 };
    const res = await client.getCheckpoint({});
    const answer = parseCheckpoint(parseNote(res.checkpoint).text);
    const candidates = (res.attested ?? []).map((a) => ({
      note: a.checkpoint,
      proof: a.consistency?.proof ?? [],
    }));
    assert.deepEqual(checkWitnessed(answer, candidates, logKey, policy), [
      policy.witnesses[0]?.name,
    ]);

    const did = String(gw.ready?.gateway);
    const r = await client.resolveIdentity({ did });
    const inclusion = r.inclusion;
    assert.ok(inclusion !== null);
    const rAnswer = parseCheckpoint(parseNote(inclusion.checkpoint).text);
    const rCandidates = (r.attested ?? []).map((a) => ({
      note: a.checkpoint,
      proof: a.consistency?.proof ?? [],
    }));
    assert.equal(checkWitnessed(rAnswer, rCandidates, logKey, policy).length, 1);
    // A resolver that knows another witness only refuses it.
    const strangerKey = Buffer.alloc(32, 1);
    const stranger = parseWitnessKey(
      `other.test/w+${cosignatureKeyId('other.test/w', strangerKey).toString('hex')}+${Buffer.concat([Buffer.from([4]), strangerKey]).toString('base64')}`,
    );
    assert.throws(
      () => checkWitnessed(rAnswer, rCandidates, logKey, { witnesses: [stranger], k: 1 }),
      { code: 'ERR_WITNESS_QUORUM' },
    );
  });
});

describe('a gateway witnesses a peer gateway', { timeout: 120_000 }, () => {
  let alpha: E2eGateway;
  let beta: E2eGateway;
  const work = tempDir('peer-witness');

  before(async () => {
    beta = await E2eGateway.prepare(work, 'beta.example', {
      AFTERSMTP_WITNESS_INTERVAL: '1',
      AFTERSMTP_WITNESS_EVERY_ENTRIES: '1',
      AFTERSMTP_QUEUE_RETRY_BASE_MS: '500',
    });
    alpha = await E2eGateway.prepare(work, 'alpha.example', {
      AFTERSMTP_WITNESS_LISTEN: '127.0.0.1:0',
      AFTERSMTP_WITNESS_LOGS: beta.logKey,
    });
    await alpha.start();
    const w = alpha.ready?.witness as { listen: string; key: string };
    beta.env.AFTERSMTP_WITNESSES = `${w.key}@http://${w.listen}`;
    await beta.start();
  });

  after(async () => {
    await beta?.stop();
    await alpha?.stop();
  });

  it("alpha cosigns beta's checkpoints, and beta serves the cosignature", async () => {
    await beta.waitLog((l) => l.msg === 'witness: checkpoint cosigned', 30_000);
    const client = await GatewayClient.connect({ target: beta.grpc, pin: { spki: beta.spki } });
    try {
      const res = await client.getCheckpoint({});
      const answer = parseCheckpoint(parseNote(res.checkpoint).text);
      const w = alpha.ready?.witness as { key: string };
      const vouch = checkWitnessed(
        answer,
        (res.attested ?? []).map((a) => ({
          note: a.checkpoint,
          proof: a.consistency?.proof ?? [],
        })),
        parseVerifierKey(beta.logKey),
        { witnesses: [parseWitnessKey(w.key)], k: 1 },
      );
      assert.deepEqual(vouch, ['alpha.example/aftersmtp-witness/v1']);
    } finally {
      client.close();
    }
  });
});
