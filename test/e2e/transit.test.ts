// Proof of transit between two gateways (PROTOCOL.md §12.7): two real `aftersmtp serve`
// processes federated by routes and pinned log keys (no DNS). alice@alpha writes to bob@beta and
// to carol@alpha; `aftersmtp receipt` shows each hop's receipt proven in the transit log of the
// gateway that signed it (beta's fetched by alpha from beta over the relay's verified channel,
// alpha's from its own), checked by the client against the transit-log-key of the gateway's
// ledger record; anchoring is "not yet" without a chain. A tampered receipt or proof is refused
// with a typed error.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { GatewayClient, receiptFromMsg } from '../../src/amp/client-api/index.js';
import { transitProofFromMsg } from '../../src/amp/client-api/transit.js';
import { readKeyFile } from '../../src/identity/index.js';
import { NoteSigner } from '../../src/ledger/index.js';
import {
  TRANSIT_SEED_FILE,
  TransitError,
  transitOrigin,
  verifyTransitProof,
} from '../../src/transit/index.js';
import { tempDir } from '../helpers/cli.js';
import { E2eGateway, USER_PASS, cli, makeUserWith, userArgs, type E2eUser } from './helpers.js';

interface Hop {
  recipient: string;
  from: string;
  to?: string;
  receipt: { verified: boolean; error?: string };
  proven?: { leafIndex: number; treeSize: number; origin: string; logKey: string };
  notProven?: string;
  anchored?: unknown;
  notAnchored?: string;
  refused: boolean;
}

