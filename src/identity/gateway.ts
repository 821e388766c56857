/**
 * The gateway's own identity, did:aftersmtp:<domain>:gateway: its key file and public record in
 * the data directory, created on first start and loaded afterwards. The key file's passphrase
 * comes from AFTERSMTP_PASSPHRASE_FILE, else AFTERSMTP_PASSPHRASE, else a random passphrase that
 * is generated once into <data dir>/gateway.pass with mode 0600 (development defaults: the
 * operator is told, and production deployments set one of the two variables).
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { prepareDataDir } from '../config/datadir.js';
import type { Config } from '../config/schema.js';
import { formatDid } from './did.js';
import { generateIdentity, readKeyFile, writeKeyFile, writePublicRecordFile } from './index.js';

export const GATEWAY_LOCALPART = 'gateway';

export interface GatewayIdentityFiles {
  readonly keyFile: string;
  readonly recordFile: string;
  readonly passphraseFile: string;
}

export function gatewayIdentityFiles(config: Config): GatewayIdentityFiles {
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

export async function gatewayPassphrase(
  config: Config,
  files: GatewayIdentityFiles,
  notes: string[],
): Promise<string> {
  if (config.passphraseFile !== undefined) {
    return (await readFile(config.passphraseFile, 'utf8')).trimEnd();
  }
  const fromEnv = process.env.AFTERSMTP_PASSPHRASE;
  if (fromEnv !== undefined && fromEnv.length > 0) return fromEnv;
  if (await exists(files.passphraseFile)) {
    return (await readFile(files.passphraseFile, 'utf8')).trimEnd();
  }
  const generated = randomBytes(32).toString('base64url');
  await writeFile(files.passphraseFile, `${generated}\n`, { mode: 0o600, flag: 'wx' });
  notes.push(
    `generated a passphrase for the gateway key in ${files.passphraseFile} (set AFTERSMTP_PASSPHRASE_FILE in production)`,
  );
  return generated;
}

/** Loads the gateway identity, creating it (and the data directory) on first start. */
export async function loadOrCreateGatewayIdentity(config: Config) {
  const files = gatewayIdentityFiles(config);
  const notes: string[] = [];
  prepareDataDir(config.dataDir);
  const passphrase = await gatewayPassphrase(config, files, notes);
  if (await exists(files.keyFile)) {
    const identity = await readKeyFile(files.keyFile, passphrase);
    return { identity, files, created: false, notes };
  }
  const did = formatDid({ domain: config.domain, localpart: GATEWAY_LOCALPART });
  const identity = generateIdentity(did, config.suite);
  await writeKeyFile(files.keyFile, identity, passphrase);
  await writePublicRecordFile(files.recordFile, identity.record);
  notes.push(`created the gateway identity ${did} (${config.suite}) in ${files.keyFile}`);
  return { identity, files, created: true, notes };
}
