/**
 * AMP to ordinary addresses (docs/PROTOCOL.md §14): a client that writes to someone outside AMP
 * seals the whole RFC 5322 message (`message/rfc822`) to its own domain's gateway DID
 * (`did:aftersmtp:<domain>:gateway`), naming the addresses in `X-AfterSMTP-Rcpt-To` fields. The
 * gateway is the one place where end-to-end encryption can end for such a recipient: it opens
 * the envelope, checks that its author is the sender's current key, and makes the message an
 * ordinary one of the sender's address:
 *
 * - From becomes the sender's address (canonical_maps for the DID, else `localpart@domain`),
 *   with the display name the client gave; Sender goes (From is the one author).
 * - Fields that only a gateway may write, or that must not leave, go: X-AfterSMTP-*,
 *   Return-Path, Bcc, Received, Received-SPF, Authentication-Results, DKIM-Signature, ARC-*.
 * - Message-ID and Date are kept (made from the envelope's id and time when missing); a
 *   Received line of this gateway goes on top; then the pipeline signs it (DKIM) and queues it.
 *
 * Line ends are made CRLF (what SMTP sends, and what the signature must cover).
 *
 * Refused: anything not `message/rfc822`, a line over 998 octets, a message without an
 * X-AfterSMTP-Rcpt-To, an address that is not plain `local@domain`, and an address of a domain
 * this gateway serves or that mx_record_map routes to AMP (those are AMP identities: the client
 * sends to their DIDs).
 */
import addressparser from 'nodemailer/lib/addressparser';
import { encodeWord } from 'nodemailer/lib/mime-funcs';
import { openEnvelope, type OpenedMessage } from '../envelope/envelope.js';
import type { Envelope } from '../envelope/codec.js';
import { MAX_RECIPIENTS } from '../envelope/limits.js';
import { parseDid } from '../identity/did.js';
import type { SecretKeySet } from '../identity/keys.js';
import { field, fieldValue, joinMessage, splitMessage, type HeaderField } from '../mail/headers.js';
import type { MapSnapshot } from '../routing/index.js';
import { domainOf, localDid } from './addresses.js';
import { oneLine, refusal } from './refusals.js';
import { rfc5322Date } from './transform.js';
import type { Refusal } from './types.js';

/** The field that names the ordinary addresses a message is for (removed before it leaves). */
export const RCPT_TO_FIELD = 'X-AfterSMTP-Rcpt-To';

const DROPPED = new Set([
  'return-path',
  'bcc',
  'sender',
  'received',
  'received-spf',
  'authentication-results',
  'dkim-signature',
  'arc-seal',
  'arc-message-signature',
  'arc-authentication-results',
]);

/** A plain address: dot-atom local part, ASCII host name (RFC 5321 §4.1.2, no quoting). */
const PLAIN_ADDRESS =
  /^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}$/;

/** Whether this envelope is for the sender's own gateway (and nobody else). */
export function isForOwnGateway(env: Envelope): boolean {
  let gateway: string;
  try {
    gateway = localDid(parseDid(env.sender).domain, 'gateway');
  } catch {
    return false;
  }
  return env.wraps.length > 0 && env.wraps.every((w) => w.recipient === gateway);
}

/** Opens the envelope with the gateway's keys; the author must be `senderKeyId`. */
export function openForLegacy(
  env: Envelope,
  gatewayKeys: SecretKeySet,
  senderKeyId: Buffer,
  now: number,
): OpenedMessage | Refusal {
  let opened: OpenedMessage;
  try {
    opened = openEnvelope(env, gatewayKeys, { now });
  } catch (err) {
    const code = (err as { code?: string }).code ?? 'invalid';
    return refusal('ERR_ENVELOPE_INVALID', `the gateway cannot open the envelope (${code})`);
  }
  if (opened.sender.did !== env.sender || !opened.sender.keyId.equals(senderKeyId)) {
    return refusal(
      'ERR_SENDER_KEY_STALE',
      `the message is not signed by the current key of ${env.sender}`,
    );
  }
  if (opened.contentType.split(';')[0]?.trim().toLowerCase() !== 'message/rfc822') {
    return refusal(
      'ERR_CONTENT_TYPE',
      `mail for ordinary addresses must be message/rfc822, not ${oneLine(opened.contentType).slice(0, 80)}`,
    );
  }
  return opened;
}

/** The sender's address for the legacy internet (canonical_maps, else the DID's own). */
export function senderAddress(did: string, maps: MapSnapshot): string {
  const canonical = maps.canonicalSender(did);
  if (canonical !== undefined) return canonical;
  const { localpart, domain } = parseDid(did);
  return `${localpart}@${domain}`;
}

export interface LegacyMessage {
  readonly recipients: readonly string[];
  readonly message: Buffer;
}

export interface LegacyMessageInput {
  readonly opened: OpenedMessage;
  readonly from: string;
  readonly hostname: string;
  readonly domains: ReadonlySet<string>;
  readonly maps: MapSnapshot;
}

