/**
 * A Substrate chain as the place checkpoints are anchored (DESIGN.md §2b), through @polkadot/api:
 * submit `system.remarkWithEvent(commitment)` signed by the gateway's account and return where it
 * landed (the anchor record), and verify an anchor record against a checkpoint by fetching the
 * block, its extrinsic and its `system.Remarked` event.
 *
 * Guarantees:
 * - submit resolves only once the extrinsic is in a block and its Remarked event was found;
 *   extrinsics of one SubstrateChain are submitted one at a time with explicit nonces (parallel
 *   submits of one account are dropped by the pool).
 * - A chain that cannot be reached within the timeout is an AnchorError ERR_ANCHOR_UNAVAILABLE
 *   (temporary: the anchor is retried through the queue); the connection is dropped and made
 *   again on the next call, so a restarted chain is picked up.
 * - verify accepts a record only if the block is the chain's canonical block at that height, the
 *   extrinsic at the index is a signed system.remarkWithEvent (possibly inside nothing else) whose
 *   remark is exactly the commitment of the checkpoint, the event at the index is the
 *   system.Remarked of that extrinsic carrying blake2_256(commitment) and the extrinsic's signer,
 *   and (when given) the signer is the expected account. Anything else is ERR_ANCHOR_INVALID.
 */
import '@polkadot/api-augment';
import { ApiPromise, Keyring, WsProvider } from '@polkadot/api';
import type { KeyringPair } from '@polkadot/keyring/types';
import { readFileSync } from 'node:fs';
import { AfterSmtpError, ConfigError } from '../errors.js';
import type { Checkpoint } from '../ledger/index.js';
import { anchorCommitment } from './commitment.js';

export class AnchorError extends AfterSmtpError {}

/** Where a checkpoint's commitment landed on the chain. */
export interface AnchorRecord {
  readonly origin: string;
  readonly size: number;
  readonly root: Buffer;
  readonly commitment: Buffer;
  /** 0x-prefixed hex of the chain's genesis block hash. */
  readonly genesisHash: string;
  /** 0x-prefixed hex. */
  readonly blockHash: string;
  readonly blockNumber: number;
  readonly extrinsicIndex: number;
  /** Index of the system.Remarked event in the block's events. */
  readonly eventIndex: number;
  /** The signing account (SS58 with the chain's prefix; any prefix is accepted to check it). */
  readonly account: string;
  /** The block's timestamp.now (ms since the epoch): the trusted time of the anchor. */
  readonly blockTime: number;
}

export interface ChainOptions {
  readonly url: string;
  /** How long to wait for the chain to answer (default 10 s). */
  readonly timeoutMs?: number;
}

/**
 * The anchoring account from a key file: a secret seed (0x + 64 hex), a mnemonic, or a secret URI
 * with derivation path; a dev URI (`//Alice`, a path on the well-known dev phrase) only when
 * `devMode` is set. sr25519.
 */
export function loadAnchorAccount(path: string, devMode: boolean): KeyringPair {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ConfigError('ERR_CONFIG', `cannot read the anchoring key file ${path}`, {
      cause: err,
    });
  }
  return anchorAccountFromUri(text, devMode);
}

export function anchorAccountFromUri(uri: string, devMode: boolean): KeyringPair {
  if (uri.startsWith('//') && !devMode) {
    throw new ConfigError(
      'ERR_CONFIG',
      'the anchoring key is a dev URI (//...): allowed only with AFTERSMTP_ANCHOR_DEV_MODE=yes',
    );
  }
  try {
    return new Keyring({ type: 'sr25519' }).addFromUri(uri);
  } catch {
    throw new ConfigError('ERR_CONFIG', 'the anchoring key file holds no valid secret seed or URI');
  }
}

function unavailable(url: string, why: string, cause?: unknown): AnchorError {
  return new AnchorError('ERR_ANCHOR_UNAVAILABLE', `the chain at ${url} ${why}`, { cause });
}

