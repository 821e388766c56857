/**
 * `aftersmtp envelope seal|open`: the AMP envelope from the command line, for interop testing and
 * debugging. Seal reads the author's key file and the recipients' public record files; open reads
 * the recipient's key file, verifies everything docs/PROTOCOL.md requires of an opener, and
 * prints the verified sender, recipients, timestamps and body.
 */
import { loadConfig } from '../../config/load.js';
import {
  decodeEnvelope,
  encodeEnvelope,
  openEnvelope,
  sealMessage,
  addGatewaySignature,
  verifyGatewaySignature,
  DEFAULT_TTL_MS,
  type OpenedMessage,
} from '../../envelope/index.js';
import { readKeyFile, readPublicRecordFile, type PublicKeyRecord } from '../../identity/index.js';
import { readBoundedFile } from '../../identity/files.js';
import {
  UsageError,
  flag,
  optionalString,
  requireString,
  requireStrings,
  type Command,
  type ParsedArgs,
} from '../command.js';
import { printLines, readPassphrase, writeOutputFile } from '../output.js';

const DURATION_UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `15m`, `12h`, `7d` → milliseconds. */
export function parseDuration(raw: string, name: string): number {
  const m = /^([1-9][0-9]{0,6})([smhd])$/.exec(raw);
  if (!m) throw new UsageError(`--${name} must look like 90s, 15m, 12h or 7d`);
  return Number(m[1]) * (DURATION_UNITS[m[2] as string] as number);
}

/**
 * `--now`: the instant to judge expiry by, instead of the clock (to check an old example or a
 * message kept from before its expiry): an ISO 8601 time with its zone, or ms since the epoch.
 */
export function parseInstant(raw: string, name: string): number {
  const ms = /^[0-9]{1,16}$/.test(raw)
    ? Number(raw)
    : /^\d{4}-\d{2}-\d{2}T[^ ]*(Z|[+-]\d{2}:\d{2})$/.test(raw)
      ? Date.parse(raw)
      : Number.NaN;
  if (!Number.isSafeInteger(ms)) {
    throw new UsageError(
      `--${name} must be an ISO 8601 time with its zone (2025-01-01T00:00:00Z) or ms since the epoch`,
    );
  }
  return ms;
}

async function records(args: ParsedArgs, name: string): Promise<PublicKeyRecord[]> {
  const files = args.values[name];
  if (files === undefined) return [];
  return Promise.all((files as string[]).map((f) => readPublicRecordFile(f)));
}

