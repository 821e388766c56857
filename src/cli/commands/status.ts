/**
 * `aftersmtp status <message id>`: what became of a message, for its sender (or a recipient).
 *
 * Two sources, each used when it is there:
 * - receipts (PROTOCOL.md §12.5): logged in with the key file's key, GetReceipt for each
 *   recipient; a receipt is verified with the signing gateway's record, resolved with proofs
 *   (IdentityLookup), and its message id and recipient checked. GetReceipt answers for mail this
 *   gateway delivered into its own mailboxes and for mail it relayed (the peer's receipt from
 *   the relay ACK, kept by the delivery worker).
 * - the queue, when run on the gateway host (the embedded lmdb queue in AFTERSMTP_DATA_DIR):
 *   the recipients still queued, held or being delivered, with attempts, next attempt and last
 *   error, and those given up on (dead letters), with why.
 *
 * Recipients come from --recipient, else from the queue, else the caller itself. The state of
 * each: delivered (a verified receipt), queued, held, failed (a dead letter), or unknown
 * (nothing here knows it: not delivered yet and no longer in this host's queue, or never sent
 * through this gateway). Exit 0 whatever the states (they are the output); 1 only when a source fails.
 */
import { existsSync } from 'node:fs';
import { loadConfig } from '../../config/load.js';
import { receiptFromMsg } from '../../amp/client-api/index.js';
import { verifyReceipt } from '../../envelope/receipt.js';
import { AfterSmtpError } from '../../errors.js';
import { checkDid, formatDid, parseDid, readKeyFile } from '../../identity/index.js';
import { lmdbQueuePath } from '../../queue/open.js';
import type { EntryView } from '../../queue/lmdb-admin.js';
import type { DeadRecord } from '../../queue/record.js';
import { UsageError, flag, type Command } from '../command.js';
import {
  GATEWAY_OPTIONS,
  GATEWAY_USAGE,
  clientOption,
  connectGateway,
  loadClientState,
} from '../ledger-client.js';
import { printJson, printLines, readPassphrase } from '../output.js';
import { withAdmin } from './queue.js';
import { IdentityLookup } from './send.js';

interface RecipientStatus {
  recipient: string;
  state: 'delivered' | 'queued' | 'leased' | 'held' | 'failed' | 'unknown';
  receipt?: { verified: boolean; deliveredAt?: string; gateway?: string; error?: string };
  queue?: {
    entryId: string;
    jobId: string;
    destination: string;
    attempts: number;
    nextAttempt?: string;
    lastError?: string;
  };
  dead?: { kind: string; reason: string; attempts: number; at: string };
}

interface QueueFindings {
  entries: EntryView[];
  dead: DeadRecord[];
}

/** The message's queue entries and dead letters, if this is the gateway host; else undefined. */
async function fromQueue(messageId: string): Promise<QueueFindings | undefined> {
  let config;
  try {
    config = loadConfig();
  } catch {
    return undefined; // not configured as a gateway here
  }
  if (config.queue !== 'lmdb' || !existsSync(lmdbQueuePath(config.dataDir))) return undefined;
  return withAdmin(async (admin) => ({
    entries: admin.list(1_000_000).filter((e) => e.messageId === messageId),
    dead: admin.dead(1_000_000).filter((d) => d.messageId === messageId),
  }));
}

