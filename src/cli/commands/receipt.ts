/**
 * `aftersmtp receipt <message id>`: the proof of transit of a message (docs/PROTOCOL.md §12.7),
 * for its sender (or a recipient). For each recipient, GetTransitReceipt at the user's gateway
 * answers the receipt and the inclusion proof of its commitment in the transit log of the
 * gateway that signed it (fetched from that gateway when it is another). Nothing the gateways
 * say is trusted: the signing gateway's record is resolved with proofs (IdentityLookup), the
 * receipt's signature is checked with it, and the proof against a checkpoint signed by the
 * transit log key the record publishes (transit-log-key).
 *
 * Each hop (from the sender's domain's gateway to the recipient's) is reported as: proven (the
 * proof verifies), not yet (no proof could be had, with why), or refused (a receipt or proof
 * that does not verify: exit 1); and anchored (the leaf proven in an anchored checkpoint, with
 * the block), or not yet. With --chain the anchor is checked on the chain itself.
 */
import { SubstrateChain, anchorCommitment, type AnchorRecord } from '../../anchor/index.js';
import { receiptFromMsg } from '../../amp/client-api/index.js';
import {
  transitProofFromMsg,
  type GetTransitReceiptResponseMsg,
  type TransitProofValue,
} from '../../amp/client-api/transit.js';
import { verifyReceipt, type DeliveryReceipt } from '../../envelope/receipt.js';
import { AfterSmtpError } from '../../errors.js';
import { formatVerifierKey } from '../../ledger/index.js';
import { checkDid, formatDid, parseDid, readKeyFile } from '../../identity/index.js';
import { EXT_TRANSIT_LOG_KEY, TransitError, verifyTransitProof } from '../../transit/index.js';
import { UsageError, flag, type Command } from '../command.js';
import {
  GATEWAY_OPTIONS,
  GATEWAY_USAGE,
  clientOption,
  connectGateway,
  loadClientState,
} from '../ledger-client.js';
import { printJson, printLines, readPassphrase } from '../output.js';
import { IdentityLookup, type ResolvedIdentity } from './send.js';

export interface Hop {
  recipient: string;
  from: string;
  to?: string;
  deliveredAt?: string;
  /** The receipt's signature checked with the signing gateway's record. */
  receipt: { verified: boolean; error?: string };
  proven?: { leafIndex: number; treeSize: number; origin: string; logKey: string };
  /** Why the hop is not proven: "not yet" (no proof to be had) or a refusal. */
  notProven?: string;
  anchored?: {
    treeSize: number;
    blockHash: string;
    blockNumber: number;
    blockTime: string;
    genesisHash: string;
    chainChecked: boolean;
  };
  notAnchored?: string;
  /** A receipt or proof that does not verify. */
  refused: boolean;
}

const hex = (b: Buffer): string => `0x${b.toString('hex')}`;
const why = (err: unknown): string =>
  err instanceof AfterSmtpError ? `${err.code}: ${err.message}` : String(err);

/** The anchored checkpoint of the proof: the leaf proven in it and its record of the checkpoint. */
async function checkAnchored(
  r: DeliveryReceipt,
  a: NonNullable<TransitProofValue['anchored']>,
  key: Buffer | undefined,
  chain: SubstrateChain | undefined,
): Promise<NonNullable<Hop['anchored']>> {
  const cp = verifyTransitProof(r, a, key);
  const record: AnchorRecord = {
    origin: cp.origin,
    size: cp.size,
    root: cp.root,
    commitment: a.anchor.commitment,
    genesisHash: hex(a.anchor.genesis_hash),
    blockHash: hex(a.anchor.block_hash),
    blockNumber: a.anchor.block_number,
    extrinsicIndex: a.anchor.extrinsic_index,
    eventIndex: a.anchor.event_index,
    account: a.anchor.account,
    blockTime: a.anchor.block_time_ms,
  };
  if (!anchorCommitment(cp).equals(a.anchor.commitment)) {
    throw new TransitError('ERR_TRANSIT_ANCHOR', 'the anchor record is of another checkpoint');
  }
  let blockTime = record.blockTime;
  if (chain !== undefined) blockTime = (await chain.verify(record, cp)).blockTime;
  return {
    treeSize: cp.size,
    blockHash: record.blockHash,
    blockNumber: record.blockNumber,
    blockTime: new Date(blockTime).toISOString(),
    genesisHash: record.genesisHash,
    chainChecked: chain !== undefined,
  };
}

