/**
 * C2SP tlog-cosignature (https://c2sp.org/tlog-cosignature): a witness's timestamped Ed25519
 * signature over a checkpoint, carried as a signed-note signature line of type 0x04.
 *
 *   key id    = SHA-256(name || 0x0A || 0x04 || 32-byte public key)[:4]
 *   signed    = "cosignature/v1\n" || "time " || decimal T || "\n" || checkpoint text
 *   line      = "— " name " " base64(key id || uint64 big-endian T || 64-byte signature) "\n"
 *   vkey      = name "+" hex(key id) "+" base64(0x04 || public key)
 *
 * Guarantees: parseWitnessKey accepts only a well-formed type-0x04 verifier key whose key id
 * recomputes; verifyCosignatures returns, for each known witness, the time of a cosignature that
 * verifies over exactly this checkpoint text; a line of a known witness that does not verify is
 * an error (as signed-note verification requires), lines of unknown keys are ignored.
 */
import { verify, type KeyObject } from 'node:crypto';
import { CryptoError, InputError } from '../errors.js';
import { NoteSigner, parseNote } from '../ledger/index.js';
import { ed25519PublicKeyObject } from '../ledger/note.js';
import { sha256 } from '../identity/merkle.js';

export const SIG_TYPE_COSIGNATURE_V1 = 0x04;

export interface WitnessKey {
  readonly name: string;
  readonly keyId: Buffer;
  readonly publicKey: Buffer;
  readonly key: KeyObject;
  /** The verifier key string it was parsed from. */
  readonly vkey: string;
}

export function cosignatureKeyId(name: string, publicKey: Uint8Array): Buffer {
  return sha256(
    Buffer.from(`${name}\n`),
    Buffer.from([SIG_TYPE_COSIGNATURE_V1]),
    publicKey,
  ).subarray(0, 4);
}

export function parseWitnessKey(vkey: string): WitnessKey {
  const bad = (why: string): never => {
    throw new InputError('ERR_WITNESS_KEY', `invalid witness key: ${why}`);
  };
  const parts = vkey.split('+');
  if (parts.length < 3) bad('expected <name>+<hex key id>+<base64 key>');
  const name = parts[0] as string;
  const idHex = parts[1] as string;
  const b64 = parts.slice(2).join('+');
  if (name.length === 0 || /[\s+]/u.test(name)) bad('bad name');
  if (!/^[0-9a-f]{8}$/.test(idHex)) bad('key id must be 8 lower-case hex digits');
  const raw = Buffer.from(b64, 'base64');
  if (raw.toString('base64') !== b64) bad('key is not canonical base64');
  if (raw.length !== 33 || raw[0] !== SIG_TYPE_COSIGNATURE_V1) {
    bad('not a cosignature/v1 (type 0x04) Ed25519 key');
  }
  const publicKey = Buffer.from(raw.subarray(1));
  const keyId = cosignatureKeyId(name, publicKey);
  if (keyId.toString('hex') !== idHex) bad('key id does not match the key');
  return { name, keyId, publicKey, key: ed25519PublicKeyObject(publicKey), vkey };
}

function message(text: string, time: bigint): Buffer {
  return Buffer.from(`cosignature/v1\ntime ${time}\n${text}`, 'utf8');
}

/** A cosigner (a gateway acting as a witness, and tests): signs cosignature lines. */
export class CosignatureSigner {
  readonly name: string;
  readonly publicKey: Buffer;
  readonly keyId: Buffer;
  readonly #signer: NoteSigner;

  constructor(name: string, seed: Uint8Array) {
    this.#signer = new NoteSigner(name, seed);
    this.name = name;
    this.publicKey = this.#signer.publicKey;
    this.keyId = cosignatureKeyId(name, this.publicKey);
  }

  get vkey(): string {
    const key = Buffer.concat([Buffer.from([SIG_TYPE_COSIGNATURE_V1]), this.publicKey]);
    return `${this.name}+${this.keyId.toString('hex')}+${key.toString('base64')}`;
  }

  /** The cosignature line (with its newline) over checkpoint `text` at `timeSeconds`. */
  cosign(text: string, timeSeconds: number): string {
    const t = BigInt(timeSeconds);
    const ts = Buffer.alloc(8);
    ts.writeBigUInt64BE(t);
    const sig = this.#signer.sign(message(text, t));
    return `\u2014 ${this.name} ${Buffer.concat([this.keyId, ts, sig]).toString('base64')}\n`;
  }
}

export interface Cosigned {
  readonly witness: string;
  /** The cosignature's time (seconds since the epoch). */
  readonly time: number;
  /** The signature line (without its newline). */
  readonly line: string;
}

/**
 * The cosignatures by `witnesses` on a signed note (its text a checkpoint): one per witness that
 * signed. Throws CryptoError(ERR_WITNESS_COSIGNATURE) if a known witness's line does not verify.
 */
export function verifyCosignatures(note: string, witnesses: readonly WitnessKey[]): Cosigned[] {
  const parsed = parseNote(note);
  const out: Cosigned[] = [];
  const lines = note
    .slice(note.lastIndexOf('\n\n') + 2)
    .split('\n')
    .filter((l) => l.length > 0);
  parsed.signatures.forEach((s, i) => {
    const w = witnesses.find((k) => k.name === s.name && k.keyId.equals(s.keyId));
    if (w === undefined) return;
    const ok =
      s.signature.length === 72 &&
      (() => {
        const t = s.signature.readBigUInt64BE(0);
        try {
          return verify(null, message(parsed.text, t), w.key, s.signature.subarray(8));
        } catch {
          return false;
        }
      })();
    if (!ok) {
      throw new CryptoError('ERR_WITNESS_COSIGNATURE', `cosignature by ${w.name} does not verify`);
    }
    if (out.some((c) => c.witness === w.name)) return;
    out.push({
      witness: w.name,
      time: Number(s.signature.readBigUInt64BE(0)),
      line: lines[i] as string,
    });
  });
  return out;
}