export const statusCommand: Command = {
  path: ['status'],
  summary: 'Show what became of a message: verified receipts, and the queue on the gateway host.',
  usage:
    '<message id> [--recipient <did>...] [--key <key file> --gateway <host:port> (--gateway-cert <pem> | --gateway-spki sha256/<b64>)]\n' +
    '       [--log-key <key>] [--state <file>] [--json]\n\n' +
    GATEWAY_USAGE +
    "\n  --recipient <did>            ask about this recipient (repeatable; default: the queue's, else yourself)\n" +
    '  --key <key file>             log in as the sender (or a recipient) to read receipts\n\n' +
    'The message id is the one `aftersmtp send` prints. Receipts are read through your gateway;\n' +
    'run on the gateway host (AFTERSMTP_DATA_DIR with the lmdb queue), it also reads the queue.',
  options: {
    ...GATEWAY_OPTIONS,
    key: { type: 'string' },
    recipient: { type: 'string', multiple: true },
  },
  positionals: true,
  async run(args) {
    if (args.positionals.length !== 1) throw new UsageError('exactly one message id is expected');
    const messageId = (args.positionals[0] as string).toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(messageId)) {
      throw new UsageError('a message id is 32 hex digits (as `aftersmtp send` prints it)');
    }
    const given = ((args.values.recipient as string[] | undefined) ?? []).map((d) => checkDid(d));
    const keyFile = clientOption(args, 'key');
    const queue = await fromQueue(messageId);
    if (keyFile === undefined && queue === undefined) {
      throw new UsageError(
        'give --key (and your gateway) to read receipts, or run it on the gateway host to read the queue',
      );
    }

    const byRecipient = new Map<string, RecipientStatus>();
    const get = (recipient: string): RecipientStatus => {
      let s = byRecipient.get(recipient);
      if (s === undefined) byRecipient.set(recipient, (s = { recipient, state: 'unknown' }));
      return s;
    };
    for (const r of given) get(r);
    for (const e of queue?.entries ?? []) {
      for (const j of e.jobs) {
        for (const r of j.recipients) {
          if (given.length > 0 && !given.includes(r.address)) continue;
          const s = get(r.address);
          s.state = j.state;
          s.queue = {
            entryId: e.entryId,
            jobId: j.jobId,
            destination: j.destination,
            attempts: r.attempts,
            nextAttempt: j.state === 'held' ? undefined : r.nextAttempt,
            lastError: r.lastError === '' ? undefined : r.lastError,
          };
        }
      }
    }
    for (const d of queue?.dead ?? []) {
      if (given.length > 0 && !given.includes(d.recipient)) continue;
      const s = get(d.recipient);
      s.state = 'failed';
      s.dead = {
        kind: d.kind,
        reason: d.reason,
        attempts: d.attempts,
        at: new Date(d.deadAt).toISOString(),
      };
    }

    if (keyFile !== undefined) {
      const keys = await readKeyFile(keyFile, await readPassphrase(`key file ${keyFile}`));
      if (byRecipient.size === 0) get(keys.did);
      const state = await loadClientState(args);
      const client = await connectGateway(args);
      const lookup = new IdentityLookup(client, args, state, parseDid(keys.did).domain);
      try {
        const { token } = await client.login(keys);
        for (const s of byRecipient.values()) {
          try {
            const res = await client.getReceipt(token, {
              message_id: messageId,
              recipient: s.recipient,
            });
            const r = receiptFromMsg(res.receipt);
            const receipt: RecipientStatus['receipt'] = { verified: false, gateway: r.gateway };
            try {
              const gw = await lookup.resolve(
                formatDid({ domain: parseDid(r.gateway).domain, localpart: 'gateway' }),
              );
              if (gw.record === undefined || gw.did !== r.gateway) {
                throw new AfterSmtpError('ERR_RECEIPT_SIGNATURE', `${r.gateway} is not a gateway`);
              }
              verifyReceipt(r, gw.record);
              if (r.recipient !== s.recipient || r.messageId.toString('hex') !== messageId) {
                throw new AfterSmtpError(
                  'ERR_RECEIPT_MISMATCH',
                  'the receipt is about another message',
                );
              }
              receipt.verified = true;
              receipt.deliveredAt = new Date(r.deliveredAt).toISOString();
              s.state = 'delivered';
            } catch (err) {
              receipt.error = `${(err as Error).message}${err instanceof AfterSmtpError ? ` (${err.code})` : ''}`;
            }
            s.receipt = receipt;
          } catch (err) {
            if (!(err instanceof AfterSmtpError) || err.code !== 'ERR_RECEIPT_UNKNOWN') throw err;
          }
        }
        await state.save();
      } finally {
        lookup.close();
        client.close();
      }
    }

    const recipients = [...byRecipient.values()];
    if (flag(args, 'json')) {
      printJson({ messageId, queueRead: queue !== undefined, recipients });
    } else {
      printLines([
        `message    ${messageId}${queue === undefined ? '' : ' (queue read)'}`,
        ...recipients.map((s) => {
          const parts = [`${s.recipient}  ${s.state}`];
          if (s.receipt?.verified) {
            parts.push(
              `at ${s.receipt.deliveredAt}, receipt signed by ${s.receipt.gateway} (verified)`,
            );
          } else if (s.receipt !== undefined) {
            parts.push(`receipt NOT VERIFIED: ${s.receipt.error}`);
          }
          if (s.queue !== undefined) {
            parts.push(
              `${s.queue.destination}, ${s.queue.attempts} attempt(s)${s.queue.nextAttempt !== undefined ? `, next ${s.queue.nextAttempt}` : ''}${s.queue.lastError !== undefined ? `, last error: ${s.queue.lastError}` : ''} (job ${s.queue.jobId})`,
            );
          }
          if (s.dead !== undefined) {
            parts.push(
              `given up ${s.dead.at} after ${s.dead.attempts} attempt(s): ${s.dead.reason} (${s.dead.kind})`,
            );
          }
          if (s.state === 'unknown') {
            parts.push(
              queue === undefined
                ? 'no receipt at your gateway: not delivered yet, or not sent through it'
                : 'not queued and no receipt here: not sent through this gateway',
            );
          }
          return `  ${parts.join('; ')}`;
        }),
      ]);
    }
  },
};
