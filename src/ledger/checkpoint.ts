/**
 * Checkpoints of the identity log in the C2SP tlog-checkpoint format
 * (https://c2sp.org/tlog-checkpoint): the note text is the origin line, the decimal tree size and
 * the base64 RFC 6962 root hash, each followed by a newline, signed as a C2SP signed note by the
 * log's Ed25519 key whose key name is the origin.
 *
 * Guarantees: formatCheckpoint/parseCheckpoint round-trip exactly; parsing refuses leading
 * zeroes, sizes above 2^53 - 1, non-canonical base64, a root that is not 32 bytes, empty
 * extension lines and more than MAX_EXTENSION_LINES of them (ERR_CHECKPOINT_FORMAT);
 * verifyCheckpoint returns a checkpoint only if the log key signed it and its origin is the one
 * expected for the domain.
 */
import { InputError } from '../errors.js';
import { HASH_LENGTH } from '../identity/merkle.js';
import { openNote, signNote, type NoteSigner, type NoteVerifier } from './note.js';

export const MAX_EXTENSION_LINES = 8;

export interface Checkpoint {
  readonly origin: string;
  readonly size: number;
  readonly root: Buffer;
  readonly extensions: readonly string[];
}

/** The origin (and note key name) of a domain's identity log. */
export function logOrigin(domain: string): string {
  return `${domain}/aftersmtp-ledger/v1`;
}

export function formatCheckpoint(cp: Checkpoint): string {
  const lines = [cp.origin, String(cp.size), cp.root.toString('base64'), ...cp.extensions];
  return `${lines.join('\n')}\n`;
}

function bad(why: string): InputError {
  return new InputError('ERR_CHECKPOINT_FORMAT', `malformed checkpoint: ${why}`);
}

/** Parses checkpoint text (the note text, not the signed note). */
export function parseCheckpoint(text: string): Checkpoint {
  if (!text.endsWith('\n')) throw bad('text does not end with a newline');
  const lines = text.slice(0, -1).split('\n');
  if (lines.length < 3) throw bad('fewer than three lines');
  if (lines.length > 3 + MAX_EXTENSION_LINES) throw bad('too many extension lines');
  const [origin, sizeText, rootText] = lines as [string, string, string];
  if (origin.length === 0 || /[\s+]/u.test(origin)) throw bad('bad origin line');
  if (!/^(0|[1-9][0-9]{0,15})$/.test(sizeText)) throw bad('tree size is not a canonical decimal');
  const size = Number(sizeText);
  if (!Number.isSafeInteger(size)) throw bad('tree size is too large');
  const root = Buffer.from(rootText, 'base64');
  if (root.toString('base64') !== rootText || root.length !== HASH_LENGTH) {
    throw bad('root hash is not the canonical base64 of 32 bytes');
  }
  const extensions = lines.slice(3);
  if (extensions.some((l) => l.length === 0)) throw bad('empty extension line');
  return { origin, size, root, extensions };
}

/** Signs a checkpoint as a C2SP signed note. */
export function signCheckpoint(cp: Checkpoint, signer: NoteSigner): string {
  return signNote(formatCheckpoint(cp), [signer]);
}

/**
 * Opens a signed checkpoint with the pinned verifier key and checks its origin. Throws
 * CryptoError(ERR_NOTE_SIGNATURE) for a bad or missing signature, InputError for a malformed note
 * or checkpoint, and InputError(ERR_CHECKPOINT_ORIGIN) for another log's checkpoint.
 */
export function verifyCheckpoint(
  note: string | Uint8Array,
  verifier: NoteVerifier,
  expectedOrigin: string = verifier.name,
): Checkpoint {
  const { text } = openNote(note, [verifier]);
  const cp = parseCheckpoint(text);
  if (cp.origin !== expectedOrigin) {
    throw new InputError(
      'ERR_CHECKPOINT_ORIGIN',
      `checkpoint origin ${JSON.stringify(cp.origin.slice(0, 100))} is not ${expectedOrigin}`,
    );
  }
  return cp;
}
