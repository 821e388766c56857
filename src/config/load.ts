/**
 * Reads and validates the AFTERSMTP_* environment once, at start-up. Every problem is reported
 * together, each naming its variable, so an operator fixes a bad configuration in one pass.
 * Unknown AFTERSMTP_* variables are refused too: a typo must not silently fall back to a default,
 * and so are settings that contradict each other (checks.ts). An empty value means unset (the
 * default applies), as everywhere (src/env.ts).
 */
import { invalidConfiguration } from '../errors.js';
import { envValue } from '../env.js';
import { contradictions } from './checks.js';
import { SETTINGS, type Config, type Setting } from './schema.js';

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const problems: string[] = [];
  const values: Record<string, unknown> = {};
  const known = new Set<string>();
  for (const [key, s] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    known.add(s.env);
    const raw = envValue(s.env, env) ?? s.default;
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
    if (
      name.startsWith('AFTERSMTP_') &&
      !known.has(name) &&
      !EXTRA_VARIABLES.has(name) &&
      !CLIENT_VARIABLES.has(name)
    ) {
      problems.push(`${name}: unknown setting (see docs/OPERATIONS.md for the list)`);
    }
  }
  // Settings that contradict each other, once each of them is valid alone.
  if (problems.length === 0) problems.push(...contradictions(values as Config));
  if (problems.length > 0) {
    throw invalidConfiguration(problems);
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

/**
 * The client commands' defaults (send, inbox, status, register, resolve, rotate, revoke): a flag
 * wins over the variable, the variable over the client config file (src/cli/client-config.ts).
 */
export const CLIENT_VARIABLES: ReadonlyMap<string, string> = new Map([
  ['AFTERSMTP_GATEWAY', "Your gateway's client API, host:port (the default of --gateway)."],
  [
    'AFTERSMTP_GATEWAY_CERT',
    "The gateway's certificate file to pin it by (the default of --gateway-cert).",
  ],
  [
    'AFTERSMTP_GATEWAY_SPKI',
    "The gateway's key pin, sha256/<base64> (the default of --gateway-spki; printed by serve as tlsSpki).",
  ],
  ['AFTERSMTP_KEY', 'Your key file (the default of --key).'],
  [
    'AFTERSMTP_CLIENT_STATE',
    'The client state file: pinned log keys and newest checkpoints (the default of --state; default ~/.aftersmtp/ledger-client.json).',
  ],
  [
    'AFTERSMTP_CLIENT_CONFIG',
    'The client config file (default ~/.aftersmtp/client.conf): `name = value` lines for gateway, gateway-cert, gateway-spki, key and state.',
  ],
]);
