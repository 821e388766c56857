// litewitness (filippo.io/torchwood, scripts/services/litewitness.sh) in a state directory of its
// own, for one test file. Locally, without it built, the tests are skipped with the command that
// builds it; under CI (CI=true) they fail: CI must never pass without the real witness.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SCRIPT = join(import.meta.dirname, '../../../scripts/services/litewitness.sh');
const TOOLS = process.env.AFTERSMTP_TOOLS_DIR ?? '/var/tmp/aftersmtp-tools';

export interface TestWitness {
  readonly url: string;
  readonly vkey: string;
  addLog(origin: string, logKey: string): Promise<void>;
  close(): Promise<void>;
}

export function witnessSkip(): string | undefined {
  if (existsSync(join(TOOLS, 'litewitness-v0.6.1/witnessctl'))) return undefined;
  const why = 'litewitness is not built; run: bash scripts/services/litewitness.sh install';
  if (process.env.CI === 'true') throw new Error(`under CI the real witness is required: ${why}`);
  return why;
}

export async function startWitness(): Promise<TestWitness> {
  const state = mkdtempSync(join(tmpdir(), 'aftersmtp-witness-'));
  const env = { ...process.env, AFTERSMTP_SERVICES_DIR: state, AFTERSMTP_TOOLS_DIR: TOOLS };
  const script = async (...args: string[]): Promise<string> =>
    (await run('bash', [SCRIPT, ...args], { env })).stdout.trim();
  await script('start');
  const url = await script('url');
  const vkey = await script('vkey');
  return {
    url,
    vkey,
    addLog: async (origin, logKey) => void (await script('add-log', origin, logKey)),
    close: async () => {
      await script('stop');
      rmSync(state, { recursive: true, force: true });
    },
  };
}
