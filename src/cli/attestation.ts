/**
 * The composition of what attests the ledger's checkpoints (DESIGN.md §2b), for `serve`:
 * anchoring on a Substrate chain (AFTERSMTP_SUBSTRATE_URL) and witnesses (AFTERSMTP_WITNESSES).
 * Both run off the hot path: their jobs go through the durable queue and the delivery worker
 * hands them to the handlers made here; lookups are served the latest attested checkpoints.
 */
import { join } from 'node:path';
import {
  ANCHOR_DB_FILE,
  AnchorStore,
  Anchorer,
  SubstrateChain,
  loadAnchorAccount,
  type AnchorRecord,
  type CheckpointSource,
} from '../anchor/index.js';
import type { SubstrateAnchorMsg } from '../amp/client-api/messages.js';
import type { TransitAnchor } from '../amp/client-api/transit.js';
import type { Attestation, AttestationSource } from '../amp/client-api/server.js';
import type { Config } from '../config/schema.js';
import type { DestinationHandler } from '../delivery/worker.js';
import { ConfigError } from '../errors.js';
import type { IdentityLedger } from '../ledger/index.js';
import type { DeliveryQueue } from '../queue/types.js';
import {
  CosignatureSigner,
  WITNESS_DB_FILE,
  WITNESS_SCHEME,
  WitnessService,
  WitnessStore,
  Witnesser,
  startWitnessServer,
} from '../witness/index.js';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';

export interface AttestationLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface Attestations {
  /** Destination handlers for the delivery worker, by scheme. */
  readonly handlers: Readonly<Record<string, DestinationHandler>>;
  /** The latest attested checkpoints, for lookups. */
  readonly source: AttestationSource;
  /** The latest anchored checkpoint of another anchored log (the transit log), by origin. */
  anchored(origin: string): TransitAnchor | undefined;
  /** Settings for the start-up log line. */
  readonly announce: Record<string, unknown>;
  start(): void;
  close(): Promise<void>;
}

type AttestationConfig = Pick<
  Config,
  | 'dataDir'
  | 'substrateUrl'
  | 'anchorKeyFile'
  | 'anchorDevMode'
  | 'anchorInterval'
  | 'anchorEveryEntries'
  | 'witnesses'
  | 'witnessInterval'
  | 'witnessEveryEntries'
  | 'witnessListen'
  | 'witnessLogs'
  | 'domain'
>;

/** The seed of this gateway's cosigning key (as a witness), made on first use. */
async function witnessSeed(path: string): Promise<Buffer> {
  try {
    const seed = await readFile(path);
    if (seed.length !== 32) throw new ConfigError('ERR_CONFIG', `${path} is not a 32-byte seed`);
    return seed;
  } catch (err) {
    if ((err as { code?: string }).code !== 'ENOENT') throw err;
    const seed = randomBytes(32);
    await writeFile(path, seed, { mode: 0o600, flag: 'wx' });
    return seed;
  }
}

/**
 * `others` are further logs anchored on the same chain with the same account (the transit log,
 * PROTOCOL.md §12.7): each has an anchorer of its own, and the `anchor:` jobs go to the one of
 * the job's origin (its recipient).
 */
