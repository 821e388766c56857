/**
 * How the CLI talks to a person or a script: JSON (one document, --json) or text, and the
 * passphrase prompt. Secrets are never echoed or printed.
 */
import { createInterface } from 'node:readline';
import { UsageError } from './command.js';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLines(lines: readonly string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * The passphrase for key files: AFTERSMTP_PASSPHRASE when set, otherwise asked on the terminal
 * without echo (twice when `confirm`, for a new key file). With neither, a usage error.
 */
export async function readPassphrase(purpose: string, confirm = false): Promise<string> {
  const fromEnv = process.env.AFTERSMTP_PASSPHRASE;
  if (fromEnv !== undefined) {
    if (fromEnv.length === 0) throw new UsageError('AFTERSMTP_PASSPHRASE is set but empty');
    return fromEnv;
  }
  if (!process.stdin.isTTY) {
    throw new UsageError(`a passphrase is needed (${purpose}): set AFTERSMTP_PASSPHRASE`);
  }
  const first = await promptHidden(`Passphrase (${purpose}): `);
  if (confirm) {
    const second = await promptHidden('Repeat the passphrase: ');
    if (first !== second) throw new UsageError('the two passphrases differ');
  }
  if (first.length === 0) throw new UsageError('an empty passphrase is not allowed');
  return first;
}

function promptHidden(question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: true });
    // Mute the echo of typed characters; the question itself is written before muting.
    process.stderr.write(question);
    (rl as unknown as { _writeToOutput: (s: string) => void })._writeToOutput = () => {};
    rl.question('', (answer) => {
      rl.close();
      process.stderr.write('\n');
      resolve(answer);
    });
  });
}
