/**
 * `aftersmtp bench <name>`: runs one of the benchmark harnesses in bench/ (compiled to
 * dist/bench/) in a child process, so its timing is not disturbed by the CLI, and passes its
 * table and JSON through.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { AfterSmtpError } from '../../errors.js';
import { UsageError, type Command } from '../command.js';

const BENCHES = [
  'crypto',
  'ledger',
  'queue',
  'store',
  'quic',
  'relay',
  'cluster',
  'onramp',
  'offramp',
  'policy/script',
  'policy/spam',
] as const;

export const benchCommand: Command = {
  path: ['bench'],
  summary: `Run a benchmark harness (${BENCHES.join(', ')}); prints a table and JSON.`,
  usage: `<${BENCHES.join('|')}> [--json]`,
  options: { json: { type: 'boolean' } },
  positionals: true,
  async run(args) {
    const [name, ...extra] = args.positionals;
    if (name === undefined || !(BENCHES as readonly string[]).includes(name) || extra.length > 0) {
      throw new UsageError(`name one benchmark: ${BENCHES.join(', ')}`);
    }
    const script = fileURLToPath(new URL(`../../../bench/${name}.js`, import.meta.url));
    if (!existsSync(script))
      throw new AfterSmtpError('ERR_BENCH_MISSING', `${script} is not built`);
    const child = spawn(process.execPath, [script, ...(args.values.json ? ['--json'] : [])], {
      stdio: 'inherit',
    });
    const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
    if (code !== 0) throw new AfterSmtpError('ERR_BENCH_FAILED', `benchmark exited with ${code}`);
  },
};
