// A user's key life cycle and a message's fate from the command line, against a real
// `aftersmtp serve`, with the gateway and its pin given once in the environment (the client
// defaults) instead of on every command: send with the body on standard input (binary), inbox
// writing the body byte for byte (--body-dir) and as base64 in --json, `status` (a verified
// receipt; the queue when run on the gateway host), `rotate` (the new key reads new mail, the
// old key file is kept), `revoke` (needs --yes; a revoked DID is refused as a recipient), the
// operator's `ledger revoke`, and `ledger pin --client`.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { GatewayClient } from '../../src/amp/client-api/index.js';
import { runCli, tempDir } from '../helpers/cli.js';
import type { Gateway } from '../client-api/helpers.js';
import { DOMAIN, connect, did, register, startMessagingGateway } from './helpers.js';
import { readKeyFile } from '../../src/identity/index.js';

const PASS = 'user pass';

describe('the life of a key and of a message, from the CLI', () => {
  let gw: Gateway;
  let client: GatewayClient;
  const work = tempDir('lifecycle');
  let env: Record<string, string>;

  const keyFile = (local: string) => join(work, `${local}.key`);

  async function cli(args: string[], extra: Record<string, string> = {}, input?: Buffer | string) {
    return runCli(args, { env: { ...env, ...extra }, input });
  }

  async function keygenAndRegister(local: string): Promise<void> {
    const r = await cli([
      'keygen',
      '--did',
      did(local),
      '--suite',
      'classic-v1',
      '--out',
      keyFile(local),
    ]);
    assert.equal(r.code, 0, r.stderr);
    await register(client, await readKeyFile(keyFile(local), PASS));
  }

  async function sendTo(from: string, to: string, body: Buffer): Promise<string> {
    const r = await cli(
      [
        'send',
        '--key',
        keyFile(from),
        '--to',
        did(to),
        '--subject',
        'bytes',
        '--body-file',
        '-',
        '--json',
        '--content-type',
        'application/octet-stream',
      ],
      {},
      body,
    );
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { envelopes: { messageId: string }[] }).envelopes[0]!.messageId;
  }

  async function inboxOf(local: string, extra: string[] = [], key = keyFile(local)) {
    for (let i = 0; i < 50; i++) {
      const r = await cli(['inbox', '--key', key, '--json', ...extra]);
      assert.equal(r.code, 0, r.stderr);
      const out = JSON.parse(r.stdout) as { messages: Record<string, unknown>[] };
      if (out.messages.length > 0) return out.messages;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.fail(`no mail for ${local}`);
  }

  before(async () => {
    gw = await startMessagingGateway();
    client = await connect(gw);
    // The client defaults: no --gateway, --gateway-spki, --log-key or --state below.
    env = {
      AFTERSMTP_PASSPHRASE: PASS,
      AFTERSMTP_GATEWAY: gw.grpc,
      AFTERSMTP_GATEWAY_SPKI: gw.spki,
      AFTERSMTP_CLIENT_STATE: join(work, 'state.json'),
      AFTERSMTP_CLIENT_CONFIG: '',
      HOME: work,
    };
    // This domain publishes no DNS record: its log key is pinned once, for the client.
    const pin = await cli(['ledger', 'pin', '--client', DOMAIN, gw.logKey]);
    assert.equal(pin.code, 0, pin.stderr);
    assert.match(pin.stdout, /pinned the log key of example\.org in .*state\.json/);
    for (const l of ['alice', 'bob', 'carol']) await keygenAndRegister(l);
  });

  after(async () => {
    client?.close();
    assert.equal(await gw?.stop(), 0);
  });

  test('a binary body from standard input arrives byte for byte; status shows the verified receipt', async () => {
    const body = Buffer.concat([randomBytes(3000), Buffer.from([0xff, 0xfe, 0x00, 0x80])]);
    const id = await sendTo('alice', 'bob', body);
    const dir = join(work, 'bodies');
    const [m] = await inboxOf('bob', ['--body-dir', dir]);
    assert.equal(m?.messageId, id);
    assert.deepEqual(readFileSync(join(dir, id)), body);
    const [j] = await inboxOf('bob');
    assert.equal(j?.body, undefined, 'not UTF-8: no text body');
    assert.deepEqual(Buffer.from(String(j?.bodyBase64), 'base64'), body);

    const st = await cli([
      'status',
      id,
      '--key',
      keyFile('alice'),
      '--recipient',
      did('bob'),
      '--json',
    ]);
    assert.equal(st.code, 0, st.stderr);
    const s = JSON.parse(st.stdout) as {
      recipients: {
        recipient: string;
        state: string;
        receipt?: { verified: boolean; gateway: string };
      }[];
    };
    assert.equal(s.recipients[0]?.recipient, did('bob'));
    assert.equal(s.recipients[0]?.state, 'delivered');
    assert.equal(s.recipients[0]?.receipt?.verified, true);
    assert.equal(s.recipients[0]?.receipt?.gateway, did('gateway'));

    // On the gateway host the queue is read too: the entry is gone (delivered).
    const host = await cli(['status', id, '--json'], {
      AFTERSMTP_DATA_DIR: gw.dataDir,
      AFTERSMTP_KEY: keyFile('alice'),
    });
    assert.equal(host.code, 0, host.stderr);
    const h = JSON.parse(host.stdout) as { queueRead: boolean; recipients: { state: string }[] };
    assert.equal(h.queueRead, true);
  });

  test('rotate: a new key file is written first, the ledger names it, mail sealed after opens with it', async () => {
    const next = join(work, 'bob-2.key');
    const r = await cli(['rotate', '--key', keyFile('bob'), '--out', next, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { keyId: string; previousKeyId: string; verified: boolean };
    assert.equal(out.verified, true);
    const nk = await readKeyFile(next, PASS);
    assert.equal(out.keyId, nk.keyId.toString('base64'));
    assert.notEqual(out.keyId, out.previousKeyId);
    const again = await cli(['rotate', '--key', keyFile('bob'), '--out', join(work, 'bob-3.key')]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /ERR_KEY_NOT_CURRENT/);
    assert.equal(existsSync(join(work, 'bob-3.key')), false, 'nothing written for a stale key');

    // Mail sealed to the old key before the rotation: read with --old-key (login is by the new).
    const old = await cli(['inbox', '--key', next, '--old-key', keyFile('bob'), '--ack', '--json']);
    assert.equal(old.code, 0, old.stderr);
    assert.equal((JSON.parse(old.stdout) as { messages: unknown[] }).messages.length, 1);
    const id = await sendTo('alice', 'bob', Buffer.from('after the rotation'));
    const msgs = await inboxOf('bob', [], next);
    const m = msgs.find((x) => x.messageId === id);
    assert.equal(m?.body, 'after the rotation');
  });

  test('revoke needs --yes; a revoked DID is no recipient any more', async () => {
    const no = await cli(['revoke', '--key', keyFile('carol')]);
    assert.equal(no.code, 2);
    assert.match(no.stderr, /add --yes/);
    const r = await cli([
      'revoke',
      '--key',
      keyFile('carol'),
      '--yes',
      '--reason',
      'left',
      '--json',
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { verified: boolean }).verified, true);
    const send = await cli(
      [
        'send',
        '--key',
        keyFile('alice'),
        '--to',
        did('carol'),
        '--subject',
        'x',
        '--body-file',
        '-',
      ],
      {},
      'x',
    );
    assert.equal(send.code, 1);
    assert.match(send.stderr, /ERR_RECIPIENT_REVOKED/);
  });

  test('ledger revoke: the operator revokes a lost key on the gateway host', async () => {
    const dave = await register(client, 'dave');
    const host = {
      AFTERSMTP_DATA_DIR: gw.dataDir,
      AFTERSMTP_DOMAIN: DOMAIN,
      AFTERSMTP_PASSPHRASE: 'gateway pass',
    };
    const no = await cli(['ledger', 'revoke', dave.did, '--reason', 'lost laptop'], host);
    assert.equal(no.code, 2);
    const r = await cli(
      ['ledger', 'revoke', dave.did, '--reason', 'lost laptop', '--yes', '--admin', 'ops'],
      host,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /revoked did:aftersmtp:example\.org:dave by ops: lost laptop/);
    const res = await cli(['resolve', dave.did, '--json']);
    assert.equal(res.code, 0, res.stderr);
    assert.equal((JSON.parse(res.stdout) as { state: string }).state, 'revoked');
  });
});
