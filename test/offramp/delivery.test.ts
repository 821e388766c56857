// The off-ramp against a real Postfix (the receiving MTA of the test domains) and a real unbound
// publishing their MX and A records: MX preference order and the fall-back to the next MX, the
// implicit MX, null MX, NXDOMAIN, mx_record_map routes, per-recipient replies, and the message
// read back from what Postfix stored, byte for byte. Opportunistic TLS: Postfix offers STARTTLS
// with a certificate nobody trusts, and the mail goes over TLS all the same.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createOffRamp, type OffRampHandler } from '../../src/legacy/offramp/index.js';
import { encodeOutbound } from '../../src/queue/outbound.js';
import { MappingEngine } from '../../src/routing/index.js';
import {
  job,
  makeCa,
  memoryLog,
  message,
  postfixMissing,
  startReceiver,
  startZone,
  unboundMissing,
  type Dns,
  type Receiver,
} from './helpers.js';

const skip = postfixMissing() || unboundMissing();
const Z = 'out.test';

describe('off-ramp delivery to Postfix', { skip }, () => {
  let dns: Dns;
  let rx: Receiver;
  let maps: MappingEngine;
  let offramp: OffRampHandler;
  const log = memoryLog();

  before(async () => {
    const ca = await makeCa();
    const cert = await ca.issue(['receiver.localdomain']);
    rx = await startReceiver({
      domains: [
        `pref.${Z}`,
        `order.${Z}`,
        `nomx.${Z}`,
        `rcpt.${Z}`,
        'routed.example',
        'viamx.example',
      ],
      users: [
        `bob@pref.${Z}`,
        `bob@order.${Z}`,
        `bob@nomx.${Z}`,
        `ok@rcpt.${Z}`,
        `also@rcpt.${Z}`,
        'bob@routed.example',
        'bob@viamx.example',
      ],
      busy: [`busy@rcpt.${Z}`],
      tls: { keyPem: cert.keyPem, chainPem: cert.certPem },
    });
    dns = await startZone(Z, [
      `mx-up.${Z}. A 127.0.0.1`,
      `mx-down.${Z}. A 127.0.0.2`,
      `pref.${Z}. MX 20 mx-up.${Z}.`,
      `pref.${Z}. MX 10 mx-down.${Z}.`,
      `order.${Z}. MX 10 mx-up.${Z}.`,
      `order.${Z}. MX 20 mx-down.${Z}.`,
      `nomx.${Z}. A 127.0.0.1`,
      `null.${Z}. MX 0 .`,
      `dead.${Z}. MX 10 mx-down.${Z}.`,
      `rcpt.${Z}. MX 10 mx-up.${Z}.`,
      `relay.${Z}. MX 10 mx-up.${Z}.`,
    ]);
    maps = MappingEngine.open({ path: ':memory:', pollMs: 0 });
    maps.set('mx_record_map', 'routed.example', `smtp:[127.0.0.1]:${rx.port}`);
    maps.set('mx_record_map', 'viamx.example', `smtp:relay.${Z}:${rx.port}`);
    offramp = createOffRamp({
      maps: () => maps.snapshot(),
      dnsServers: [dns.server],
      hostname: 'gateway.example.org',
      log,
      port: rx.port,
      timeouts: { connectMs: 2000, dnsMs: 1000 },
    });
  });

  after(async () => {
    maps?.close();
    await rx?.close();
    await dns?.close();
  });

  const sessions = (domain: string): { host: string; result: string }[] =>
    log.lines
      .filter(
        (l) => l.msg === 'off-ramp: session' && (l.obj as { domain: string }).domain === domain,
      )
      .map((l) => l.obj as { host: string; result: string });

  test('the lowest MX first; a host that is down gives way to the next', async () => {
    const sent = message('preference', `bob@pref.${Z}`);
    const out = await offramp(
      job(
        `smtp:pref.${Z}`,
        [`bob@pref.${Z}`],
        encodeOutbound({ mailFrom: 'alice@example.org', message: sent }),
      ),
    );
    assert.deepEqual(out, [{ recipient: `bob@pref.${Z}`, status: 'delivered' }]);
    assert.deepEqual(
      sessions(`pref.${Z}`).map((s) => [s.host, s.result]),
      [
        [`mx-down.${Z}`, 'unreachable'],
        [`mx-up.${Z}`, 'done'],
      ],
    );
    const got = (await rx.waitFor(1)).find((c) => c.recipient === `bob@pref.${Z}`);
    assert.ok(got);
    // Byte for byte what was queued, but for Postfix's Received line, which says TLS was used
    // (opportunistic: the certificate is from a CA nobody trusts here).
    assert.equal(got.message.toString('latin1'), sent.toString('latin1'));
    assert.match(
      got.stored.toString(),
      /^Received: from gateway\.example\.org[^]*?using TLSv1\.[23]/,
    );
  });

  test('the preferred MX answers: the next one is not tried', async () => {
    const out = await offramp(
      job(
        `smtp:order.${Z}`,
        [`bob@order.${Z}`],
        encodeOutbound({ mailFrom: '', message: message('order', `bob@order.${Z}`) }),
      ),
    );
    assert.equal(out[0]?.status, 'delivered');
    assert.deepEqual(
      sessions(`order.${Z}`).map((s) => s.host),
      [`mx-up.${Z}`],
    );
  });

  test("no MX record: the domain's own address (RFC 5321 §5.1)", async () => {
    const out = await offramp(
      job(
        `smtp:nomx.${Z}`,
        [`bob@nomx.${Z}`],
        encodeOutbound({
          mailFrom: 'alice@example.org',
          message: message('implicit', `bob@nomx.${Z}`),
        }),
      ),
    );
    assert.equal(out[0]?.status, 'delivered');
    assert.deepEqual(
      sessions(`nomx.${Z}`).map((s) => s.host),
      [`nomx.${Z}`],
    );
  });

  test('null MX is permanent; NXDOMAIN is permanent; a dead MX is ERR_SMTP_UNREACHABLE', async () => {
    const body = encodeOutbound({ mailFrom: 'alice@example.org', message: message('x', 'x@x') });
    const [nul] = await offramp(job(`smtp:null.${Z}`, [`bob@null.${Z}`], body));
    assert.equal(nul?.status, 'permanent');
    assert.equal(nul?.code, 'ERR_SMTP_NULL_MX');
    const [nx] = await offramp(job(`smtp:nowhere.${Z}`, [`bob@nowhere.${Z}`], body));
    assert.equal(nx?.status, 'permanent');
    assert.equal(nx?.code, 'ERR_SMTP_NO_DOMAIN');
    const [dead] = await offramp(job(`smtp:dead.${Z}`, [`bob@dead.${Z}`], body));
    assert.equal(dead?.status, 'temporary');
    assert.equal(dead?.code, 'ERR_SMTP_UNREACHABLE');
  });

  test('per recipient: 250 delivered, 450 temporary, 550 permanent, in one transaction', async () => {
    const rcpts = [`ok@rcpt.${Z}`, `busy@rcpt.${Z}`, `nobody@rcpt.${Z}`, `also@rcpt.${Z}`];
    const before = rx.captured().length;
    const out = await offramp(
      job(
        `smtp:rcpt.${Z}`,
        rcpts,
        encodeOutbound({
          mailFrom: 'alice@example.org',
          message: message('rcpt', rcpts[0] as string),
        }),
      ),
    );
    assert.deepEqual(
      out.map((o) => [o.recipient, o.status, o.code]),
      [
        [`ok@rcpt.${Z}`, 'delivered', undefined],
        [`busy@rcpt.${Z}`, 'temporary', 'ERR_SMTP_DEFERRED'],
        [`nobody@rcpt.${Z}`, 'permanent', 'ERR_SMTP_REJECTED'],
        [`also@rcpt.${Z}`, 'delivered', undefined],
      ],
    );
    assert.match((out[1] as { reason: string }).reason, /450 4\.2\.1 /);
    assert.match((out[2] as { reason: string }).reason, /550 5\.1\.1 /);
    const got = await rx.waitFor(before + 2);
    assert.deepEqual(
      got
        .filter((c) => c.recipient.endsWith(`@rcpt.${Z}`))
        .map((c) => c.recipient)
        .sort(),
      [`also@rcpt.${Z}`, `ok@rcpt.${Z}`],
    );
  });

  test("routes: smtp:[host]:port goes there without DNS; smtp:host:port uses host's MX", async () => {
    const [routed] = await offramp(
      job(
        'smtp:routed.example',
        ['bob@routed.example'],
        encodeOutbound({
          mailFrom: 'a@example.org',
          message: message('routed', 'bob@routed.example'),
        }),
      ),
    );
    assert.equal(routed?.status, 'delivered');
    assert.deepEqual(
      sessions('routed.example').map((s) => s.host),
      ['127.0.0.1'],
    );
    const [viaMx] = await offramp(
      job(
        'smtp:viamx.example',
        ['bob@viamx.example'],
        encodeOutbound({ mailFrom: 'a@example.org', message: message('via', 'bob@viamx.example') }),
      ),
    );
    assert.equal(viaMx?.status, 'delivered');
    assert.deepEqual(
      sessions('viamx.example').map((s) => s.host),
      [`mx-up.${Z}`],
    );
  });

  test('a record that does not decode is permanent for every recipient', async () => {
    const out = await offramp(
      job(`smtp:rcpt.${Z}`, [`ok@rcpt.${Z}`, `also@rcpt.${Z}`], Buffer.from('junk')),
    );
    assert.deepEqual(
      out.map((o) => [o.status, o.code]),
      [
        ['permanent', 'ERR_OUTBOUND_FORMAT'],
        ['permanent', 'ERR_OUTBOUND_FORMAT'],
      ],
    );
  });
});
