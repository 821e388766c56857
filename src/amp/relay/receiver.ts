/**
 * The inbound side of the relay (DESIGN.md §3-§5, docs/PROTOCOL.md §13.3): the QUIC `onMessage`
 * handler of this gateway. For each envelope another gateway delivers, in this order:
 *
 *  1. decode within bounds (ERR_RELAY_TOO_LARGE, ERR_RELAY_ENVELOPE_FORMAT);
 *  2. refuse it if expired (ERR_RELAY_EXPIRED);
 *  3. the gateway signature must name `did:aftersmtp:<sender's domain>:gateway` (a domain vouches
 *     for its own senders only), a domain that is not ours; its record is resolved from THAT
 *     domain's ledger (RemoteIdentityResolver: inclusion proof, DNS-pinned log key);
 *  4. the QUIC peer's certificate key must be that record's `quic-tls-spki`
 *     (ERR_RELAY_PEER_MISMATCH) and the signature must verify with it
 *     (ERR_RELAY_GATEWAY_SIGNATURE); a cached record that fails is re-resolved once;
 *  5. every recipient (wrap label) must be a DID of a domain we serve, registered and not revoked
 *     in OUR ledger, and wrapped to its current key (per recipient: ERR_RELAY_NOT_OUR_DOMAIN,
 *     _UNKNOWN_RECIPIENT, _RECIPIENT_REVOKED, _RECIPIENT_KEY);
 *  6. each accepted recipient's copy is stored durably (store.deliver, idempotent by recipient
 *     and message id) with a receipt signed by our gateway key stored next to it; only then is
 *     the ACK (one result per recipient) sent.
 *
 * Guarantees: an ACK is sent only after every receipt in it is backed by a resolved deliver;
 * when no recipient is accepted, or the envelope itself is refused, the answer is a QUIC ERROR
 * (QuicRefusal) with a RELAY_REFUSALS code and a short reason that carries no internal text;
 * anything unexpected propagates and the transport answers INTERNAL with a transaction id. A
 * redelivered message gets the receipt stored the first time.
 */
import { createHash } from 'node:crypto';
import { AfterSmtpError } from '../../errors.js';
import { parseDid } from '../../identity/did.js';
import type { PublicKeyRecord, SecretKeySet } from '../../identity/keys.js';
import { decodeEntry } from '../../ledger/entries.js';
import { LedgerError } from '../../ledger/errors.js';
import type { IdentityLedger } from '../../ledger/ledger.js';
import { QuicRefusal } from '../../quic/errors.js';
import type { InboundMessage, QuicPeerInfo } from '../../quic/transport.js';
import type { MailboxStore } from '../../store/types.js';
import { decodeEnvelope, type Envelope } from '../../envelope/codec.js';
import {
  decodeStoredReceipt,
  encodeStoredReceipt,
  signReceipt,
  type DeliveryReceipt,
} from '../../envelope/receipt.js';
import { verifyGatewaySignature } from '../../envelope/gateway.js';
import { DEFAULT_MAX_ENVELOPE_BYTES } from '../../envelope/limits.js';
import { encodeRelayAck, type RelayResult } from './ack.js';
import { RELAY_REFUSALS, type RelayRefusalCode } from './errors.js';
import { gatewayDid, type RemoteGateway, type RemoteIdentityResolver } from './identities.js';

export interface RelayLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface RelayReceiverOptions {
  /** The domains this gateway serves (AFTERSMTP_DOMAIN). */
  readonly domains: readonly string[];
  /** OUR ledger: the recipients must be registered and active in it. */
  readonly ledger: IdentityLedger;
  /** Where accepted envelopes go (durable before the ACK). */
  readonly store: Pick<MailboxStore, 'deliver' | 'putReceipt' | 'getReceipt'>;
  /** Our gateway key: signs the receipts. */
  readonly gatewayKeys: SecretKeySet;
  /** Resolves the sending gateways' records from their own domains' ledgers. */
  readonly identities: RemoteIdentityResolver;
  readonly maxEnvelopeBytes?: number;
  readonly log?: RelayLogger;
  /** Called with the mailbox DID after a new envelope is stored (e.g. MailboxSignal.notify). */
  readonly onDelivered?: (recipient: string) => void;
  readonly now?: () => number;
}

function refuse(code: RelayRefusalCode, reason: string): QuicRefusal {
  return new QuicRefusal(reason.slice(0, 512), RELAY_REFUSALS[code].wire);
}

function sha256(b: Uint8Array): Buffer {
  return createHash('sha256').update(b).digest();
}

export class RelayReceiver {
  readonly #o: RelayReceiverOptions;
  readonly #domains: ReadonlySet<string>;
  readonly #max: number;
  readonly #now: () => number;

