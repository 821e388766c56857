// `aftersmtp send` and `aftersmtp inbox` against a real `aftersmtp serve`: recipients' keys
// resolved with verified proofs, sealed, dispatched, delivered locally, fetched, opened and the
// author verified against the ledger; classic-v1 and hybrid-v1; five recipients; Bcc.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { openEnvelope } from '../../src/envelope/index.js';
import type { GatewayClient } from '../../src/amp/client-api/index.js';
import { readKeyFile, type SecretKeySet, type SuiteId } from '../../src/identity/index.js';
import { runCli, tempDir } from '../helpers/cli.js';
import type { Gateway } from '../client-api/helpers.js';
import { connect, did, register, startMessagingGateway, token, waitInbox } from './helpers.js';

const PASS = { AFTERSMTP_PASSPHRASE: 'user pass' };

describe('send and inbox CLI', () => {
  let gw: Gateway;
  let client: GatewayClient;
  const work = tempDir('messaging-cli');
  const files: Record<string, string> = {};
  const keys: Record<string, SecretKeySet> = {};

  async function keygen(local: string, suite: SuiteId): Promise<void> {
    const file = join(work, `${local}.key`);
    const r = await runCli(['keygen', '--did', did(local), '--suite', suite, '--out', file], {
      env: PASS,
    });
    assert.equal(r.code, 0, r.stderr);
    files[local] = file;
    keys[local] = await readKeyFile(file, PASS.AFTERSMTP_PASSPHRASE);
    await register(client, keys[local]);
  }

  function gatewayArgs(local: string): string[] {
    return [
      '--key',
      files[local] as string,
      '--gateway',
      gw.grpc,
      '--gateway-spki',
      gw.spki,
      '--log-key',
      gw.logKey,
      '--state',
      join(work, `${local}.state.json`),
    ];
  }

  async function send(from: string, extra: string[], body: string) {
    const bodyFile = join(work, `body-${Math.random()}.txt`);
    writeFileSync(bodyFile, body);
    const r = await runCli(
      ['send', ...gatewayArgs(from), ...extra, '--body-file', bodyFile, '--json'],
      {
        env: PASS,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as {
      envelopes: { messageId: string; queueEntryId: string; recipients: string[]; bcc: boolean }[];
    };
  }

  async function inbox(local: string, extra: string[] = []) {
    const r = await runCli(['inbox', ...gatewayArgs(local), '--json', ...extra], { env: PASS });
    return { ...r, out: r.stdout === '' ? undefined : JSON.parse(r.stdout) };
  }

  before(async () => {
    gw = await startMessagingGateway();
    client = await connect(gw);
    await Promise.all([
      keygen('alice', 'classic-v1'),
      keygen('bob', 'classic-v1'),
      keygen('carol', 'hybrid-v1'),
      keygen('dave', 'hybrid-v1'),
    ]);
  });

  after(async () => {
    client?.close();
    assert.equal(await gw?.stop(), 0, 'serve stops cleanly on SIGTERM');
  });

  for (const [from, to, suite] of [
    ['alice', 'bob', 'classic-v1'],
    ['carol', 'dave', 'hybrid-v1'],
  ] as const) {
    test(`${suite}: ${from} sends to ${to}; ${to}'s inbox shows the body and a verified author`, async () => {
      const sent = await send(
        from,
        ['--to', did(to), '--subject', `hi from ${from}`],
        `body ${suite}\n`,
      );
      assert.equal(sent.envelopes.length, 1);
      assert.deepEqual(sent.envelopes[0]?.recipients, [did(to)]);
      const id = sent.envelopes[0]?.messageId;
      let got: Awaited<ReturnType<typeof inbox>> | undefined;
      for (let i = 0; i < 50; i++) {
        got = await inbox(to, ['--ack']);
        assert.equal(got.code, 0, got.stderr);
        if (got.out.messages.length > 0) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      assert.ok(got !== undefined);
      const [m] = got.out.messages;
      assert.equal(m.messageId, id);
      assert.equal(m.sender, did(from));
      assert.equal(m.subject, `hi from ${from}`);
      assert.equal(m.body, `body ${suite}\n`);
      assert.equal(m.author.verified, true);
      assert.equal(m.author.keyId, keys[from]?.keyId.toString('base64'));
      assert.equal(m.receipt.verified, true);
      assert.equal(m.receipt.gateway, did('gateway'));
      const again = await inbox(to);
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(again.out.messages, [], '--ack deleted it');
    });
  }

  test('one message to five local recipients; Bcc gets its own envelope', async () => {
    const five = await Promise.all(['r1', 'r2', 'r3', 'r4', 'r5'].map((l) => register(client, l)));
    const sent = await send(
      'alice',
      [
        '--to',
        did('r1'),
        '--to',
        did('r2'),
        '--cc',
        did('r3'),
        '--cc',
        did('r4'),
        '--bcc',
        did('r5'),
        '--subject',
        'five',
      ],
      'to five',
    );
    assert.equal(sent.envelopes.length, 2);
    assert.deepEqual(sent.envelopes[0]?.recipients, [did('r1'), did('r2'), did('r3'), did('r4')]);
    assert.deepEqual(sent.envelopes[1]?.recipients, [did('r5')]);
    assert.equal(sent.envelopes[1]?.bcc, true);
    for (const k of five) {
      const [item] = await waitInbox(client, await token(client, k), 1);
      const opened = openEnvelope(item!.envelope, k);
      assert.equal(opened.content.toString(), 'to five');
      assert.equal(opened.sender.did, did('alice'));
      const listed = opened.recipients.map((r) => r.did);
      if (k.did === did('r5'))
        assert.deepEqual(listed, [did('r1'), did('r2'), did('r3'), did('r4'), did('r5')]);
      else assert.ok(!listed.includes(did('r5')), 'visible recipients never learn of the Bcc');
    }
  });

  test('send --ephemeral: inbox fetches the key share and opens it', async () => {
    // After the expiry: test/messaging/expiry.test.ts (a short-lived message, without the CLI).
    await keygen('erin', 'classic-v1');
    const sent = await send(
      'alice',
      ['--to', did('erin'), '--subject', 'burn', '--ttl', '1h', '--ephemeral'],
      'burn after reading',
    );
    assert.equal(sent.envelopes.length, 1);
    const [item] = await waitInbox(client, await token(client, keys.erin!), 1);
    // Without the share the envelope does not open.
    assert.throws(() => openEnvelope(item!.envelope, keys.erin!), {
      code: 'ERR_ENVELOPE_SHARE_MISSING',
    });
    const r = await inbox('erin');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.out.messages[0].body, 'burn after reading');
    assert.equal(r.out.messages[0].author.verified, true);
  });
});
