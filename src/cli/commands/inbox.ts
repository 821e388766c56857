/**
 * `aftersmtp inbox`: logs in to the gateway with the key file's key (PROTOCOL.md §12.1), fetches
 * the mailbox (FetchInbox, from a cursor; --follow keeps waiting for new mail), opens every
 * envelope by the gateway's signed time (ExpiryOpener; ephemeral ones with the key share the
 * gateway releases) (PROTOCOL.md §6.6: the author signature inside verifies with the embedded author
 * record) and then checks that record against the ledger: the sender DID is resolved with verified
 * proofs (IdentityLookup: through the user's gateway for its own domain, §9.6, from the sender's
 * domain's own gateway otherwise, §13.2) and its current key id must be the author's key id. The
 * receipt is verified with the user's gateway's own record (the receiving gateway signs it), and so
 * is the gateway's signed spam verdict when the envelope has one. --folder shows one folder (inbox,
 * junk); each message says its folder. With --ack, each
 * message that opened and verified is deleted from the mailbox after it was printed.
 *
 * Output: text, or with --json one JSON document ({ messages: [...] }); with --json --follow, one
 * JSON document per line per message. A body is text when it is UTF-8, else base64
 * (`bodyBase64`); with --body-dir each body is written, byte for byte, to <dir>/<message id>.
 * Exit 1 if any message failed to open or verify.
 */
import { type OpenedMessage } from '../../envelope/index.js';
import { ExpiryOpener, receiptFromMsg, type InboxItemMsg } from '../../amp/client-api/index.js';
import { verifyReceipt } from '../../envelope/receipt.js';
import { decodeEnvelope } from '../../envelope/codec.js';
import { verifyGatewaySignature } from '../../envelope/gateway.js';
import { VerifiedBatches } from '../../identity/batch-signature.js';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { AfterSmtpError, asEnvironmentError } from '../../errors.js';
import { writeFileAtomic } from '../../identity/files.js';
import { formatDid, parseDid, readKeyFile, type SecretKeySet } from '../../identity/index.js';
import { flag, optionalString, UsageError, type Command } from '../command.js';
import {
  GATEWAY_OPTIONS,
  GATEWAY_USAGE,
  connectGateway,
  keyFileOption,
  loadClientState,
} from '../ledger-client.js';
import { printJson, printLines, readPassphrase } from '../output.js';
import { IdentityLookup, type ResolvedIdentity } from './send.js';

interface Shown {
  seq: number;
  messageId: string;
  sender: string;
  /** The mailbox folder: inbox, or junk (the gateway's spam policy filed it there). */
  folder: string;
  /** The gateway's signed spam verdict (docs/PROTOCOL.md §6.9), when the envelope carries one. */
  spam?: { verdict: string; score: string; verified: boolean; error?: string };
  author: { verified: boolean; keyId?: string; error?: string };
  to?: string[];
  subject?: string;
  contentType?: string;
  /** The body as text when it is valid UTF-8 (else bodyBase64), unless it went to --body-dir. */
  body?: string;
  bodyBase64?: string;
  /** Where --body-dir wrote the body, byte for byte. */
  bodyFile?: string;
  bodyBytes?: number;
  createdAt?: string;
  receipt: { verified: boolean; deliveredAt?: string; gateway?: string; error?: string };
  error?: { code: string; message: string };
}

function errorOf(err: unknown): { code: string; message: string } {
  return {
    code: err instanceof AfterSmtpError ? err.code : 'ERR_INTERNAL',
    message: (err as Error).message,
  };
}

function textOf(s: Shown): string[] {
  const lines = [`message  ${s.messageId} (seq ${s.seq}, folder ${s.folder})`];
  if (s.error !== undefined) {
    return [...lines, `from     ${s.sender}`, `error    ${s.error.message} (${s.error.code})`, ''];
  }
  lines.push(
    `from     ${s.sender} (author ${
      s.author.verified
        ? `verified, key ${s.author.keyId}`
        : `NOT VERIFIED: ${s.author.error ?? 'unknown'}`
    })`,
    `to       ${(s.to ?? []).join(', ')}`,
    `date     ${s.createdAt}`,
    `subject  ${s.subject}`,
    ...(s.spam !== undefined
      ? [
          `spam     ${s.spam.verdict}${s.spam.score !== '' ? `, score ${s.spam.score}` : ''} (${
            s.spam.verified ? 'signed by the gateway, verified' : `NOT VERIFIED: ${s.spam.error}`
          })`,
        ]
      : []),
    `receipt  ${
      s.receipt.verified
        ? `delivered ${s.receipt.deliveredAt}, signed by ${s.receipt.gateway} (verified)`
        : `NOT VERIFIED: ${s.receipt.error ?? 'none'}`
    }`,
    '',
    s.bodyFile !== undefined
      ? `(${s.bodyBytes} bytes written to ${s.bodyFile})`
      : s.body !== undefined
        ? s.body
        : `(${s.bodyBytes} bytes of binary content; use --body-dir or --json)`,
    '',
  );
  return lines;
}

