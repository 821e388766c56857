/**
 * Transform (DESIGN.md §1b): what a message becomes before it is committed.
 *
 * - AMP from a client of this gateway: the gateway signature (docs/PROTOCOL.md §6.4) is added,
 *   vouching for the authenticated sender.
 * - Legacy into AMP: the message gets a Received line and the results of what the gateway
 *   verified (authentication.ts), then one envelope is sealed per recipient DID, each with a
 *   signed recipient list naming only that DID (so no recipient learns of the others, as with
 *   Bcc), all with one message id. The gateway is the author (the delegated origin: it signs the
 *   content with its own DID key) and its signed origin part (§6.8) says that the message came
 *   from SMTP, from whom, and what was verified. The body is the whole message
 *   (`message/rfc822`); nothing of it stays in cleartext in the queue.
 * - Legacy to ordinary addresses: signed, sealed or passed on as offramp.ts says.
 */
import { domainToUnicode } from 'node:url';
import libmime from 'libmime';
import addressparser from 'nodemailer/lib/addressparser';
import {
  encodeEnvelope,
  encodeWithGatewaySignature,
  type Envelope,
  type Origin,
  type SpamPart,
} from '../envelope/codec.js';
import { sealEnvelopeAsync, type AuthorSigner } from '../envelope/envelope.js';
import type { GatewaySigner } from '../envelope/gateway.js';
import { ciphertextHash, type DeliveryReceipt } from '../envelope/receipt.js';
import type { ReceiptFor } from '../mailbox/writer.js';
import { MAX_SUBJECT_BYTES } from '../envelope/limits.js';
import type { SecretKeySet } from '../identity/keys.js';
import type { AuthResults } from './authentication.js';
import type { LegacySubmission, Target } from './types.js';

export interface TransformDeps {
  readonly gatewayKeys: SecretKeySet;
  /** This gateway's host name, for the Received line. */
  readonly hostname: string;
  readonly maxEnvelopeBytes: number;
  /** How long legacy mail may wait for its recipient in AMP (the envelope's expiry). */
  readonly legacyTtlMs: number;
}

/**
 * What sealing needs besides the settings: the gateway's signers, as the copies' author (§6.1)
 * and as their gateway (§6.4), both of which batch.
 */
export interface SealDeps extends TransformDeps {
  readonly authorSigner: AuthorSigner;
  readonly gatewaySigner: GatewaySigner;
}

/** One recipient DID's sealed copy. */
export interface SealedCopy {
  readonly recipient: string;
  readonly local: boolean;
  /** The signed envelope, and its encoding. */
  readonly envelope: Envelope;
  readonly bytes: Buffer;
  /** SHA-256 of its ciphertext, as its receipt names it. */
  readonly ciphertextHash: Buffer;
  /** For a local copy, its delivery receipt, signed alongside the gateway signature. */
  readonly receipt?: Promise<DeliveryReceipt>;
}

/** Signs the receipt of a local copy whose ciphertext is final (MailboxWriter.signReceipt). */
export type ReceiptSigner = (fields: ReceiptFor) => Promise<DeliveryReceipt>;

/**
 * AMP from a client of this gateway: its envelope, decoded from `bytes`, with our gateway
 * signature, encoded (the signature's field appended to the client's bytes).
 */
export async function signDispatched(
  env: Envelope,
  bytes: Uint8Array,
  deps: SealDeps,
): Promise<Buffer> {
  return encodeWithGatewaySignature(env, bytes, await deps.gatewaySigner.signature(env), {
    maxBytes: deps.maxEnvelopeBytes,
  });
}

/** RFC 5322 §3.3 date-time, numeric zone. */
export function rfc5322Date(ms: number): string {
  return new Date(ms).toUTCString().replace(/GMT$/, '+0000');
}

/** RFC 5321 §4.4 trace line; `with` per RFC 3848 (ESMTP, ESMTPS, ESMTPA, ESMTPSA). */
export function receivedLine(sub: LegacySubmission, hostname: string): string {
  const c = sub.client;
  const proto = `ESMTP${c.tls ? 'S' : ''}${c.login !== undefined ? 'A' : ''}`;
  const helo = (c.helo ?? 'unknown').replace(/[^\x21-\x7e]/g, '?').slice(0, 255);
  const only = sub.recipients.length === 1 ? `\r\n\tfor <${sub.recipients[0]?.address}>` : '';
  return (
    `Received: from ${helo} ([${c.address}])\r\n\tby ${hostname} (AfterSMTP) with ${proto} ` +
    `id ${sub.transaction}${only};\r\n\t${rfc5322Date(sub.receivedAt)}\r\n`
  );
}

/**
 * The message as it leaves the gateway: trace and `results` (our verification's header lines,
 * or '' for mail originated here and going out) first, then PREPENDs, then itself.
 */
export function stampedMessage(sub: LegacySubmission, results: string, hostname: string): Buffer {
  const prepend = (sub.effects.headers ?? []).map((h) => `${h}\r\n`).join('');
  return Buffer.concat([
    Buffer.from(receivedLine(sub, hostname) + results + prepend, 'utf8'),
    sub.message,
  ]);
}

/**
 * The unfolded value of the first `name` field of the header section (RFC 5322 §2.2.3: a line
 * that starts with a space or tab continues the field; the blank line ends the section).
 */
function firstField(lines: readonly string[], name: string): string | undefined {
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line === '') return undefined;
    // A continuation line belongs to the field above it, whatever it holds (a DKIM-Signature's
    // folded h= list may start with "From:" or "subject :").
    if (line.startsWith(' ') || line.startsWith('\t')) continue;
    const colon = line.indexOf(':');
    if (colon < 0 || line.slice(0, colon).trimEnd().toLowerCase() !== name) continue;
    let value = line.slice(colon + 1);
    while (/^[ \t]/.test(lines[i + 1] ?? '')) value += ` ${(lines[++i] as string).trimStart()}`;
    return value.trim();
  }
  return undefined;
}

