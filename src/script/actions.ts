/**
 * What a MailScript may ask for (docs/MAILSCRIPT.md, "Actions"), and the host's check of it.
 *
 * A script never calls into the host: its action functions only push plain records onto a list
 * inside the sandbox, and the list comes out as one JSON text. This module is the one place that
 * reads that text, and it trusts nothing in it: every action and argument is checked again here
 * (the checks inside the sandbox only give the script an early, catchable error). A record that
 * fails a check makes the whole run fail (ScriptActionError): the message is deferred, never half
 * acted on.
 */
import { AfterSmtpError } from '../errors.js';

/** Bounds of what comes out of a script. */
export const ACTION_LIMITS = {
  /** The JSON text of the whole action list. */
  maxOutputBytes: 256 * 1024,
  /** Actions in one run. */
  maxActions: 64,
  /** Header lines one run may add. */
  maxHeaders: 16,
  /** A header field name (RFC 5322 2.2: printable ASCII but colon). */
  maxHeaderName: 76,
  /** A header field value, unfolded (RFC 5322 2.1.1: 998 octets a line). */
  maxHeaderValue: 900,
  /** The text of reject() and defer(). */
  maxText: 200,
  /** Webhook calls in one run. */
  maxWebhooks: 4,
  /** A webhook's JSON payload. */
  maxPayloadBytes: 16 * 1024,
  /** An address or DID. */
  maxAddress: 320,
  /** A route. */
  maxRoute: 300,
} as const;

export type ScriptAction =
  | { readonly action: 'accept' }
  | { readonly action: 'reject'; readonly code: number; readonly text: string }
  | { readonly action: 'defer'; readonly text: string }
  | { readonly action: 'discard' }
  | { readonly action: 'redirect'; readonly to: string }
  | { readonly action: 'add_header'; readonly name: string; readonly value: string }
  /** `recipients` absent: every recipient of the message. */
  | { readonly action: 'set_junk'; readonly recipients?: readonly string[] }
  | { readonly action: 'route_via'; readonly route: string }
  /** `payload` is JSON text. */
  | { readonly action: 'webhook'; readonly name: string; readonly payload: string };

export const ACTION_NAMES = [
  'accept',
  'reject',
  'defer',
  'discard',
  'redirect',
  'add_header',
  'set_junk',
  'route_via',
  'webhook',
] as const;

/** A script's output that is not a valid action list. */
export class ScriptActionError extends AfterSmtpError {
  constructor(message: string) {
    super('ERR_SCRIPT_ACTION', message);
  }
}

const HEADER_NAME = /^[!-9;-~]+$/;
// Printable ASCII, tab, and UTF-8 above (RFC 6532); no CR, LF or other control characters.
const HEADER_VALUE = /^[\t\x20-\x7e\u0080-\uffff]*$/;
const TEXT = /^[\x20-\x7e]*$/;
// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const ADDRESS = /^[^\s<>()\\,;:"\x00-\x1f\x7f]+@[a-z0-9.-]+$/i;
const DID = /^did:aftersmtp:[a-z0-9.-]+:[a-z0-9._+%-]+$/i;
const WEBHOOK_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Header fields a script may not add: they belong to the gateway's own stamps and signatures. */
const RESERVED_HEADERS = new Set([
  'received',
  'return-path',
  'authentication-results',
  'dkim-signature',
  'arc-seal',
  'arc-message-signature',
  'arc-authentication-results',
  'from',
  'sender',
  'to',
  'cc',
  'bcc',
  'message-id',
  'date',
  'subject',
  'content-type',
  'content-transfer-encoding',
  'mime-version',
]);

function fail(message: string): never {
  throw new ScriptActionError(message);
}

function str(v: unknown, what: string, max: number): string {
  if (typeof v !== 'string') fail(`${what}: expected a string`);
  if (v.length > max) fail(`${what}: longer than ${max} characters`);
  return v;
}

