// The MailScript sandbox on its own (QuickJS as WebAssembly): what a script can reach (nothing
// of the host), the limits (deadline, memory, stack) and that the sandbox serves on after each,
// the pool of warm contexts, and the host's check of what comes out (every action's arguments).
// Needs nothing but the sandbox, so it also runs as is under Node.js 24 (scripts/test-node24.sh).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { parseActions, ScriptActionError } from '../../src/script/actions.js';
import { ScriptRunError, ScriptSandbox } from '../../src/script/sandbox.js';

const INPUT = JSON.stringify({
  envelope: {
    sender: 'carol@sender.test',
    recipients: ['alice@example.org'],
    entrance: 'smtp',
    client: { address: '192.0.2.1', helo: null, tls: false, login: null, did: null },
    kind: 'legacy',
    transaction: 't1',
  },
  headers: [
    { name: 'Subject', value: 'Urgent: the build' },
    { name: 'X-Tag', value: 'one' },
    { name: 'X-Tag', value: 'two' },
  ],
  auth: { spf: 'pass', dkim: 'none', dmarc: 'fail', arc: 'pass', arcSealer: 'lists.example' },
  spam: { score: 7.5 },
  recipients: [{ address: 'alice@example.org', dids: ['did:aftersmtp:example.org:alice'] }],
  summary: { subject: 'Urgent: the build' },
});

describe('MailScript sandbox', () => {
  let sb: ScriptSandbox;
  let n = 0;
  before(async () => {
    sb = await ScriptSandbox.create({ timeoutMs: 50, memoryBytes: 32 * 1024 * 1024, poolSize: 4 });
  });
  after(() => sb.close());

  /** Runs `source` as a new script version; its actions, or the failure. */
  function run(source: string): unknown[] | ScriptRunError {
    try {
      return JSON.parse(sb.run(`test@${++n}`, source, INPUT).output) as unknown[];
    } catch (err) {
      if (err instanceof ScriptRunError) return err;
      throw err;
    }
  }

  function value(expr: string): unknown {
    const r = run(`add_header('X-V', JSON.stringify(${expr}))`);
    assert.ok(Array.isArray(r), `${expr}: ${r instanceof Error ? r.message : ''}`);
    return JSON.parse((r[0] as { value: string }).value);
  }

  test('the views: envelope, headers with helpers, auth, spam, recipients, entrance', () => {
    assert.equal(value('envelope.sender'), 'carol@sender.test');
    assert.equal(value("headers.get('subject')"), 'Urgent: the build');
    assert.deepEqual(value("headers.getAll('x-tag')"), ['one', 'two']);
    assert.equal(value("headers.contains('URGENT')"), true);
    assert.equal(value("headers.has('received')"), false);
    assert.equal(value('auth.dmarc'), 'fail');
    assert.equal(value('auth.arcSealer'), 'lists.example');
    assert.equal(value('spam.score'), 7.5);
    assert.deepEqual(value('recipients[0].dids'), ['did:aftersmtp:example.org:alice']);
    assert.equal(value('entrance'), 'smtp');
  });

  test('no host: no process, require, timers, fetch, module loader', () => {
    assert.deepEqual(
      value(
        '[typeof process, typeof require, typeof setTimeout, typeof setInterval, typeof fetch, typeof queueMicrotask, typeof WebAssembly, typeof module]',
      ),
      Array(8).fill('undefined'),
    );
    // Constructor walking reaches the sandbox's own Function, whose global has no process.
    assert.equal(value("accept.constructor('return typeof process')()"), 'undefined');
    assert.equal(
      value("(() => {}).constructor('return typeof globalThis.process')()"),
      'undefined',
    );
    const walked = run("this.constructor.constructor('return process')()");
    assert.ok(
      walked instanceof ScriptRunError && /TypeError/.test(walked.message),
      'this is undefined',
    );
    const imported = run("import('fs'); accept()");
    assert.ok(Array.isArray(imported), 'import() only returns a promise that never settles here');
    const required = run("require('fs')");
    assert.ok(required instanceof ScriptRunError && /ReferenceError/.test(required.message));
  });

  test('prototype pollution and global poking are refused; nothing carries to the next run', () => {
    for (const attempt of [
      'Object.prototype.polluted = 1',
      'Array.prototype.push = () => 0',
      'globalThis.leak = 1',
      'JSON.parse = () => ({})',
      "headers.get = () => 'forged'",
      "envelope.sender = 'admin@example.org'",
      "Object.defineProperty(Object.prototype, 'x', { value: 1 })",
      'accept.hijacked = true',
    ]) {
      const r = run(attempt);
      assert.ok(r instanceof ScriptRunError && /TypeError/.test(r.message), attempt);
    }
    // The same warm context serves the next run as if nothing had been tried.
    const key = 'warm@1';
    assert.throws(() =>
      sb.run(key, 'if (headers.get("x") === null) Object.prototype.p = 1', INPUT),
    );
    sb.run(key, 'accept()', INPUT);
    assert.deepEqual(value('[String(({}).polluted), typeof globalThis.leak, String(({}).p)]'), [
      'undefined',
      'undefined',
      'undefined',
    ]);
    assert.equal((Object.prototype as Record<string, unknown>).polluted, undefined);
  });

  test('the deadline stops an endless loop; the sandbox serves on', () => {
    const started = Date.now();
    const r = run('for (;;) {}');
    assert.ok(r instanceof ScriptRunError);
    assert.equal(r.reason, 'timeout');
    assert.ok(Date.now() - started < 1000);
    // Catching the interrupt does not help a script.
    const caught = run('for (;;) { try { for (;;) {} } catch (e) {} }');
    assert.ok(caught instanceof ScriptRunError && caught.reason === 'timeout');
    assert.deepEqual(run('accept()'), [{ action: 'accept' }]);
  });

  test('memory bombs and deep recursion fail alone; the sandbox serves on', () => {
    for (const bomb of [
      'new ArrayBuffer(1e9)',
      'const a = []; for (;;) a.push(new ArrayBuffer(1 << 20))',
      'const a = []; for (;;) a.push([1, 2, 3, 4, 5, 6, 7, 8])',
      'function f() { return f() + 1 } f()',
    ]) {
      const r = run(bomb);
      assert.ok(r instanceof ScriptRunError, bomb);
      assert.ok(r.reason === 'memory' || r.reason === 'timeout', `${bomb}: ${r.reason}`);
    }
    assert.deepEqual(run('accept()'), [{ action: 'accept' }]);
  });

  test('a syntax error is found when the script is set', () => {
    assert.throws(
      () => sb.check('if ('),
      (err: unknown) => {
        assert.ok(err instanceof ScriptRunError);
        assert.equal(err.reason, 'syntax');
        return true;
      },
    );
    sb.check("if (headers.contains('urgent')) route_to_webhook('slack')");
  });

  test('warm contexts are reused per version and bounded', () => {
    assert.equal(sb.run('pool@1', 'accept()', INPUT).warm, false);
    assert.equal(sb.run('pool@1', 'accept()', INPUT).warm, true);
    for (let i = 2; i < 10; i++) sb.run(`pool@${i}`, 'accept()', INPUT);
    assert.ok(sb.warmContexts <= 4);
    sb.retain((k) => k === 'pool@9');
    assert.equal(sb.warmContexts, 1);
  });

  test('the in-sandbox checks give a script a catchable error', () => {
    assert.deepEqual(
      value(`(() => { try { reject(250, 'ok') } catch (e) { return e.name } })()`),
      'RangeError',
    );
    assert.deepEqual(
      value(`(() => { try { add_header('X-A', 'a\\r\\nb') } catch (e) { return e.name } })()`),
      'RangeError',
    );
  });
});