export async function openAttestations(
  config: AttestationConfig,
  ledger: IdentityLedger,
  queue: Pick<DeliveryQueue, 'begin'>,
  log: AttestationLogger & { error(obj: object, msg: string): void },
  others: readonly CheckpointSource[] = [],
): Promise<Attestations> {
  let anchors: AnchorStore | undefined;
  const handlers: Record<string, DestinationHandler> = {};
  const starts: (() => void)[] = [];
  const closes: (() => Promise<void> | void)[] = [];
  const sources: AttestationSource[] = [];
  const announce: Record<string, unknown> = {};

  if (config.substrateUrl !== undefined) {
    if (config.anchorKeyFile === undefined) {
      throw new ConfigError(
        'ERR_CONFIG',
        'invalid configuration: AFTERSMTP_SUBSTRATE_URL needs AFTERSMTP_ANCHOR_KEY_FILE (the anchoring account)',
      );
    }
    const account = loadAnchorAccount(config.anchorKeyFile, config.anchorDevMode);
    const chain = new SubstrateChain({ url: config.substrateUrl });
    const store = new AnchorStore(join(config.dataDir, ANCHOR_DB_FILE));
    anchors = store;
    const anchorers = new Map(
      [ledger, ...others].map((source) => [
        source.origin,
        new Anchorer({
          source,
          chain,
          account,
          store,
          queue,
          intervalMs: config.anchorInterval * 1000,
          everyEntries: config.anchorEveryEntries,
          log,
        }),
      ]),
    );
    const first = anchorers.get(ledger.origin) as Anchorer;
    handlers['anchor:'] = (job) => (anchorers.get(job.recipients[0] ?? '') ?? first).deliver(job);
    starts.push(() => anchorers.forEach((a) => a.start()));
    closes.push(async () => {
      for (const a of anchorers.values()) await a.stop();
      await chain.close();
      store.close();
    });
    sources.push(() => {
      const a = store.latest(ledger.origin);
      return a === undefined ? [] : [{ note: a.note, size: a.record.size, anchor: a.record }];
    });
    announce.anchoring = { chain: config.substrateUrl, account: account.address };
  }

  const witnesses = config.witnesses ?? [];
  if (witnesses.length > 0) {
    const store = new WitnessStore(join(config.dataDir, WITNESS_DB_FILE));
    const witnesser = new Witnesser({
      source: ledger,
      witnesses,
      store,
      queue,
      intervalMs: config.witnessInterval * 1000,
      everyEntries: config.witnessEveryEntries,
      log,
    });
    handlers[WITNESS_SCHEME] = witnesser.deliver;
    starts.push(() => witnesser.start());
    closes.push(async () => {
      await witnesser.stop();
      store.close();
    });
    sources.push(() => {
      const c = store.latest(ledger.origin);
      return c === undefined ? [] : [{ note: c.note, size: c.size }];
    });
    announce.witnesses = witnesses.map((w) => `${w.key.name}@${w.url}`);
  }

  if (config.witnessListen !== 'off') {
    const service = new WitnessService({
      path: join(config.dataDir, 'witnessing.sqlite'),
      signer: new CosignatureSigner(
        `${config.domain}/aftersmtp-witness/v1`,
        await witnessSeed(join(config.dataDir, 'witness.seed')),
      ),
      logs: config.witnessLogs,
    });
    const { server, port } = await startWitnessServer(
      service,
      config.witnessListen.host,
      config.witnessListen.port,
    ).catch((err: unknown) => {
      service.close();
      throw err;
    });
    closes.push(async () => {
      await new Promise((resolve) => server.close(resolve));
      service.close();
    });
    announce.witness = {
      listen: `${config.witnessListen.host}:${port}`,
      key: service.vkey,
      logs: config.witnessLogs.length,
    };
  }

  return {
    handlers,
    announce,
    source: () => merge(sources.flatMap((s) => s())),
    anchored: (origin) => {
      const a = anchors?.latest(origin);
      return a === undefined
        ? undefined
        : { note: a.note, size: a.record.size, anchor: substrateAnchorMsg(a.record) };
    },
    start: () => starts.forEach((s) => s()),
    close: async () => {
      for (const c of closes.reverse()) await c();
    },
  };
}

const hexBytes = (h: string): Buffer => Buffer.from(h.replace(/^0x/, ''), 'hex');

function substrateAnchorMsg(r: AnchorRecord): SubstrateAnchorMsg {
  return {
    genesis_hash: hexBytes(r.genesisHash),
    block_hash: hexBytes(r.blockHash),
    block_number: r.blockNumber,
    extrinsic_index: r.extrinsicIndex,
    event_index: r.eventIndex,
    account: r.account,
    block_time_ms: r.blockTime,
    commitment: r.commitment,
  };
}

/** One attestation per size: cosignature lines of the same checkpoint joined, the anchor kept. */
function merge(all: readonly Attestation[]): Attestation[] {
  const bySize = new Map<number, Attestation>();
  for (const a of all) {
    const b = bySize.get(a.size);
    if (b === undefined) {
      bySize.set(a.size, a);
      continue;
    }
    const lines = new Set([...signatureLines(b.note), ...signatureLines(a.note)]);
    const text = b.note.slice(0, b.note.lastIndexOf('\n\n') + 2);
    bySize.set(a.size, {
      note: text + [...lines].map((l) => `${l}\n`).join(''),
      size: a.size,
      ...((b.anchor ?? a.anchor) !== undefined ? { anchor: b.anchor ?? a.anchor } : {}),
    });
  }
  return [...bySize.values()].sort((x, y) => y.size - x.size);
}

function signatureLines(note: string): string[] {
  return note
    .slice(note.lastIndexOf('\n\n') + 2)
    .split('\n')
    .filter((l) => l.length > 0);
}