function isUtf8Text(content: Buffer): boolean {
  return Buffer.from(content.toString('utf8'), 'utf8').equals(content);
}

/** The body as the output carries it: a file in --body-dir, text, or base64. */
async function bodyFields(
  opened: OpenedMessage,
  bodyDir: string | undefined,
): Promise<Partial<Shown>> {
  const bytes = opened.content;
  if (bodyDir !== undefined) {
    const file = join(bodyDir, opened.messageId.toString('hex'));
    // The same message id always carries the same body: writing it again is harmless.
    await writeFileAtomic(file, bytes, {
      mode: 0o600,
      overwrite: true,
      code: 'ERR_OUTPUT_FILE',
    }).catch((err: unknown) => {
      throw asEnvironmentError(err, 'ERR_OUTPUT_FILE', `cannot write ${file} (--body-dir)`);
    });
    return { bodyFile: file, bodyBytes: bytes.length };
  }
  return isUtf8Text(bytes)
    ? { body: bytes.toString('utf8'), bodyBytes: bytes.length }
    : { bodyBase64: bytes.toString('base64'), bodyBytes: bytes.length };
}

export const inboxCommand: Command = {
  path: ['inbox'],
  summary: 'Fetch your mailbox from your gateway, open and verify every message.',
  usage:
    '--key <key file> --gateway <host:port> (--gateway-cert <pem> | --gateway-spki sha256/<b64>)\n' +
    '       [--after <seq>] [--follow] [--limit <n>] [--folder inbox|junk] [--ack] [--body-dir <dir>] [--log-key <key>] [--state <file>] [--json]\n\n' +
    GATEWAY_USAGE +
    '\n  --after <seq>                resume after this sequence number (printed with each message)\n' +
    '  --follow                     keep waiting for new mail (stop with Ctrl-C)\n' +
    '  --limit <n>                  stop after n messages (with --follow: wait for n)\n' +
    '  --folder inbox|junk          only this folder (default: both; each message says its folder)\n' +
    '  --ack                        delete each message from the mailbox once it is shown\n' +
    '  --body-dir <dir>             write each body, byte for byte, to <dir>/<message id>\n' +
    '  --old-key <key file>         also open mail sealed to this earlier key (after aftersmtp rotate)\n' +
    '  (with --json, a body that is not UTF-8 text is given as bodyBase64)\n\n' +
    "Senders of another domain are verified against that domain's gateway and DNS k= log key\n" +
    '(AFTERSMTP_RELAY_ROUTES, then DNS _aftersmtp._tcp with AFTERSMTP_DNS_SERVERS).\n' +
    'The key file passphrase comes from AFTERSMTP_PASSPHRASE, or is asked on the terminal.',
  options: {
    ...GATEWAY_OPTIONS,
    key: { type: 'string' },
    after: { type: 'string' },
    limit: { type: 'string' },
    follow: { type: 'boolean' },
    folder: { type: 'string' },
    ack: { type: 'boolean' },
    'body-dir': { type: 'string' },
    'old-key': { type: 'string', multiple: true },
  },
  async run(args) {
    const keyFile = keyFileOption(args);
    const afterRaw = optionalString(args, 'after') ?? '0';
    if (!/^[0-9]{1,15}$/.test(afterRaw)) throw new UsageError('--after must be a sequence number');
    const follow = flag(args, 'follow');
    const limitRaw = optionalString(args, 'limit') ?? '0';
    if (!/^[0-9]{1,6}$/.test(limitRaw)) throw new UsageError('--limit must be a whole number');
    const limit = Number(limitRaw);
    const folder = optionalString(args, 'folder') ?? '';
    if (folder !== '' && folder !== 'inbox' && folder !== 'junk')
      throw new UsageError('--folder must be inbox or junk');
    const ack = flag(args, 'ack');
    const json = flag(args, 'json');
    const bodyDir = optionalString(args, 'body-dir');
    if (bodyDir !== undefined) {
      await mkdir(bodyDir, { recursive: true, mode: 0o700 }).catch((err: unknown) => {
        throw asEnvironmentError(err, 'ERR_OUTPUT_FILE', `cannot create ${bodyDir} (--body-dir)`);
      });
    }
    const passphrase = await readPassphrase(`key file ${keyFile}`);
    const keys = await readKeyFile(keyFile, passphrase);
    const oldKeys: SecretKeySet[] = [];
    for (const f of (args.values['old-key'] as string[] | undefined) ?? []) {
      const k = await readKeyFile(f, passphrase);
      if (k.did !== keys.did)
        throw new UsageError(`--old-key ${f} is for ${k.did}, not ${keys.did}`);
      oldKeys.push(k);
    }
    const state = await loadClientState(args);
    const client = await connectGateway(args);
    const lookup = new IdentityLookup(client, args, state, parseDid(keys.did).domain);
    const abort = new AbortController();
    const onSignal = (): void => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const resolved = new Map<string, Promise<ResolvedIdentity>>();
    const batches = new VerifiedBatches();
    const resolve = (did: string): Promise<ResolvedIdentity> => {
      let p = resolved.get(did);
      if (p === undefined) resolved.set(did, (p = lookup.resolve(did)));
      return p;
    };
    const shown: Shown[] = [];
    let failed = 0;
    try {
      const { token } = await client.login(keys);
      const gatewayDid = formatDid({ domain: parseDid(keys.did).domain, localpart: 'gateway' });
      // Expiry by the gateway's signed time, not the local clock alone; ephemeral mail opens
      // with the key share the gateway releases before the expiry (docs/EXPIRY.md).
      const opener = new ExpiryOpener({
        client,
        token,
        gateway: async () => {
          const gw = await resolve(gatewayDid);
          if (gw.record === undefined)
            throw new AfterSmtpError('ERR_TIME_SIGNATURE', 'the gateway is revoked');
          return gw.record;
        },
      });
      await opener.refresh();
      const show = async (item: InboxItemMsg): Promise<Shown> => {
        const base = {
          seq: item.seq,
          messageId: item.message_id,
          sender: item.sender,
          folder: item.folder === '' ? 'inbox' : item.folder,
        };
        let opened: OpenedMessage;
        try {
          opened = await opener.open(item.envelope, item.message_id, [keys, ...oldKeys]);
        } catch (err) {
          return {
            ...base,
            author: { verified: false },
            receipt: { verified: false },
            error: errorOf(err),
          };
        }
        const author: Shown['author'] = { verified: false };
        try {
          const v = await resolve(opened.sender.did);
          if (v.record === undefined)
            throw new AfterSmtpError('ERR_AUTHOR_REVOKED', 'the author is revoked');
          if (!v.record.keyId.equals(opened.sender.keyId)) {
            throw new AfterSmtpError(
              'ERR_AUTHOR_KEY',
              "the author's key is not the sender's current key in the ledger",
            );
          }
          author.verified = true;
          author.keyId = opened.sender.keyId.toString('base64');
        } catch (err) {
          author.error = `${errorOf(err).message} (${errorOf(err).code})`;
        }
        const receipt: Shown['receipt'] = { verified: false };
        try {
          if (item.receipt === null) throw new AfterSmtpError('ERR_RECEIPT_MISSING', 'no receipt');
          const r = receiptFromMsg(item.receipt);
          const gw = await resolve(gatewayDid);
          if (gw.record === undefined)
            throw new AfterSmtpError('ERR_RECEIPT_SIGNATURE', 'gateway revoked');
          verifyReceipt(r, gw.record, batches);
          if (r.recipient !== keys.did || !r.messageId.equals(opened.messageId)) {
            throw new AfterSmtpError(
              'ERR_RECEIPT_MISMATCH',
              'the receipt is about another message',
            );
          }
          receipt.verified = true;
          receipt.deliveredAt = new Date(r.deliveredAt).toISOString();
          receipt.gateway = r.gateway;
        } catch (err) {
          receipt.error = `${errorOf(err).message} (${errorOf(err).code})`;
        }
        let spam: Shown['spam'];
        try {
          const env = decodeEnvelope(item.envelope);
          if (env.spam !== undefined) {
            spam = { verdict: env.spam.verdict, score: env.spam.score, verified: false };
            try {
              const gw = await resolve(gatewayDid);
              if (gw.record === undefined)
                throw new AfterSmtpError('ERR_GATEWAY_SIGNATURE', 'gateway revoked');
              verifyGatewaySignature(env, gw.record, { requireSenderDomain: false, batches });
              spam.verified = true;
            } catch (err) {
              spam.error = `${errorOf(err).message} (${errorOf(err).code})`;
            }
          }
        } catch {
          // openWithAny decoded the same bytes: this cannot fail here
        }
        return {
          ...base,
          sender: opened.sender.did,
          ...(spam !== undefined ? { spam } : {}),
          author,
          to: opened.recipients.map((r) => r.did),
          subject: opened.subject,
          contentType: opened.contentType,
          ...(await bodyFields(opened, bodyDir)),
          createdAt: new Date(opened.createdAt).toISOString(),
          receipt,
        };
      };
      for await (const item of client.fetchInbox(
        token,
        { after: Number(afterRaw), follow, limit, folder },
        abort.signal,
      )) {
        const s = await show(item);
        const ok = s.error === undefined && s.author.verified;
        if (!ok) failed++;
        if (follow && json) process.stdout.write(`${JSON.stringify(s)}\n`);
        else if (!json) printLines(textOf(s));
        else shown.push(s);
        if (ack && ok) await client.ack(token, { message_ids: [item.message_id] });
      }
      await state.save();
      if (json && !follow) printJson({ did: keys.did, messages: shown });
    } finally {
      process.removeListener('SIGINT', onSignal);
      process.removeListener('SIGTERM', onSignal);
      lookup.close();
      client.close();
    }
    if (failed > 0) {
      throw new AfterSmtpError(
        'ERR_INBOX_UNVERIFIED',
        `${failed} message(s) did not open or verify`,
      );
    }
  },
};
