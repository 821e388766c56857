/**
 * `aftersmtp send`: seals a message end to end and dispatches it through the sender's gateway.
 * Each recipient's keys are resolved with verified proofs (IdentityLookup): a DID of the sender's
 * own domain through the gateway's ResolveIdentity, verified as `aftersmtp resolve` does
 * (PROTOCOL.md §9.6: the checkpoint is signed by the pinned log key, the entry is in that tree,
 * the tree is consistent with the newest checkpoint this client has seen); a DID of another
 * domain from that domain's own gateway, exactly as the relay does it (RemoteIdentityResolver,
 * PROTOCOL.md §13.2: found by AFTERSMTP_RELAY_ROUTES then DNS, verified against the domain's
 * DNS `k=`, pinned in the same state file). An unknown or revoked recipient is refused here.
 * Then it logs in (a challenge signed with the key file's key, PROTOCOL.md §12.1) and sends one
 * DispatchMessage per envelope (the visible copy and one per Bcc recipient). The gateway answers
 * only after the queue committed each envelope.
 */
import { encodeEnvelope, sealMessage } from '../../envelope/index.js';
import { bundleFromMsg, type GatewayClient } from '../../amp/client-api/index.js';
import type { RemoteIdentityResolver } from '../../amp/relay/identities.js';
import { AfterSmtpError, CryptoError, InputError } from '../../errors.js';
import { checkDid, parseDid, readKeyFile, type PublicKeyRecord } from '../../identity/index.js';
import { readBoundedFile } from '../../identity/files.js';
import {
  parseCheckpoint,
  verifyAnswer,
  type Checkpoint,
  type ClientState,
  type VerifiedEntry,
} from '../../ledger/index.js';
import { parseNote } from '../../ledger/note.js';
import { flag, optionalString, requireString, type Command, type ParsedArgs } from '../command.js';
import {
  GATEWAY_OPTIONS,
  GATEWAY_USAGE,
  connectGateway,
  keyFileOption,
  loadClientState,
  logKeyFor,
  openRemoteIdentities,
} from '../ledger-client.js';
import { printJson, printLines, readPassphrase } from '../output.js';
import { parseDuration } from './envelope.js';

const MAX_BODY_FILE_BYTES = 64 * 1024 * 1024;

/** Resolves `did` through the gateway and verifies the answer against the client state. */
export async function resolveVerified(
  client: GatewayClient,
  args: ParsedArgs,
  state: ClientState,
  did: string,
): Promise<VerifiedEntry> {
  const logKey = await logKeyFor(args, did, state);
  const domain = did.split(':')[2] as string;
  const known = state.get(domain)?.size;
  const answer = await client.resolveIdentity(
    known === undefined ? { did } : { did, known_tree_size: known },
  );
  return verifyAnswer(did, bundleFromMsg(answer.inclusion, answer.consistency), state, {
    dnsVerifierKey: logKey.key,
  });
}

/** A DID's verified current entry: its keys (undefined when revoked) and the checkpoint read. */
export interface ResolvedIdentity {
  readonly did: string;
  readonly record: PublicKeyRecord | undefined;
  readonly checkpoint: Checkpoint;
}

/**
 * Resolves DIDs with verified proofs, one path per case: the user's own domain through the
 * user's gateway (resolveVerified), any other domain through the relay's RemoteIdentityResolver
 * (opened on first use, on the same client state). Close it when done.
 */
export class IdentityLookup {
  readonly #client: GatewayClient;
  readonly #args: ParsedArgs;
  readonly #state: ClientState;
  readonly #ownDomain: string;
  #remote: Promise<RemoteIdentityResolver> | undefined;

  constructor(client: GatewayClient, args: ParsedArgs, state: ClientState, ownDomain: string) {
    this.#client = client;
    this.#args = args;
    this.#state = state;
    this.#ownDomain = ownDomain;
  }

