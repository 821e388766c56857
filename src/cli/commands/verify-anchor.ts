/**
 * `aftersmtp ledger verify-anchor`: checks that a checkpoint of the ledger is anchored on the
 * Substrate chain as its anchor record says (PROTOCOL.md §9.9.1): fetches the block through
 * @polkadot/api, finds the system.remarkWithEvent extrinsic and its system.Remarked event, and
 * checks them against the checkpoint's commitment. By default the latest anchor of the local
 * gateway (AFTERSMTP_DATA_DIR); with --record and --checkpoint, any anchor record and checkpoint
 * (e.g. from a lookup answer), the checkpoint verified with --key.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ANCHOR_DB_FILE,
  AnchorStore,
  SubstrateChain,
  type AnchorRecord,
} from '../../anchor/index.js';
import { loadConfig } from '../../config/load.js';
import { ledgerKey, logOrigin, parseVerifierKey, verifyCheckpoint } from '../../ledger/index.js';
import { UsageError, flag, optionalString, type Command } from '../command.js';
import { printJson, printLines } from '../output.js';

/** An anchor record as JSON (the --json output of this command). */
export function anchorRecordToJson(r: AnchorRecord): Record<string, unknown> {
  return { ...r, root: r.root.toString('base64'), commitment: r.commitment.toString('hex') };
}

function anchorRecordFromJson(v: unknown): AnchorRecord {
  const o = (v ?? {}) as Record<string, unknown>;
  const r = (o.record ?? o) as Record<string, unknown>;
  const str = (k: string): string => {
    if (typeof r[k] !== 'string') throw new UsageError(`the record has no ${k}`);
    return r[k];
  };
  const num = (k: string): number => {
    if (typeof r[k] !== 'number' || !Number.isSafeInteger(r[k])) {
      throw new UsageError(`the record has no ${k}`);
    }
    return r[k];
  };
  return {
    origin: str('origin'),
    size: num('size'),
    root: Buffer.from(str('root'), 'base64'),
    commitment: Buffer.from(str('commitment'), 'hex'),
    genesisHash: str('genesisHash'),
    blockHash: str('blockHash'),
    blockNumber: num('blockNumber'),
    extrinsicIndex: num('extrinsicIndex'),
    eventIndex: num('eventIndex'),
    account: str('account'),
    blockTime: num('blockTime'),
  };
}

export const ledgerVerifyAnchorCommand: Command = {
  path: ['ledger', 'verify-anchor'],
  summary: 'Check a checkpoint anchor on the Substrate chain (block, extrinsic, Remarked event).',
  usage:
    '[--substrate-url <ws://...>] [--size <n>] [--account <ss58>] [--json]\n' +
    '       aftersmtp ledger verify-anchor --record <file.json> --checkpoint <note file> --key <log key> [--substrate-url <ws://...>]\n\n' +
    'Without --record: the latest anchor of the local ledger (or the one of --size), checked with\n' +
    'the local log key. The chain is AFTERSMTP_SUBSTRATE_URL unless --substrate-url says otherwise.\n' +
    '--account also requires that the anchor was signed by that account. Exit 1 if it does not verify.',
  options: {
    json: { type: 'boolean' },
    'substrate-url': { type: 'string' },
    size: { type: 'string' },
    account: { type: 'string' },
    record: { type: 'string' },
    checkpoint: { type: 'string' },
    key: { type: 'string' },
  },
  async run(args) {
    const config = loadConfig();
    const url = optionalString(args, 'substrate-url') ?? config.substrateUrl;
    if (url === undefined) {
      throw new UsageError('no chain: set AFTERSMTP_SUBSTRATE_URL or pass --substrate-url');
    }
    let record: AnchorRecord;
    let note: string;
    let key: string;
    const recordFile = optionalString(args, 'record');
    if (recordFile !== undefined) {
      const cpFile = optionalString(args, 'checkpoint');
      const k = optionalString(args, 'key');
      if (cpFile === undefined || k === undefined) {
        throw new UsageError('--record needs --checkpoint and --key');
      }
      record = anchorRecordFromJson(JSON.parse(await readFile(recordFile, 'utf8')));
      note = await readFile(cpFile, 'utf8');
      key = k;
    } else {
      const sizeText = optionalString(args, 'size');
      const origin = logOrigin(config.domain);
      const store = new AnchorStore(join(config.dataDir, ANCHOR_DB_FILE));
      let stored;
      try {
        stored =
          sizeText === undefined ? store.latest(origin) : store.get(origin, Number(sizeText));
      } finally {
        store.close();
      }
      if (stored === undefined) {
        throw new UsageError(
          `no anchor of ${origin}${sizeText === undefined ? '' : ` at size ${sizeText}`} in ${config.dataDir}`,
        );
      }
      record = stored.record;
      note = stored.note;
      key = (await ledgerKey({ dataDir: config.dataDir, domain: config.domain })).verifierKey;
    }
    const verifier = parseVerifierKey(key);
    const cp = verifyCheckpoint(note, verifier, record.origin);
    if (cp.size !== record.size || !cp.root.equals(record.root)) {
      throw new UsageError('the anchor record is not of this checkpoint (size or root differ)');
    }
    const chain = new SubstrateChain({ url });
    try {
      const { blockTime } = await chain.verify(record, cp, optionalString(args, 'account'));
      const out = {
        verified: true,
        origin: cp.origin,
        size: cp.size,
        chain: url,
        blockTime: new Date(blockTime).toISOString(),
        record: anchorRecordToJson(record),
      };
      if (flag(args, 'json')) printJson(out);
      else
        printLines([
          `anchored: ${cp.origin} size ${cp.size}`,
          `  block ${record.blockNumber} ${record.blockHash} (${out.blockTime})`,
          `  extrinsic ${record.extrinsicIndex}, event ${record.eventIndex}, signed by ${record.account}`,
        ]);
    } finally {
      await chain.close();
    }
  },
};
