/**
 * Public key record files: JSON with base64 byte fields (docs/PROTOCOL.md §4.2). Guarantees: the
 * loader reads at most MAX_RECORD_FILE_BYTES, accepts exactly the documented members (no extra,
 * none missing), canonical padded base64 only, exact key lengths for the suite, and a key id that
 * recomputes; every rejection is InputError(ERR_KEY_RECORD).
 */
import { InputError } from '../errors.js';
import { readBoundedFile, writeFileAtomic } from './files.js';
import { checkPublicRecord, type PublicKeyRecord } from './keys.js';
import { isSuiteId } from './suites.js';

export const RECORD_FORMAT = 'aftersmtp-public-key/v1';
export const MAX_RECORD_FILE_BYTES = 16 * 1024;
const CODE = 'ERR_KEY_RECORD';

const TOP_KEYS = [
  'createdAt',
  'did',
  'format',
  'kemPublicKey',
  'keyId',
  'signingPublicKeys',
  'suite',
];

function fail(message: string): never {
  throw new InputError(CODE, `public key record: ${message}`);
}

function b64(value: unknown, field: string, maxBytes: number): Buffer {
  if (typeof value !== 'string') fail(`${field} must be a base64 string`);
  if (value.length > Math.ceil(maxBytes / 3) * 4) fail(`${field} is too long`);
  const bytes = Buffer.from(value, 'base64');
  if (bytes.toString('base64') !== value) fail(`${field} is not canonical padded base64`);
  return bytes;
}

function exactKeys(
  obj: unknown,
  keys: string[],
  where: string,
  optional: string[] = [],
): Record<string, unknown> {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj))
    fail(`${where} must be an object`);
  const present = Object.keys(obj);
  for (const k of present)
    if (!keys.includes(k) && !optional.includes(k))
      fail(`${where} has an unknown member "${k.slice(0, 40)}"`);
  for (const k of keys) if (!present.includes(k)) fail(`${where} lacks "${k}"`);
  return obj as Record<string, unknown>;
}

/** The JSON object form of a record (stable member order). */
export function publicRecordToJson(record: PublicKeyRecord): Record<string, unknown> {
  const signing: Record<string, string> = {
    ed25519: record.signingPublicKeys.ed25519.toString('base64'),
  };
  if (record.signingPublicKeys.mldsa65)
    signing.mldsa65 = record.signingPublicKeys.mldsa65.toString('base64');
  return {
    format: RECORD_FORMAT,
    did: record.did,
    suite: record.suite,
    keyId: record.keyId.toString('base64'),
    kemPublicKey: record.kemPublicKey.toString('base64'),
    signingPublicKeys: signing,
    createdAt: record.createdAt,
  };
}

export function formatPublicRecord(record: PublicKeyRecord): string {
  return `${JSON.stringify(publicRecordToJson(checkPublicRecord(record)), null, 2)}\n`;
}

/** Validates a parsed JSON value as a record (see the module comment). */
export function publicRecordFromJson(json: unknown): PublicKeyRecord {
  const o = exactKeys(json, TOP_KEYS, 'the record');
  if (o.format !== RECORD_FORMAT) fail(`format must be "${RECORD_FORMAT}"`);
  if (typeof o.did !== 'string') fail('did must be a string');
  if (!isSuiteId(o.suite)) fail('suite must be "classic-v1" or "hybrid-v1"');
  const hybrid = o.suite === 'hybrid-v1';
  const s = exactKeys(
    o.signingPublicKeys,
    hybrid ? ['ed25519', 'mldsa65'] : ['ed25519'],
    'signingPublicKeys',
  );
  if (typeof o.createdAt !== 'number') fail('createdAt must be a number (ms since the epoch)');
  const signingPublicKeys = hybrid
    ? { ed25519: b64(s.ed25519, 'ed25519', 64), mldsa65: b64(s.mldsa65, 'mldsa65', 4096) }
    : { ed25519: b64(s.ed25519, 'ed25519', 64) };
  return checkPublicRecord(
    {
      did: o.did,
      suite: o.suite,
      keyId: b64(o.keyId, 'keyId', 64),
      kemPublicKey: b64(o.kemPublicKey, 'kemPublicKey', 4096),
      signingPublicKeys,
      createdAt: o.createdAt,
    },
    CODE,
  );
}

/** Parses record file bytes. */
export function parsePublicRecord(bytes: Uint8Array | string): PublicKeyRecord {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.length;
  if (size > MAX_RECORD_FILE_BYTES) fail(`larger than ${MAX_RECORD_FILE_BYTES} bytes`);
  let json: unknown;
  try {
    const text =
      typeof bytes === 'string' ? bytes : new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    json = JSON.parse(text);
  } catch {
    fail('not valid UTF-8 JSON');
  }
  return publicRecordFromJson(json);
}

export async function readPublicRecordFile(path: string): Promise<PublicKeyRecord> {
  return parsePublicRecord(await readBoundedFile(path, MAX_RECORD_FILE_BYTES, CODE));
}

export async function writePublicRecordFile(
  path: string,
  record: PublicKeyRecord,
  options: { overwrite?: boolean } = {},
): Promise<void> {
  await writeFileAtomic(path, Buffer.from(formatPublicRecord(record)), {
    mode: 0o644,
    overwrite: options.overwrite ?? false,
    code: CODE,
  });
}