  async resolve(did: string): Promise<ResolvedIdentity> {
    if (parseDid(did).domain === this.#ownDomain) {
      const v = await resolveVerified(this.#client, this.#args, this.#state, did);
      return { did, record: v.record, checkpoint: v.checkpoint };
    }
    this.#remote ??= openRemoteIdentities(this.#state);
    const id = await (await this.#remote).resolve(did);
    // The note was verified by the resolver; its text is the checkpoint (§9.2).
    return { did, record: id.record, checkpoint: parseCheckpoint(parseNote(id.checkpoint).text) };
  }

  close(): void {
    void this.#remote?.then(
      (r) => r.close(),
      () => undefined,
    );
  }
}

function dids(args: ParsedArgs, name: string): string[] {
  const v = args.values[name];
  return v === undefined ? [] : (v as string[]).map((d) => checkDid(d));
}

export const sendCommand: Command = {
  path: ['send'],
  summary: 'Seal a message end to end and send it through your gateway (recipients by DID).',
  usage:
    '--key <key file> --to <did>... [--cc <did>...] [--bcc <did>...] --subject <text>\n' +
    '       --body-file <file | -> [--content-type <type>] [--ttl 7d]\n' +
    '       --gateway <host:port> (--gateway-cert <pem> | --gateway-spki sha256/<b64>)\n' +
    '       [--log-key <key>] [--state <file>] [--json]\n\n' +
    GATEWAY_USAGE +
    '\n  --body-file <file>           the body; - reads it from standard input\n' +
    '  --content-type <type>        default text/plain; charset=utf-8\n' +
    '  --ttl <duration>             the message expires after this (default 30d)\n\n' +
    'Every recipient gets its keys verified from the ledger before sealing; each --bcc recipient\n' +
    'gets its own envelope whose signed list names only the visible recipients and itself.\n' +
    "Recipients of another domain are resolved from that domain's gateway (AFTERSMTP_RELAY_ROUTES,\n" +
    'then DNS _aftersmtp._tcp with AFTERSMTP_DNS_SERVERS) against its DNS k= log key; --log-key\n' +
    'is the key of your own domain.\n' +
    'The key file passphrase comes from AFTERSMTP_PASSPHRASE, or is asked on the terminal.',
  options: {
    ...GATEWAY_OPTIONS,
    key: { type: 'string' },
    to: { type: 'string', multiple: true },
    cc: { type: 'string', multiple: true },
    bcc: { type: 'string', multiple: true },
    subject: { type: 'string' },
    'body-file': { type: 'string' },
    'content-type': { type: 'string' },
    ttl: { type: 'string' },
  },
  async run(args) {
    const keyFile = keyFileOption(args);
    const subject = requireString(args, 'subject');
    const bodyFile = requireString(args, 'body-file');
    const to = dids(args, 'to');
    const cc = dids(args, 'cc');
    const bcc = dids(args, 'bcc');
    if (to.length + cc.length + bcc.length === 0) {
      throw new InputError('ERR_USAGE_RECIPIENTS', 'at least one --to, --cc or --bcc is required');
    }
    const ttl = optionalString(args, 'ttl');
    const ttlMs = ttl === undefined ? undefined : parseDuration(ttl, 'ttl');
    const json = flag(args, 'json');
    const content = await readBoundedFile(bodyFile, MAX_BODY_FILE_BYTES, 'ERR_BODY_FILE');
    const keys = await readKeyFile(keyFile, await readPassphrase(`key file ${keyFile}`));
    const state = await loadClientState(args);
    const client = await connectGateway(args);
    const lookup = new IdentityLookup(client, args, state, parseDid(keys.did).domain);
    try {
      const records = new Map<string, PublicKeyRecord>();
      // The checkpoints the keys were read from (origin, size, root: §9.2), signed by the author.
      const checkpoints = new Set<string>();
      for (const did of new Set([...to, ...cc, ...bcc])) {
        const v = await lookup.resolve(did).catch((err: unknown) => {
          if (err instanceof AfterSmtpError && err.code === 'ERR_DID_UNKNOWN') {
            throw new InputError(
              'ERR_RECIPIENT_UNKNOWN',
              `${did} is not registered in the ledger of ${parseDid(did).domain}`,
              { cause: err },
            );
          }
          throw err;
        });
        if (v.record === undefined) {
          throw new CryptoError('ERR_RECIPIENT_REVOKED', `${did} is revoked in its ledger`);
        }
        records.set(did, v.record);
        const cp = v.checkpoint;
        checkpoints.add(`${cp.origin}\n${cp.size}\n${cp.root.toString('base64')}\n`);
      }
      await state.save();
      const pick = (l: string[]) => l.map((d) => records.get(d) as PublicKeyRecord);
      const createdAt = Date.now();
      const sealed = sealMessage({
        author: keys,
        to: pick(to),
        cc: pick(cc),
        bcc: pick(bcc),
        body: {
          subject,
          contentType: optionalString(args, 'content-type') ?? 'text/plain; charset=utf-8',
          content,
        },
        createdAt,
        expiresAt: ttlMs === undefined ? undefined : createdAt + ttlMs,
        checkpoint: Buffer.from([...checkpoints].join(''), 'utf8').subarray(0, 4096),
      });
      const { token } = await client.login(keys);
      const sent = [];
      for (const s of sealed) {
        const res = await client.dispatchMessage(token, { envelope: encodeEnvelope(s.envelope) });
        sent.push({
          messageId: res.message_id,
          queueEntryId: res.queue_entry_id,
          recipients: res.recipients,
          bcc: s.bcc !== undefined,
        });
      }
      if (json) {
        printJson({ sender: keys.did, subject, envelopes: sent });
        return;
      }
      printLines(
        sent.map(
          (s) =>
            `queued ${s.messageId} (entry ${s.queueEntryId}) for ${s.recipients.join(', ')}${s.bcc ? ' [bcc]' : ''}`,
        ),
      );
    } finally {
      lookup.close();
      client.close();
    }
  },
};
