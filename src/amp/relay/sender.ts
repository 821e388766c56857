/**
 * The outbound side of the relay (DESIGN.md §3-§4, docs/PROTOCOL.md §13.3): delivers one AMP
 * envelope to the gateways of its remote recipients and reports one outcome per recipient, as
 * values, for the delivery worker to settle into the queue.
 *
 * For each recipient domain: find its gateway (route, then DNS) and its verified gateway record
 * (RemoteIdentityResolver); make a copy of the envelope carrying only the wraps of that domain's
 * recipients (PROTOCOL.md §6.7; at most `batchSize` per copy, so the peer's receipts fit one ACK)
 * and sign it with OUR gateway key (§6.4: the signature covers the wraps of the copy); send it
 * over the pooled QUIC connection, which is used only after the peer's certificate key equals the
 * record's `quic-tls-spki`; verify every receipt in the ACK (the peer gateway's key, our message
 * id, ciphertext hash, recipient and sender).
 *
 * Guarantees: `relay` never throws; every recipient given gets exactly one outcome: `delivered`
 * (with the verified receipt), `temporary` (DNS or transport trouble, busy, timeout, a mailbox
 * full, an unverifiable acknowledgement: retry later; the peer de-duplicates by message id) or
 * `permanent` (unreachable domain, unknown or revoked recipient, forged or expired message,
 * certificate mismatch, a changed log key...: bounce). Which is which is decided in errors.ts.
 */
import { isIP } from 'node:net';
import { AfterSmtpError } from '../../errors.js';
import { parseDid } from '../../identity/did.js';
import type { SecretKeySet } from '../../identity/keys.js';
import { QuicError } from '../../quic/errors.js';
import type { QuicPeer, QuicTransport } from '../../quic/transport.js';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../../envelope/codec.js';
import { ciphertextHash, verifyReceipt, type DeliveryReceipt } from '../../envelope/receipt.js';
import { addGatewaySignature } from '../../envelope/gateway.js';
import { VerifiedBatches } from '../../identity/batch-signature.js';
import { DEFAULT_MAX_ENVELOPE_BYTES } from '../../envelope/limits.js';
import { decodeRelayAck } from './ack.js';
import { RELAY_REFUSALS, RelayError, classify, refusalByWire } from './errors.js';
import type { RelayEndpoint } from './discovery.js';
import type { RemoteGateway, RemoteIdentityResolver } from './identities.js';
import type { RelayLogger } from './receiver.js';

/** One recipient's result; assignable to the queue's RecipientOutcome. */
export type RelayOutcome =
  | {
      readonly recipient: string;
      readonly status: 'delivered';
      /** Verified: the peer gateway's key, our message id, ciphertext and sender. */
      readonly receipt: DeliveryReceipt;
      /** The envelope's expiry: how long the receipt is worth keeping. */
      readonly expiresAt: number;
    }
  | {
      readonly recipient: string;
      readonly status: 'temporary' | 'permanent';
      readonly code: string;
      readonly reason: string;
    };

export interface RelaySenderOptions {
  /** The gateway's QUIC endpoint (its pooled client side is used). */
  readonly transport: Pick<QuicTransport, 'send'>;
  readonly identities: RemoteIdentityResolver;
  /** OUR gateway key: signs each per-domain copy. */
  readonly gatewayKeys: SecretKeySet;
  readonly maxEnvelopeBytes?: number;
  /** Recipients per copy (default: 32, or 12 when the peer gateway's key is hybrid-v1). */
  readonly batchSize?: number;
  readonly log?: RelayLogger;
  readonly now?: () => number;
}

const MAX_BATCH = 32;
const MAX_BATCH_HYBRID = 12; // 12 receipts with ML-DSA-65 signatures fit the 64 KiB ACK

function failed(recipients: readonly string[], err: unknown): RelayOutcome[] {
  const c = classify(err);
  const status = c.temporary ? 'temporary' : 'permanent';
  return recipients.map((recipient) => ({ recipient, status, code: c.code, reason: c.reason }));
}

/**
 * Failures that say nothing reached the endpoint's node, or that it cannot take the message now:
 * the next endpoint of the same gateway is tried at once. (A timeout after sending may mean the
 * message was stored and its ACK lost: another node storing it again is harmless, the mailbox
 * store keeps one copy per recipient and message id and answers the first receipt.)
 */
const TRY_NEXT_ENDPOINT = new Set([
  'ERR_QUIC_HANDSHAKE_TIMEOUT',
  'ERR_QUIC_CONNECTION_REFUSED',
  'ERR_QUIC_TIMEOUT',
  'ERR_QUIC_CLOSED',
  'ERR_QUIC_RESET',
  'ERR_QUIC_SHUTDOWN',
  'ERR_QUIC_BUSY',
]);

export class RelaySender {
  readonly #o: RelaySenderOptions;
  readonly #max: number;
  readonly #now: () => number;
  /** Peers' receipt batches already verified: each batch is verified once (PROTOCOL.md §3.3). */
  readonly #receiptBatches = new VerifiedBatches();
  /** Rotates the first endpoint tried, so that a domain's nodes share the messages. */
  #turn = 0;