describe('proof of transit between two gateways', () => {
  const work = tempDir('transit');
  let alpha: E2eGateway;
  let beta: E2eGateway;
  let alice: E2eUser;
  let bob: E2eUser;
  let carol: E2eUser;
  const noDns = { AFTERSMTP_DNS_SERVERS: '127.0.0.1:9' };
  let env: Record<string, string>;
  let messageId = '';

  before(async () => {
    alpha = await E2eGateway.prepare(work, 'alpha.example', {
      AFTERSMTP_SUITE: 'classic-v1',
      ...noDns,
    });
    beta = await E2eGateway.prepare(work, 'beta.example', {
      AFTERSMTP_SUITE: 'classic-v1',
      ...noDns,
    });
    const routes = [alpha, beta]
      .map((g) => `${g.domain}=127.0.0.1:${g.quicPort}/127.0.0.1:${g.grpcPort}`)
      .join(',');
    for (const g of [alpha, beta]) g.env.AFTERSMTP_RELAY_ROUTES = routes;
    env = { ...noDns, AFTERSMTP_RELAY_ROUTES: routes };
    await Promise.all([alpha.start(), beta.start()]);
    for (const [g, other] of [
      [alpha, beta],
      [beta, alpha],
    ] as const) {
      const p = await cli(['ledger', 'pin', other.domain, other.logKey], {
        AFTERSMTP_DATA_DIR: g.dataDir,
        AFTERSMTP_DOMAIN: g.domain,
      });
      assert.equal(p.code, 0, p.stderr);
    }
    alice = await makeUserWith(work, alpha, 'alice', noDns, alpha.logKey);
    carol = await makeUserWith(work, alpha, 'carol', noDns, alpha.logKey);
    bob = await makeUserWith(work, beta, 'bob', noDns, beta.logKey);
    const pin = await cli(
      ['ledger', 'pin', '--state', alice.stateFile, beta.domain, beta.logKey],
      {},
    );
    assert.equal(pin.code, 0, pin.stderr);
    const sent = await cli(
      [
        'send',
        ...userArgs(alice),
        '--to',
        bob.did,
        '--to',
        carol.did,
        '--subject',
        'transit',
        '--body-file',
        '-',
        '--json',
      ],
      env,
      'proven hop by hop',
    );
    assert.equal(sent.code, 0, sent.stderr);
    const out = JSON.parse(sent.stdout) as {
      envelopes: { messageId: string; queueEntryId: string }[];
    };
    messageId = out.envelopes[0]?.messageId ?? '';
    for (const e of out.envelopes) {
      await alpha.waitLog(
        (l) =>
          l.msg === 'delivery settled' && l.entry === e.queueEntryId && (l.delivered as number) > 0,
        30_000,
      );
    }
  });

  after(async () => {
    await alpha?.stop();
    await beta?.stop();
  });

  async function receipt(extra: string[]) {
    return cli(['receipt', messageId, ...userArgs(alice), ...extra], env);
  }

  test('both hops are proven in the transit log of the gateway that signed the receipt', async () => {
    const r = await receipt(['--recipient', bob.did, '--recipient', carol.did, '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const { hops } = JSON.parse(r.stdout) as { messageId: string; hops: Hop[] };
    assert.equal(hops.length, 2);
    const [toBob, toCarol] = hops as [Hop, Hop];
    assert.equal(toBob.from, 'did:aftersmtp:alpha.example:gateway');
    assert.equal(toBob.to, 'did:aftersmtp:beta.example:gateway');
    assert.equal(toBob.receipt.verified, true);
    assert.equal(toBob.proven?.origin, 'beta.example/aftersmtp-transit/v1');
    assert.ok((toBob.proven?.treeSize ?? 0) > (toBob.proven?.leafIndex ?? -1));
    assert.equal(toBob.refused, false);
    assert.equal(toBob.notAnchored, 'not yet');
    assert.equal(toCarol.to, 'did:aftersmtp:alpha.example:gateway');
    assert.equal(toCarol.proven?.origin, 'alpha.example/aftersmtp-transit/v1');
    // The key the client checked with is the one in beta's data directory.
    const betaKey = new NoteSigner(
      transitOrigin(beta.domain),
      readFileSync(join(beta.dataDir, TRANSIT_SEED_FILE)),
    );
    assert.equal(toBob.proven?.logKey, betaKey.verifierKey);
  });

  test('the text output says which hops are proven and anchored', async () => {
    const r = await receipt(['--recipient', bob.did]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^message    ${messageId}$`, 'm'));
    assert.match(
      r.stdout,
      /hop {7}did:aftersmtp:alpha\.example:gateway -> did:aftersmtp:beta\.example:gateway, delivered /,
    );
    assert.match(r.stdout, /receipt {3}signed by the receiving gateway \(verified\)/);
    assert.match(
      r.stdout,
      /proven {4}leaf \d+ of beta\.example\/aftersmtp-transit\/v1, checkpoint of size \d+/,
    );
    assert.match(r.stdout, /anchored {2}not yet/);
  });

  test('a tampered receipt or proof is refused with a typed error', async () => {
    const keys = await readKeyFile(alice.keyFile, USER_PASS);
    const client = await GatewayClient.connect({ target: alpha.grpc, pin: { spki: alpha.spki } });
    try {
      const { token } = await client.login(keys);
      const res = await client.getTransitReceipt(token, {
        message_id: messageId,
        recipient: bob.did,
      });
      const r = receiptFromMsg(res.receipt);
      assert.ok(res.transit !== null);
      const p = transitProofFromMsg(res.transit);
      const key = new NoteSigner(
        transitOrigin(beta.domain),
        readFileSync(join(beta.dataDir, TRANSIT_SEED_FILE)),
      ).publicKey;
      verifyTransitProof(r, p, key);
      const refused = (c: string) => (err: unknown) =>
        err instanceof TransitError && err.code === c;
      assert.throws(
        () => verifyTransitProof({ ...r, deliveredAt: r.deliveredAt + 1 }, p, key),
        refused('ERR_TRANSIT_PROOF'),
      );
      const other = {
        ...p,
        leafIndex: p.leafIndex === 0 ? 1 : 0,
        treeSize: Math.max(p.treeSize, 2),
      };
      assert.throws(() => verifyTransitProof(r, other, key), refused('ERR_TRANSIT_PROOF'));
      assert.throws(
        () =>
          verifyTransitProof(
            r,
            { ...p, checkpoint: p.checkpoint.replace('=\n\n', '=\n\n\n') },
            key,
          ),
        refused('ERR_TRANSIT_CHECKPOINT'),
      );
      // A proof from alpha's log for beta's receipt: another log's key and origin.
      const alphaKey = new NoteSigner(
        transitOrigin(alpha.domain),
        readFileSync(join(alpha.dataDir, TRANSIT_SEED_FILE)),
      ).publicKey;
      assert.throws(() => verifyTransitProof(r, p, alphaKey), refused('ERR_TRANSIT_CHECKPOINT'));
      // Nobody else's receipts are readable, not even as proofs.
      const none = await GatewayClient.connect({ target: beta.grpc, pin: { spki: beta.spki } });
      try {
        await assert.rejects(none.getTransitProof({ commitment: Buffer.alloc(32, 7) }), {
          code: 'ERR_TRANSIT_UNKNOWN',
        });
      } finally {
        none.close();
      }
    } finally {
      client.close();
    }
  });
});
