/**
 * The client commands' defaults, so that a user types `aftersmtp send --to ... --subject ...`
 * instead of repeating the gateway, its pin and the key file on every call. In order, the first
 * that says something wins:
 *
 *   1. the command-line flag (--gateway, --gateway-cert | --gateway-spki, --key, --state);
 *   2. the environment: AFTERSMTP_GATEWAY, AFTERSMTP_GATEWAY_CERT | AFTERSMTP_GATEWAY_SPKI,
 *      AFTERSMTP_KEY, AFTERSMTP_CLIENT_STATE (an empty value is unset);
 *   3. the client config file, AFTERSMTP_CLIENT_CONFIG or ~/.aftersmtp/client.conf:
 *
 *        # comments and blank lines are ignored
 *        gateway = gw.example.org:4433
 *        gateway-spki = sha256/...
 *        key = alice.key              # relative paths are relative to this file's directory
 *
 * The gateway pin is one choice, not two values: a pin given at one level (certificate or SPKI)
 * hides both pins of the levels below it. A config file that cannot be parsed is an error naming
 * the file and the line (ERR_CLIENT_CONFIG); an absent default file is no file.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { envValue } from '../env.js';
import { InputError } from '../errors.js';

export const CLIENT_CONFIG_NAMES = [
  'gateway',
  'gateway-cert',
  'gateway-spki',
  'key',
  'state',
] as const;
export type ClientConfigName = (typeof CLIENT_CONFIG_NAMES)[number];

const ENV: Record<ClientConfigName, string> = {
  gateway: 'AFTERSMTP_GATEWAY',
  'gateway-cert': 'AFTERSMTP_GATEWAY_CERT',
  'gateway-spki': 'AFTERSMTP_GATEWAY_SPKI',
  key: 'AFTERSMTP_KEY',
  state: 'AFTERSMTP_CLIENT_STATE',
};

const PATHS: ReadonlySet<ClientConfigName> = new Set(['gateway-cert', 'key', 'state']);
const MAX_CONFIG_BYTES = 64 * 1024;

export const DEFAULT_CLIENT_CONFIG = join('.aftersmtp', 'client.conf');

export interface ClientDefaults {
  /** Where each value came from, for messages. */
  readonly source: Partial<Record<ClientConfigName, string>>;
  readonly values: Partial<Record<ClientConfigName, string>>;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? join(homedir(), p.slice(1)) : p;
}

/** Parses a client config file's text; `file` names it in errors and anchors relative paths. */
export function parseClientConfig(
  text: string,
  file: string,
): Partial<Record<ClientConfigName, string>> {
  const out: Partial<Record<ClientConfigName, string>> = {};
  for (const [i, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') continue;
    const m = /^([a-z-]+)\s*=\s*(\S(?:.*\S)?)$/.exec(line);
    const where = `${file}:${i + 1}`;
    if (m === null) throw new InputError('ERR_CLIENT_CONFIG', `${where}: expected name = value`);
    const name = m[1] as ClientConfigName;
    if (!(CLIENT_CONFIG_NAMES as readonly string[]).includes(name)) {
      throw new InputError(
        'ERR_CLIENT_CONFIG',
        `${where}: unknown name ${JSON.stringify(m[1])} (known: ${CLIENT_CONFIG_NAMES.join(', ')})`,
      );
    }
    if (out[name] !== undefined)
      throw new InputError('ERR_CLIENT_CONFIG', `${where}: ${name} is set twice`);
    let value = m[2] as string;
    if (PATHS.has(name)) {
      value = expandHome(value);
      if (!isAbsolute(value)) value = resolve(dirname(file), value);
    }
    out[name] = value;
  }
  return out;
}

function readConfigFile(
  env: NodeJS.ProcessEnv,
): { file: string; values: Partial<Record<ClientConfigName, string>> } | undefined {
  const given = envValue('AFTERSMTP_CLIENT_CONFIG', env);
  const file =
    given !== undefined ? resolve(expandHome(given)) : join(homedir(), DEFAULT_CLIENT_CONFIG);
  let text: string;
  try {
    const buf = readFileSync(file);
    if (buf.length > MAX_CONFIG_BYTES) {
      throw new InputError('ERR_CLIENT_CONFIG', `${file} is larger than ${MAX_CONFIG_BYTES} bytes`);
    }
    text = buf.toString('utf8');
  } catch (err) {
    if (err instanceof InputError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    // The default file is optional; a file the user named must exist.
    if (code === 'ENOENT' && given === undefined) return undefined;
    throw new InputError(
      'ERR_CLIENT_CONFIG',
      `cannot read the client config ${file}${given !== undefined ? ' (AFTERSMTP_CLIENT_CONFIG)' : ''}: ${code ?? (err as Error).message}`,
    );
  }
  return { file, values: parseClientConfig(text, file) };
}

/**
 * The defaults below the command line: the environment, then the config file. Read once per
 * process (the CLI runs one command).
 */
export function clientDefaults(env: NodeJS.ProcessEnv = process.env): ClientDefaults {
  const values: Partial<Record<ClientConfigName, string>> = {};
  const source: Partial<Record<ClientConfigName, string>> = {};
  const file = readConfigFile(env);
  for (const name of CLIENT_CONFIG_NAMES) {
    const v = envValue(ENV[name], env);
    if (v !== undefined) {
      values[name] = PATHS.has(name) ? resolve(expandHome(v)) : v;
      source[name] = ENV[name];
    }
  }
  // The pin is one choice: a pin from the environment hides the file's pins.
  const envPin = values['gateway-cert'] !== undefined || values['gateway-spki'] !== undefined;
  if (file !== undefined) {
    for (const name of CLIENT_CONFIG_NAMES) {
      const isPin = name === 'gateway-cert' || name === 'gateway-spki';
      if (values[name] !== undefined || (isPin && envPin)) continue;
      const v = file.values[name];
      if (v !== undefined) {
        values[name] = v;
        source[name] = file.file;
      }
    }
  }
  return { values, source };
}