export function checkHeader(name: unknown, value: unknown): { name: string; value: string } {
  const n = str(name, 'add_header name', ACTION_LIMITS.maxHeaderName);
  const v = str(value, 'add_header value', ACTION_LIMITS.maxHeaderValue);
  if (!HEADER_NAME.test(n)) fail(`add_header: ${JSON.stringify(n)} is not a header field name`);
  if (RESERVED_HEADERS.has(n.toLowerCase())) fail(`add_header: ${n} is the gateway's to set`);
  if (!HEADER_VALUE.test(v)) fail('add_header value: no CR, LF or control characters');
  return { name: n, value: v.trim() };
}

export function checkAddressOrDid(v: unknown, what: string): string {
  const s = str(v, what, ACTION_LIMITS.maxAddress);
  if (!ADDRESS.test(s) && !DID.test(s))
    fail(`${what}: ${JSON.stringify(s)} is not an address or DID`);
  return s;
}

export function checkWebhookName(v: unknown): string {
  const s = str(v, 'webhook name', 63);
  if (!WEBHOOK_NAME.test(s)) fail(`webhook: ${JSON.stringify(s)} is not a webhook name`);
  return s;
}

function checkOne(raw: unknown): ScriptAction {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('not an action record');
  const r = raw as Record<string, unknown>;
  switch (r.action) {
    case 'accept':
    case 'discard':
      return { action: r.action };
    case 'reject': {
      const code = r.code;
      if (typeof code !== 'number' || !Number.isInteger(code) || code < 400 || code > 599) {
        fail('reject: the code must be a 4xx or 5xx SMTP reply code');
      }
      const text = str(r.text, 'reject text', ACTION_LIMITS.maxText);
      if (!TEXT.test(text)) fail('reject text: printable ASCII only, one line');
      return { action: 'reject', code, text };
    }
    case 'defer': {
      const text = str(r.text, 'defer text', ACTION_LIMITS.maxText);
      if (!TEXT.test(text)) fail('defer text: printable ASCII only, one line');
      return { action: 'defer', text };
    }
    case 'redirect':
      return { action: 'redirect', to: checkAddressOrDid(r.to, 'redirect') };
    case 'add_header':
      return { action: 'add_header', ...checkHeader(r.name, r.value) };
    case 'set_junk': {
      if (r.recipients === undefined) return { action: 'set_junk' };
      if (!Array.isArray(r.recipients) || r.recipients.length > 1000) {
        fail('set_junk: expected a list of recipients');
      }
      return {
        action: 'set_junk',
        recipients: r.recipients.map((x) => checkAddressOrDid(x, 'set_junk recipient')),
      };
    }
    case 'route_via':
      return { action: 'route_via', route: str(r.route, 'route_via', ACTION_LIMITS.maxRoute) };
    case 'webhook': {
      const payload = str(r.payload, 'webhook payload', ACTION_LIMITS.maxPayloadBytes);
      if (Buffer.byteLength(payload) > ACTION_LIMITS.maxPayloadBytes) {
        fail(`webhook payload: over ${ACTION_LIMITS.maxPayloadBytes} bytes`);
      }
      try {
        JSON.parse(payload);
      } catch {
        fail('webhook payload: not JSON');
      }
      return { action: 'webhook', name: checkWebhookName(r.name), payload };
    }
    default:
      return fail(`unknown action ${JSON.stringify(r.action)}`.slice(0, 80));
  }
}

/** The action list a run produced (its JSON text), checked; throws ScriptActionError. */
export function parseActions(json: string): ScriptAction[] {
  if (json.length > ACTION_LIMITS.maxOutputBytes) fail('the action list is too large');
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    fail('the action list is not JSON');
  }
  if (!Array.isArray(v)) fail('the action list is not a list');
  if (v.length > ACTION_LIMITS.maxActions) fail(`more than ${ACTION_LIMITS.maxActions} actions`);
  const actions = v.map(checkOne);
  if (actions.filter((a) => a.action === 'add_header').length > ACTION_LIMITS.maxHeaders) {
    fail(`more than ${ACTION_LIMITS.maxHeaders} add_header`);
  }
  if (actions.filter((a) => a.action === 'webhook').length > ACTION_LIMITS.maxWebhooks) {
    fail(`more than ${ACTION_LIMITS.maxWebhooks} webhooks`);
  }
  return actions;
}
