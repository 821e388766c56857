/**
 * `aftersmtp`: the one CLI. Finds the subcommand, parses its flags, runs it, and turns the outcome
 * into an exit code here and nowhere else: 0 ok, 1 failure (typed errors print their message),
 * 2 usage. An unexpected error prints a generic line with its code, not a stack, unless
 * AFTERSMTP_DEBUG_STACKS=1.
 */
import { AfterSmtpError } from '../errors.js';
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

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.path.join(' ').length));
  const rows = COMMANDS.map(
    (c) => `  ${c.path.join(' ').padEnd(width)}  ${c.summary.split('\n')[0]}`,
  );
  return `usage: aftersmtp <command> [options]\n\ncommands:\n${rows.join('\n')}\n\nRun "aftersmtp <command> --help" for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(overview());
    return argv.length === 0 ? EXIT_USAGE : EXIT_OK;
  }
  const found = findCommand(argv);
  if (!found) {
    process.stderr.write(`aftersmtp: unknown command "${argv.join(' ')}"\n\n${overview()}`);
    return EXIT_USAGE;
  }
  const { command, rest } = found;
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
      process.stderr.write(
        `aftersmtp ${command.path.join(' ')}: ${err.message}\n\n${helpText(command)}`,
      );
      return EXIT_USAGE;
    }
    if (err instanceof AfterSmtpError) {
      process.stderr.write(`aftersmtp ${command.path.join(' ')}: ${err.message} (${err.code})\n`);
      return EXIT_FAILURE;
    }
    const code = (err as { code?: unknown })?.code;
    process.stderr.write(
      `aftersmtp ${command.path.join(' ')}: internal error${typeof code === 'string' ? ` (${code})` : ''}\n`,
    );
    if (process.env.AFTERSMTP_DEBUG_STACKS === '1')
      process.stderr.write(`${String((err as Error)?.stack)}\n`);
    return EXIT_FAILURE;
  }
}

process.exitCode = await main(process.argv.slice(2));
