/**
 * `aftersmtp`: the one CLI. Finds the subcommand, parses its flags, runs it, and turns the outcome
 * into an exit code here and nowhere else: 0 ok, 1 failure (typed errors print their message and
 * code), 2 usage. A failure of the environment (an errno code: a file missing, a port taken, a
 * disk full) is one line naming the thing; "internal error" is kept for bugs, printed with its
 * code but without a stack unless AFTERSMTP_DEBUG_STACKS=1.
 */
import { readFileSync } from 'node:fs';
import { envValue } from '../env.js';
import { AfterSmtpError, errnoWords } from '../errors.js';
import {
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  UsageError,
  helpText,
  parseCommandArgs,
  type Command,
} from './command.js';
import { COMMANDS } from './commands/index.js';

function findCommand(argv: readonly string[]): { command: Command; rest: string[] } | undefined {
  let best: Command | undefined;
  for (const c of COMMANDS) {
    const matches = c.path.every((word, i) => argv[i] === word);
    if (matches && (!best || c.path.length > best.path.length)) best = c;
  }
  return best ? { command: best, rest: argv.slice(best.path.length) } : undefined;
}

function rows(commands: readonly Command[]): string {
  const width = Math.max(...commands.map((c) => c.path.join(' ').length));
  return commands
    .map((c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary.split('\n')[0]}`)
    .join('\n');
}

function overview(): string {
  return `usage: aftersmtp <command> [options]\n\ncommands:\n${rows(COMMANDS)}\n\nRun "aftersmtp <command> --help" for a command's options; "aftersmtp --version" for the version.\n`;
}

/** The commands under a group word (`ledger`, `queue`, `envelope`), or none. */
function group(word: string): Command[] {
  return COMMANDS.filter((c) => c.path.length > 1 && c.path[0] === word);
}

function groupOverview(word: string, commands: readonly Command[]): string {
  return `usage: aftersmtp ${word} <command> [options]\n\ncommands:\n${rows(commands)}\n\nRun "aftersmtp ${word} <command> --help" for a command's options.\n`;
}

/** The package's version, and the runtime's (read from package.json next to dist/). */
export function versionText(): string {
  const pkg = JSON.parse(
    readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
  ) as { name: string; version: string };
  return `${pkg.name} ${pkg.version} (node ${process.versions.node}, ${process.platform}-${process.arch}, N-API ${process.versions.napi})\n`;
}

const HELP = new Set(['--help', '-h', 'help']);

/** One line for a failure the operator fixes, or undefined for a bug. */
function environmentLine(err: unknown): string | undefined {
  const e = err as {
    code?: unknown;
    syscall?: unknown;
    path?: unknown;
    address?: unknown;
    port?: unknown;
  };
  const words = errnoWords(e?.code);
  if (words === undefined) return undefined;
  const what =
    typeof e.path === 'string'
      ? `${typeof e.syscall === 'string' ? `${e.syscall} ` : ''}${e.path}`
      : typeof e.address === 'string'
        ? `${e.address}${typeof e.port === 'number' ? `:${e.port}` : ''}`
        : typeof e.syscall === 'string'
          ? e.syscall
          : undefined;
  return `${what === undefined ? '' : `${what}: `}${words} (${String(e.code)})`;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || HELP.has(argv[0] as string)) {
    process.stdout.write(overview());
    return argv.length === 0 ? EXIT_USAGE : EXIT_OK;
  }
  if (argv[0] === '--version' || argv[0] === '-V' || argv[0] === 'version') {
    process.stdout.write(versionText());
    return EXIT_OK;
  }
  const found = findCommand(argv);
  if (!found) {
    const members = group(argv[0] as string);
    if (members.length > 0 && (argv.length === 1 || HELP.has(argv[1] as string))) {
      process.stdout.write(groupOverview(argv[0] as string, members));
      return argv.length === 1 ? EXIT_USAGE : EXIT_OK;
    }
    const where = members.length > 0 ? groupOverview(argv[0] as string, members) : overview();
    process.stderr.write(`aftersmtp: unknown command "${argv.join(' ')}"\n\n${where}`);
    return EXIT_USAGE;
  }
  const { command, rest } = found;
  const name = `aftersmtp ${command.path.join(' ')}`;
  try {
    const args = parseCommandArgs(command, rest);
    if (args.values.help === true) {
      process.stdout.write(helpText(command));
      return EXIT_OK;
    }
    await command.run(args);
    return EXIT_OK;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${name}: ${err.message}\n\n${helpText(command)}`);
      return EXIT_USAGE;
    }
    if (err instanceof AfterSmtpError) {
      process.stderr.write(`${name}: ${err.message} (${err.code})\n`);
      return EXIT_FAILURE;
    }
    const line = environmentLine(err);
    if (line !== undefined) {
      process.stderr.write(`${name}: ${line}\n`);
      return EXIT_FAILURE;
    }
    const code = (err as { code?: unknown })?.code;
    process.stderr.write(
      `${name}: internal error${typeof code === 'string' ? ` (${code})` : ''}; AFTERSMTP_DEBUG_STACKS=1 prints its stack\n`,
    );
    if (envValue('AFTERSMTP_DEBUG_STACKS') === '1')
      process.stderr.write(`${String((err as Error)?.stack)}\n`);
    return EXIT_FAILURE;
  }
}

process.exitCode = await main(process.argv.slice(2));
