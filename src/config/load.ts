/**
 * Reads and validates the AFTERSMTP_* environment once, at start-up. Every problem is reported
 * together, each naming its variable, so an operator fixes a bad configuration in one pass.
 * Unknown AFTERSMTP_* variables are refused too: a typo must not silently fall back to a default,
 * and so are settings that contradict each other (checks.ts).
 */
import { ConfigError } from '../errors.js';
import { contradictions } from './checks.js';
import { SETTINGS, type Config, type Setting } from './schema.js';

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  const known = new Set<string>();
  for (const [key, s] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    known.add(s.env);
    const raw = env[s.env] ?? s.default;
    if (raw === undefined) {
      values[key] = undefined;
      continue;
    }
    try {
      values[key] = s.parse(raw);
    } catch (err) {
      problems.push(`${s.env}: ${(err as Error).message}`);
    }
  }
  for (const name of Object.keys(env)) {
    if (name.startsWith('AFTERSMTP_') && !known.has(name) && !EXTRA_VARIABLES.has(name)) {
      problems.push(`${name}: unknown setting (see docs/OPERATIONS.md for the list)`);
    }
  }
  // Settings that contradict each other, once each of them is valid alone.
  if (problems.length === 0) problems.push(...contradictions(values as Config));
  if (problems.length > 0) {
    throw new ConfigError('ERR_CONFIG', `invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return values as Config;
}

/** Variables that are read directly rather than through SETTINGS (secrets have no default). */
export const EXTRA_VARIABLES: ReadonlyMap<string, string> = new Map([
  [
    'AFTERSMTP_PASSPHRASE',
    'Passphrase for key files (keygen, envelope, serve); never logged. Without it the CLI prompts on a terminal.',
  ],
  ['AFTERSMTP_DEBUG_STACKS', 'Set to 1 to print stack traces of internal errors from the CLI.'],
]);