export const envelopeSealCommand: Command = {
  path: ['envelope', 'seal'],
  summary: 'Seal a message into AMP envelopes for recipients given by their public record files.',
  usage:
    '--from <key file> --to <record file>... [--cc <record file>...] [--bcc <record file>...]\n' +
    '       --in <body file> --out <envelope file> [--subject <text>] [--content-type <type>]\n' +
    '       [--ttl 7d] [--gateway-key <key file>] [--json]\n\n' +
    'Each --bcc recipient gets an envelope of its own, written to <out>.bcc<N>.\n' +
    'Files given as - are standard input (--in, one of them) or standard output (--out).\n' +
    'An existing output file is never overwritten (ERR_OUTPUT_EXISTS).\n' +
    'With --gateway-key, the envelopes also carry that gateway signature (as a sending gateway adds).',
  options: {
    from: { type: 'string' },
    to: { type: 'string', multiple: true },
    cc: { type: 'string', multiple: true },
    bcc: { type: 'string', multiple: true },
    in: { type: 'string' },
    out: { type: 'string' },
    subject: { type: 'string' },
    'content-type': { type: 'string' },
    ttl: { type: 'string' },
    'gateway-key': { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args) {
    const config = loadConfig();
    const from = requireString(args, 'from');
    requireStrings(args, 'to');
    const inPath = requireString(args, 'in');
    const out = requireString(args, 'out');
    if (out === '-' && args.values.bcc !== undefined) {
      throw new UsageError('--out - cannot hold the separate envelopes of --bcc recipients');
    }
    const ttlFlag = optionalString(args, 'ttl');
    const ttl = ttlFlag === undefined ? DEFAULT_TTL_MS : parseDuration(ttlFlag, 'ttl');
    const gatewayKeyFile = optionalString(args, 'gateway-key');
    const [to, cc, bcc] = await Promise.all([
      records(args, 'to'),
      records(args, 'cc'),
      records(args, 'bcc'),
    ]);
    const content = await readBoundedFile(
      inPath,
      config.maxEnvelopeBytes,
      'ERR_INPUT_FILE',
      'ERR_ENVELOPE_TOO_LARGE',
    );

    const passphrase = await readPassphrase(`key file ${from}`);
    const author = await readKeyFile(from, passphrase);
    const gateway =
      gatewayKeyFile === undefined ? undefined : await readKeyFile(gatewayKeyFile, passphrase);
    const createdAt = Date.now();
    const sealed = sealMessage({
      author,
      to,
      cc,
      bcc,
      body: {
        subject: optionalString(args, 'subject') ?? '',
        contentType: optionalString(args, 'content-type') ?? 'text/plain; charset=utf-8',
        content,
      },
      createdAt,
      expiresAt: createdAt + ttl,
      maxBytes: config.maxEnvelopeBytes,
    });
    const written: { file: string; bytes: number; recipients: string[] }[] = [];
    let bccIndex = 0;
    for (const { envelope, bcc: bccRecipient } of sealed) {
      const signed = gateway ? addGatewaySignature(envelope, gateway) : envelope;
      const bytes = encodeEnvelope(signed, { maxBytes: config.maxEnvelopeBytes });
      const file = bccRecipient ? `${out}.bcc${++bccIndex}` : out;
      await writeOutputFile(file, bytes, '--out');
      written.push({ file, bytes: bytes.length, recipients: signed.wraps.map((w) => w.recipient) });
    }
    if (flag(args, 'json')) {
      const text = `${JSON.stringify({ sender: author.record.did, envelopes: written }, null, 2)}\n`;
      if (out === '-') process.stderr.write(text);
      else process.stdout.write(text);
      return;
    }
    const lines = written.map((w) => `${w.file}  ${w.bytes} bytes  for ${w.recipients.join(', ')}`);
    if (out === '-') process.stderr.write(`${lines.join('\n')}\n`);
    else printLines(lines);
  },
};

function isUtf8Text(content: Buffer): boolean {
  return Buffer.from(content.toString('utf8'), 'utf8').equals(content);
}

function openedToJson(m: OpenedMessage, gatewayVerified: boolean) {
  const text = isUtf8Text(m.content);
  return {
    suite: m.suite,
    messageId: m.messageId.toString('hex'),
    sender: { did: m.sender.did, keyId: m.sender.keyId.toString('base64'), verified: true },
    recipients: m.recipients.map((r) => ({ did: r.did, keyId: r.keyId.toString('base64') })),
    createdAt: new Date(m.createdAt).toISOString(),
    expiresAt: new Date(m.expiresAt).toISOString(),
    checkpoint: m.checkpoint.toString('base64'),
    gatewaySignature: m.gatewaySignature
      ? {
          did: m.gatewaySignature.did,
          keyId: m.gatewaySignature.keyId.toString('base64'),
          verified: gatewayVerified,
        }
      : null,
    subject: m.subject,
    contentType: m.contentType,
    ...(text ? { body: m.content.toString('utf8') } : { bodyBase64: m.content.toString('base64') }),
  };
}

export const envelopeOpenCommand: Command = {
  path: ['envelope', 'open'],
  summary: 'Open an AMP envelope: decrypt, verify the author and the recipient list, print it.',
  usage:
    '--key <key file> --in <envelope file> [--gateway-record <record file>] [--body-out <file>]\n' +
    '       [--now <time>] [--json]\n\n' +
    'Refuses (exit 1) an envelope that is malformed, expired, not for this key, not listing this\n' +
    'recipient in its signed recipients, or whose author signature does not verify. With\n' +
    '--gateway-record, the gateway signature must be present and verify with that record.\n' +
    '--in - reads standard input; --body-out - writes the body, byte for byte, to standard output.\n' +
    '--now judges expiry at that instant (ISO 8601 with its zone, or ms since the epoch) instead of\n' +
    "this machine's clock, e.g. to check docs/PROTOCOL.md's worked examples.",
  options: {
    key: { type: 'string' },
    in: { type: 'string' },
    'gateway-record': { type: 'string' },
    'body-out': { type: 'string' },
    now: { type: 'string' },
    json: { type: 'boolean' },
  },
  async run(args) {
    const config = loadConfig();
    const keyFile = requireString(args, 'key');
    const nowRaw = optionalString(args, 'now');
    const now = nowRaw === undefined ? undefined : parseInstant(nowRaw, 'now');
    const inPath = requireString(args, 'in');
    const gatewayRecordFile = optionalString(args, 'gateway-record');
    const bytes = await readBoundedFile(
      inPath,
      config.maxEnvelopeBytes,
      'ERR_INPUT_FILE',
      'ERR_ENVELOPE_TOO_LARGE',
    );
    const envelope = decodeEnvelope(bytes, { maxBytes: config.maxEnvelopeBytes });
    if (gatewayRecordFile !== undefined) {
      verifyGatewaySignature(envelope, await readPublicRecordFile(gatewayRecordFile));
    }
    const keys = await readKeyFile(keyFile, await readPassphrase(`key file ${keyFile}`));
    const opened = openEnvelope(envelope, keys, now === undefined ? {} : { now });
    const bodyOut = optionalString(args, 'body-out');
    if (bodyOut !== undefined) await writeOutputFile(bodyOut, opened.content, '--body-out');
    const json = openedToJson(opened, gatewayRecordFile !== undefined);
    // With the body on standard output, what is said about it goes to standard error.
    const say = (text: string): void => {
      if (bodyOut === '-') process.stderr.write(text);
      else process.stdout.write(text);
    };
    if (flag(args, 'json')) {
      say(`${JSON.stringify(json, null, 2)}\n`);
      return;
    }
    const g = json.gatewaySignature;
    say(
      `${[
        `from       ${json.sender.did} (key ${json.sender.keyId}, author signature verified)`,
        `to         ${json.recipients.map((r) => r.did).join(', ')}`,
        `sent       ${json.createdAt}`,
        `expires    ${json.expiresAt}`,
        `gateway    ${g ? `${g.did} (${g.verified ? 'verified' : 'present, not checked: no --gateway-record'})` : 'none'}`,
        `subject    ${json.subject}`,
        `type       ${json.contentType}`,
        '',
        bodyOut !== undefined
          ? `(${opened.content.length} bytes written to ${bodyOut === '-' ? 'standard output' : bodyOut})`
          : 'body' in json
            ? json.body
            : `(${opened.content.length} bytes of binary content; use --body-out)`,
      ].join('\n')}\n`,
    );
  },
};
