/**
 * `aftersmtp inbox`: logs in to the gateway with the key file's key (PROTOCOL.md §12.1), fetches
 * the mailbox (FetchInbox, from a cursor; --follow keeps waiting for new mail), opens every
 * envelope (PROTOCOL.md §6.6: the author signature inside verifies with the embedded author
 * record) and then checks that record against the ledger: the sender DID is resolved with verified
 * proofs (IdentityLookup: through the user's gateway for its own domain, §9.6, from the sender's
 * domain's own gateway otherwise, §13.2) and its current key id must be the author's key id. The
 * receipt is verified with the user's gateway's own record (the receiving gateway signs it). With --ack, each
 * message that opened and verified is deleted from the mailbox after it was printed.
 *
 * Output: text, or with --json one JSON document ({ messages: [...] }); with --json --follow, one
 * JSON document per line per message. Exit 1 if any message failed to open or verify.
 */
import { openEnvelope, type OpenedMessage } from '../../envelope/index.js';
import { receiptFromMsg, type InboxItemMsg } from '../../amp/client-api/index.js';
import { verifyReceipt } from '../../envelope/receipt.js';
import { AfterSmtpError } from '../../errors.js';
import { formatDid, parseDid, readKeyFile } from '../../identity/index.js';
import { flag, optionalString, requireString, UsageError, type Command } from '../command.js';
import {
  GATEWAY_OPTIONS,
  GATEWAY_USAGE,
  connectGateway,
  loadClientState,
} from '../ledger-client.js';
import { printJson, printLines, readPassphrase } from '../output.js';
import { IdentityLookup, type ResolvedIdentity } from './send.js';

interface Shown {
  seq: number;
  messageId: string;
  sender: string;
  author: { verified: boolean; keyId?: string; error?: string };
  to?: string[];
  subject?: string;
  contentType?: string;
  body?: string;
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
  const lines = [`message  ${s.messageId} (seq ${s.seq})`];
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
    `receipt  ${
      s.receipt.verified
        ? `delivered ${s.receipt.deliveredAt}, signed by ${s.receipt.gateway} (verified)`
        : `NOT VERIFIED: ${s.receipt.error ?? 'none'}`
    }`,
    '',
    s.body ?? '',
    '',
  );
  return lines;
}

export const inboxCommand: Command = {
  path: ['inbox'],
  summary: 'Fetch your mailbox from your gateway, open and verify every message.',
  usage:
    '--key <key file> --gateway <host:port> (--gateway-cert <pem> | --gateway-spki sha256/<b64>)\n' +
    '       [--after <seq>] [--follow] [--ack] [--log-key <key>] [--state <file>] [--json]\n\n' +
    GATEWAY_USAGE +
    '\n  --after <seq>                resume after this sequence number (printed with each message)\n' +
    '  --follow                     keep waiting for new mail (stop with Ctrl-C)\n' +
    '  --ack                        delete each message from the mailbox once it is shown\n\n' +
    "Senders of another domain are verified against that domain's gateway and DNS k= log key\n" +
    '(AFTERSMTP_RELAY_ROUTES, then DNS _aftersmtp._tcp with AFTERSMTP_DNS_SERVERS).\n' +
    'The key file passphrase comes from AFTERSMTP_PASSPHRASE, or is asked on the terminal.',
  options: {
    ...GATEWAY_OPTIONS,
    key: { type: 'string' },
    after: { type: 'string' },
    follow: { type: 'boolean' },
    ack: { type: 'boolean' },
  },
  async run(args) {
    const keyFile = requireString(args, 'key');
    const afterRaw = optionalString(args, 'after') ?? '0';
    if (!/^[0-9]{1,15}$/.test(afterRaw)) throw new UsageError('--after must be a sequence number');
    const follow = flag(args, 'follow');
    const ack = flag(args, 'ack');
    const json = flag(args, 'json');
    const keys = await readKeyFile(keyFile, await readPassphrase(`key file ${keyFile}`));
    const state = await loadClientState(args);
    const client = await connectGateway(args);
    const lookup = new IdentityLookup(client, args, state, parseDid(keys.did).domain);
    const abort = new AbortController();
    const onSignal = (): void => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const resolved = new Map<string, Promise<ResolvedIdentity>>();
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
      const show = async (item: InboxItemMsg): Promise<Shown> => {
        const base = { seq: item.seq, messageId: item.message_id, sender: item.sender };
        let opened: OpenedMessage;
        try {
          opened = openEnvelope(item.envelope, keys);
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
          verifyReceipt(r, gw.record);
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
        return {
          ...base,
          sender: opened.sender.did,
          author,
          to: opened.recipients.map((r) => r.did),
          subject: opened.subject,
          contentType: opened.contentType,
          body: opened.content.toString('utf8'),
          createdAt: new Date(opened.createdAt).toISOString(),
          receipt,
        };
      };
      for await (const item of client.fetchInbox(
        token,
        { after: Number(afterRaw), follow },
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
