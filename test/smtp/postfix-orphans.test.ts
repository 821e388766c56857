// The private Postfix of tests and benches (test/helpers/postfix.ts) does not outlive the process
// that started it: an instance whose starter was killed before its `stop` is stopped by the next
// start (or by stopOrphanedPostfixes), and an instance whose starter lives is left alone.
// Under CI=true a missing Postfix fails the test; elsewhere it is skipped with the reason.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { postfixUnavailable, startPostfix, stopOrphanedPostfixes } from '../helpers/postfix.js';

const why = postfixUnavailable();
if (why !== undefined && process.env.CI === 'true')
  throw new Error(`postfix: ${why} (CI needs it)`);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Starts an instance in a child process, which prints its directory and port and then waits. */
async function startInChild(): Promise<{
  child: ReturnType<typeof spawn>;
  dir: string;
  port: number;
}> {
  const helper = new URL('../helpers/postfix.js', import.meta.url).href;
  const script = `const { startPostfix } = await import(${JSON.stringify(helper)});
const pf = await startPostfix({ mainCf: [] });
console.log(JSON.stringify({ dir: pf.dir, port: pf.port }));
setInterval(() => {}, 1e6);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once('exit', (code) => reject(new Error(`the child exited (${code}) before starting`)));
  });
  child.removeAllListeners('exit');
  const { dir, port } = JSON.parse(line) as { dir: string; port: number };
  return { child, dir, port };
}

test(
  'an instance whose starter was killed is stopped; one whose starter lives is not',
  {
    skip: why ?? false,
    timeout: 60_000,
  },
  async () => {
    const orphan = await startInChild();
    const masterPid = Number(readFileSync(join(orphan.dir, 'spool', 'pid', 'master.pid'), 'utf8'));
    assert.ok(alive(masterPid), 'the master runs');
    const exited = new Promise((r) => orphan.child.once('exit', r));
    orphan.child.kill('SIGKILL');
    await exited;
    assert.ok(alive(masterPid), 'killing the starter leaves the master running');
    assert.ok(await accepts(orphan.port));

    const mine = await startPostfix({ mainCf: [] }); // its start sweeps the orphan
    try {
      assert.equal(existsSync(orphan.dir), false, 'the orphan directory is removed');
      for (let i = 0; i < 50 && alive(masterPid); i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(alive(masterPid), false, 'the orphan master is gone');
      assert.equal(await accepts(orphan.port), false, 'its port is closed');

      assert.equal(await stopOrphanedPostfixes(), 0, 'a live starter keeps its instance');
      assert.ok(existsSync(mine.dir));
      assert.ok(await accepts(mine.port));
    } finally {
      await mine.stop();
    }
    assert.equal(existsSync(mine.dir), false);
  },
);
