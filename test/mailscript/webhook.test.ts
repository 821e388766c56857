// The webhook side of MailScript on its own: the administrator's allow list as a setting, and the
// delivery handler against a real local HTTP server: what is delivered, what is retried (no
// answer, 5xx, 429), what is given up at once (4xx, a redirect, a name no longer allowed, a
// malformed record), and that the POST carries the payload and the ids.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { LeasedJob } from '../../src/queue/types.js';
import { encodeWebhook, webhookDestination } from '../../src/queue/webhook.js';
import { createWebhookDelivery, parseWebhookList } from '../../src/script/webhook.js';

describe('MailScript webhooks', () => {
  let server: Server;
  let base = '';
  const seen: { path: string; body: string; headers: Record<string, unknown> }[] = [];

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        seen.push({ path: req.url ?? '', body, headers: req.headers });
        const status = Number((req.url ?? '').split('/')[1]);
        if (status === 302) res.setHeader('location', 'http://127.0.0.1:1/elsewhere');
        res.statusCode = status;
        res.end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => server.close());

  test('the allow list: name=URL pairs, http or https, no credentials', () => {
    const m = parseWebhookList(' slack=https://hooks.example/T1 , ops=http://127.0.0.1:8080/x ');
    assert.deepEqual(
      [...m],
      [
        ['slack', 'https://hooks.example/T1'],
        ['ops', 'http://127.0.0.1:8080/x'],
      ],
    );
    assert.equal(parseWebhookList('').size, 0);
    assert.throws(() => parseWebhookList('slack'), /name=URL/);
    assert.throws(() => parseWebhookList('Bad Name=https://x'), /name=URL/);
    assert.throws(() => parseWebhookList('a=ftp://x'), /http/);
    assert.throws(() => parseWebhookList('a=https://u:p@x'), /credentials/);
    assert.throws(() => parseWebhookList('a=https://x,a=https://y'), /twice/);
  });

  function job(name: string, url: string, body?: Uint8Array): LeasedJob {
    return {
      jobId: 'j1',
      entryId: 'e1',
      messageId: 'm1',
      sender: '',
      senderKind: 'legacy',
      bounce: true,
      destination: webhookDestination(name),
      recipients: [name],
      body: body ?? encodeWebhook({ name, url, payload: '{"a":1}', messageId: 'abcd' }),
      enqueuedAt: Date.now(),
      deliveries: 0,
    };
  }

  test('outcomes: 2xx delivered; 5xx, 429 and no answer retried; 4xx and 3xx given up', async () => {
    const allowed = new Map<string, string>();
    const deliver = createWebhookDelivery({ allowed: () => allowed, timeoutMs: 1000 });
    const cases: [string, string][] = [
      ['200', 'delivered'],
      ['204', 'delivered'],
      ['500', 'temporary'],
      ['503', 'temporary'],
      ['429', 'temporary'],
      ['404', 'permanent'],
      ['302', 'permanent'],
    ];
    for (const [status, want] of cases) {
      const url = `${base}/${status}`;
      allowed.set(`s${status}`, url);
      const [o] = await deliver(job(`s${status}`, url));
      assert.equal(o?.status, want, status);
    }
    const hit = seen.find((s) => s.path === '/200');
    assert.equal(hit?.body, '{"a":1}');
    assert.equal(hit?.headers['content-type'], 'application/json');
    assert.equal(hit?.headers['x-aftersmtp-message-id'], 'abcd');
    assert.equal(hit?.headers['x-aftersmtp-entry-id'], 'e1');
    assert.equal(seen.filter((s) => s.path === '/elsewhere').length, 0, 'no redirect followed');

    allowed.set('down', 'http://127.0.0.1:1/x');
    const [down] = await deliver(job('down', 'http://127.0.0.1:1/x'));
    assert.equal(down?.status, 'temporary');
    assert.equal(down?.code, 'ERR_WEBHOOK_UNREACHABLE');

    const [gone] = await deliver(job('removed', `${base}/200`));
    assert.equal(gone?.status, 'permanent');
    assert.equal(gone?.code, 'ERR_WEBHOOK_NOT_ALLOWED');
    allowed.set('moved', `${base}/204`);
    const [moved] = await deliver(job('moved', `${base}/200`));
    assert.equal(moved?.code, 'ERR_WEBHOOK_NOT_ALLOWED', 'allowed now at another URL');

    const [junk] = await deliver(job('s200', `${base}/200`, Buffer.from('not a record')));
    assert.equal(junk?.status, 'permanent');
    assert.equal(junk?.code, 'ERR_WEBHOOK_FORMAT');
  });
});
