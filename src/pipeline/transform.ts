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
import { simpleParser } from 'mailparser';
import { encodeEnvelope, type Envelope, type Origin, type SpamPart } from '../envelope/codec.js';
import { sealEnvelope } from '../envelope/envelope.js';
import { addGatewaySignature } from '../envelope/gateway.js';
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

/** One recipient DID's sealed copy. */
export interface SealedCopy {
  readonly recipient: string;
  readonly local: boolean;
  /** The signed envelope, and its encoding. */
  readonly envelope: Envelope;
  readonly bytes: Buffer;
}

/** AMP from a client of this gateway: its envelope with our gateway signature, encoded. */
export function signDispatched(env: Envelope, deps: TransformDeps): Buffer {
  return encodeEnvelope(addGatewaySignature(env, deps.gatewayKeys), {
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

/** The header section of a message (up to the blank line), for the few fields read from it. */
function headerSection(message: Buffer): Buffer {
  const end = message.indexOf('\r\n\r\n');
  return end < 0 ? message : message.subarray(0, end + 4);
}

export interface MessageFacts {
  readonly subject: string;
  /** The first From mailbox, or ''. */
  readonly headerFrom: string;
}

/** Subject and From, decoded (RFC 2047) by mailparser from the header section only. */
export async function messageFacts(message: Buffer): Promise<MessageFacts> {
  const parsed = await simpleParser(headerSection(message), {
    skipHtmlToText: true,
    skipTextToHtml: true,
    skipImageLinks: true,
  });
  let subject = parsed.subject ?? '';
  while (Buffer.byteLength(subject) > MAX_SUBJECT_BYTES) subject = subject.slice(0, -1);
  const from = Array.isArray(parsed.from) ? parsed.from[0] : parsed.from;
  return { subject, headerFrom: from?.value[0]?.address ?? '' };
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
 * One envelope per DID target, authored and vouched for by the gateway; `extras` gives a copy
 * its own content and spam part (docs/PROTOCOL.md §6.9), both covered by the gateway signature.
 */
export function sealCopies(
  targets: readonly Extract<Target, { kind: 'did' }>[],
  content: Buffer,
  facts: MessageFacts,
  origin: Origin,
  messageId: Buffer,
  deps: TransformDeps,
  extras?: (did: string) => CopyExtras | undefined,
): SealedCopy[] {
  return targets.map((t) => {
    const extra = extras?.(t.did);
    const sealed = sealEnvelope({
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
    });
    const signed = addGatewaySignature(
      { ...sealed, origin, ...(extra?.spam !== undefined ? { spam: extra.spam } : {}) },
      deps.gatewayKeys,
    );
    return {
      recipient: t.did,
      local: t.local,
      envelope: signed,
      bytes: encodeEnvelope(signed, { maxBytes: deps.maxEnvelopeBytes }),
    };
  });
}
