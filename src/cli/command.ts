/**
 * The shape of one CLI subcommand and the one place where failures become exit codes:
 * 0 ok, 1 failure, 2 usage (DESIGN.md §6).
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { AfterSmtpError } from '../errors.js';

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  /** Words after `aftersmtp`, e.g. ['envelope', 'seal']. */
  readonly path: readonly string[];
  readonly summary: string;
  /** Usage text printed by --help, without the leading "usage: aftersmtp <path>". */
  readonly usage: string;
  readonly options: Options;
  /** Whether positional arguments are allowed. */
  readonly positionals?: boolean;
  run(args: ParsedArgs): Promise<void>;
}

export interface ParsedArgs {
  readonly values: Record<string, string | boolean | string[] | boolean[] | undefined>;
  readonly positionals: string[];
}

/** A mistake in how the command was called: exit code 2. */
export class UsageError extends AfterSmtpError {
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function parseCommandArgs(command: Command, argv: string[]): ParsedArgs {
  try {
    const parsed = parseArgs({
      args: argv,
      options: { ...command.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: command.positionals ?? false,
      strict: true,
    });
    return { values: parsed.values, positionals: parsed.positionals };
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export function helpText(command: Command): string {
  return `usage: aftersmtp ${command.path.join(' ')} ${command.usage}\n\n${command.summary}\n`;
}

/** A required string flag, or a UsageError naming it. */
export function requireString(args: ParsedArgs, name: string): string {
  const v = args.values[name];
  if (typeof v !== 'string' || v.length === 0) throw new UsageError(`--${name} is required`);
  return v;
}

/** A string flag that may be repeated, at least once. */
export function requireStrings(args: ParsedArgs, name: string): string[] {
  const v = args.values[name];
  if (!Array.isArray(v) || v.length === 0) throw new UsageError(`--${name} is required`);
  return v.map(String);
}

export function optionalString(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}