describe("the host check of a script's actions", () => {
  const ok = (a: unknown[]) => parseActions(JSON.stringify(a));
  const bad = (a: unknown, re: RegExp) =>
    assert.throws(
      () => parseActions(typeof a === 'string' ? a : JSON.stringify(a)),
      (err: unknown) => {
        assert.ok(err instanceof ScriptActionError);
        assert.match(err.message, re);
        return true;
      },
    );

  test('valid actions pass', () => {
    assert.deepEqual(
      ok([
        { action: 'accept' },
        { action: 'reject', code: 554, text: 'no' },
        { action: 'defer', text: 'later' },
        { action: 'discard' },
        { action: 'redirect', to: 'bob@example.org' },
        { action: 'redirect', to: 'did:aftersmtp:example.org:bob' },
        { action: 'add_header', name: 'X-A', value: 'b' },
        { action: 'set_junk' },
        { action: 'route_via', route: 'smtp:[192.0.2.1]:2525' },
        { action: 'webhook', name: 'slack', payload: '{"a":1}' },
      ]).length,
      10,
    );
  });

  test('every argument is bounded and checked', () => {
    bad([{ action: 'reject', code: 250, text: 'x' }], /4xx or 5xx/);
    bad([{ action: 'reject', code: 600, text: 'x' }], /4xx or 5xx/);
    bad([{ action: 'reject', code: 550, text: 'a\r\nb' }], /printable ASCII/);
    bad([{ action: 'defer', text: 'x'.repeat(201) }], /longer than/);
    bad([{ action: 'add_header', name: 'X-A', value: 'a\r\nBcc: x@y' }], /CR, LF/);
    bad([{ action: 'add_header', name: 'X A', value: 'b' }], /not a header field name/);
    bad([{ action: 'add_header', name: 'DKIM-Signature', value: 'b' }], /gateway's to set/);
    bad([{ action: 'add_header', name: 'Received', value: 'b' }], /gateway's to set/);
    bad([{ action: 'redirect', to: 'not an address' }], /not an address or DID/);
    bad([{ action: 'redirect', to: 'a@b>\r\nRCPT TO:<c@d' }], /not an address or DID/);
    bad([{ action: 'webhook', name: '../../etc', payload: '{}' }], /not a webhook name/);
    bad([{ action: 'webhook', name: 'slack', payload: 'not json' }], /not JSON/);
    bad([{ action: 'exec', cmd: 'rm -rf /' }], /unknown action/);
    bad(Array(65).fill({ action: 'accept' }), /more than 64 actions/);
    bad(Array(17).fill({ action: 'add_header', name: 'X-A', value: 'b' }), /more than 16/);
    bad('{"action":"accept"}', /not a list/);
    bad('[', /not JSON/);
  });
});
