/**
 * How the CLI talks to a person or a script: JSON (one document, --json) or text, and the
 * passphrase prompt. Secrets are never echoed or printed.
 */
import { writeFile } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { envValue } from '../env.js';
import { InputError, asEnvironmentError } from '../errors.js';
import { UsageError } from './command.js';

/**
 * Writes a file the user named on the command line, never replacing one (ERR_OUTPUT_EXISTS);
 * `-` is standard output. Other failures (a missing directory, a full disk) name the path.
 */
export async function writeOutputFile(
  path: string,
  data: Uint8Array,
  flagName: string,
): Promise<void> {
  if (path === '-') {
    await new Promise<void>((resolve, reject) =>
      process.stdout.write(data, (err) => (err ? reject(err) : resolve())),
    );
    return;
  }
  try {
    await writeFile(path, data, { flag: 'wx', mode: 0o600 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new InputError(
        'ERR_OUTPUT_EXISTS',
        `${path} (${flagName}) already exists; not overwriting it: remove it or choose another name`,
      );
    }
    throw asEnvironmentError(err, 'ERR_OUTPUT_FILE', `cannot write ${path} (${flagName})`);
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printLines(lines: readonly string[]): void {
  process.stdout.write(`${lines.join('\n')}\n`);
}

/**
 * The passphrase for key files: AFTERSMTP_PASSPHRASE when set (not empty), otherwise asked on the terminal
 * without echo (twice when `confirm`, for a new key file). With neither, a usage error.
 */
export async function readPassphrase(purpose: string, confirm = false): Promise<string> {
  const fromEnv = envValue('AFTERSMTP_PASSPHRASE');
  if (fromEnv !== undefined) return fromEnv;
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