/** RFC 2047 encoded words decoded; a value that does not decode stays as it is. */
function decodeWords(value: string): string {
  try {
    return libmime.decodeWords(value);
  } catch {
    return value;
  }
}

const ENCODED_WORD = /=\?[^?]+\?[BbQq]\?[^?]*\?=/;

/**
 * The first mailbox of a From value, as mailparser reads it: an encoded word in the addr-spec
 * (RFC 2047 §5 forbids it) counts only if it decodes to a plain local@domain, and an IDNA
 * domain is given in Unicode.
 */
function firstAddress(value: string): string {
  let address = addressparser(value)[0]?.address ?? '';
  if (ENCODED_WORD.test(address)) {
    const decoded = decodeWords(address);
    address = /^[^\s@]+@[^\s@]+$/.test(decoded) && !/=\?/.test(decoded) ? decoded : '';
  }
  const at = address.lastIndexOf('@');
  if (/@xn--/.test(address)) {
    const domain = domainToUnicode(address.slice(at + 1));
    if (domain !== '') address = `${address.slice(0, at + 1)}${domain}`;
  }
  return address;
}

export interface MessageFacts {
  readonly subject: string;
  /** The first From mailbox, or ''. */
  readonly headerFrom: string;
}

/**
 * Subject and From, decoded (RFC 2047), from the first of each field in the header section.
 * Read directly rather than by a MIME parser: only these two fields are needed, and a parser's
 * streams cost more than the rest of the transform except the cryptography.
 */
export function messageFacts(message: Buffer): MessageFacts {
  const end = message.indexOf('\r\n\r\n');
  const lines = (end < 0 ? message : message.subarray(0, end)).toString('utf8').split(/\r?\n/);
  let subject = decodeWords(firstField(lines, 'subject') ?? '');
  while (Buffer.byteLength(subject) > MAX_SUBJECT_BYTES) subject = subject.slice(0, -1);
  const from = firstField(lines, 'from');
  return { subject, headerFrom: from === undefined ? '' : firstAddress(from) };
}

/** The signed origin part of every copy of one legacy message. */
export function originOf(sub: LegacySubmission, auth: AuthResults, facts: MessageFacts): Origin {
  const c = sub.client;
  const cap = (s: string, n = 1024): string => {
    let out = s;
    while (Buffer.byteLength(out) > n) out = out.slice(0, -1);
    return out;
  };
  return {
    entrance: c.entrance === 'submission' ? 'submission' : 'smtp',
    mailFrom: cap(sub.mailFrom),
    headerFrom: cap(facts.headerFrom),
    clientAddress: c.address,
    helo: cap(c.helo ?? ''),
    login: cap(c.login ?? ''),
    authenticationResults: cap(auth.authenticationResults, 8192),
    spf: auth.spf,
    dkim: auth.dkim,
    dmarc: auth.dmarc,
    arc: auth.arc,
    receivedAt: sub.receivedAt,
  };
}

/** What differs between the copies of one message: its spam part and content (X-Spam fields). */
export interface CopyExtras {
  readonly spam?: SpamPart;
  readonly content?: Buffer;
}

/**
 * One envelope per DID target, authored and vouched for by the gateway (both signatures made in
 * batches while the gateway is busy); `extras` gives a copy its own content and spam part
 * (docs/PROTOCOL.md §6.9), both covered by the gateway signature.
 * `receiptFor` signs a local copy's receipt as soon as its ciphertext is final, so that on the
 * thread pool the receipt and the gateway signature are made side by side, not one after the
 * other.
 */
export function sealCopies(
  targets: readonly Extract<Target, { kind: 'did' }>[],
  content: Buffer,
  facts: MessageFacts,
  origin: Origin,
  messageId: Buffer,
  deps: SealDeps,
  extras?: (did: string) => CopyExtras | undefined,
  receiptFor?: ReceiptSigner,
): Promise<SealedCopy[]> {
  // The gateway's ML-DSA signatures (hybrid-v1) are made on the thread pool, not the event loop.
  return Promise.all(
    targets.map(async (t) => {
      const extra = extras?.(t.did);
      const sealed = await sealEnvelopeAsync(
        {
          author: deps.gatewayKeys,
          signedRecipients: [t.record],
          body: {
            subject: facts.subject,
            contentType: 'message/rfc822',
            content: extra?.content ?? content,
          },
          createdAt: origin.receivedAt,
          expiresAt: origin.receivedAt + deps.legacyTtlMs,
          messageId,
          maxBytes: deps.maxEnvelopeBytes,
        },
        deps.authorSigner,
      );
      const hash = ciphertextHash(sealed);
      const receipt = t.local
        ? receiptFor?.({
            recipient: t.did,
            messageId: sealed.messageId,
            sender: sealed.sender,
            ciphertextHash: hash,
          })
        : undefined;
      // Awaited by the store, if the copy gets there; never an unhandled rejection if it does not.
      receipt?.catch(() => undefined);
      const signed = await deps.gatewaySigner.sign({
        ...sealed,
        origin,
        ...(extra?.spam !== undefined ? { spam: extra.spam } : {}),
      });
      return {
        recipient: t.did,
        local: t.local,
        envelope: signed,
        bytes: encodeEnvelope(signed, { maxBytes: deps.maxEnvelopeBytes }),
        ciphertextHash: hash,
        ...(receipt !== undefined ? { receipt } : {}),
      };
    }),
  );
}
