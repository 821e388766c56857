// `aftersmtp serve` with AFTERSMTP_SUBSTRATE_URL against a real runtime (chopsticks): the ledger's
// checkpoints are anchored through the queue, GetCheckpoint and ResolveIdentity answers carry the
// anchor record with a consistency proof, `aftersmtp ledger verify-anchor` checks it on the chain
// and refuses a forged record; a dev URI as the key is refused without the dev mode.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { anchorCommitment } from '../../src/anchor/index.js';
import { GatewayClient } from '../../src/amp/client-api/client.js';
import { parseCheckpoint, parseNote, verifyConsistency } from '../../src/ledger/index.js';
import { E2eGateway, cli } from '../e2e/helpers.js';
import { tempDir } from '../helpers/cli.js';
import { chainSkip, startChain, type TestChain } from './chain.js';

const skip = chainSkip();

describe('serve anchors its ledger on a Substrate chain', { skip, timeout: 180_000 }, () => {
  let chain: TestChain;
  let gw: E2eGateway;
  let client: GatewayClient;
  const work = tempDir('anchor-serve');
  const keyFile = join(work, 'anchor.key');
  writeFileSync(keyFile, '//Alice\n', { mode: 0o600 });

  before(async () => {
    chain = await startChain();
    const { anchorAccountFromUri } = await import('../../src/anchor/index.js');
    await chain.fund(anchorAccountFromUri('//Alice', true).address);
    gw = await E2eGateway.prepare(work, 'anchor.example', {
      AFTERSMTP_SUBSTRATE_URL: chain.url,
      AFTERSMTP_ANCHOR_KEY_FILE: keyFile,
      AFTERSMTP_ANCHOR_DEV_MODE: 'yes',
      AFTERSMTP_ANCHOR_INTERVAL: '2',
      AFTERSMTP_ANCHOR_EVERY_ENTRIES: '1',
      AFTERSMTP_QUEUE_RETRY_BASE_MS: '1000',
    });
    await gw.start();
    client = await GatewayClient.connect({ target: gw.grpc, pin: { spki: gw.spki } });
  });

  after(async () => {
    client?.close();
    await gw?.stop();
    await chain?.close();
  });

  it('serves the anchor record with checkpoints, and verify-anchor checks it on the chain', async () => {
    await gw.waitLog((l) => l.msg === 'anchor: checkpoint anchored', 30_000);
    const res = await client.getCheckpoint({ known_tree_size: 0 });
    const a = res.attested?.[0];
    assert.ok(a !== undefined, 'an attested checkpoint is served');
    assert.ok(a.anchor !== null);
    const cp = parseCheckpoint(parseNote(a.checkpoint).text);
    assert.ok(a.anchor.commitment.equals(anchorCommitment(cp)));
    const now = parseCheckpoint(parseNote(res.checkpoint).text);
    assert.ok(a.consistency !== null);
    assert.equal(a.consistency.to_size, now.size);
    verifyConsistency(cp.size, now.size, a.consistency.proof, cp.root, now.root);

    const env = { ...gw.env, AFTERSMTP_PASSPHRASE: 'gateway pass' };
    const v = await cli(['ledger', 'verify-anchor', '--json'], env);
    assert.equal(v.code, 0, v.stderr);
    const out = JSON.parse(v.stdout) as { verified: boolean; record: Record<string, unknown> };
    assert.equal(out.verified, true);

    // The same record pointing at another extrinsic of the block is refused (exit 1).
    const forged = join(work, 'forged.json');
    writeFileSync(forged, JSON.stringify({ ...out.record, extrinsicIndex: 0 }));
    const note = join(work, 'checkpoint.note');
    writeFileSync(note, a.checkpoint);
    const args = ['ledger', 'verify-anchor', '--checkpoint', note, '--key', gw.logKey];
    writeFileSync(join(work, 'ok.json'), JSON.stringify(out.record));
    const good = await cli([...args, '--record', join(work, 'ok.json')], env);
    assert.equal(good.code, 0, good.stderr);
    const bad = await cli([...args, '--record', forged], env);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /ERR_ANCHOR_INVALID|not system\.remarkWithEvent/);
  });

  it('aftersmtp resolve --require-anchor checks the served anchor on the chain', async () => {
    const { anchorAccountFromUri } = await import('../../src/anchor/index.js');
    const did = String(gw.ready?.gateway);
    const base = ['resolve', did, '--gateway', gw.grpc, '--gateway-spki', gw.spki];
    const policy = ['--log-key', gw.logKey, '--json', '--require-anchor', '600'];
    const withChain = [...policy, '--substrate-url', chain.url];
    const alice = anchorAccountFromUri('//Alice', true).address;
    const bob = anchorAccountFromUri('//Bob', true).address;
    const ok = await cli(
      [...base, ...withChain, '--anchor-account', alice, '--state', join(work, 'r1.json')],
      {},
    );
    assert.equal(ok.code, 0, ok.stderr);
    const out = JSON.parse(ok.stdout) as { anchor: { blockNumber: number } };
    assert.ok(out.anchor.blockNumber > 0);
    const other = await cli(
      [...base, ...withChain, '--anchor-account', bob, '--state', join(work, 'r2.json')],
      {},
    );
    assert.equal(other.code, 1);
    assert.match(other.stdout + other.stderr, /ERR_ANCHOR_REQUIRED/);
  });

  it('refuses a dev URI as the anchoring key without the dev mode', async () => {
    const other = await E2eGateway.prepare(work, 'dev.example', {
      AFTERSMTP_SUBSTRATE_URL: chain.url,
      AFTERSMTP_ANCHOR_KEY_FILE: keyFile,
    });
    const r = await cli(['serve'], other.env);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /dev URI/);
  });
});
