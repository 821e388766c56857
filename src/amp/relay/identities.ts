/**
 * Resolving identities of OTHER domains (DESIGN.md §2b, docs/PROTOCOL.md §13.2): a DID
 * `did:aftersmtp:<domain>:<user>` is asked of that domain's gateway (ResolveIdentity over its
 * client API) and the answer is accepted only after verifyAnswer (src/ledger/verify.ts): the
 * checkpoint is signed by the domain's log key (from DNS `k=`, pinned on first use in a state
 * file the gateway owns), the entry is included in it, and the tree is consistent with the
 * newest checkpoint seen for that log (a split view, a rollback or a changed key fails loudly).
 *
 * The channel to a remote gateway (bootstrap, §13.2): its TLS certificate is not known in
 * advance, so the first connection reads the presented certificate without trusting it and asks
 * only for the gateway's own record, `did:aftersmtp:<domain>:gateway`. That answer is verified
 * with the log key exactly like any other, so TLS adds nothing to its integrity. The record's
 * `quic-tls-spki` (the key of the certificate the gateway serves on QUIC AND gRPC) must then
 * equal the presented certificate's key, or the channel is dropped (ERR_TLS_PIN_MISMATCH); from
 * then on the channel is pinned to it. Guaranteed: every record returned was verified against
 * the pinned log key; the channel used for later lookups is to the holder of the TLS key the
 * log publishes. Not guaranteed: that an answer is the DID's latest entry (PROTOCOL.md §9.6),
 * or availability (anyone on the path can drop packets).
 *
 * Verified answers are cached (LRU with TTL); lookups of one domain are serialised, so two
 * answers never race on the same log state; the state file is saved before a record is used.
 */
import { join } from 'node:path';
import { certificateSpki } from '../../tls/certificate.js';
import { AfterSmtpError } from '../../errors.js';
import { parseDid } from '../../identity/did.js';
import type { PublicKeyRecord } from '../../identity/keys.js';
import { EXT_QUIC_TLS_SPKI, type Extension } from '../../ledger/entries.js';
import { ClientState, verifyAnswer } from '../../ledger/verify.js';
import { GatewayClient, probeCertificate } from '../client-api/client.js';
import type { TransitProofMsg } from '../client-api/transit.js';
import { bundleFromMsg } from '../client-api/messages.js';
import { LruTtlCache } from './cache.js';
import type { PeerDirectory, RelayPeer } from './discovery.js';
import { RelayError } from './errors.js';

/** The gateway's resolver state file in its data directory. */
export const RELAY_STATE_FILE = 'relay-ledger-state.json';

export function relayStatePath(dataDir: string): string {
  return join(dataDir, RELAY_STATE_FILE);
}

export interface RemoteIdentity {
  readonly did: string;
  /** The current keys; undefined when revoked. */
  readonly record: PublicKeyRecord | undefined;
  readonly revoked: boolean;
  readonly extensions: readonly Extension[];
  readonly leafIndex: number;
  /** The signed checkpoint the answer was verified under. */
  readonly checkpoint: string;
  readonly treeSize: number;
}

export interface RemoteGateway {
  readonly domain: string;
  readonly did: string;
  readonly record: PublicKeyRecord;
  /** DER SubjectPublicKeyInfo of its QUIC/TLS certificate (the `quic-tls-spki` extension). */
  readonly tlsSpki: Buffer;
  readonly peer: RelayPeer;
}

export interface RemoteIdentityOptions {
  readonly directory: PeerDirectory;
  /** Where the pins and newest checkpoints live (relayStatePath(dataDir)); memory only if absent. */
  readonly statePath?: string;
  /**
   * An already loaded state, used instead of statePath: a client (the CLI) that also verifies
   * answers of its own gateway shares one state, and so one file, with this resolver.
   */
  readonly state?: ClientState;
  /** Verified records kept (default 10 000) and for how long (default 300 s). */
  readonly cacheSize?: number;
  readonly cacheTtlMs?: number;
  /** Per-call deadline of ResolveIdentity (default 10 s). */
  readonly timeoutMs?: number;
  readonly now?: () => number;
}

interface Channel {
  readonly target: string;
  readonly client: GatewayClient;
}

export function gatewayDid(domain: string): string {
  return `did:aftersmtp:${domain}:gateway`;
}

function target(e: { host: string; port: number }): string {
  return e.host.includes(':') ? `[${e.host}]:${e.port}` : `${e.host}:${e.port}`;
}