/** The ordinary message and its recipients (see the module comment), or why not. */
export function legacyMessage(input: LegacyMessageInput): LegacyMessage | Refusal {
  const { opened, from, hostname } = input;
  const content = withCrlf(opened.content);
  if (hasLongLine(content)) {
    return refusal('ERR_MESSAGE_FORMAT', 'a line is longer than 998 octets (RFC 5322 2.1.1)');
  }
  const { fields, body } = splitMessage(content);
  const rcptField = RCPT_TO_FIELD.toLowerCase();
  const recipients: string[] = [];
  for (const f of fields.filter((x) => x.name === rcptField)) {
    for (const { address: a } of addressparser(fieldValue(f), { flatten: true })) {
      if (!recipients.some((r) => r.toLowerCase() === a.toLowerCase())) recipients.push(a);
    }
  }
  if (recipients.length === 0) {
    return refusal('ERR_RECIPIENT_INVALID', `the message names no address in ${RCPT_TO_FIELD}`);
  }
  if (recipients.length > MAX_RECIPIENTS) {
    return refusal('ERR_RECIPIENT_INVALID', `more than ${MAX_RECIPIENTS} recipients`);
  }
  for (const r of recipients) {
    const problem = checkAddress(r, input);
    if (problem !== undefined) return problem;
  }
  const froms = fields.filter((f) => f.name === 'from');
  const name = froms.length > 0 ? firstName(fieldValue(froms[0] as HeaderField)) : '';
  const kept = fields.filter(
    (f) => !DROPPED.has(f.name) && !f.name.startsWith('x-aftersmtp-') && f.name !== 'from',
  );
  const id = opened.messageId.toString('hex');
  const added: HeaderField[] = [
    {
      name: 'received',
      raw: `Received: by ${hostname} (AfterSMTP) with AMP id ${id};\r\n\t${rfc5322Date(Date.now())}\r\n`,
    },
    field('From', formatMailbox(name, from)),
  ];
  if (!kept.some((f) => f.name === 'date')) {
    added.push(field('Date', rfc5322Date(opened.createdAt)));
  }
  if (!kept.some((f) => f.name === 'message-id')) {
    added.push(field('Message-ID', `<${id}@${domainOf(from)}>`));
  }
  return { recipients, message: joinMessage([...added, ...kept], body) };
}

/** The most octets a line may have before its CRLF (RFC 5322 2.1.1). */
const MAX_LINE_OCTETS = 998;

/**
 * Whether a line of `content` (CRLF line ends only, as withCrlf leaves it) is longer than
 * MAX_LINE_OCTETS. One pass from LF to LF with the native byte search: the regular expression
 * /[^\r\n]{999}/ it replaces tried a match at every octet, about 0.4 ms of the main thread for a
 * 4 KiB message in the off-ramp's profile.
 */
function hasLongLine(content: Buffer): boolean {
  let start = 0;
  while (start < content.length) {
    const lf = content.indexOf(0x0a, start);
    const end = lf < 0 ? content.length : lf - 1; // where the line's CR is, or its end
    if (end - start > MAX_LINE_OCTETS) return true;
    start = end + 2;
  }
  return false;
}

/** Line ends as SMTP sends them (a bare LF or CR would be turned into CRLF after signing). */
function withCrlf(message: Buffer): Buffer {
  const text = message.toString('latin1');
  return /\r(?!\n)|(?<!\r)\n/.test(text)
    ? Buffer.from(text.replace(/\r\n|\r|\n/g, '\r\n'), 'latin1')
    : message;
}

function checkAddress(address: string, input: LegacyMessageInput): Refusal | undefined {
  if (address.length > 254 || !PLAIN_ADDRESS.test(address)) {
    return refusal(
      'ERR_RECIPIENT_INVALID',
      `${oneLine(address).slice(0, 80) || '(empty)'} is not a plain address (local@domain)`,
    );
  }
  const route = input.maps.route(address);
  if (route?.kind === 'error') return refusal('ERR_ROUTE_ERROR', `<${address}>: ${route.text}`);
  if (input.domains.has(domainOf(address)) || route?.kind === 'amp') {
    return refusal(
      'ERR_RECIPIENT_IS_AMP',
      `<${address}> is an AMP identity: send to its DID instead`,
    );
  }
  return undefined;
}

function firstName(value: string): string {
  return addressparser(value, { flatten: true })[0]?.name ?? '';
}

/** `Name <address>`: an ASCII name quoted, any other encoded (RFC 2047). */
function formatMailbox(name: string, address: string): string {
  const clean = oneLine(name).trim().slice(0, 200);
  if (clean === '') return address;
  const display = /^[\x20-\x7e]*$/.test(clean)
    ? `"${clean.replace(/["\\]/g, '\\$&')}"`
    : encodeWord(clean, 'Q', 52);
  return `${display} <${address}>`;
}
