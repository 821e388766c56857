/**
 * The identity log's leaf format, version 1 (docs/PROTOCOL.md "Ledger"): byte-exact encoding and
 * strict decoding of register, rotate and revoke entries, the public key record inside them, and
 * the domain-separated transcripts that DID holders sign.
 *
 * Guarantees: encodeEntry(decodeEntry(b)) equals b for every accepted b (one encoding per
 * entry); decoding checks every length against a fixed maximum before copying, refuses unknown
 * versions, types and authorisation kinds, trailing bytes, unsorted or duplicate extensions, and
 * records whose shape or key id is wrong for their suite (identity checkPublicRecord). Failures
 * are InputError(ERR_LEDGER_ENTRY). Transcripts are length-prefixed tuples that start with a
 * purpose label, so a signature for one entry type can never be replayed as another, and each
 * names the leaf it follows, so an old signature cannot be replayed after a later change.
 */
import { InputError } from '../errors.js';
import {
  checkDid,
  checkPublicRecord,
  isSuiteId,
  type PublicKeyRecord,
  type Signature,
} from '../identity/index.js';
import { Reader, lpBytes, u64, u8 } from './codec.js';
import { sha256 } from '../identity/merkle.js';

export const ENTRY_VERSION = 1;
export const MAX_ENTRY_BYTES = 32 * 1024;
export const MAX_EXTENSIONS = 8;
export const MAX_EXTENSION_NAME = 64;
export const MAX_EXTENSION_VALUE = 4096;
export const MAX_REASON_BYTES = 512;
export const MAX_ADMIN_NAME_BYTES = 128;
export const MAX_REFERENCE_BYTES = 128;
export const MAX_STAMP_BYTES = 1024;
const CODE = 'ERR_LEDGER_ENTRY';

/** Signature purposes (identity signature.ts derives the per-algorithm context strings). */
export const PURPOSE_REGISTER = 'aftersmtp/ledger/v1/register';
export const PURPOSE_ROTATE = 'aftersmtp/ledger/v1/rotate';
export const PURPOSE_ROTATE_POP = 'aftersmtp/ledger/v1/rotate-pop';
export const PURPOSE_REVOKE = 'aftersmtp/ledger/v1/revoke';

/**
 * Well-known extension: the gateway record (`did:aftersmtp:<domain>:gateway`) publishes the DER
 * SubjectPublicKeyInfo of its QUIC/TLS key under this name, so peers can authenticate it.
 */
export const EXT_QUIC_TLS_SPKI = 'quic-tls-spki';

export const ENTRY_TYPES = { register: 0x01, rotate: 0x02, revoke: 0x03 } as const;
const AUTH_HASHCASH = 0x01;
const AUTH_ADMIN = 0x02;
const AUTH_SELF = 0x01;

export interface Extension {
  readonly name: string;
  readonly value: Buffer;
}

export type RegisterAuth =
  | { readonly kind: 'hashcash'; readonly stamp: Buffer }
  | { readonly kind: 'admin'; readonly admin: string; readonly reference: string };

export type RevokeAuth =
  | { readonly kind: 'self'; readonly signature: Signature }
  | { readonly kind: 'admin'; readonly admin: string };

interface EntryBase {
  readonly version: 1;
  /** When the log accepted the entry, ms since the epoch (the log's clock). */
  readonly loggedAt: number;
  readonly did: string;
}

export interface RegisterEntry extends EntryBase {
  readonly type: 'register';
  readonly record: PublicKeyRecord;
  readonly extensions: readonly Extension[];
  readonly auth: RegisterAuth;
  /** By the registered key over registerTranscript: proof of possession. */
  readonly proofOfPossession: Signature;
}

