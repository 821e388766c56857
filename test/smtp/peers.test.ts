// The on-ramp against independent implementations: Postfix (Debian) as the sending MTA relaying
// into our port 25, swaks dialogues, and nmap's smtp-open-relay script, which must find no open
// relay. Under CI=true a missing tool fails the test; elsewhere it is skipped with the reason.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import nodemailer from 'nodemailer';
import { postfixUnavailable, startPostfix, type PostfixInstance } from '../helpers/postfix.js';
import { DOMAIN, message, startSmtpGateway, type SmtpGateway } from './helpers.js';
import { until } from '../helpers/wait.js';

const run = promisify(execFile);

function unavailable(tool: string, why: string | undefined): string | false {
  if (why === undefined) return false;
  if (process.env.CI === 'true') throw new Error(`${tool}: ${why} (CI needs it)`);
  return why;
}

const swaksMissing = unavailable(
  'swaks',
  existsSync('/usr/bin/swaks') ? undefined : 'swaks is not installed (Debian package swaks)',
);
const nmapMissing = unavailable(
  'nmap',
  existsSync('/usr/bin/nmap') ? undefined : 'nmap is not installed (Debian package nmap)',
);
const postfixMissing = unavailable('postfix', postfixUnavailable());

async function swaks(args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('swaks', args, { timeout: 20_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : -1,
      out: (e.stdout ?? '') + (e.stderr ?? ''),
    };
  }
}

describe('SMTP on-ramp with real peers', () => {
  let gw: SmtpGateway;

  before(async () => {
    gw = await startSmtpGateway();
  });

  after(async () => {
    await gw.close();
  });

  test(
    'Postfix relays into our port 25; mail for an unknown user is refused to it',
    { skip: postfixMissing },
    async () => {
      const alice = await gw.user('alice');
      let postfix: PostfixInstance | undefined;
      try {
        postfix = await startPostfix({
          mainCf: [`relay_domains = ${DOMAIN}`, `relayhost = [127.0.0.1]:${gw.port.mx}`],
        });
        const peer = nodemailer.createTransport({
          host: '127.0.0.1',
          port: postfix.port,
          ignoreTLS: true,
        });
        await peer.sendMail({
          envelope: { from: 'someone@peer.test', to: [`alice@${DOMAIN}`, `nobody@${DOMAIN}`] },
          raw: message({ subject: 'through Postfix' }),
        });
        const [got] = await gw.inbox(alice, 1, 20_000);
        assert.ok(got, `nothing arrived; Postfix log:\n${postfix.log()}`);
        assert.equal(got.opened.subject, 'through Postfix');
        assert.equal(got.envelope.origin?.helo, 'peer.localdomain');
        assert.equal(got.envelope.origin?.mailFrom, 'someone@peer.test');
        assert.match(got.opened.content.toString(), /Received: from peer\.localdomain/);
        // Postfix logs the refusal of the unknown recipient with our reply, and alice's delivery
        // with our 250; each line is written when Postfix gets to it, so both are waited for.
        const refused = /<nobody@example\.org>.*said: 550 5\.1\.1/;
        const sent = /<alice@example\.org>.*status=sent \(250 2\.0\.0 Ok: queued as /;
        await until(
          'Postfix logs both recipients',
          () => refused.test(postfix?.log() ?? '') && sent.test(postfix?.log() ?? ''),
          { ms: 20_000, everyMs: 200 },
        ).catch(() => undefined);
        assert.match(postfix.log(), refused);
        assert.match(postfix.log(), sent);
      } finally {
        await postfix?.stop();
      }
    },
  );

  test(
    'swaks: a delivery, a relay attempt, pipelining, and a submission that needs AUTH',
    { skip: swaksMissing },
    async () => {
      const bob = await gw.user('bob');
      const server = ['--server', `127.0.0.1:${gw.port.mx}`, '--helo', 'swaks.test'];
      let r = await swaks([...server, '--from', 'x@swaks.test', '--to', `bob@${DOMAIN}`]);
      assert.equal(r.code, 0, r.out);
      assert.match(r.out, /<- {2}250 2\.0\.0 Ok: queued as [0-9a-f]{32}/);
      assert.equal((await gw.inbox(bob, 1)).length, 1);
      r = await swaks([...server, '--from', 'x@swaks.test', '--to', 'victim@elsewhere.example']);
      assert.notEqual(r.code, 0);
      assert.match(r.out, /<\*\* 554 5\.7\.1 <victim@elsewhere\.example>: Relay access denied/);
      r = await swaks([...server, '--pipeline', '--from', 'x@swaks.test', '--to', `bob@${DOMAIN}`]);
      assert.equal(r.code, 0, r.out);
      assert.equal((await gw.inbox(bob, 2)).length, 2);
      r = await swaks([
        '--server',
        `127.0.0.1:${gw.port.submission}`,
        '--from',
        `bob@${DOMAIN}`,
        '--to',
        `bob@${DOMAIN}`,
      ]);
      assert.notEqual(r.code, 0);
      assert.match(r.out, /<\*\* 530 /);
    },
  );

  test("nmap's smtp-open-relay script finds no open relay", { skip: nmapMissing }, async () => {
    const { stdout } = await run(
      'nmap',
      [
        '-Pn',
        '-n',
        // The script runs on ports that look like SMTP: version detection names this one.
        '-sV',
        '--version-light',
        '-p',
        String(gw.port.mx),
        '--script',
        'smtp-open-relay',
        '--script-args',
        `smtp-open-relay.domain=${DOMAIN},smtp-open-relay.ip=127.0.0.1`,
        '127.0.0.1',
      ],
      { timeout: 120_000 },
    );
    assert.match(stdout, /smtp-open-relay: Server doesn't seem to be an open relay/, stdout);
  });
});
