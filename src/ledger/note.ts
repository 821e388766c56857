/**
 * C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys (signature type 0x01):
 * signing, strict bounded parsing and verification, key ids, and the verifier key string
 * `<name>+<hex key id>+<base64(0x01 || public key)>` that is published in DNS as `k=`.
 *
 * Guarantees: a note is parsed only if it is at most MAX_NOTE_BYTES, valid UTF-8, free of ASCII
 * control characters other than newline, has a non-empty text ending in a newline, and one to
 * MAX_SIGNATURES well-formed signature lines (em dash U+2014, space, key name, space, canonical
 * base64 of a 4-byte key id and the signature, newline); anything else is an InputError
 * (ERR_NOTE_FORMAT). openNote returns the text only when at least one signature from a known key
 * verifies and no signature from a known key fails (C2SP signed-note §Signatures); unknown keys
 * are ignored. Ed25519 runs on node:crypto (OpenSSL), pure RFC 8032 Ed25519, deterministic.
 */
import { createPrivateKey, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import { CryptoError, InputError } from '../errors.js';
import { sha256 } from '../identity/merkle.js';

export const MAX_NOTE_BYTES = 16 * 1024;
/** C2SP: verifiers MUST accept at least 16 signatures. */
export const MAX_SIGNATURES = 32;
export const MAX_KEY_NAME_BYTES = 255;
export const SIG_TYPE_ED25519 = 0x01;
const EM_DASH = '\u2014';

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/** Key names: non-empty, no Unicode spaces, no '+' (C2SP signed-note §Format). */
export function checkKeyName(name: string): string {
  if (
    typeof name !== 'string' ||
    name.length === 0 ||
    Buffer.byteLength(name) > MAX_KEY_NAME_BYTES ||
    /[\s+]/u.test(name) ||
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f]/.test(name)
  ) {
    throw new InputError('ERR_NOTE_KEY', `invalid note key name ${JSON.stringify(String(name))}`);
  }
  return name;
}

/** key ID = SHA-256(name || 0x0A || 0x01 || 32-byte public key)[:4] (C2SP signed-note). */
export function noteKeyId(name: string, publicKey: Uint8Array): Buffer {
  return sha256(Buffer.from(`${name}\n`), Buffer.from([SIG_TYPE_ED25519]), publicKey).subarray(
    0,
    4,
  );
}

export function ed25519PublicKeyObject(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32)
    throw new InputError('ERR_NOTE_KEY', 'Ed25519 public key is 32 bytes');
  return createPublicKey({
    key: Buffer.concat([SPKI_ED25519_PREFIX, publicKey]),
    format: 'der',
    type: 'spki',
  });
}

/** A signer for notes: an Ed25519 key under a name. The seed stays in the KeyObject. */
export class NoteSigner {
  readonly name: string;
  readonly publicKey: Buffer;
  readonly keyId: Buffer;
  readonly #key: KeyObject;

  constructor(name: string, seed: Uint8Array) {
    this.name = checkKeyName(name);
    if (seed.length !== 32) throw new InputError('ERR_NOTE_KEY', 'Ed25519 seed is 32 bytes');
    this.#key = createPrivateKey({
      key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]),
      format: 'der',
      type: 'pkcs8',
    });
    const spki = createPublicKey(this.#key).export({ format: 'der', type: 'spki' });
    this.publicKey = Buffer.from(spki.subarray(spki.length - 32));
    this.keyId = noteKeyId(name, this.publicKey);
  }

  /** The verifier key string `<name>+<hex key id>+<base64(0x01 || public key)>`. */
  get verifierKey(): string {
    return formatVerifierKey(this.name, this.publicKey);
  }

  sign(message: Uint8Array): Buffer {
    return sign(null, message, this.#key);
  }
}

export interface NoteVerifier {
  readonly name: string;
  readonly keyId: Buffer;
  readonly publicKey: Buffer;
  readonly key: KeyObject;
}

export function formatVerifierKey(name: string, publicKey: Uint8Array): string {
  const id = noteKeyId(checkKeyName(name), publicKey).toString('hex');
  const key = Buffer.concat([Buffer.from([SIG_TYPE_ED25519]), publicKey]).toString('base64');
  return `${name}+${id}+${key}`;
}

/** Parses a verifier key string strictly (the key id must recompute). */
export function parseVerifierKey(vkey: string): NoteVerifier {
  const bad = (why: string): never => {
    throw new InputError('ERR_NOTE_KEY', `invalid verifier key: ${why}`);
  };
  if (typeof vkey !== 'string' || vkey.length > 512) bad('not a string of at most 512 characters');
  const parts = vkey.split('+');
  // The base64 key may itself contain '+': the name has none, the hex id has none.
  if (parts.length < 3) bad('expected <name>+<hex key id>+<base64 key>');
  const name = parts[0] as string;
  const idHex = parts[1] as string;
  const keyB64 = parts.slice(2).join('+');
  try {
    checkKeyName(name);
  } catch {
    bad('bad key name');
  }
  if (!/^[0-9a-f]{8}$/.test(idHex)) bad('key id must be 8 lower-case hex digits');
  const raw = Buffer.from(keyB64, 'base64');
  if (raw.toString('base64') !== keyB64) bad('key is not canonical base64');
  if (raw.length !== 33 || raw[0] !== SIG_TYPE_ED25519) bad('not an Ed25519 (type 0x01) key');
  const publicKey = raw.subarray(1);
  const keyId = noteKeyId(name, publicKey);
  if (keyId.toString('hex') !== idHex) bad('key id does not match the key');
  return { name, keyId, publicKey, key: ed25519PublicKeyObject(publicKey) };
}