export interface RotateEntry extends EntryBase {
  readonly type: 'rotate';
  /** Leaf index of the entry that established the current record. */
  readonly prevLeaf: number;
  readonly prevKeyId: Buffer;
  readonly record: PublicKeyRecord;
  readonly extensions: readonly Extension[];
  /** By the previous key over rotateTranscript. */
  readonly previousKeySignature: Signature;
  /** By the new key over rotateTranscript (PURPOSE_ROTATE_POP). */
  readonly proofOfPossession: Signature;
}

export interface RevokeEntry extends EntryBase {
  readonly type: 'revoke';
  readonly prevLeaf: number;
  readonly keyId: Buffer;
  readonly reason: string;
  readonly auth: RevokeAuth;
}

export type LedgerEntry = RegisterEntry | RotateEntry | RevokeEntry;

// ---- records, extensions, signatures ----

/** record = lp(did) lp(suite) lp(keyId) lp(kem pk) lp(ed25519 pk) lp(ml-dsa-65 pk or empty) u64(createdAt) */
export function encodeRecord(r: PublicKeyRecord): Buffer {
  return Buffer.concat([
    lpBytes(r.did),
    lpBytes(r.suite),
    lpBytes(r.keyId),
    lpBytes(r.kemPublicKey),
    lpBytes(r.signingPublicKeys.ed25519),
    lpBytes(r.signingPublicKeys.mldsa65 ?? Buffer.alloc(0)),
    u64(r.createdAt),
  ]);
}

/** SHA-256 of the record encoding: what a hashcash stamp binds to. */
export function recordHash(r: PublicKeyRecord): Buffer {
  return sha256(encodeRecord(r));
}

function readRecord(rd: Reader): PublicKeyRecord {
  const did = rd.lpString('record did', 512);
  const suite = rd.lpString('record suite', 32);
  if (!isSuiteId(suite)) rd.fail('record suite: unknown');
  const keyId = rd.lp('record keyId', 64);
  const kemPublicKey = rd.lp('record KEM key', 4096);
  const ed25519 = rd.lp('record Ed25519 key', 64);
  const mldsa = rd.lp('record ML-DSA-65 key', 4096);
  const createdAt = rd.u64('record createdAt');
  const record: PublicKeyRecord = {
    did,
    suite,
    keyId,
    kemPublicKey,
    signingPublicKeys: mldsa.length > 0 ? { ed25519, mldsa65: mldsa } : { ed25519 },
    createdAt,
  };
  try {
    return checkPublicRecord(record, CODE);
  } catch (err) {
    rd.fail((err as Error).message);
  }
}

/** sig = lp(ed25519 signature) lp(ml-dsa-65 signature or empty) */
export function encodeSignature(s: Signature): Buffer {
  return Buffer.concat([lpBytes(s.ed25519), lpBytes(s.mldsa65 ?? Buffer.alloc(0))]);
}

function readSignature(rd: Reader, field: string): Signature {
  const ed25519 = rd.lp(`${field} Ed25519`, 64);
  const mldsa65 = rd.lp(`${field} ML-DSA-65`, 4096);
  return mldsa65.length > 0 ? { ed25519, mldsa65 } : { ed25519 };
}

/** Sorted by name, unique, names [a-z0-9-]{1,64}, values at most 4096 bytes, at most 8. */
export function checkExtensions(exts: readonly Extension[]): readonly Extension[] {
  if (exts.length > MAX_EXTENSIONS)
    throw new InputError(CODE, `more than ${MAX_EXTENSIONS} extensions`);
  let prev = '';
  for (const e of exts) {
    if (!/^[a-z0-9-]{1,64}$/.test(e.name)) throw new InputError(CODE, 'bad extension name');
    if (e.name <= prev) throw new InputError(CODE, 'extensions must be sorted and unique');
    if (e.value.length > MAX_EXTENSION_VALUE)
      throw new InputError(CODE, 'extension value too long');
    prev = e.name;
  }
  return exts;
}