/**
 * Checks one GetTransitReceipt answer (§12.7): the receipt with the signing gateway's record
 * (resolved with proofs by `resolve`), then its proof with the record's transit-log-key, then the
 * anchored checkpoint, if any. Refusals are values (the hop's `refused`); a chain that cannot be
 * asked is thrown (ERR_ANCHOR_UNAVAILABLE).
 */
export async function checkHop(
  res: GetTransitReceiptResponseMsg,
  recipient: string,
  messageId: string,
  resolve: (did: string) => Promise<ResolvedIdentity>,
  chain?: SubstrateChain,
): Promise<Hop> {
  const r = receiptFromMsg(res.receipt);
  const hop: Hop = {
    recipient,
    from: formatDid({ domain: parseDid(r.sender).domain, localpart: 'gateway' }),
    to: r.gateway,
    deliveredAt: new Date(r.deliveredAt).toISOString(),
    receipt: { verified: false },
    refused: false,
  };
  let gw: ResolvedIdentity;
  try {
    gw = await resolve(formatDid({ domain: parseDid(r.gateway).domain, localpart: 'gateway' }));
    if (gw.record === undefined || gw.did !== r.gateway) {
      throw new AfterSmtpError('ERR_RECEIPT_SIGNATURE', `${r.gateway} is not a gateway`);
    }
    verifyReceipt(r, gw.record);
    if (r.recipient !== recipient || r.messageId.toString('hex') !== messageId) {
      throw new AfterSmtpError('ERR_RECEIPT_MISMATCH', 'the receipt is about another message');
    }
    hop.receipt.verified = true;
  } catch (err) {
    hop.receipt.error = why(err);
    hop.refused = true;
    return hop;
  }
  if (res.transit === null || res.transit === undefined) {
    hop.notProven = `not yet: ${res.transit_error || 'no proof'}`;
    hop.notAnchored = 'not yet';
    return hop;
  }
  const key = gw.extensions.find((e) => e.name === EXT_TRANSIT_LOG_KEY)?.value;
  let proof: TransitProofValue;
  try {
    proof = transitProofFromMsg(res.transit);
    const cp = verifyTransitProof(r, proof, key);
    hop.proven = {
      leafIndex: proof.leafIndex,
      treeSize: cp.size,
      origin: cp.origin,
      logKey: formatVerifierKey(cp.origin, key as Buffer),
    };
  } catch (err) {
    hop.notProven = `refused: ${why(err)}`;
    hop.refused = true;
    return hop;
  }
  if (proof.anchored === undefined) {
    hop.notAnchored = 'not yet';
    return hop;
  }
  try {
    hop.anchored = await checkAnchored(r, proof.anchored, key, chain);
  } catch (err) {
    if (err instanceof AfterSmtpError && err.code === 'ERR_ANCHOR_UNAVAILABLE') throw err;
    hop.notAnchored = `refused: ${why(err)}`;
    hop.refused = true;
  }
  return hop;
}

