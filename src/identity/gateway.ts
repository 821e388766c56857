/**
 * The gateway's own identity, did:aftersmtp:<domain>:gateway: its key file and public record in
 * the data directory, created on first start and loaded afterwards. The key file's passphrase
 * comes from AFTERSMTP_PASSPHRASE_FILE, else AFTERSMTP_PASSPHRASE, else a random passphrase that
 * is generated once into <data dir>/gateway.pass with mode 0600 (development defaults: the
 * operator is told, and production deployments set one of the two variables).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { envValue } from '../env.js';
import type { SuiteId } from './suites.js';
import { AfterSmtpError, CryptoError, EnvironmentError, asEnvironmentError } from '../errors.js';
import { formatDid } from './did.js';
import { generateIdentity, readKeyFile, writeKeyFile, writePublicRecordFile } from './index.js';

export const GATEWAY_LOCALPART = 'gateway';

export interface GatewayIdentityFiles {
  readonly keyFile: string;
  readonly recordFile: string;
  readonly passphraseFile: string;
}

/** The settings the gateway identity comes from (AFTERSMTP_DATA_DIR, _DOMAIN, _SUITE, ...). */
export interface GatewaySettings {
  readonly dataDir: string;
  readonly domain: string;
  readonly suite: SuiteId;
  readonly passphraseFile: string | undefined;
}

export function gatewayIdentityFiles(config: GatewaySettings): GatewayIdentityFiles {
  return {
    keyFile: join(config.dataDir, 'gateway.key'),
    recordFile: join(config.dataDir, 'gateway.record.json'),
    passphraseFile: config.passphraseFile ?? join(config.dataDir, 'gateway.pass'),
  };
}

async function exists(path: string): Promise<boolean> {
  try {
    await readFile(path);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Where the gateway key's passphrase came from, for messages (never the passphrase itself). */
export function passphraseSource(config: GatewaySettings, files: GatewayIdentityFiles): string {
  if (config.passphraseFile !== undefined)
    return `${config.passphraseFile} (AFTERSMTP_PASSPHRASE_FILE)`;
  if (envValue('AFTERSMTP_PASSPHRASE') !== undefined) return 'AFTERSMTP_PASSPHRASE';
  return `${files.passphraseFile} (generated on first start)`;
}

async function readPassphraseFile(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = (await readFile(path, 'utf8')).trimEnd();
  } catch (err) {
    throw asEnvironmentError(err, 'ERR_PASSPHRASE_FILE', `cannot read the passphrase file ${what}`);
  }
  if (text.length === 0) {
    throw new EnvironmentError('ERR_PASSPHRASE_FILE', `the passphrase file ${what} is empty`);
  }
  return text;
}

export async function gatewayPassphrase(
  config: GatewaySettings,
  files: GatewayIdentityFiles,
  notes: string[],
): Promise<string> {
  if (config.passphraseFile !== undefined) {
    return readPassphraseFile(
      config.passphraseFile,
      `${config.passphraseFile} (AFTERSMTP_PASSPHRASE_FILE)`,
    );
  }
  const fromEnv = envValue('AFTERSMTP_PASSPHRASE');
  if (fromEnv !== undefined) return fromEnv;
  if (await exists(files.passphraseFile)) {
    return readPassphraseFile(files.passphraseFile, files.passphraseFile);
  }
  const generated = randomBytes(32).toString('base64url');
  try {
    await writeFile(files.passphraseFile, `${generated}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    throw asEnvironmentError(
      err,
      'ERR_PASSPHRASE_FILE',
      `cannot write the generated passphrase file ${files.passphraseFile}`,
    );
  }
  notes.push(
    `generated a passphrase for the gateway key in ${files.passphraseFile} (set AFTERSMTP_PASSPHRASE_FILE in production)`,
  );
  return generated;
}

/**
 * A key file of the data directory that does not open: says which file, where the passphrase
 * came from, and the usual cause (a data directory made under another passphrase).
 */
export function wrongGatewayPassphrase(
  err: unknown,
  file: string,
  config: GatewaySettings,
  files: GatewayIdentityFiles,
): unknown {
  if (!(err instanceof AfterSmtpError)) return err;
  if (err.code !== 'ERR_KEYFILE_PASSPHRASE' && err.code !== 'ERR_LOG_KEY_DECRYPT') return err;
  return new CryptoError(
    err.code,
    `${file} does not open with the passphrase from ${passphraseSource(config, files)}: the data directory ${config.dataDir} was made with another passphrase (use that one, or another AFTERSMTP_DATA_DIR)`,
    { cause: err },
  );
}

/** Loads the gateway identity, creating it (and the data directory) on first start. */
export async function loadOrCreateGatewayIdentity(config: GatewaySettings) {
  const files = gatewayIdentityFiles(config);
  const notes: string[] = [];
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
    throw asEnvironmentError(
      err,
      'ERR_DATA_DIR',
      `cannot create the data directory ${config.dataDir} (AFTERSMTP_DATA_DIR)`,
    );
  });
  const passphrase = await gatewayPassphrase(config, files, notes);
  if (await exists(files.keyFile)) {
    const identity = await readKeyFile(files.keyFile, passphrase).catch((err: unknown) => {
      throw wrongGatewayPassphrase(err, files.keyFile, config, files);
    });
    return { identity, files, created: false, notes, passphrase };
  }
  const did = formatDid({ domain: config.domain, localpart: GATEWAY_LOCALPART });
  const identity = generateIdentity(did, config.suite);
  await writeKeyFile(files.keyFile, identity, passphrase);
  await writePublicRecordFile(files.recordFile, identity.record);
  notes.push(`created the gateway identity ${did} (${config.suite}) in ${files.keyFile}`);
  return { identity, files, created: true, notes, passphrase };
}