/** exts = u8(count) (lp(name) lp(value))* */
export function encodeExtensions(exts: readonly Extension[]): Buffer {
  checkExtensions(exts);
  return Buffer.concat([
    u8(exts.length),
    ...exts.flatMap((e) => [lpBytes(e.name), lpBytes(e.value)]),
  ]);
}

function readExtensions(rd: Reader): Extension[] {
  const n = rd.u8('extension count');
  if (n > MAX_EXTENSIONS) rd.fail(`more than ${MAX_EXTENSIONS} extensions`);
  const out: Extension[] = [];
  for (let i = 0; i < n; i++) {
    const name = rd.lpString('extension name', MAX_EXTENSION_NAME);
    out.push({ name, value: rd.lp('extension value', MAX_EXTENSION_VALUE) });
  }
  checkExtensions(out);
  return out;
}

// ---- transcripts ----

/** lp(PURPOSE_REGISTER, did, record, extensions): signed by the registered key. */
export function registerTranscript(record: PublicKeyRecord, exts: readonly Extension[]): Buffer {
  return Buffer.concat([
    lpBytes(PURPOSE_REGISTER),
    lpBytes(record.did),
    lpBytes(encodeRecord(record)),
    lpBytes(encodeExtensions(exts)),
  ]);
}

/** lp(PURPOSE_ROTATE, did, u64(prevLeaf), prevKeyId, record, extensions). */
export function rotateTranscript(
  did: string,
  prevLeaf: number,
  prevKeyId: Buffer,
  record: PublicKeyRecord,
  exts: readonly Extension[],
): Buffer {
  return Buffer.concat([
    lpBytes(PURPOSE_ROTATE),
    lpBytes(did),
    lpBytes(u64(prevLeaf)),
    lpBytes(prevKeyId),
    lpBytes(encodeRecord(record)),
    lpBytes(encodeExtensions(exts)),
  ]);
}

/** lp(PURPOSE_REVOKE, did, u64(prevLeaf), keyId, reason). */
export function revokeTranscript(
  did: string,
  prevLeaf: number,
  keyId: Buffer,
  reason: string,
): Buffer {
  return Buffer.concat([
    lpBytes(PURPOSE_REVOKE),
    lpBytes(did),
    lpBytes(u64(prevLeaf)),
    lpBytes(keyId),
    lpBytes(reason),
  ]);
}

// ---- entries ----

function header(type: keyof typeof ENTRY_TYPES, loggedAt: number, did: string): Buffer {
  return Buffer.concat([u8(ENTRY_VERSION), u8(ENTRY_TYPES[type]), u64(loggedAt), lpBytes(did)]);
}

/** Encodes an entry; throws InputError(ERR_LEDGER_ENTRY) if it is not a valid entry. */
export function encodeEntry(e: LedgerEntry): Buffer {
  let out: Buffer;
  switch (e.type) {
    case 'register': {
      const auth =
        e.auth.kind === 'hashcash'
          ? Buffer.concat([u8(AUTH_HASHCASH), lpBytes(e.auth.stamp)])
          : Buffer.concat([u8(AUTH_ADMIN), lpBytes(e.auth.admin), lpBytes(e.auth.reference)]);
      out = Buffer.concat([
        header('register', e.loggedAt, e.did),
        lpBytes(encodeRecord(e.record)),
        encodeExtensions(e.extensions),
        auth,
        encodeSignature(e.proofOfPossession),
      ]);
      break;
    }
    case 'rotate':
      out = Buffer.concat([
        header('rotate', e.loggedAt, e.did),
        u64(e.prevLeaf),
        lpBytes(e.prevKeyId),
        lpBytes(encodeRecord(e.record)),
        encodeExtensions(e.extensions),
        encodeSignature(e.previousKeySignature),
        encodeSignature(e.proofOfPossession),
      ]);
      break;
    case 'revoke': {
      const auth =
        e.auth.kind === 'self'
          ? Buffer.concat([u8(AUTH_SELF), encodeSignature(e.auth.signature)])
          : Buffer.concat([u8(AUTH_ADMIN), lpBytes(e.auth.admin)]);
      out = Buffer.concat([
        header('revoke', e.loggedAt, e.did),
        u64(e.prevLeaf),
        lpBytes(e.keyId),
        lpBytes(e.reason),
        auth,
      ]);
      break;
    }
  }
  // Round-trip through the strict decoder: the log never writes a leaf it would refuse to read.
  decodeEntry(out);
  return out;
}