export const receiptCommand: Command = {
  path: ['receipt'],
  summary:
    "Show a message's signed receipts and which hops are proven in the gateways' transit logs and anchored.",
  usage:
    '<message id> --key <key file> [--recipient <did>...] --gateway <host:port> (--gateway-cert <pem> | --gateway-spki sha256/<b64>)\n' +
    '       [--chain <ws url>] [--log-key <key>] [--state <file>] [--json]\n\n' +
    GATEWAY_USAGE +
    '\n  --recipient <did>            the recipient to ask about (repeatable; default: yourself)\n' +
    '  --key <key file>             log in as the sender (or a recipient)\n' +
    '  --chain <ws url>             check anchors on this Substrate chain (else they are reported\n' +
    '                               as the gateway states them, checked against the checkpoint)\n\n' +
    "A hop is proven when the receipt signed by the receiving gateway is in that gateway's transit\n" +
    'log, by an inclusion proof against a checkpoint signed with the key its ledger record\n' +
    'publishes. Exit 1 when a receipt or a proof does not verify.',
  options: {
    ...GATEWAY_OPTIONS,
    key: { type: 'string' },
    recipient: { type: 'string', multiple: true },
    chain: { type: 'string' },
  },
  positionals: true,
  async run(args) {
    if (args.positionals.length !== 1) throw new UsageError('exactly one message id is expected');
    const messageId = (args.positionals[0] as string).toLowerCase();
    if (!/^[0-9a-f]{32}$/.test(messageId)) {
      throw new UsageError('a message id is 32 hex digits (as `aftersmtp send` prints it)');
    }
    const keyFile = clientOption(args, 'key');
    if (keyFile === undefined) throw new UsageError('--key is required');
    const chainUrl = args.values.chain as string | undefined;
    const keys = await readKeyFile(keyFile, await readPassphrase(`key file ${keyFile}`));
    const given = ((args.values.recipient as string[] | undefined) ?? []).map((d) => checkDid(d));
    const recipients = given.length > 0 ? given : [keys.did];
    const state = await loadClientState(args);
    const client = await connectGateway(args);
    const lookup = new IdentityLookup(client, args, state, parseDid(keys.did).domain);
    const chain = chainUrl === undefined ? undefined : new SubstrateChain({ url: chainUrl });
    const hops: Hop[] = [];
    try {
      const { token } = await client.login(keys);
      for (const recipient of recipients) {
        let res;
        try {
          res = await client.getTransitReceipt(token, { message_id: messageId, recipient });
        } catch (err) {
          if (!(err instanceof AfterSmtpError) || err.code !== 'ERR_RECEIPT_UNKNOWN') throw err;
          hops.push({
            recipient,
            from: '',
            receipt: {
              verified: false,
              error: 'no receipt yet (not delivered, or not yours to read)',
            },
            refused: false,
          });
          continue;
        }
        hops.push(await checkHop(res, recipient, messageId, (did) => lookup.resolve(did), chain));
      }
      await state.save();
    } finally {
      lookup.close();
      client.close();
      await chain?.close();
    }

    const refused = hops.some((h) => h.refused);
    if (flag(args, 'json')) {
      printJson({ messageId, hops });
    } else {
      const lines = [`message    ${messageId}`];
      for (const h of hops) {
        lines.push(`  ${h.recipient}`);
        if (h.to === undefined) {
          lines.push(`    receipt   ${h.receipt.error}`);
          continue;
        }
        lines.push(`    hop       ${h.from} -> ${h.to}, delivered ${h.deliveredAt}`);
        lines.push(
          `    receipt   ${h.receipt.verified ? 'signed by the receiving gateway (verified)' : `NOT VERIFIED: ${h.receipt.error}`}`,
        );
        if (!h.receipt.verified) continue;
        lines.push(
          h.proven !== undefined
            ? `    proven    leaf ${h.proven.leafIndex} of ${h.proven.origin}, checkpoint of size ${h.proven.treeSize}`
            : `    proven    ${h.notProven}`,
        );
        if (h.proven === undefined) continue;
        lines.push(
          h.anchored !== undefined
            ? `    anchored  block ${h.anchored.blockHash} #${h.anchored.blockNumber} at ${h.anchored.blockTime} (checkpoint of size ${h.anchored.treeSize}${h.anchored.chainChecked ? ', checked on the chain' : ', chain not asked'})`
            : `    anchored  ${h.notAnchored}`,
        );
      }
      printLines(lines);
    }
    if (refused) {
      throw new AfterSmtpError(
        'ERR_TRANSIT_PROOF',
        'a receipt or proof of transit does not verify',
      );
    }
  },
};
