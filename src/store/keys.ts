/**
 * The node key(s) that seal the mailbox store at rest (DESIGN.md §5), as a keyring: the first key
 * seals new records (the write key), every key opens records sealed with it. A key is 32 random
 * bytes; its id is derived from it (HKDF), so a wrong key can never pose as the right one.
 *
 * Where the keys come from (src/store/open.ts):
 * - AFTERSMTP_STORE_KEY: base64 keys separated by commas, the write key first; or else
 * - the keyring file AFTERSMTP_STORE_KEY_FILE (default <data dir>/store.key): one base64 key per
 *   line, the write key first, `#` comments. Generated with one fresh key (mode 0600, never
 *   overwritten) on first start when absent; refused when group or others may read it.
 *
 * Rotation (docs/STORE.md): `rotateKeyFile` puts a new key first; the old ones stay readable;
 * the store's `rewrap` re-seals every record under the new key; then `retireKey` drops an old key.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  writeSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { hkdfSha256, randomBytes } from '../native/index.js';
import { StoreKeyError } from './errors.js';

export const KEY_BYTES = 32;
/** Bytes of a key id inside a sealed record; its text form is 16 hex digits. */
export const KEY_ID_BYTES = 8;

export interface NodeKey {
  /** 16 hex digits, derived from the key. */
  readonly id: string;
  readonly key: Buffer;
}

const enc = (s: string): Buffer => Buffer.from(s, 'utf8');

export function keyIdOf(key: Buffer): string {
  return hkdfSha256(key, Buffer.alloc(0), enc('aftersmtp/store/v1/key-id'), KEY_ID_BYTES).toString(
    'hex',
  );
}

/** A purpose-bound subkey, so the node key itself never meets a cipher directly. */
export function subkey(key: NodeKey, purpose: 'aead' | 'pgcrypto'): Buffer {
  let cached = subkeys.get(key);
  if (cached === undefined) {
    cached = new Map();
    subkeys.set(key, cached);
  }
  let k = cached.get(purpose);
  if (k === undefined) {
    k = hkdfSha256(key.key, Buffer.alloc(0), enc(`aftersmtp/store/v1/${purpose}`), 32);
    cached.set(purpose, k);
  }
  return k;
}
const subkeys = new WeakMap<NodeKey, Map<string, Buffer>>();

export function nodeKey(key: Buffer): NodeKey {
  if (key.length !== KEY_BYTES)
    throw new StoreKeyError(`a store key is ${KEY_BYTES} bytes, got ${key.length}`);
  return { id: keyIdOf(key), key: Buffer.from(key) };
}

export function generateKey(): NodeKey {
  return nodeKey(randomBytes(KEY_BYTES));
}

export class Keyring {
  readonly keys: readonly NodeKey[];
  private readonly byId: Map<string, NodeKey>;

  constructor(keys: readonly NodeKey[]) {
    if (keys.length === 0) throw new StoreKeyError('the store keyring holds no key');
    this.keys = keys;
    this.byId = new Map();
    for (const k of keys) {
      if (this.byId.has(k.id)) throw new StoreKeyError(`the store keyring holds key ${k.id} twice`);
      this.byId.set(k.id, k);
    }
  }

  /** The key new records are sealed with. */
  get write(): NodeKey {
    return this.keys[0] as NodeKey;
  }

  get(id: string): NodeKey | undefined {
    return this.byId.get(id);
  }

  ids(): string[] {
    return this.keys.map((k) => k.id);
  }
}

/** A keyring lacking keys that records are sealed with: `where` names the store. */
export function missingKeysError(
  where: string,
  missing: readonly string[],
  ring: Keyring,
): StoreKeyError {
  return new StoreKeyError(
    `${where} has records sealed with store key(s) ${missing.join(', ')}, ` +
      `which the keyring (AFTERSMTP_STORE_KEY_FILE or AFTERSMTP_STORE_KEY) does not hold ` +
      `(it holds ${ring.ids().join(', ')})`,
  );
}

const BASE64 = /^[A-Za-z0-9+/]{43}=$/;

function parseKey(text: string, where: string): NodeKey {
  if (!BASE64.test(text))
    throw new StoreKeyError(`${where}: expected a base64-encoded ${KEY_BYTES}-byte key`);
  return nodeKey(Buffer.from(text, 'base64'));
}

/** AFTERSMTP_STORE_KEY: base64 keys separated by commas, the write key first. */
export function parseKeyList(value: string, where = 'AFTERSMTP_STORE_KEY'): Keyring {
  const parts = value.split(',').map((s) => s.trim());
  return new Keyring(parts.map((p, i) => parseKey(p, `${where} (key ${i + 1})`)));
}

