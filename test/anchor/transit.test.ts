// The transit log anchored by `aftersmtp serve` (PROTOCOL.md §12.7) against a real runtime
// (chopsticks): alice writes to carol on one gateway; the receipt's commitment lands in the
// transit log, whose checkpoint is anchored through the queue next to the ledger's (an anchor job
// of its own origin); `aftersmtp receipt --chain` reports the hop proven and anchored at the
// block, checked on the chain.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { anchorAccountFromUri } from '../../src/anchor/index.js';
import { E2eGateway, cli, makeUserWith, userArgs, type E2eUser } from '../e2e/helpers.js';
import { tempDir } from '../helpers/cli.js';
import { chainSkip, startChain, type TestChain } from './chain.js';

const skip = chainSkip();

describe('serve anchors its transit log', { skip, timeout: 240_000 }, () => {
  let chain: TestChain;
  let gw: E2eGateway;
  let alice: E2eUser;
  let carol: E2eUser;
  const work = tempDir('anchor-transit');
  const keyFile = join(work, 'anchor.key');
  writeFileSync(keyFile, '//Alice\n', { mode: 0o600 });

  before(async () => {
    chain = await startChain();
    await chain.fund(anchorAccountFromUri('//Alice', true).address);
    gw = await E2eGateway.prepare(work, 'transit.example', {
      AFTERSMTP_SUBSTRATE_URL: chain.url,
      AFTERSMTP_ANCHOR_KEY_FILE: keyFile,
      AFTERSMTP_ANCHOR_DEV_MODE: 'yes',
      AFTERSMTP_ANCHOR_INTERVAL: '2',
      AFTERSMTP_ANCHOR_EVERY_ENTRIES: '1',
      AFTERSMTP_QUEUE_RETRY_BASE_MS: '1000',
    });
    await gw.start();
    alice = await makeUserWith(work, gw, 'alice', {}, gw.logKey);
    carol = await makeUserWith(work, gw, 'carol', {}, gw.logKey);
  });

  after(async () => {
    await gw?.stop();
    await chain?.close();
  });

  it('proves the hop and reports where its checkpoint was anchored', async () => {
    const sent = await cli(
      [
        'send',
        ...userArgs(alice),
        '--to',
        carol.did,
        '--subject',
        'anchored',
        '--body-file',
        '-',
        '--json',
      ],
      {},
      'anchored receipt',
    );
    assert.equal(sent.code, 0, sent.stderr);
    const messageId = (JSON.parse(sent.stdout) as { envelopes: { messageId: string }[] })
      .envelopes[0]?.messageId as string;
    const origin = 'transit.example/aftersmtp-transit/v1';
    await gw.waitLog((l) => l.msg === 'anchor: checkpoint anchored' && l.origin === origin, 60_000);

    const r = await cli(
      [
        'receipt',
        messageId,
        ...userArgs(alice),
        '--recipient',
        carol.did,
        '--chain',
        chain.url,
        '--json',
      ],
      {},
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const [hop] = (JSON.parse(r.stdout) as { hops: Record<string, unknown>[] }).hops;
    assert.equal((hop?.proven as { origin: string }).origin, origin);
    const anchored = hop?.anchored as {
      blockHash: string;
      blockNumber: number;
      treeSize: number;
      chainChecked: boolean;
    };
    assert.ok(anchored !== undefined, `anchored: ${JSON.stringify(hop)}`);
    assert.match(anchored.blockHash, /^0x[0-9a-f]{64}$/);
    assert.ok(anchored.blockNumber > 0);
    assert.equal(anchored.chainChecked, true);

    const text = await cli(
      ['receipt', messageId, ...userArgs(alice), '--recipient', carol.did],
      {},
    );
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /anchored {2}block 0x[0-9a-f]{64} #\d+ at \S+ \(checkpoint of size \d+, chain not asked\)/,
    );
  });
});