function invalid(why: string): AnchorError {
  return new AnchorError('ERR_ANCHOR_INVALID', `anchor refused: ${why}`);
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(onTimeout()), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export class SubstrateChain {
  readonly url: string;
  readonly #timeoutMs: number;
  #api: Promise<ApiPromise> | undefined;
  #tail: Promise<unknown> = Promise.resolve();

  constructor(opts: ChainOptions) {
    this.url = opts.url;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** The connected API (connects on first use, and again after a failure). */
  async api(): Promise<ApiPromise> {
    if (this.#api === undefined) {
      const provider = new WsProvider(this.url, false);
      const connecting = (async () => {
        await provider.connect();
        return ApiPromise.create({ provider, noInitWarn: true, throwOnConnect: true });
      })();
      this.#api = withTimeout(connecting, this.#timeoutMs, () => {
        void provider.disconnect().catch(() => undefined);
        return unavailable(this.url, `did not answer within ${this.#timeoutMs} ms`);
      });
      this.#api.catch(() => {
        void provider.disconnect().catch(() => undefined);
      });
    }
    try {
      const api = await this.#api;
      if (!api.isConnected) throw unavailable(this.url, 'is not connected');
      return api;
    } catch (err) {
      await this.reset();
      throw err instanceof AnchorError ? err : unavailable(this.url, 'cannot be reached', err);
    }
  }

  /** Drops the connection; the next call connects again. */
  async reset(): Promise<void> {
    const api = this.#api;
    this.#api = undefined;
    if (api !== undefined) {
      try {
        await (await api).disconnect();
      } catch {
        // it never connected, or is gone already
      }
    }
  }

  async close(): Promise<void> {
    await this.reset();
  }

  /** Anchors `cp`: remarkWithEvent(commitment) by `account`; resolves with the anchor record. */
  anchor(
    cp: Pick<Checkpoint, 'origin' | 'size' | 'root'>,
    account: KeyringPair,
  ): Promise<AnchorRecord> {
    const run = this.#tail.then(
      () => this.#anchor(cp, account),
      () => this.#anchor(cp, account),
    );
    this.#tail = run.catch(() => undefined);
    return run;
  }

  async #anchor(
    cp: Pick<Checkpoint, 'origin' | 'size' | 'root'>,
    account: KeyringPair,
  ): Promise<AnchorRecord> {
    const api = await this.api();
    const commitment = anchorCommitment(cp);
    try {
      const nonce = (await api.rpc.system.accountNextIndex(account.address)).toNumber();
      const inBlock = await withTimeout(
        new Promise<{ blockHash: string; txIndex: number }>((resolve, reject) => {
          api.tx.system
            .remarkWithEvent(`0x${commitment.toString('hex')}`)
            .signAndSend(account, { nonce }, (result) => {
              if (result.dispatchError !== undefined) {
                reject(invalid(`the chain refused the remark: ${result.dispatchError.toString()}`));
              } else if (result.isError) {
                reject(unavailable(this.url, `dropped the extrinsic (${result.status.type})`));
              } else if (result.status.isInBlock && result.txIndex !== undefined) {
                resolve({ blockHash: result.status.asInBlock.toHex(), txIndex: result.txIndex });
              }
            })
            .catch(reject);
        }),
        this.#timeoutMs * 3,
        () => unavailable(this.url, 'did not include the anchor in a block in time'),
      );
      const header = await api.rpc.chain.getHeader(inBlock.blockHash);
      const at = await api.at(inBlock.blockHash);
      const events = await at.query.system.events();
      const eventIndex = events.findIndex(
        (e) =>
          e.phase.isApplyExtrinsic &&
          e.phase.asApplyExtrinsic.toNumber() === inBlock.txIndex &&
          api.events.system.Remarked.is(e.event),
      );
      if (eventIndex < 0) throw invalid('the extrinsic is in the block without a Remarked event');
      const blockTime = (await at.query.timestamp.now()).toNumber();
      return {
        origin: cp.origin,
        size: cp.size,
        root: Buffer.from(cp.root),
        commitment,
        genesisHash: api.genesisHash.toHex(),
        blockHash: inBlock.blockHash,
        blockNumber: header.number.toNumber(),
        extrinsicIndex: inBlock.txIndex,
        eventIndex,
        account: api.createType('AccountId', account.address).toString(),
        blockTime,
      };
    } catch (err) {
      if (err instanceof AnchorError) throw err;
      await this.reset();
      throw unavailable(this.url, 'failed while anchoring', err);
    }
  }

  /**
   * Checks `record` against the chain and `cp` (see the guarantees above); resolves with the
   * block's time. ERR_ANCHOR_INVALID when the chain does not hold this anchor.
   */
  async verify(
    record: AnchorRecord,
    cp: Pick<Checkpoint, 'origin' | 'size' | 'root'>,
    expectedAccount?: string,
  ): Promise<{ blockTime: number }> {
    const commitment = anchorCommitment(cp);
    if (!commitment.equals(record.commitment)) {
      throw invalid('the record commits to another checkpoint');
    }
    const api = await this.api();
    try {
      if (api.genesisHash.toHex() !== record.genesisHash) {
        throw invalid(`the record is of another chain (genesis ${record.genesisHash})`);
      }
      const head = (await api.rpc.chain.getHeader()).number.toNumber();
      if (!Number.isSafeInteger(record.blockNumber) || record.blockNumber > head) {
        throw invalid(`block ${record.blockNumber} is beyond the chain's head ${head}`);
      }
      const canonical = (await api.rpc.chain.getBlockHash(record.blockNumber)).toHex();
      if (canonical !== record.blockHash) {
        throw invalid(
          `block ${record.blockNumber} of the chain is ${canonical}, not ${record.blockHash}`,
        );
      }
      const block = await api.rpc.chain.getBlock(record.blockHash);
      const xt = block.block.extrinsics[record.extrinsicIndex];
      if (xt === undefined) throw invalid(`block has no extrinsic ${record.extrinsicIndex}`);
      if (!xt.isSigned) throw invalid('the extrinsic is not signed');
      if (!api.tx.system.remarkWithEvent.is(xt.method)) {
        throw invalid(
          `the extrinsic is ${xt.method.section}.${xt.method.method}, not system.remarkWithEvent`,
        );
      }
      const remark = Buffer.from(xt.method.args[0].toU8a(true));
      if (!remark.equals(commitment)) throw invalid('the remark is not the checkpoint commitment');
      const signer = xt.signer.toString();
      const events = await (await api.at(record.blockHash)).query.system.events();
      const ev = events[record.eventIndex];
      if (
        ev === undefined ||
        !ev.phase.isApplyExtrinsic ||
        ev.phase.asApplyExtrinsic.toNumber() !== record.extrinsicIndex ||
        !api.events.system.Remarked.is(ev.event)
      ) {
        throw invalid(`event ${record.eventIndex} is not the Remarked event of the extrinsic`);
      }
      const [sender, hash] = ev.event.data;
      const want = Buffer.from(api.registry.hash(commitment));
      if (!Buffer.from(hash.toU8a()).equals(want)) {
        throw invalid('the Remarked event carries another hash');
      }
      if (sender.toString() !== signer) throw invalid('the Remarked event names another sender');
      if (
        expectedAccount !== undefined &&
        api.createType('AccountId', expectedAccount).toHex() !==
          api.createType('AccountId', signer).toHex()
      ) {
        throw invalid(`the anchor was signed by ${signer}, not ${expectedAccount}`);
      }
      const blockTime = (await (await api.at(record.blockHash)).query.timestamp.now()).toNumber();
      return { blockTime };
    } catch (err) {
      if (err instanceof AnchorError) throw err;
      await this.reset();
      throw unavailable(this.url, 'failed while verifying', err);
    }
  }
}
