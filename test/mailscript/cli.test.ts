// `aftersmtp script list|set|test|del` as an operator runs it (the real CLI in a child process):
// set from a file and from standard input (each set a new version), a script that does not
// compile refused, test printing actions without doing anything, del, exit codes 0/1/2, --json;
// and the same database as a gateway's ScriptStore reads (what a running gateway polls).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { mapsDatabasePath } from '../../src/routing/index.js';
import { ScriptStore } from '../../src/script/store.js';
import { runCli, tempDir } from '../helpers/cli.js';

describe('aftersmtp script', () => {
  test('set, list, test, del', async () => {
    const dir = tempDir('script-cli');
    const env = {
      AFTERSMTP_DATA_DIR: dir,
      AFTERSMTP_SCRIPT_WEBHOOKS: 'slack=http://127.0.0.1:9/hook',
    };
    const file = join(dir, 'urgent.js');
    writeFileSync(file, "if (headers.contains('urgent')) route_to_webhook('slack')\n");
    const set = await runCli(['script', 'set', 'global', file], { env });
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, 'global: version 1 stored\n');

    const stdin = await runCli(['script', 'set', 'Example.ORG', '-', '--json'], {
      env,
      input:
        "if (auth.dmarc === 'fail') reject(550, 'DMARC says no'); add_header('X-Checked', 'yes')",
    });
    assert.equal(stdin.code, 0, stdin.stderr);
    assert.deepEqual(
      { ...(JSON.parse(stdin.stdout) as object), updatedAt: undefined },
      { scope: 'example.org', version: 2, bytes: 87, updatedAt: undefined },
    );
    const again = await runCli(['script', 'set', 'global', file], { env });
    assert.equal(again.stdout, 'global: version 3 stored\n');

    const broken = await runCli(['script', 'set', 'global', '-'], { env, input: 'if (' });
    assert.equal(broken.code, 1);
    assert.match(broken.stderr, /SyntaxError/);

    const list = await runCli(['script', 'list'], { env });
    assert.equal(list.code, 0);
    assert.match(list.stdout, /^example\.org\tv2\t87 bytes\t\d{4}-/m);
    assert.match(list.stdout, /^global\tv3\t/m);
    const listJson = JSON.parse((await runCli(['script', 'list', '--json'], { env })).stdout) as {
      scope: string;
      version: number;
    }[];
    assert.deepEqual(
      listJson.map((s) => [s.scope, s.version]),
      [
        ['example.org', 2],
        ['global', 3],
      ],
    );

    // What a running gateway reads.
    const store = ScriptStore.open({ path: mapsDatabasePath(dir) });
    assert.equal(store.snapshot().global?.version, 3);
    assert.equal(store.snapshot().byDomain.get('example.org')?.version, 2);
    store.close();

    const urgent = await runCli(
      [
        'script',
        'test',
        'global',
        '--from',
        'a@b.test',
        '--to',
        'c@example.org',
        '--header',
        'Subject: URGENT',
      ],
      { env },
    );
    assert.equal(urgent.code, 0, urgent.stderr);
    assert.match(urgent.stdout, /^global v3: 1 action\(s\)$/m);
    assert.match(urgent.stdout, /"action":"webhook","name":"slack"/);
    assert.match(urgent.stdout, /webhook: slack http:\/\/127\.0\.0\.1:9\/hook /);

    const msg = join(dir, 'm.eml');
    writeFileSync(msg, 'From: x@y.test\r\nSubject: hello\r\n\r\nbody\r\n');
    const dmarc = await runCli(
      [
        'script',
        'test',
        'example.org',
        '--to',
        'c@example.org',
        '--message',
        msg,
        '--dmarc',
        'fail',
        '--json',
      ],
      { env },
    );
    assert.equal(dmarc.code, 0, dmarc.stderr);
    const out = JSON.parse(dmarc.stdout) as {
      actions: unknown[];
      verdict: { kind: string; refusal: { smtpCode: number } };
    };
    assert.deepEqual(out.actions[0], { action: 'reject', code: 550, text: 'DMARC says no' });
    assert.equal(out.verdict.kind, 'refuse');
    assert.equal(out.verdict.refusal.smtpCode, 550);

    const vouched = join(dir, 'vouched.js');
    writeFileSync(
      vouched,
      "if (auth.arc === 'pass' && auth.arcSealer !== '') add_header('X-Vouched-By', auth.arcSealer)",
    );
    const arcArgs = ['script', 'test', 'global', '--to', 'c@example.org', '--file', vouched];
    const sealed = await runCli([...arcArgs, '--arc', 'pass', '--arc-sealer', 'Lists.Example'], {
      env,
    });
    assert.equal(sealed.code, 0, sealed.stderr);
    assert.match(
      sealed.stdout,
      /"action":"add_header","name":"X-Vouched-By","value":"lists\.example"/,
    );
    const unsealed = await runCli(arcArgs, { env });
    assert.equal(unsealed.code, 0, unsealed.stderr);
    assert.match(unsealed.stdout, /: 0 action\(s\)$/m);
    const noChain = await runCli([...arcArgs, '--arc-sealer', 'lists.example'], { env });
    assert.equal(noChain.code, 2);
    assert.match(noChain.stderr, /--arc-sealer goes with --arc pass/);

    const fromFile = join(dir, 'loop.js');
    writeFileSync(fromFile, 'for (;;) {}');
    const loop = await runCli(
      ['script', 'test', 'global', '--to', 'c@example.org', '--file', fromFile],
      {
        env,
      },
    );
    assert.equal(loop.code, 1);
    assert.match(loop.stderr, /interrupted/);

    const del = await runCli(['script', 'del', 'example.org'], { env });
    assert.equal(del.code, 0);
    assert.equal(del.stdout, 'example.org: deleted\n');
    const gone = await runCli(['script', 'del', 'example.org'], { env });
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /no script for example\.org/);
    assert.equal((await runCli(['script', 'set', 'not a scope!', file], { env })).code, 2);
    assert.equal((await runCli(['script', 'test', 'global'], { env })).code, 2);
  });
});
