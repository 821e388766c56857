/**
 * The resolver policies of `aftersmtp resolve` (PROTOCOL.md §9.9.3), from its flags:
 * `--require-witnesses <k>` with `--witness <verifier key>` (repeatable): k of the known witnesses
 * must have cosigned a checkpoint consistent with the answer; `--require-anchor <seconds>` with
 * `--substrate-url` (or AFTERSMTP_SUBSTRATE_URL) and optionally `--anchor-account`: a checkpoint
 * consistent with the answer must be anchored on the chain no longer ago than that.
 */
import { SubstrateChain, checkAnchored, type AnchorRecord } from '../anchor/index.js';
import type { AttestedCheckpointMsg } from '../amp/client-api/messages.js';
import { parseCheckpoint, parseNote, parseVerifierKey } from '../ledger/index.js';
import { checkWitnessed, parseWitnessKey } from '../witness/index.js';
import { UsageError, optionalString, type Options, type ParsedArgs } from './command.js';

export const ATTESTATION_OPTIONS: Options = {
  witness: { type: 'string', multiple: true },
  'require-witnesses': { type: 'string' },
  'require-anchor': { type: 'string' },
  'substrate-url': { type: 'string' },
  'anchor-account': { type: 'string' },
};

export const ATTESTATION_USAGE =
  '  --require-witnesses <k> --witness <key> ...  k of these witnesses must have cosigned (§9.9.3)\n' +
  '  --require-anchor <seconds> [--substrate-url <ws://...>] [--anchor-account <ss58>]\n' +
  '                   a checkpoint anchored on the chain no longer ago than that must vouch for it\n';

function count(args: ParsedArgs, name: string): number | undefined {
  const v = optionalString(args, name);
  if (v === undefined) return undefined;
  if (!/^[0-9]{1,9}$/.test(v) || Number(v) < 1)
    throw new UsageError(`--${name}: expected a positive number`);
  return Number(v);
}

export interface AttestationOutcome {
  witnessedBy?: string[];
  anchor?: { blockNumber: number; blockHash: string; blockTime: string };
}

/** Applies the policies the flags ask for; throws if the answer does not meet them. */
export async function applyAttestationPolicy(
  args: ParsedArgs,
  answerNote: string,
  logKey: string,
  attested: readonly AttestedCheckpointMsg[],
  defaultUrl: string | undefined,
): Promise<AttestationOutcome> {
  const out: AttestationOutcome = {};
  const k = count(args, 'require-witnesses');
  const maxAge = count(args, 'require-anchor');
  if (k === undefined && maxAge === undefined) return out;
  const answer = parseCheckpoint(parseNote(answerNote).text);
  const verifier = parseVerifierKey(logKey);
  if (k !== undefined) {
    const raw = args.values.witness;
    const keys = (Array.isArray(raw) ? raw : []).map((v) => parseWitnessKey(String(v)));
    if (keys.length < k)
      throw new UsageError(`--require-witnesses ${k} needs at least ${k} --witness keys`);
    out.witnessedBy = checkWitnessed(
      answer,
      attested.map((a) => ({ note: a.checkpoint, proof: a.consistency?.proof ?? [] })),
      verifier,
      { witnesses: keys, k },
    );
  }
  if (maxAge !== undefined) {
    const url = optionalString(args, 'substrate-url') ?? defaultUrl;
    if (url === undefined) throw new UsageError('--require-anchor needs --substrate-url');
    const chain = new SubstrateChain({ url });
    try {
      const candidates = attested.flatMap((a) => {
        if (a.anchor === null) return [];
        const cp = parseCheckpoint(parseNote(a.checkpoint).text);
        const record: AnchorRecord = {
          origin: cp.origin,
          size: cp.size,
          root: cp.root,
          commitment: a.anchor.commitment,
          genesisHash: `0x${a.anchor.genesis_hash.toString('hex')}`,
          blockHash: `0x${a.anchor.block_hash.toString('hex')}`,
          blockNumber: a.anchor.block_number,
          extrinsicIndex: a.anchor.extrinsic_index,
          eventIndex: a.anchor.event_index,
          account: a.anchor.account,
          blockTime: a.anchor.block_time_ms,
        };
        return [{ note: a.checkpoint, record, proof: a.consistency?.proof ?? [] }];
      });
      const account = optionalString(args, 'anchor-account');
      const r = await checkAnchored(answer, candidates, verifier, {
        chain,
        maxAgeMs: maxAge * 1000,
        ...(account !== undefined ? { account } : {}),
      });
      out.anchor = {
        blockNumber: r.record.blockNumber,
        blockHash: r.record.blockHash,
        blockTime: new Date(r.blockTime).toISOString(),
      };
    } finally {
      await chain.close();
    }
  }
  return out;
}