  constructor(opts: RelayReceiverOptions) {
    this.#o = opts;
    this.#domains = new Set(opts.domains.map((d) => d.toLowerCase()));
    this.#max = opts.maxEnvelopeBytes ?? DEFAULT_MAX_ENVELOPE_BYTES;
    this.#now = opts.now ?? Date.now;
  }

  /**
   * For QuicTransport's `verifyInboundPeer`: any gateway in the world may connect, so the
   * connection is accepted when its certificate has a key; each MESSAGE is then bound to the
   * sending gateway's record (step 4).
   */
  readonly verifyPeer = (peer: QuicPeerInfo): boolean => peer.spki.length > 0;

  /** For QuicTransport's `onMessage`. */
  readonly handle = async (msg: InboundMessage): Promise<Buffer> => {
    const data = msg.data;
    // 1. bounds, then decode
    if (data.length > this.#max) {
      throw refuse(
        'ERR_RELAY_TOO_LARGE',
        `${data.length} bytes is over the ${this.#max}-byte limit`,
      );
    }
    let env: Envelope;
    try {
      env = decodeEnvelope(data, { maxBytes: this.#max });
    } catch (err) {
      const code = (err as AfterSmtpError).code;
      if (code === 'ERR_ENVELOPE_TOO_LARGE')
        throw refuse('ERR_RELAY_TOO_LARGE', 'envelope too large');
      throw refuse('ERR_RELAY_ENVELOPE_FORMAT', `malformed envelope (${String(code)})`);
    }
    const now = this.#now();
    // 2. expiry
    if (now >= env.expiresAt) {
      throw refuse(
        'ERR_RELAY_EXPIRED',
        `the message expired at ${new Date(env.expiresAt).toISOString()}`,
      );
    }
    // 3.-4. the sending gateway
    const gw = await this.#sendingGateway(env, msg.peer);
    // 5. recipients
    const messageId = env.messageId.toString('hex');
    const ciphertextHash = sha256(env.ciphertext);
    const results: RelayResult[] = [];
    const recipients = [...new Set(env.wraps.map((w) => w.recipient))];
    for (const recipient of recipients) {
      const verdict = this.#checkRecipient(env, recipient);
      if (verdict !== undefined) {
        results.push({
          kind: 'refused',
          recipient,
          wireCode: RELAY_REFUSALS[verdict.code].wire,
          reason: verdict.reason,
        });
        continue;
      }
      // 6. durable, then receipt
      results.push(await this.#deliver(env, data, recipient, messageId, ciphertextHash, now));
    }
    const accepted = results.filter((r) => r.kind === 'delivered').length;
    this.#o.log?.info(
      {
        messageId,
        sender: env.sender,
        gateway: gw.did,
        peer: `${msg.peer.address}:${msg.peer.port}`,
        accepted,
        refused: results.length - accepted,
      },
      'relay message received',
    );
    if (accepted === 0) {
      const first = results[0] as Extract<RelayResult, { kind: 'refused' }>;
      throw new QuicRefusal(first.reason, first.wireCode);
    }
    return encodeRelayAck(results);
  };

  async #sendingGateway(env: Envelope, peer: QuicPeerInfo): Promise<RemoteGateway> {
    const g = env.gatewaySignature;
    if (g === undefined || g === null) {
      throw refuse('ERR_RELAY_GATEWAY_SIGNATURE', 'the envelope has no gateway signature');
    }
    const domain = parseDid(env.sender).domain;
    if (g.gateway !== gatewayDid(domain)) {
      throw refuse(
        'ERR_RELAY_GATEWAY_SIGNATURE',
        `only ${gatewayDid(domain)} may vouch for ${env.sender}`,
      );
    }
    if (this.#domains.has(domain)) {
      throw refuse('ERR_RELAY_SENDER_UNVERIFIABLE', `${domain} is served here, not by a peer`);
    }
    let gw = await this.#resolveGateway(domain);
    let problem = this.#checkGateway(env, peer, gw);
    if (problem !== undefined) {
      // The record may have changed since it was cached: look once more before refusing.
      this.#o.identities.forget(gw.did);
      gw = await this.#resolveGateway(domain);
      problem = this.#checkGateway(env, peer, gw);
    }
    if (problem !== undefined) {
      this.#o.log?.warn(
        {
          sender: env.sender,
          gateway: gw.did,
          peer: `${peer.address}:${peer.port}`,
          refusal: problem.code,
        },
        'relay message refused',
      );
      throw refuse(problem.code, problem.reason);
    }
    return gw;
  }