export class RemoteIdentityResolver {
  readonly directory: PeerDirectory;
  readonly #state: ClientState;
  readonly #cache: LruTtlCache<string, RemoteIdentity>;
  readonly #timeoutMs: number;
  readonly #channels = new Map<string, Promise<Channel>>();
  readonly #locks = new Map<string, Promise<unknown>>();
  /** State writes, one at a time: a slower older write never replaces a newer one. */
  #saving: Promise<void> = Promise.resolve();
  #closed = false;

  private constructor(opts: RemoteIdentityOptions, state: ClientState) {
    this.directory = opts.directory;
    this.#state = state;
    this.#cache = new LruTtlCache(opts.cacheSize ?? 10_000, opts.cacheTtlMs ?? 300_000, opts.now);
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  static async open(opts: RemoteIdentityOptions): Promise<RemoteIdentityResolver> {
    const state =
      opts.state ??
      (opts.statePath === undefined ? new ClientState() : await ClientState.load(opts.statePath));
    return new RemoteIdentityResolver(opts, state);
  }

  /**
   * The verified current entry of a remote DID (revoked ones too: check `revoked`). Throws
   * RelayError ERR_DID_UNKNOWN (permanent) for a DID the domain does not know, ERR_RELAY_* for
   * discovery and transport, and the ledger's CryptoErrors (ERR_LEDGER_KEY_CHANGED, ...).
   */
  async resolve(did: string): Promise<RemoteIdentity> {
    const hit = this.#cache.get(did);
    if (hit !== undefined) return hit;
    const { domain } = parseDid(did);
    return this.#serial(domain, async () => {
      const again = this.#cache.get(did);
      if (again !== undefined) return again;
      const peer = await this.directory.find(domain);
      const channel = await this.#channel(domain, peer);
      return this.#lookup(channel, did, peer);
    });
  }

  /** The verified record of `domain`'s gateway, with its TLS key and where it is. */
  async gateway(domain: string): Promise<RemoteGateway> {
    const did = gatewayDid(domain);
    const id = await this.resolve(did);
    const peer = await this.directory.find(domain);
    return toGateway(domain, id, peer);
  }

  /**
   * The peer gateway's proof for a receipt commitment in its transit log (GetTransitProof over
   * the verified channel, PROTOCOL.md §12.7). Not verified here: the client checks it.
   */
  async transitProof(domain: string, commitment: Buffer): Promise<TransitProofMsg> {
    const ch = await this.#serial(domain, async () =>
      this.#channel(domain, await this.directory.find(domain)),
    );
    try {
      return await ch.client.getTransitProof({ commitment });
    } catch (err) {
      if (err instanceof AfterSmtpError && err.code === 'ERR_TRANSIT_UNKNOWN') throw err;
      throw transportError(err, `GetTransitProof at ${ch.target}`);
    }
  }

  /** Drops a cached record (e.g. after the peer refused our view of it). */
  forget(did: string): void {
    this.#cache.delete(did);
  }

  close(): void {
    this.#closed = true;
    for (const ch of this.#channels.values()) {
      void ch.then(
        (c) => c.client.close(),
        () => undefined,
      );
    }
    this.#channels.clear();
    this.directory.cancel();
  }

  /** Runs `fn` after every earlier task of the same domain (one log state, no races). */
  #serial<T>(domain: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(domain) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.#locks.set(domain, tail);
    void tail.then(() => {
      if (this.#locks.get(domain) === tail) this.#locks.delete(domain);
    });
    return run;
  }

  async #channel(domain: string, peer: RelayPeer): Promise<Channel> {
    if (this.#closed) throw new RelayError('ERR_RELAY_CLOSED', 'the relay is closed', true);
    const t = target({ host: peer.apiAddress, port: peer.api.port });
    const existing = this.#channels.get(domain);
    if (existing !== undefined) {
      const ch = await existing.catch(() => undefined);
      if (ch !== undefined && ch.target === t) return ch;
      ch?.client.close();
      this.#channels.delete(domain);
    }
    const made = this.#bootstrap(domain, peer, t);
    this.#channels.set(domain, made);
    made.catch(() => {
      if (this.#channels.get(domain) === made) this.#channels.delete(domain);
    });
    return made;
  }

  /** See the module comment: verify the gateway record first, then pin the channel to it. */
  async #bootstrap(domain: string, peer: RelayPeer, t: string): Promise<Channel> {
    let presented: string;
    let client: GatewayClient;
    try {
      presented = await probeCertificate(t, this.#timeoutMs);
      client = await GatewayClient.connect({
        target: t,
        pin: { certPem: presented },
        timeoutMs: this.#timeoutMs,
      });
    } catch (err) {
      throw transportError(err, `the client API of ${domain} at ${t}`);
    }
    const ch: Channel = { target: t, client };
    try {
      // Not cached until the TLS key matched: while it does not, every attempt fails alike.
      const id = await this.#lookup(ch, gatewayDid(domain), peer, false).catch((err: unknown) => {
        // The peer's own record missing is the peer's fault, not an unknown recipient.
        if (err instanceof RelayError && err.code === 'ERR_DID_UNKNOWN') {
          throw new RelayError(
            'ERR_RELAY_GATEWAY_RECORD',
            `${t} has no ${gatewayDid(domain)} record: not an AfterSMTP gateway of ${domain}`,
            false,
          );
        }
        throw err;
      });
      const gw = toGateway(domain, id, peer);
      if (!certificateSpki(presented).equals(gw.tlsSpki)) {
        throw new RelayError(
          'ERR_TLS_PIN_MISMATCH',
          `the client API of ${domain} at ${t} presents a TLS key that is not the one in ${gw.did}'s record`,
          true, // an attack on the path or a misconfigured peer: retried, and logged loudly
        );
      }
      this.#cache.set(id.did, id);
      return ch;
    } catch (err) {
      client.close();
      throw err;
    }
  }

  async #lookup(ch: Channel, did: string, peer: RelayPeer, cache = true): Promise<RemoteIdentity> {
    const { domain } = parseDid(did);
    const known = this.#state.get(domain)?.size;
    let res;
    try {
      res = await ch.client.resolveIdentity(
        known === undefined ? { did } : { did, known_tree_size: known },
      );
    } catch (err) {
      if (err instanceof AfterSmtpError && err.code === 'ERR_DID_UNKNOWN') {
        throw new RelayError('ERR_DID_UNKNOWN', `${did} is not registered`, false);
      }
      // A broken channel is rebuilt (and re-verified) next time.
      if (this.#channels.has(domain)) {
        this.#channels.delete(domain);
        ch.client.close();
      }
      throw transportError(err, `ResolveIdentity at ${ch.target}`);
    }
    const bundle = bundleFromMsg(res.inclusion, res.consistency);
    const v = verifyAnswer(did, bundle, this.#state, { dnsVerifierKey: peer.logKey });
    const saved = this.#saving.then(() => this.#state.save());
    this.#saving = saved.catch(() => undefined);
    await saved;
    const id: RemoteIdentity = {
      did,
      record: v.record,
      revoked: v.revoked,
      extensions: v.entry.type === 'revoke' ? [] : v.entry.extensions,
      leafIndex: v.leafIndex,
      checkpoint: bundle.checkpoint,
      treeSize: bundle.treeSize,
    };
    if (cache) this.#cache.set(did, id);
    return id;
  }
}

