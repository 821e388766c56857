// `aftersmtp receipt`'s check of one hop (checkHop, PROTOCOL.md §12.7) on answers built from a
// real transit log: a good answer is proven and anchored; a tampered receipt, proof, checkpoint or
// anchor record, or a gateway record without the transit key, is refused with its typed code;
// an answer without a proof is "not yet".
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { anchorCommitment } from '../../src/anchor/index.js';
import { receiptToMsg } from '../../src/amp/client-api/index.js';
import {
  ownTransitProof,
  type GetTransitReceiptResponseMsg,
  type TransitProofMsg,
} from '../../src/amp/client-api/transit.js';
import { checkHop } from '../../src/cli/commands/receipt.js';
import type { ResolvedIdentity } from '../../src/cli/commands/send.js';
import { signReceipt } from '../../src/envelope/receipt.js';
import { NoteSigner, parseCheckpoint, parseNote } from '../../src/ledger/index.js';
import {
  EXT_TRANSIT_LOG_KEY,
  TransitLog,
  transitCommitment,
  transitOrigin,
} from '../../src/transit/index.js';
import { identity, tempDir } from '../ledger/helpers.js';

const DOMAIN = 'beta.example';
const gateway = identity('gateway', 'classic-v1', DOMAIN);
const signer = new NoteSigner(transitOrigin(DOMAIN), Buffer.alloc(32, 5));
const BOB = `did:aftersmtp:${DOMAIN}:bob`;

describe('aftersmtp receipt: checking a hop', () => {
  const { dir, cleanup } = tempDir();
  const log = new TransitLog(join(dir, 'transit.sqlite'), DOMAIN, signer);
  after(() => {
    log.close();
    cleanup();
  });
  const receipt = signReceipt(
    {
      messageId: Buffer.alloc(16, 0xab),
      ciphertextHash: Buffer.alloc(32, 1),
      recipient: BOB,
      sender: 'did:aftersmtp:alpha.example:alice',
      deliveredAt: 1_700_000_000_000,
    },
    gateway,
  );
  const messageId = receipt.messageId.toString('hex');
  const published: ResolvedIdentity = {
    did: gateway.did,
    record: gateway.record,
    checkpoint: { origin: 'x', size: 1, root: Buffer.alloc(32), extensions: [] },
    extensions: [{ name: EXT_TRANSIT_LOG_KEY, value: signer.publicKey }],
  };
  const resolve = async () => published;

  async function answer(): Promise<{ res: GetTransitReceiptResponseMsg; proof: TransitProofMsg }> {
    await log.append([Buffer.alloc(32, 9), Buffer.alloc(32, 8)]);
    await log.append([transitCommitment(receipt)]);
    await log.append([Buffer.alloc(32, 7)]);
    const anchoredNote = log.checkpoint().note;
    const cp = parseCheckpoint(parseNote(anchoredNote).text);
    const proof = await ownTransitProof(
      {
        log,
        anchored: () => ({
          note: anchoredNote,
          size: cp.size,
          anchor: {
            genesis_hash: Buffer.alloc(32, 1),
            block_hash: Buffer.alloc(32, 2),
            block_number: 42,
            extrinsic_index: 1,
            event_index: 3,
            account: '5Grw',
            block_time_ms: 1_700_000_100_000,
            commitment: anchorCommitment(cp),
          },
        }),
      },
      transitCommitment(receipt),
    );
    return { res: { receipt: receiptToMsg(receipt), transit: proof, transit_error: '' }, proof };
  }

  it('a good answer: proven, and anchored at the block (chain not asked)', async () => {
    const { res } = await answer();
    const hop = await checkHop(res, BOB, messageId, resolve);
    assert.equal(hop.refused, false);
    assert.equal(hop.from, 'did:aftersmtp:alpha.example:gateway');
    assert.equal(hop.to, gateway.did);
    assert.equal(hop.proven?.origin, `${DOMAIN}/aftersmtp-transit/v1`);
    assert.equal(hop.proven?.logKey, signer.verifierKey);
    assert.equal(hop.anchored?.blockNumber, 42);
    assert.equal(hop.anchored?.blockHash, `0x${'02'.repeat(32)}`);
    assert.equal(hop.anchored?.chainChecked, false);
  });

  it('refuses tampering, each with its code', async () => {
    const { res, proof } = await answer();
    const refused = async (
      r: GetTransitReceiptResponseMsg,
      field: 'receipt' | 'proof' | 'anchor',
      code: string,
      who = resolve,
    ) => {
      const hop = await checkHop(r, BOB, messageId, who);
      assert.equal(hop.refused, true);
      const text =
        field === 'receipt'
          ? hop.receipt.error
          : field === 'proof'
            ? hop.notProven
            : hop.notAnchored;
      assert.match(String(text), new RegExp(code));
    };
    const rm = res.receipt as NonNullable<GetTransitReceiptResponseMsg['receipt']>;
    await refused(
      { ...res, receipt: { ...rm, delivered_at: rm.delivered_at + 1 } },
      'receipt',
      'ERR_RECEIPT_SIGNATURE',
    );
    const flipped = proof.proof.map((h, i) => (i === 0 ? Buffer.from(h.map((b) => b ^ 0x80)) : h));
    await refused({ ...res, transit: { ...proof, proof: flipped } }, 'proof', 'ERR_TRANSIT_PROOF');
    await refused(
      { ...res, transit: { ...proof, leaf_index: proof.leaf_index + 1 } },
      'proof',
      'ERR_TRANSIT_PROOF',
    );
    const forged = new NoteSigner(transitOrigin(DOMAIN), Buffer.alloc(32, 6));
    const cp = parseCheckpoint(parseNote(proof.checkpoint).text);
    const { signCheckpoint } = await import('../../src/ledger/index.js');
    await refused(
      { ...res, transit: { ...proof, checkpoint: signCheckpoint(cp, forged) } },
      'proof',
      'ERR_TRANSIT_CHECKPOINT',
    );
    await refused(res, 'proof', 'ERR_TRANSIT_KEY', async () => ({ ...published, extensions: [] }));
    const anchored = proof.anchored as NonNullable<TransitProofMsg['anchored']>;
    const anchor = anchored.anchor as NonNullable<typeof anchored.anchor>;
    await refused(
      {
        ...res,
        transit: {
          ...proof,
          anchored: { ...anchored, anchor: { ...anchor, commitment: Buffer.alloc(32) } },
        },
      },
      'anchor',
      'ERR_TRANSIT_ANCHOR',
    );
  });

  it('an answer without a proof is not yet proven, and not a refusal', async () => {
    const hop = await checkHop(
      {
        receipt: receiptToMsg(receipt),
        transit: null,
        transit_error: 'ERR_RELAY_UNAVAILABLE: down',
      },
      BOB,
      messageId,
      resolve,
    );
    assert.equal(hop.refused, false);
    assert.equal(hop.receipt.verified, true);
    assert.equal(hop.notProven, 'not yet: ERR_RELAY_UNAVAILABLE: down');
    assert.equal(hop.notAnchored, 'not yet');
  });
});