/** Decodes one entry strictly (see the module comment). */
export function decodeEntry(bytes: Uint8Array): LedgerEntry {
  if (bytes.length > MAX_ENTRY_BYTES) {
    throw new InputError(CODE, `entry larger than ${MAX_ENTRY_BYTES} bytes`);
  }
  const rd: Reader = new Reader(bytes, CODE);
  const version = rd.u8('version');
  if (version !== ENTRY_VERSION) rd.fail(`unknown entry version ${version}`);
  const type = rd.u8('type');
  const loggedAt = rd.u64('loggedAt');
  const did = rd.lpString('did', 512);
  try {
    checkDid(did);
  } catch (err) {
    rd.fail((err as Error).message);
  }
  const base = { version: 1 as const, loggedAt, did };
  let entry: LedgerEntry;
  if (type === ENTRY_TYPES.register) {
    const record = new Reader(rd.lp('record', 16 * 1024), CODE).whole(readRecord);
    const extensions = readExtensions(rd);
    const kind = rd.u8('auth kind');
    let auth: RegisterAuth;
    if (kind === AUTH_HASHCASH) {
      auth = { kind: 'hashcash', stamp: rd.lp('stamp', MAX_STAMP_BYTES) };
    } else if (kind === AUTH_ADMIN) {
      const admin = rd.lpString('admin', MAX_ADMIN_NAME_BYTES);
      auth = { kind: 'admin', admin, reference: rd.lpString('reference', MAX_REFERENCE_BYTES) };
    } else {
      rd.fail(`unknown register authorisation ${kind}`);
    }
    const proofOfPossession = readSignature(rd, 'proof of possession');
    entry = { ...base, type: 'register', record, extensions, auth, proofOfPossession };
    if (record.did !== did) rd.fail('record DID differs from the entry DID');
  } else if (type === ENTRY_TYPES.rotate) {
    const prevLeaf = rd.u64('prevLeaf');
    const prevKeyId = rd.lp('prevKeyId', 64);
    const record = new Reader(rd.lp('record', 16 * 1024), CODE).whole(readRecord);
    const extensions = readExtensions(rd);
    const previousKeySignature = readSignature(rd, 'previous key signature');
    const proofOfPossession = readSignature(rd, 'proof of possession');
    entry = {
      ...base,
      type: 'rotate',
      prevLeaf,
      prevKeyId,
      record,
      extensions,
      previousKeySignature,
      proofOfPossession,
    };
    if (record.did !== did) rd.fail('record DID differs from the entry DID');
  } else if (type === ENTRY_TYPES.revoke) {
    const prevLeaf = rd.u64('prevLeaf');
    const keyId = rd.lp('keyId', 64);
    const reason = rd.lpString('reason', MAX_REASON_BYTES);
    const kind = rd.u8('auth kind');
    let auth: RevokeAuth;
    if (kind === AUTH_SELF) {
      auth = { kind: 'self', signature: readSignature(rd, 'signature') };
    } else if (kind === AUTH_ADMIN) {
      auth = { kind: 'admin', admin: rd.lpString('admin', MAX_ADMIN_NAME_BYTES) };
      if (reason.length === 0) rd.fail('an administrator revocation needs a reason');
    } else {
      rd.fail(`unknown revoke authorisation ${kind}`);
    }
    entry = { ...base, type: 'revoke', prevLeaf, keyId, reason, auth };
  } else {
    rd.fail(`unknown entry type ${type}`);
  }
  rd.end();
  return entry;
}