  constructor(opts: RelaySenderOptions) {
    this.#o = opts;
    this.#max = opts.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * Relays `envelope` (bytes or decoded; any gateway signature on it is replaced by ours on each
   * copy) to `recipients`, DIDs of one or more remote domains, each named by a wrap. Bytes that
   * already carry our current gateway signature over exactly the wraps of a copy (what the
   * pipeline queued for a message with one remote domain) are sent as they are.
   */
  async relay(
    envelope: Envelope | Uint8Array,
    recipients: readonly string[],
  ): Promise<RelayOutcome[]> {
    const unique = [...new Set(recipients)];
    let env: Envelope;
    try {
      env =
        envelope instanceof Uint8Array
          ? decodeEnvelope(envelope, { maxBytes: this.#max })
          : envelope;
    } catch (err) {
      return failed(unique, err);
    }
    if (this.#now() >= env.expiresAt) {
      return failed(unique, new RelayError('ERR_RELAY_EXPIRED', 'the message has expired', false));
    }
    const out: RelayOutcome[] = [];
    const byDomain = new Map<string, string[]>();
    for (const r of unique) {
      let domain: string;
      try {
        domain = parseDid(r).domain;
      } catch (err) {
        out.push(...failed([r], err));
        continue;
      }
      if (!env.wraps.some((w) => w.recipient === r)) {
        out.push(
          ...failed(
            [r],
            new RelayError('ERR_RELAY_NO_WRAP', `the envelope has no wrap for ${r}`, false),
          ),
        );
        continue;
      }
      const list = byDomain.get(domain) ?? [];
      list.push(r);
      byDomain.set(domain, list);
    }
    const signed = envelope instanceof Uint8Array ? this.#ourSigned(env, envelope) : undefined;
    const perDomain = await Promise.all(
      [...byDomain].map(([domain, list]) => this.#relayDomain(env, domain, list, signed)),
    );
    for (const o of perDomain) out.push(...o);
    return out;
  }

  /** Adapter for a queue job of the relay destination (body = the encoded envelope). */
  relayJob(job: {
    readonly recipients: readonly string[];
    readonly body: Uint8Array;
  }): Promise<RelayOutcome[]> {
    return this.relay(job.body, job.recipients);
  }

  /** The envelope's bytes, if its gateway signature is ours with the current key. */
  #ourSigned(env: Envelope, bytes: Uint8Array): Buffer | undefined {
    const g = env.gatewaySignature;
    const me = this.#o.gatewayKeys.record;
    if (
      g === undefined ||
      g.gateway !== me.did ||
      g.suite !== me.suite ||
      !g.keyId.equals(me.keyId)
    ) {
      return undefined;
    }
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  async #relayDomain(
    env: Envelope,
    domain: string,
    recipients: string[],
    signed: Buffer | undefined,
  ): Promise<RelayOutcome[]> {
    let gw: RemoteGateway;
    try {
      gw = await this.#o.identities.gateway(domain);
    } catch (err) {
      this.#log(env, domain, recipients, err);
      return failed(recipients, err);
    }
    const size =
      this.#o.batchSize ?? (gw.record.suite === 'hybrid-v1' ? MAX_BATCH_HYBRID : MAX_BATCH);
    const batches: string[][] = [];
    for (let i = 0; i < recipients.length; i += size) batches.push(recipients.slice(i, i + size));
    // Our signature covers the wraps: the queued bytes serve only a copy that keeps them all.
    const whole =
      batches.length === 1 && recipients.length === env.wraps.length ? signed : undefined;
    const results = await Promise.all(batches.map((b) => this.#sendBatch(env, gw, b, true, whole)));
    return results.flat();
  }

  async #sendBatch(
    env: Envelope,
    gw: RemoteGateway,
    batch: string[],
    retryStale: boolean,
    signed?: Buffer,
  ): Promise<RelayOutcome[]> {
    const wanted = new Set(batch);
    let bytes: Buffer;
    try {
      bytes =
        signed ??
        encodeEnvelope(
          addGatewaySignature(
            { ...env, wraps: env.wraps.filter((w) => wanted.has(w.recipient)) },
            this.#o.gatewayKeys,
          ),
          { maxBytes: this.#max },
        );
    } catch (err) {
      const e = err as AfterSmtpError;
      if (e.code === 'ERR_ENVELOPE_TOO_LARGE') {
        return failed(batch, new RelayError('ERR_RELAY_TOO_LARGE', e.message, false));
      }
      return failed(batch, err);
    }
    const sent = await this.#sendToNodes(gw, bytes);
    if ('err' in sent) {
      const { err, endpoint } = sent;
      if (err instanceof QuicError && err.code === 'ERR_QUIC_PEER_REJECTED') {
        // Our view of its record may be stale: look again once before calling it a mismatch.
        this.#o.identities.forget(gw.did);
        if (retryStale) {
          try {
            const fresh = await this.#o.identities.gateway(gw.domain);
            if (!fresh.tlsSpki.equals(gw.tlsSpki)) {
              return this.#sendBatch(env, fresh, batch, false, signed);
            }
          } catch (again) {
            return failed(batch, again);
          }
        }
        const e = new RelayError(
          'ERR_RELAY_PEER_MISMATCH',
          `the QUIC certificate of ${endpointName(endpoint)} is not the one ${gw.did} publishes`,
          false,
        );
        this.#log(env, gw.domain, batch, e, gw, endpoint);
        return failed(batch, e);
      }
      this.#log(env, gw.domain, batch, err, gw, endpoint);
      return failed(batch, err);
    }
    return this.#settle(env, gw, batch, sent.ack);
  }

  /**
   * Sends to the gateway's nodes: the first endpoint tried turns with each message; on a
   * failure of TRY_NEXT_ENDPOINT the next one is tried. The ACK, or the last failure and the
   * endpoint it came from.
   */
  async #sendToNodes(
    gw: RemoteGateway,
    bytes: Buffer,
  ): Promise<{ ack: Buffer } | { err: unknown; endpoint: RelayEndpoint }> {
    const relays = gw.peer.relays;
    const first = this.#turn++ % relays.length;
    let last: { err: unknown; endpoint: RelayEndpoint } | undefined;
    for (let i = 0; i < relays.length; i++) {
      const r = relays[(first + i) % relays.length] as RelayEndpoint;
      const peer: QuicPeer = {
        host: r.address,
        port: r.port,
        serverName: isIP(r.host) === 0 ? r.host : '',
        verify: (p) => p.spki.equals(gw.tlsSpki),
      };
      try {
        return { ack: await this.#o.transport.send(peer, bytes) };
      } catch (err) {
        last = { err, endpoint: r };
        if (!(err instanceof QuicError && TRY_NEXT_ENDPOINT.has(err.code))) return last;
        if (i + 1 < relays.length) {
          this.#o.log?.warn(
            { peer: gw.did, endpoint: endpointName(r), code: err.code },
            'relay: a node of the peer failed; trying its next one',
          );
        }
      }
    }
    return last as { err: unknown; endpoint: RelayEndpoint };
  }

  #settle(env: Envelope, gw: RemoteGateway, batch: string[], ack: Buffer): RelayOutcome[] {
    let results;
    try {
      results = decodeRelayAck(ack);
    } catch (err) {
      return failed(batch, new RelayError('ERR_RELAY_RECEIPT', (err as Error).message, true));
    }
    const hash = ciphertextHash(env);
    return batch.map((recipient): RelayOutcome => {
      const r = results.find((x) =>
        x.kind === 'delivered' ? x.receipt.recipient === recipient : x.recipient === recipient,
      );
      if (r === undefined) {
        return {
          recipient,
          status: 'temporary',
          code: 'ERR_RELAY_RECEIPT',
          reason: `${gw.did} acknowledged without a result for ${recipient}`,
        };
      }
      if (r.kind === 'refused') {
        const code = refusalByWire(r.wireCode);
        const temporary = code === undefined ? false : RELAY_REFUSALS[code].temporary;
        return {
          recipient,
          status: temporary ? 'temporary' : 'permanent',
          code: code ?? 'ERR_QUIC_APPLICATION',
          reason: r.reason,
        };
      }
      const x = r.receipt;
      try {
        verifyReceipt(x, gw.record, this.#receiptBatches);
        if (
          !x.messageId.equals(env.messageId) ||
          !x.ciphertextHash.equals(hash) ||
          x.sender !== env.sender
        ) {
          throw new RelayError('ERR_RELAY_RECEIPT', 'the receipt is for another message', true);
        }
      } catch (err) {
        return {
          recipient,
          status: 'temporary',
          code: 'ERR_RELAY_RECEIPT',
          reason: `the receipt of ${gw.did} does not verify (${(err as AfterSmtpError).code})`,
        };
      }
      return { recipient, status: 'delivered', receipt: x, expiresAt: env.expiresAt };
    });
  }

  /** One line per failed hand-over, naming the peer (its gateway DID and QUIC endpoint) when known. */
  #log(
    env: Envelope,
    domain: string,
    recipients: readonly string[],
    err: unknown,
    gw?: RemoteGateway,
    q?: RelayEndpoint,
  ): void {
    const c = classify(err);
    this.#o.log?.warn(
      {
        messageId: env.messageId.toString('hex'),
        domain,
        ...(gw !== undefined
          ? {
              peer: gw.did,
              ...(q !== undefined ? { peerQuic: endpointName(q), peerAddress: q.address } : {}),
              peerSource: gw.peer.source,
            }
          : {}),
        recipients,
        code: c.code,
        temporary: c.temporary,
        reason: c.reason,
      },
      'relay failed',
    );
  }
}

/** `host:port`, `[v6]:port`, for messages. */
function endpointName(e: { host: string; port: number } | undefined): string {
  if (e === undefined) return 'its QUIC endpoint';
  return `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`;
}