  async #resolveGateway(domain: string): Promise<RemoteGateway> {
    try {
      return await this.#o.identities.gateway(domain);
    } catch (err) {
      const e = err as { temporary?: unknown; code?: unknown };
      const temporary =
        e.temporary === true ||
        (typeof e.code === 'string' &&
          (e.code === 'ERR_RELAY_DNS' || e.code === 'ERR_RELAY_UNAVAILABLE'));
      this.#o.log?.warn(
        { domain, code: typeof e.code === 'string' ? e.code : 'ERR_INTERNAL', err },
        'cannot verify the sending gateway',
      );
      if (temporary || !(err instanceof AfterSmtpError)) {
        throw refuse('ERR_RELAY_SENDER_UNAVAILABLE', `cannot resolve the gateway of ${domain} now`);
      }
      throw refuse(
        'ERR_RELAY_SENDER_UNVERIFIABLE',
        `the gateway of ${domain} cannot be verified (${err.code})`,
      );
    }
  }

  #checkGateway(
    env: Envelope,
    peer: QuicPeerInfo,
    gw: RemoteGateway,
  ): { code: RelayRefusalCode; reason: string } | undefined {
    if (!peer.spki.equals(gw.tlsSpki)) {
      return {
        code: 'ERR_RELAY_PEER_MISMATCH',
        reason: `the connection's certificate is not the one ${gw.did} publishes`,
      };
    }
    try {
      verifyGatewaySignature(env, gw.record);
    } catch (err) {
      return {
        code: 'ERR_RELAY_GATEWAY_SIGNATURE',
        reason: `the gateway signature does not verify (${(err as AfterSmtpError).code})`,
      };
    }
    return undefined;
  }

  #checkRecipient(
    env: Envelope,
    recipient: string,
  ): { code: RelayRefusalCode; reason: string } | undefined {
    const { domain } = parseDid(recipient);
    if (!this.#domains.has(domain)) {
      return {
        code: 'ERR_RELAY_NOT_OUR_DOMAIN',
        reason: `${recipient} is not a DID of this gateway`,
      };
    }
    let record: PublicKeyRecord;
    try {
      const entry = decodeEntry(this.#o.ledger.lookup(recipient).entry);
      if (entry.type === 'revoke') {
        return { code: 'ERR_RELAY_RECIPIENT_REVOKED', reason: `${recipient} is revoked` };
      }
      record = entry.record;
    } catch (err) {
      if (err instanceof LedgerError && err.code === 'ERR_DID_UNKNOWN') {
        return { code: 'ERR_RELAY_UNKNOWN_RECIPIENT', reason: `${recipient} is not registered` };
      }
      throw err;
    }
    const current = env.wraps.some(
      (w) => w.recipient === recipient && w.keyId.equals(record.keyId),
    );
    if (!current) {
      return {
        code: 'ERR_RELAY_RECIPIENT_KEY',
        reason: `no wrap for ${recipient}'s current key (resolve it again)`,
      };
    }
    return undefined;
  }

  async #deliver(
    env: Envelope,
    data: Buffer,
    recipient: string,
    messageId: string,
    ciphertextHash: Buffer,
    now: number,
  ): Promise<RelayResult> {
    const store = this.#o.store;
    let duplicate: boolean;
    try {
      ({ duplicate } = await store.deliver({
        recipient,
        messageId,
        sender: env.sender,
        receivedAt: now,
        expiresAt: env.expiresAt,
        ciphertextHash,
        envelope: data,
      }));
    } catch (err) {
      if (err instanceof AfterSmtpError && err.code === 'ERR_STORE_QUOTA') {
        return {
          kind: 'refused',
          recipient,
          wireCode: RELAY_REFUSALS.ERR_RELAY_MAILBOX_FULL.wire,
          reason: `the mailbox of ${recipient} is full`,
        };
      }
      throw err;
    }
    if (duplicate) {
      const stored = await store.getReceipt(recipient, messageId);
      if (stored !== undefined) {
        const receipt = decodeStoredReceipt(stored);
        if (receipt.ciphertextHash.equals(ciphertextHash)) return { kind: 'delivered', receipt };
        // The same message id with other content: what is stored is not what was sent now.
        return {
          kind: 'refused',
          recipient,
          wireCode: RELAY_REFUSALS.ERR_RELAY_ENVELOPE_FORMAT.wire,
          reason: 'this message id was already delivered with other content',
        };
      }
    }
    const receipt: DeliveryReceipt = signReceipt(
      { messageId: env.messageId, ciphertextHash, recipient, sender: env.sender, deliveredAt: now },
      this.#o.gatewayKeys,
    );
    await store.putReceipt(recipient, messageId, encodeStoredReceipt(receipt), env.expiresAt);
    if (!duplicate) this.#o.onDelivered?.(recipient);
    return { kind: 'delivered', receipt };
  }
}
