// A fresh Substrate chain for one test file (scripts/services/substrate.sh: chopsticks running the
// Rococo Asset Hub runtime from its genesis spec), in a state directory of its own. Locally,
// without chopsticks installed, the tests are skipped with the command that installs it; under CI
// (CI=true) they fail: CI must never pass without the real chain.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { WsProvider } from '@polkadot/api';

const run = promisify(execFile);
const SCRIPT = join(import.meta.dirname, '../../../scripts/services/substrate.sh');
const TOOLS = process.env.AFTERSMTP_TOOLS_DIR ?? '/var/tmp/aftersmtp-tools';

export interface TestChain {
  readonly url: string;
  /** Stops the chain (its URL stops answering). */
  stop(): Promise<void>;
  /** A fresh chain from genesis on the same URL (every anchor of the old one is gone). */
  start(): Promise<void>;
  /** Gives `address` funds to pay fees (dev_setStorage on System.Account). */
  fund(address: string): Promise<void>;
  close(): Promise<void>;
}

export function chainSkip(): string | undefined {
  if (existsSync(join(TOOLS, 'chopsticks-1.5.1/node_modules/@acala-network/chopsticks'))) {
    return undefined;
  }
  const why = 'chopsticks is not installed; run: bash scripts/services/substrate.sh install';
  if (process.env.CI === 'true') throw new Error(`under CI the real chain is required: ${why}`);
  return why;
}

export async function startChain(): Promise<TestChain> {
  const state = mkdtempSync(join(tmpdir(), 'aftersmtp-chain-'));
  const env = { ...process.env, AFTERSMTP_SERVICES_DIR: state, AFTERSMTP_TOOLS_DIR: TOOLS };
  const script = async (cmd: string): Promise<string> =>
    (await run('bash', [SCRIPT, cmd], { env })).stdout.trim();
  await script('start');
  const url = await script('url');
  return {
    url,
    stop: async () => void (await script('stop')),
    start: async () => void (await script('start')),
    fund: async (address: string) => {
      const provider = new WsProvider(url, false);
      await provider.connect();
      await provider.isReady;
      try {
        await provider.send('dev_setStorage', [
          {
            System: {
              Account: [[[address], { providers: 1, data: { free: '1000000000000000000' } }]],
            },
          },
        ]);
      } finally {
        await provider.disconnect();
      }
    },
    close: async () => {
      await script('stop');
      rmSync(state, { recursive: true, force: true });
    },
  };
}