export interface NoteSignature {
  readonly name: string;
  readonly keyId: Buffer;
  readonly signature: Buffer;
}

export interface ParsedNote {
  /** The note text, including its final newline. */
  readonly text: string;
  readonly signatures: NoteSignature[];
}

function fmt(why: string): InputError {
  return new InputError('ERR_NOTE_FORMAT', `malformed signed note: ${why}`);
}

/** Signs `text` (which must end in a newline) and returns the signed note. */
export function signNote(text: string, signers: readonly NoteSigner[]): string {
  checkText(text);
  const msg = Buffer.from(text, 'utf8');
  let out = `${text}\n`;
  for (const s of signers) {
    const blob = Buffer.concat([s.keyId, s.sign(msg)]).toString('base64');
    out += `${EM_DASH} ${s.name} ${blob}\n`;
  }
  if (Buffer.byteLength(out) > MAX_NOTE_BYTES) throw fmt(`longer than ${MAX_NOTE_BYTES} bytes`);
  return out;
}

function checkText(text: string): void {
  if (typeof text !== 'string' || text.length === 0 || !text.endsWith('\n')) {
    throw fmt('the text must be non-empty and end with a newline');
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) throw fmt('control character in the text');
}

/** Parses a signed note strictly, without verifying anything. */
export function parseNote(input: string | Uint8Array): ParsedNote {
  let note: string;
  if (typeof input === 'string') {
    if (input.length > MAX_NOTE_BYTES) throw fmt(`longer than ${MAX_NOTE_BYTES} bytes`);
    note = input;
    if (Buffer.byteLength(note) > MAX_NOTE_BYTES) throw fmt(`longer than ${MAX_NOTE_BYTES} bytes`);
  } else {
    if (input.length > MAX_NOTE_BYTES) throw fmt(`longer than ${MAX_NOTE_BYTES} bytes`);
    try {
      note = new TextDecoder('utf-8', { fatal: true }).decode(input);
    } catch {
      throw fmt('not valid UTF-8');
    }
  }
  if (/\p{Cs}/u.test(note)) throw fmt('not valid UTF-8');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u0009\u000b-\u001f]/.test(note)) throw fmt('control character');
  if (!note.endsWith('\n')) throw fmt('does not end with a newline');
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw fmt('no blank line before the signatures');
  const text = note.slice(0, split + 1);
  if (text.length === 0) throw fmt('empty text');
  const sigLines = note.slice(split + 2, -1).split('\n');
  if (sigLines.length > MAX_SIGNATURES) throw fmt(`more than ${MAX_SIGNATURES} signatures`);
  const signatures: NoteSignature[] = [];
  for (const line of sigLines) {
    const m = /^\u2014 ([^ ]+) ([A-Za-z0-9+/=]+)$/u.exec(line);
    if (m === null) throw fmt('bad signature line');
    const name = m[1] as string;
    const b64 = m[2] as string;
    try {
      checkKeyName(name);
    } catch {
      throw fmt('bad key name in a signature line');
    }
    const blob = Buffer.from(b64, 'base64');
    if (blob.toString('base64') !== b64 || blob.length < 5) throw fmt('bad signature encoding');
    signatures.push({ name, keyId: blob.subarray(0, 4), signature: blob.subarray(4) });
  }
  return { text, signatures };
}

/**
 * Opens a signed note: parses it, verifies every signature from a known key (name and key id
 * both match), and returns the text and the names of the keys that verified. Throws
 * CryptoError(ERR_NOTE_SIGNATURE) if a known key's signature fails or none verifies.
 */
export function openNote(
  input: string | Uint8Array,
  verifiers: readonly NoteVerifier[],
): { text: string; verifiedBy: string[] } {
  const parsed = parseNote(input);
  const msg = Buffer.from(parsed.text, 'utf8');
  const verifiedBy: string[] = [];
  for (const sig of parsed.signatures) {
    const v = verifiers.find((k) => k.name === sig.name && k.keyId.equals(sig.keyId));
    if (v === undefined) continue;
    let ok = false;
    try {
      ok = sig.signature.length === 64 && verify(null, msg, v.key, sig.signature);
    } catch {
      ok = false;
    }
    if (!ok) throw new CryptoError('ERR_NOTE_SIGNATURE', `signature by ${v.name} does not verify`);
    verifiedBy.push(v.name);
  }
  if (verifiedBy.length === 0) {
    throw new CryptoError('ERR_NOTE_SIGNATURE', 'no signature from a known key');
  }
  return { text: parsed.text, verifiedBy };
}
