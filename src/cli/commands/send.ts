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
import { randomBytes } from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer';
import {
  DID_PREFIX,
  checkDid,
  didToAddress,
  formatDid,
  parseDid,
  readKeyFile,
  type PublicKeyRecord,
} from '../../identity/index.js';
import { RCPT_TO_FIELD } from '../../pipeline/amp-offramp.js';
import { readBoundedFile } from '../../identity/files.js';
import {
  parseCheckpoint,
  verifyAnswer,
  type Checkpoint,
  type ClientState,
  type VerifiedEntry,
} from '../../ledger/index.js';
import { parseNote } from '../../ledger/note.js';
import type { Extension } from '../../ledger/entries.js';
import {
  UsageError,
  flag,
  optionalString,
  requireString,
  type Command,
  type ParsedArgs,
} from '../command.js';
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
  /** The entry's extensions (none for a revoked DID): a gateway's quic-tls-spki, transit-log-key. */
  readonly extensions: readonly Extension[];
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
      const extensions = v.entry.type === 'revoke' ? [] : v.entry.extensions;
      return { did, record: v.record, checkpoint: v.checkpoint, extensions };
    }
    this.#remote ??= openRemoteIdentities(this.#state);
    const id = await (await this.#remote).resolve(did);
    // The note was verified by the resolver; its text is the checkpoint (§9.2).
    return {
      did,
      record: id.record,
      checkpoint: parseCheckpoint(parseNote(id.checkpoint).text),
      extensions: id.extensions,
    };
  }

  close(): void {
    void this.#remote?.then(
      (r) => r.close(),
      () => undefined,
    );
  }
}

/** A recipient option's values: DIDs, and ordinary addresses (anything with an '@'). */
function recipients(args: ParsedArgs, name: string): { dids: string[]; addresses: string[] } {
  const v = (args.values[name] as string[] | undefined) ?? [];
  const dids: string[] = [];
  const addresses: string[] = [];
  for (const r of v) {
    if (r.startsWith(DID_PREFIX)) dids.push(checkDid(r));
    else if (/^[^\s@<>]+@[^\s@<>]+$/.test(r)) addresses.push(r);
    else throw new UsageError(`--${name} ${JSON.stringify(r)} is neither a DID nor an address`);
  }
  return { dids, addresses };
}

/**
 * The RFC 5322 message for ordinary addresses (docs/PROTOCOL.md §14), built with nodemailer's
 * composer: To and Cc name every visible recipient (a DID by its own address), the addresses to
 * deliver to go in X-AfterSMTP-Rcpt-To (Bcc ones only there), From is the sender's DID address
 * (the gateway writes the sender's published address in its place).
 */
async function legacyMessage(input: {
  sender: string;
  to: { dids: string[]; addresses: string[] };
  cc: { dids: string[]; addresses: string[] };
  bcc: string[];
  subject: string;
  contentType: string;
  content: Buffer;
}): Promise<Buffer> {
  const visible = (r: { dids: string[]; addresses: string[] }) => [
    ...r.addresses,
    ...r.dids.map((d) => didToAddress(d)),
  ];
  const type = input.contentType.split(';')[0]?.trim().toLowerCase();
  const body =
    type === 'text/plain'
      ? { text: input.content }
      : type === 'text/html'
        ? { html: input.content }
        : { attachments: [{ content: input.content, contentType: input.contentType }] };
  const composer = new MailComposer({
    from: didToAddress(input.sender),
    to: visible(input.to),
    cc: visible(input.cc),
    subject: input.subject,
    messageId: `<${randomBytes(16).toString('hex')}@${parseDid(input.sender).domain}>`,
    date: new Date(),
    headers: {
      [RCPT_TO_FIELD]: [...input.to.addresses, ...input.cc.addresses, ...input.bcc].join(', '),
    },
    ...body,
  });
  return composer.compile().build();
}