function toGateway(domain: string, id: RemoteIdentity, peer: RelayPeer): RemoteGateway {
  if (id.revoked || id.record === undefined) {
    throw new RelayError('ERR_RELAY_GATEWAY_RECORD', `${id.did} is revoked`, false);
  }
  const spki = id.extensions.find((e) => e.name === EXT_QUIC_TLS_SPKI)?.value;
  if (spki === undefined || spki.length === 0) {
    throw new RelayError(
      'ERR_RELAY_GATEWAY_RECORD',
      `${id.did} publishes no ${EXT_QUIC_TLS_SPKI}`,
      false,
    );
  }
  return { domain, did: id.did, record: id.record, tlsSpki: Buffer.from(spki), peer };
}

/** gRPC/TLS failures: a refusal the peer stated is kept; reachability problems are temporary. */
function transportError(err: unknown, what: string): AfterSmtpError {
  if (err instanceof AfterSmtpError) {
    if (err.code === 'ERR_TLS_PIN_MISMATCH') return err;
    if (err.code.startsWith('GRPC_') || err.code === 'ERR_GATEWAY_UNREACHABLE') {
      return new RelayError('ERR_RELAY_UNAVAILABLE', `${what}: ${err.message}`, true, {
        cause: err,
      });
    }
    if (err.code === 'ERR_INTERNAL' || err.code === 'ERR_RATE_LIMITED') {
      return new RelayError('ERR_RELAY_UNAVAILABLE', `${what}: ${err.message}`, true, {
        cause: err,
      });
    }
    return err;
  }
  return new RelayError('ERR_RELAY_UNAVAILABLE', `${what}: ${(err as Error).message}`, true, {
    cause: err,
  });
}
