/**
 * DKIM signing (RFC 6376) with rsa-sha256 and ed25519-sha256 (RFC 8463), relaxed/relaxed, one
 * signature per key given (both algorithms at once where a domain has both). Verification is
 * mailauth's (the on-ramp); this module only signs, because mailauth's signer cannot oversign:
 * its h= lists only the header fields present, while we list From once more than it occurs, so a
 * From added after signing breaks the signature (RFC 6376 §8.15). Checked against dkimpy and
 * Mail::DKIM in the tests.
 *
 * Signed fields (when present): From (oversigned), Sender, Reply-To, To, Cc, Subject, Date,
 * Message-ID, In-Reply-To, References, MIME-Version, Content-Type, Content-Transfer-Encoding,
 * Content-ID, Content-Description, List-* fields; and the whole body (no l=).
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import { promisify } from 'node:util';
import { splitMessage, type HeaderField } from './headers.js';

export interface DkimKey {
  /** d= */
  readonly domain: string;
  /** s= */
  readonly selector: string;
  readonly algorithm: 'rsa-sha256' | 'ed25519-sha256';
  readonly privateKey: KeyObject;
}

export const SIGNED_FIELDS = [
  'from',
  'sender',
  'reply-to',
  'to',
  'cc',
  'subject',
  'date',
  'message-id',
  'in-reply-to',
  'references',
  'mime-version',
  'content-type',
  'content-transfer-encoding',
  'content-id',
  'content-description',
  'list-id',
  'list-unsubscribe',
  'list-unsubscribe-post',
  'list-post',
  'list-help',
  'list-owner',
  'list-archive',
];

/** Fields listed once more than they occur, so none of them can be added after signing. */
const OVERSIGNED = new Set(['from']);

/** RFC 6376 §3.4.2: relaxed header canonicalisation of one field (with its CRLF). */
function relaxedHeader(raw: string): string {
  const colon = raw.indexOf(':');
  const name = raw.slice(0, colon).trim().toLowerCase();
  const value = raw
    .slice(colon + 1)
    .replace(/\r\n(?=[ \t])/g, '')
    .replace(/[ \t]+/g, ' ')
    .replace(/[ \t\r\n]+$/, '')
    .replace(/^[ \t]+/, '');
  return `${name}:${value}\r\n`;
}

/** RFC 6376 §3.4.4: relaxed body canonicalisation. */
export function relaxedBody(body: Buffer): Buffer {
  const lines = body
    .toString('latin1')
    .split('\r\n')
    .map((l) => l.replace(/[ \t]+/g, ' ').replace(/ $/, ''));
  // A body that ends with CRLF splits into a last empty string; empty lines at the end go.
  while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (lines.length === 0) return Buffer.alloc(0);
  return Buffer.from(`${lines.join('\r\n')}\r\n`, 'latin1');
}

/**
 * Folds a tag list at its `; ` separators (RFC 6376 §3.5 allows FWS there), so no line is much
 * over 78 characters; a single long tag stays whole (whitespace inside h= or bh= would change
 * what is signed).
 */
function fold(tags: string): string {
  const lines: string[] = [];
  let line = 'DKIM-Signature:';
  const list = tags.split('; ');
  for (const [i, tag] of list.entries()) {
    const piece = ` ${tag}${i === list.length - 1 ? '' : ';'}`;
    if (line.length + piece.length > 78 && line !== 'DKIM-Signature:') {
      lines.push(line);
      line = `\t${piece.trimStart()}`;
    } else {
      line += piece;
    }
  }
  lines.push(line);
  return lines.join('\r\n');
}

/** One DKIM-Signature field before its b= value, and the bytes that value signs. */
interface UnsignedField {
  readonly key: DkimKey;
  /** The field with b= empty, folded, without its final CRLF. */
  readonly field: string;
  /** What the key signs: for ed25519-sha256 the SHA-256 of the canonicalised data (RFC 8463). */
  readonly signed: Buffer;
  readonly hash: 'sha256' | null;
}

/** The fields for `message`, one per key, each with what its key must sign (RFC 6376 §3.7). */
function unsignedFields(message: Buffer, keys: readonly DkimKey[], now: number): UnsignedField[] {
  if (keys.length === 0) return [];
  const { fields, body } = splitMessage(message);
  const bh = createHash('sha256').update(relaxedBody(body)).digest('base64');
  // h=: the signed fields present, bottom-most instance first for repeated names (§5.4.2),
  // then each oversigned name once more.
  const present = fields.filter((f) => SIGNED_FIELDS.includes(f.name));
  const picked: HeaderField[] = [];
  const names: string[] = [];
  for (const name of SIGNED_FIELDS) {
    const instances = present.filter((f) => f.name === name).reverse();
    for (const f of instances) {
      picked.push(f);
      names.push(name);
    }
    if (OVERSIGNED.has(name)) names.push(name);
  }
  const headerBlock = picked.map((f) => relaxedHeader(f.raw)).join('');
  const t = Math.floor(now / 1000);
  return keys.map((key) => {
    const tags = `v=1; a=${key.algorithm}; c=relaxed/relaxed; d=${key.domain}; s=${key.selector}; t=${t}; h=${names.join(':')}; bh=${bh}; b=`;
    // The field as it will appear, with b= empty, is the last input to the hash (§3.7).
    const field = fold(tags);
    const data = Buffer.from(headerBlock + relaxedHeader(field).replace(/\r\n$/, ''), 'latin1');
    return key.algorithm === 'rsa-sha256'
      ? { key, field, signed: data, hash: 'sha256' }
      : { key, field, signed: createHash('sha256').update(data).digest(), hash: null };
  });
}

/** The whole field: b='s value is removed before verifying (§3.7), so it may be folded anywhere. */
function signedField(u: UnsignedField, signature: Buffer): string {
  const b64 = signature.toString('base64');
  return `${u.field}${(b64.match(/.{1,72}/g) as string[]).join('\r\n\t')}\r\n`;
}

/**
 * The DKIM-Signature fields for `message`, one per key, to be put in front of it (each ends with
 * CRLF). `now` is the signature time (t=), in ms. Signs on the calling thread: for a message now
 * and then (a bounce); a message per submission uses dkimSignAsync.
 */
export function dkimSign(message: Buffer, keys: readonly DkimKey[], now = Date.now()): string {
  return unsignedFields(message, keys, now)
    .map((u) => signedField(u, sign(u.hash, u.signed, u.key.privateKey)))
    .join('');
}

const signOnPool = promisify(sign);

/**
 * dkimSign with the signatures made on libuv's thread pool (crypto.sign with a callback), side
 * by side: an RSA-2048 signature is 0.3 ms or more of CPU, which the event loop spent on every
 * message the off-ramp took in before.
 */
export async function dkimSignAsync(
  message: Buffer,
  keys: readonly DkimKey[],
  now = Date.now(),
): Promise<string> {
  const unsigned = unsignedFields(message, keys, now);
  const signatures = await Promise.all(
    unsigned.map((u) => signOnPool(u.hash, u.signed, u.key.privateKey)),
  );
  return unsigned.map((u, i) => signedField(u, signatures[i] as Buffer)).join('');
}
