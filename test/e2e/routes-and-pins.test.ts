// Two gateways with no DNS at all (issue 13): each knows the other only by AFTERSMTP_RELAY_ROUTES
// and trusts the other's log key because its operator pinned it (`aftersmtp ledger pin`, given
// out of band). Without the pin the relay refuses loudly (ERR_LEDGER_NO_PIN, naming the command
// that fixes it); with it, mail goes from alpha to beta through `aftersmtp send`, whose client
// pins beta's key for itself (`ledger pin --client`), and arrives verified. The pin is read by the
// running gateway (no restart).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { tempDir } from '../helpers/cli.js';
import { E2eGateway, cli, makeUserWith, userArgs, type E2eUser } from './helpers.js';

describe('two gateways federated by routes and pinned log keys, no DNS', () => {
  const work = tempDir('routes-pins');
  let alpha: E2eGateway;
  let beta: E2eGateway;
  let alice: E2eUser;
  let bob: E2eUser;
  // No DNS server answers: every name lookup fails fast, as on a network without the records.
  const noDns = { AFTERSMTP_DNS_SERVERS: '127.0.0.1:9' };
  let routes = '';

  before(async () => {
    alpha = await E2eGateway.prepare(work, 'alpha.example', {
      AFTERSMTP_SUITE: 'classic-v1',
      ...noDns,
    });
    beta = await E2eGateway.prepare(work, 'beta.example', {
      AFTERSMTP_SUITE: 'classic-v1',
      ...noDns,
    });
    routes = [alpha, beta]
      .map((g) => `${g.domain}=127.0.0.1:${g.quicPort}/127.0.0.1:${g.grpcPort}`)
      .join(',');
    for (const g of [alpha, beta]) g.env.AFTERSMTP_RELAY_ROUTES = routes;
    await Promise.all([alpha.start(), beta.start()]);
    // Users register with their own gateway, whose key they pin out of band too.
    alice = await makeUserWith(work, alpha, 'alice', { ...noDns }, alpha.logKey);
    bob = await makeUserWith(work, beta, 'bob', { ...noDns }, beta.logKey);
  });

  after(async () => {
    await alpha?.stop();
    await beta?.stop();
  });

  async function send(body: string) {
    return cli(
      [
        'send',
        ...userArgs(alice),
        '--to',
        bob.did,
        '--subject',
        'routes',
        '--body-file',
        '-',
        '--json',
      ],
      { ...noDns, AFTERSMTP_RELAY_ROUTES: routes },
      body,
    );
  }

  test('without a pin: refused, and the error says how to pin', async () => {
    const r = await send('no pin yet');
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /no pinned log key for beta\.example and none from DNS: .*aftersmtp ledger pin beta\.example <key>/,
    );
  });

  test('pinned on both sides: delivered and verified, without restarting the gateways', async () => {
    const host = (g: E2eGateway) => ({ AFTERSMTP_DATA_DIR: g.dataDir, AFTERSMTP_DOMAIN: g.domain });
    for (const [g, other] of [
      [alpha, beta],
      [beta, alpha],
    ] as const) {
      const p = await cli(['ledger', 'pin', other.domain, other.logKey], host(g));
      assert.equal(p.code, 0, p.stderr);
      assert.match(
        p.stdout,
        new RegExp(
          `pinned the log key of ${other.domain.replace('.', '\\.')} in .*log-pins\\.json`,
        ),
      );
    }
    const c = await cli(
      ['ledger', 'pin', '--state', alice.stateFile, 'beta.example', beta.logKey],
      {},
    );
    assert.equal(c.code, 0, c.stderr);
    const list = await cli(['ledger', 'pin', '--list', '--json'], host(alpha));
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual(
      (JSON.parse(list.stdout) as { domain: string; pinned: string }[]).map((x) => [
        x.domain,
        x.pinned,
      ]),
      [['beta.example', beta.logKey]],
    );

    const sent = await send('over routes, trusted by pins');
    assert.equal(sent.code, 0, sent.stderr);
    const entry = (JSON.parse(sent.stdout) as { envelopes: { queueEntryId: string }[] })
      .envelopes[0]?.queueEntryId;
    await alpha.waitLog(
      (l) => l.msg === 'delivery settled' && l.entry === entry && (l.delivered as number) > 0,
      30_000,
    );
    const inbox = await cli(['inbox', ...userArgs(bob), '--json', '--follow', '--limit', '1'], {
      ...noDns,
      AFTERSMTP_RELAY_ROUTES: routes,
    });
    // bob's client verifies alice against alpha's ledger: it needs alpha's key pinned too.
    assert.equal(inbox.code, 1, 'the author cannot be verified without alpha pinned');
    const pinned = await cli(
      ['ledger', 'pin', '--state', bob.stateFile, 'alpha.example', alpha.logKey],
      {},
    );
    assert.equal(pinned.code, 0, pinned.stderr);
    const again = await cli(['inbox', ...userArgs(bob), '--json'], {
      ...noDns,
      AFTERSMTP_RELAY_ROUTES: routes,
    });
    assert.equal(again.code, 0, again.stderr);
    const [m] = (JSON.parse(again.stdout) as { messages: Record<string, unknown>[] }).messages;
    assert.equal(m?.body, 'over routes, trusted by pins');
    assert.equal((m?.author as { verified: boolean }).verified, true);
    assert.equal((m?.receipt as { verified: boolean }).verified, true);
  });
});