export const sendCommand: Command = {
  path: ['send'],
  summary:
    'Seal a message end to end and send it through your gateway (to DIDs, and to ordinary addresses).',
  usage:
    '--key <key file> --to <did|address>... [--cc ...] [--bcc ...] --subject <text>\n' +
    '       --body-file <file | -> [--content-type <type>] [--ttl 7d]\n' +
    '       --gateway <host:port> (--gateway-cert <pem> | --gateway-spki sha256/<b64>)\n' +
    '       [--ephemeral] [--log-key <key>] [--state <file>] [--json]\n\n' +
    GATEWAY_USAGE +
    '\n  --body-file <file>           the body; - reads it from standard input\n' +
    '  --content-type <type>        default text/plain; charset=utf-8\n' +
    '  --ttl <duration>             the message expires after this (default 30d)\n' +
    '  --ephemeral                  part of the content key stays with your gateway, which gives it\n' +
    '                               to the recipients only before the expiry and then erases it:\n' +
    '                               afterwards nobody can open the message (docs/EXPIRY.md says\n' +
    '                               what this cannot promise). Recipients of your domain only.\n\n' +
    'Every recipient gets its keys verified from the ledger before sealing; each --bcc recipient\n' +
    'gets its own envelope whose signed list names only the visible recipients and itself.\n' +
    "Recipients of another domain are resolved from that domain's gateway (AFTERSMTP_RELAY_ROUTES,\n" +
    'then DNS _aftersmtp._tcp with AFTERSMTP_DNS_SERVERS) against its DNS k= log key; --log-key\n' +
    'is the key of your own domain.\n' +
    'An ordinary address (user@example.com) is reached through your gateway: the message is sealed\n' +
    "to the gateway, which opens it and sends it over SMTP, signed with your domain's DKIM key.\n" +
    'For those recipients end-to-end encryption ends at your gateway.\n' +
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
    ephemeral: { type: 'boolean' },
  },
  async run(args) {
    const keyFile = keyFileOption(args);
    const subject = requireString(args, 'subject');
    const bodyFile = requireString(args, 'body-file');
    const toAll = recipients(args, 'to');
    const ccAll = recipients(args, 'cc');
    const bccAll = recipients(args, 'bcc');
    const to = toAll.dids;
    const cc = ccAll.dids;
    const bcc = bccAll.dids;
    const addresses = [...toAll.addresses, ...ccAll.addresses, ...bccAll.addresses];
    if (to.length + cc.length + bcc.length + addresses.length === 0) {
      throw new InputError('ERR_USAGE_RECIPIENTS', 'at least one --to, --cc or --bcc is required');
    }
    const ttl = optionalString(args, 'ttl');
    const ttlMs = ttl === undefined ? undefined : parseDuration(ttl, 'ttl');
    const json = flag(args, 'json');
    const ephemeral = flag(args, 'ephemeral');
    if (ephemeral && addresses.length > 0) {
      throw new UsageError('--ephemeral: ordinary addresses cannot get ephemeral mail');
    }
    const content = await readBoundedFile(bodyFile, MAX_BODY_FILE_BYTES, 'ERR_BODY_FILE');
    const keys = await readKeyFile(keyFile, await readPassphrase(`key file ${keyFile}`));
    const state = await loadClientState(args);
    const client = await connectGateway(args);
    const ownDomain = parseDid(keys.did).domain;
    const gateway = formatDid({ domain: ownDomain, localpart: 'gateway' });
    const lookup = new IdentityLookup(client, args, state, ownDomain);
    try {
      const records = new Map<string, PublicKeyRecord>();
      // The checkpoints the keys were read from (origin, size, root: §9.2), signed by the author.
      const checkpoints = new Set<string>();
      for (const did of new Set([
        ...to,
        ...cc,
        ...bcc,
        ...(addresses.length > 0 ? [gateway] : []),
      ])) {
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
      const contentType = optionalString(args, 'content-type') ?? 'text/plain; charset=utf-8';
      const common = {
        author: keys,
        createdAt,
        expiresAt: ttlMs === undefined ? undefined : createdAt + ttlMs,
        checkpoint: Buffer.from([...checkpoints].join(''), 'utf8').subarray(0, 4096),
      };
      const sealed =
        to.length + cc.length + bcc.length === 0
          ? []
          : sealMessage({
              ...common,
              to: pick(to),
              cc: pick(cc),
              bcc: pick(bcc),
              body: { subject, contentType, content },
              ...(ephemeral ? { ephemeral: { holder: gateway } } : {}),
            });
      // Ordinary addresses: one envelope for the sender's own gateway, which opens it (§14).
      const legacy =
        addresses.length === 0
          ? []
          : sealMessage({
              ...common,
              to: pick([gateway]),
              body: {
                subject,
                contentType: 'message/rfc822',
                content: await legacyMessage({
                  sender: keys.did,
                  to: toAll,
                  cc: ccAll,
                  bcc: bccAll.addresses,
                  subject,
                  contentType,
                  content,
                }),
              },
            }).map((s) => ({ ...s, legacy: addresses }));
      const { token } = await client.login(keys);
      const sent = [];
      for (const s of [...sealed, ...legacy]) {
        const res = await client.dispatchMessage(token, {
          envelope: encodeEnvelope(s.envelope),
          ...(s.share !== undefined ? { key_share: s.share } : {}),
        });
        sent.push({
          messageId: res.message_id,
          queueEntryId: res.queue_entry_id,
          recipients: res.recipients,
          bcc: 'bcc' in s && s.bcc !== undefined,
          ephemeral: s.share !== undefined,
          ...('legacy' in s ? { endToEndEndsAt: gateway } : {}),
        });
      }
      if (json) {
        printJson({ sender: keys.did, subject, envelopes: sent });
        return;
      }
      printLines([
        ...sent.map(
          (s) =>
            `queued ${s.messageId} (entry ${s.queueEntryId}) for ${s.recipients.join(', ')}${s.bcc ? ' [bcc]' : ''}`,
        ),
        ...(addresses.length > 0
          ? [
              `note: ${addresses.join(', ')} ${addresses.length > 1 ? 'are ordinary addresses' : 'is an ordinary address'}: end-to-end encryption ends at your gateway (${gateway}), which opens the message to send it over SMTP`,
            ]
          : []),
      ]);
    } finally {
      lookup.close();
      client.close();
    }
  },
};