/** A keyring file's text: one base64 key per line, the write key first; `#` starts a comment. */
export function parseKeyFile(text: string, where: string): Keyring {
  const keys: NodeKey[] = [];
  text.split('\n').forEach((line, i) => {
    const t = line.replace(/#.*$/, '').trim();
    if (t !== '') keys.push(parseKey(t, `${where} line ${i + 1}`));
  });
  if (keys.length === 0) throw new StoreKeyError(`${where}: no key in the file`);
  return new Keyring(keys);
}

export function formatKeyFile(ring: Keyring): string {
  const lines = [
    '# AfterSMTP mailbox store keyring (docs/STORE.md). One base64 key per line; the first seals',
    '# new records, the others only open old ones. Keep this file secret (mode 0600) and backed up:',
    '# without it the stored mail cannot be read.',
  ];
  ring.keys.forEach((k, i) => {
    lines.push(`${k.key.toString('base64')} # id ${k.id}${i === 0 ? ' (write key)' : ''}`);
  });
  return `${lines.join('\n')}\n`;
}

/** Writes the file atomically (temp file, fsync, rename, fsync of the directory), mode 0600. */
function writeKeyFile(path: string, ring: Keyring, exclusive: boolean): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const text = formatKeyFile(ring);
  if (exclusive) {
    const fd = openSync(path, 'wx', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } else {
    const tmp = `${path}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  }
  const dir = openSync(dirname(path), 'r');
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

export function readKeyFile(path: string): Keyring {
  const mode = statSync(path).mode;
  if ((mode & 0o077) !== 0) {
    throw new StoreKeyError(
      `${path} (AFTERSMTP_STORE_KEY_FILE) may be read by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`,
    );
  }
  return parseKeyFile(readFileSync(path, 'utf8'), path);
}

export function defaultKeyFile(dataDir: string): string {
  return join(dataDir, 'store.key');
}

export interface KeySource {
  /** AFTERSMTP_STORE_KEY, if set: wins over the file. */
  readonly keyEnv?: string | undefined;
  /** AFTERSMTP_STORE_KEY_FILE, if set; else <dataDir>/store.key. */
  readonly keyFile?: string | undefined;
  readonly dataDir: string;
}

/** The keyring the configuration names; generates the key file on first start. */
export function loadKeyring(source: KeySource): Keyring {
  const path = keyFileOf(source);
  if (path === undefined) return parseKeyList(source.keyEnv ?? '');
  if (!existsSync(path)) {
    try {
      writeKeyFile(path, new Keyring([generateKey()]), true);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new StoreKeyError(
          `cannot create the store key file ${path}: ${(err as Error).message}`,
          err,
        );
      }
    }
  }
  return readKeyFile(path);
}

/**
 * The keyring file the configuration names, or undefined when the keys come from
 * AFTERSMTP_STORE_KEY (then they change only with the variable and a restart).
 */
export function keyFileOf(source: KeySource): string | undefined {
  if (source.keyEnv !== undefined && source.keyEnv !== '') return undefined;
  return source.keyFile ?? defaultKeyFile(source.dataDir);
}

/** Puts a fresh key first in the keyring file (the new write key); returns its id. */
export function rotateKeyFile(path: string): string {
  const ring = readKeyFile(path);
  const fresh = generateKey();
  writeKeyFile(path, new Keyring([fresh, ...ring.keys]), false);
  return fresh.id;
}

/**
 * Appends a fresh key to the keyring file, after the write key: it opens records but seals none
 * yet (the first step of a rotation shared by several gateways, docs/STORE.md); returns its id.
 */
export function addKeyFile(path: string): string {
  const ring = readKeyFile(path);
  const fresh = generateKey();
  writeKeyFile(path, new Keyring([...ring.keys, fresh]), false);
  return fresh.id;
}

/** Makes a key the keyring file already holds the write key (moved first; the others keep their order). */
export function useKeyFile(path: string, keyId: string): void {
  const ring = readKeyFile(path);
  const key = ring.get(keyId);
  if (key === undefined) throw new StoreKeyError(`key ${keyId} is not in ${path}`);
  if (ring.write.id === keyId) return;
  writeKeyFile(path, new Keyring([key, ...ring.keys.filter((k) => k.id !== keyId)]), false);
}

/** Removes a key that is not the write key (after `rewrap` reported it retirable). */
export function retireKey(path: string, keyId: string): void {
  const ring = readKeyFile(path);
  if (ring.write.id === keyId)
    throw new StoreKeyError(`key ${keyId} is the write key; rotate first`);
  if (ring.get(keyId) === undefined) throw new StoreKeyError(`key ${keyId} is not in ${path}`);
  writeKeyFile(path, new Keyring(ring.keys.filter((k) => k.id !== keyId)), false);
}
