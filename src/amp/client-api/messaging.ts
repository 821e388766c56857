/**
 * The client API's messaging methods (DESIGN.md §4, docs/PROTOCOL.md §12): RequestChallenge,
 * Authenticate, DispatchMessage, FetchInbox (server stream), Ack, GetReceipt.
 *
 * A listener in the sense of STYLE.md: each handler turns the wire message into a typed request,
 * checks the caller's token, and hands over: DispatchMessage to the delivery queue (one
 * transaction per envelope; the answer is sent only after commit resolved, i.e. the entry is
 * durable), the mailbox methods to the store, read and delete only, always with the token's DID
 * as the mailbox: a token for one DID can never name another's mailbox. Nothing here writes an
 * envelope into the store; the delivery worker (src/delivery) does.
 *
 * What DispatchMessage checks (the gateway cannot see inside the ciphertext): the envelope
 * decodes within AFTERSMTP_MAX_ENVELOPE_BYTES, has not expired, its cleartext sender is the
 * token's DID and that DID is active in the ledger (the current key id is logged as the claim the
 * gateway vouches for), and every DID with a wrap is an active DID of this gateway's domain whose
 * current key id is the wrapped one; a recipient of another domain must be active in its own
 * domain's ledger, resolved and verified through the relay (without a relay: ERR_RELAY_UNAVAILABLE). The gateway signature is added
 * (PROTOCOL.md §6.4) before the envelope is queued.
 *
 * Errors become statuses in status.ts only; refusals carry a stable `aftersmtp-code`.
 */
import { once } from 'node:events';
import {
  status,
  type sendUnaryData,
  type ServerUnaryCall,
  type ServerWritableStream,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { AfterSmtpError } from '../../errors.js';
import { parseDid } from '../../identity/did.js';
import type { SecretKeySet } from '../../identity/keys.js';
import type { IdentityLedger } from '../../ledger/index.js';
import type { DeliveryQueue } from '../../queue/types.js';
import type { MailboxStore } from '../../store/types.js';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../../envelope/codec.js';
import { addGatewaySignature } from '../../envelope/gateway.js';
import { ampDestination, transactionId } from '../../delivery/worker.js';
import { NO_METRICS, type MessagingMetrics } from '../../mailbox/metrics.js';
import { decodeStoredReceipt } from '../../envelope/receipt.js';
import type { MailboxSignal } from '../../mailbox/signal.js';
import { Authenticator, currentRecord, tokenFromAuthorization, type TokenClaims } from './auth.js';
import {
  ackFromMsg,
  authenticateFromMsg,
  fetchInboxFromMsg,
  messageIdFromMsg,
  receiptToMsg,
  type AckRequestMsg,
  type AckResponseMsg,
  type AuthenticateRequestMsg,
  type AuthenticateResponseMsg,
  type DeliveryReceiptMsg,
  type DispatchMessageRequestMsg,
  type DispatchMessageResponseMsg,
  type FetchInboxRequestMsg,
  type GetReceiptRequestMsg,
  type GetReceiptResponseMsg,
  type InboxItemMsg,
  type LoginChallengeMsg,
  type RequestChallengeRequestMsg,
} from './messages.js';
import { ClientApiRefusal, toGrpcStatus } from './status.js';
import { classify } from '../relay/errors.js';
import type { RemoteIdentity } from '../relay/identities.js';
import type { PublicKeyRecord } from '../../identity/keys.js';

export interface MessagingLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface MessagingDeps {
  readonly gateway: SecretKeySet;
  readonly ledger: IdentityLedger;
  readonly domain: string;
  readonly queue: DeliveryQueue;
  readonly store: MailboxStore;
  readonly maxEnvelopeBytes: number;
  readonly tokenTtlMs: number;
  readonly signal: MailboxSignal;
  readonly metrics?: MessagingMetrics;
  /** How often a follower re-reads its mailbox without a wake-up (other processes). */
  readonly followPollMs?: number;
  /**
   * Resolves a DID of another domain from that domain's own gateway, verified (the relay's
   * RemoteIdentityResolver). Absent: recipients of other domains are refused
   * (ERR_RELAY_UNAVAILABLE).
   */
  readonly remote?: { resolve(did: string): Promise<RemoteIdentity> };
}

export interface MessagingService {
  readonly handlers: UntypedServiceImplementation;
  /** Ends follow-mode streams (at shutdown), so the server can drain. */
  close(): void;
}

function refuse(grpcStatus: status, code: string, message: string): ClientApiRefusal {
  return new ClientApiRefusal(grpcStatus, code, message);
}

/** Store errors as refusals: bounds (invalid argument), quota, unavailable. */
function storeRefusal(err: unknown): unknown {
  if (!(err instanceof AfterSmtpError)) return err;
  switch (err.name) {
    case 'StoreInputError':
      return refuse(status.INVALID_ARGUMENT, err.code, err.message);
    case 'StoreQuotaError':
      return refuse(status.RESOURCE_EXHAUSTED, err.code, err.message);
    case 'StoreUnavailableError':
    case 'StoreClosedError':
      return refuse(status.UNAVAILABLE, err.code, 'the mailbox store is unavailable; retry');
    default:
      return err;
  }
}

function fail(
  name: string,
  log: MessagingLogger,
  err: unknown,
  peer: string,
): ReturnType<typeof toGrpcStatus> {
  const mapped = toGrpcStatus(storeRefusal(err));
  if (mapped.transaction !== undefined) {
    log.error(
      { err, method: name, transaction: mapped.transaction, peer },
      'client API internal error',
    );
  }
  return mapped;
}

type Call = { metadata: { get(key: string): unknown[] }; getPeer(): string };

function asyncUnary<Req, Res>(
  name: string,
  log: MessagingLogger,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    fn(call.request, call).then(
      (res) => callback(null, res),
      (err: unknown) => {
        const mapped = fail(name, log, err, call.getPeer());
        callback(mapped.status, null, mapped.status.metadata);
      },
    );
  };
}

export function messagingService(deps: MessagingDeps, log: MessagingLogger): MessagingService {
  const auth = new Authenticator({
    gateway: deps.gateway,
    ledger: deps.ledger,
    domain: deps.domain,
    tokenTtlMs: deps.tokenTtlMs,
  });
  const metrics = deps.metrics ?? NO_METRICS;
  const { store } = deps;
  const closing = new AbortController();
  const pollMs = deps.followPollMs ?? 2000;

  const caller = (call: Call): TokenClaims =>
    auth.verifyToken(tokenFromAuthorization(call.metadata.get('authorization')));

  async function dispatch(
    req: DispatchMessageRequestMsg,
    call: Call,
  ): Promise<DispatchMessageResponseMsg> {
    const transaction = transactionId();
    try {
      const res = await dispatchChecked(req, caller(call), transaction);
      metrics.messageIn('queued');
      return res;
    } catch (err) {
      metrics.messageIn(err instanceof AfterSmtpError ? err.code : 'ERR_INTERNAL');
      if (err instanceof ClientApiRefusal) {
        log.info({ transaction, code: err.code, peer: call.getPeer() }, 'dispatch refused');
      }
      throw err;
    }
  }

  /** The current record of a recipient, local (our ledger) or remote (its own domain's). */
  async function recipientRecord(did: string, domain: string): Promise<PublicKeyRecord> {
    if (domain === deps.domain) {
      try {
        return currentRecord(deps.ledger, did);
      } catch (err) {
        if (err instanceof ClientApiRefusal && err.code === 'ERR_DID_UNKNOWN') {
          throw refuse(status.NOT_FOUND, 'ERR_RECIPIENT_UNKNOWN', `${did} is not registered`);
        }
        if (err instanceof ClientApiRefusal && err.code === 'ERR_DID_REVOKED') {
          throw refuse(status.FAILED_PRECONDITION, 'ERR_RECIPIENT_REVOKED', `${did} is revoked`);
        }
        throw err;
      }
    }
    if (deps.remote === undefined) {
      throw refuse(
        status.FAILED_PRECONDITION,
        'ERR_RELAY_UNAVAILABLE',
        `${did} is at ${domain}: this gateway does not relay to other domains`,
      );
    }
    let remote: RemoteIdentity;
    try {
      remote = await deps.remote.resolve(did);
    } catch (err) {
      const c = classify(err);
      if (c.code === 'ERR_DID_UNKNOWN') {
        throw refuse(status.NOT_FOUND, 'ERR_RECIPIENT_UNKNOWN', `${did} is not registered`);
      }
      throw refuse(
        c.temporary ? status.UNAVAILABLE : status.FAILED_PRECONDITION,
        c.code,
        `${did}: ${c.reason}`,
      );
    }
    if (remote.revoked || remote.record === undefined) {
      throw refuse(status.FAILED_PRECONDITION, 'ERR_RECIPIENT_REVOKED', `${did} is revoked`);
    }
    return remote.record;
  }

  async function dispatchChecked(
    req: DispatchMessageRequestMsg,
    claims: TokenClaims,
    transaction: string,
  ): Promise<DispatchMessageResponseMsg> {
    const raw = req.envelope;
    if (!Buffer.isBuffer(raw) || raw.length === 0) {
      throw refuse(status.INVALID_ARGUMENT, 'ERR_CLIENT_API_REQUEST', 'envelope: is required');
    }
    if (raw.length > deps.maxEnvelopeBytes) {
      throw refuse(
        status.RESOURCE_EXHAUSTED,
        'ERR_ENVELOPE_TOO_LARGE',
        `the envelope is ${raw.length} bytes, over this gateway's ${deps.maxEnvelopeBytes}-byte limit`,
      );
    }
    let env: Envelope;
    try {
      env = decodeEnvelope(raw, { maxBytes: deps.maxEnvelopeBytes });
    } catch (err) {
      const code = err instanceof AfterSmtpError ? err.code : 'ERR_ENVELOPE_FORMAT';
      throw refuse(status.INVALID_ARGUMENT, code, (err as Error).message);
    }
    if (env.sender !== claims.did) {
      throw refuse(
        status.PERMISSION_DENIED,
        'ERR_SENDER_MISMATCH',
        `the envelope's sender ${env.sender} is not the authenticated ${claims.did}`,
      );
    }
    if (Date.now() >= env.expiresAt) {
      throw refuse(status.FAILED_PRECONDITION, 'ERR_ENVELOPE_EXPIRED', 'the envelope has expired');
    }
    const sender = currentRecord(deps.ledger, claims.did);
    const recipients = [...new Set(env.wraps.map((w) => w.recipient))];
    for (const did of recipients) {
      let domain: string;
      try {
        domain = parseDid(did).domain;
      } catch {
        throw refuse(status.INVALID_ARGUMENT, 'ERR_RECIPIENT_INVALID', `${did} is not a DID`);
      }
      const record = await recipientRecord(did, domain);
      for (const w of env.wraps.filter((x) => x.recipient === did)) {
        if (!w.keyId.equals(record.keyId)) {
          throw refuse(
            status.FAILED_PRECONDITION,
            'ERR_RECIPIENT_KEY_STALE',
            `the wrap for ${did} is for a key that is not its current one (resolve it again)`,
          );
        }
      }
    }
    const signed = addGatewaySignature(env, deps.gateway);
    const body = encodeEnvelope(signed, { maxBytes: deps.maxEnvelopeBytes });
    const messageId = env.messageId.toString('hex');
    const tx = deps.queue.begin({ messageId, sender: claims.did, senderKind: 'amp' });
    try {
      for (const address of recipients) {
        tx.addRecipient({ address, destination: ampDestination(parseDid(address).domain) });
      }
      tx.body(body);
    } catch (err) {
      tx.abort();
      throw err;
    }
    const entryId = await tx.commit(); // durable: only now is the answer sent
    log.info(
      {
        transaction,
        messageId,
        entryId,
        sender: claims.did,
        // The gateway cannot see the author key id (it is inside the ciphertext); this is the
        // key the sender authenticated with, which the gateway vouches for.
        senderKeyId: sender.keyId.toString('base64'),
        recipients,
        bytes: body.length,
      },
      'message queued',
    );
    return { message_id: messageId, queue_entry_id: entryId, recipients };
  }

  async function receiptMsg(
    recipient: string,
    messageId: string,
  ): Promise<DeliveryReceiptMsg | null> {
    const raw = await metrics.storeOp('getReceipt', () => store.getReceipt(recipient, messageId));
    return raw === undefined ? null : receiptToMsg(decodeStoredReceipt(raw));
  }

  async function fetchInbox(
    call: ServerWritableStream<FetchInboxRequestMsg, InboxItemMsg>,
  ): Promise<void> {
    const did = caller(call).did;
    const req = fetchInboxFromMsg(call.request);
    const abort = new AbortController();
    const stop = (): void => abort.abort();
    call.on('cancelled', stop);
    closing.signal.addEventListener('abort', stop);
    try {
      let cursor = req.after;
      let sent = 0;
      const max = store.limits.maxPageSize;
      while (!abort.signal.aborted) {
        const left = req.limit === 0 ? max : Math.min(max, req.limit - sent);
        const page = await metrics.storeOp('list', () =>
          store.list(did, { after: cursor, limit: left }),
        );
        for (const e of page.envelopes) {
          const item: InboxItemMsg = {
            seq: e.seq,
            message_id: e.messageId,
            sender: e.sender,
            received_at: e.receivedAt,
            expires_at: e.expiresAt,
            ciphertext_hash: Buffer.from(e.ciphertextHash),
            envelope: Buffer.from(e.envelope),
            receipt: await receiptMsg(did, e.messageId),
          };
          if (!call.write(item)) {
            await Promise.race([
              once(call, 'drain'),
              once(abort.signal as unknown as NodeJS.EventEmitter, 'abort'),
            ]);
          }
          sent++;
        }
        cursor = page.cursor;
        if (req.limit !== 0 && sent >= req.limit) break;
        if (page.more) continue;
        if (!req.follow) break;
        await deps.signal.wait(did, pollMs, abort.signal);
      }
    } finally {
      closing.signal.removeEventListener('abort', stop);
    }
    call.end();
  }

  return {
    close: () => closing.abort(),
    handlers: {
      RequestChallenge: asyncUnary<RequestChallengeRequestMsg, LoginChallengeMsg>(
        'RequestChallenge',
        log,
        async (req) => {
          if (typeof req.did !== 'string' || req.did.length > 512) {
            throw refuse(status.INVALID_ARGUMENT, 'ERR_CLIENT_API_REQUEST', 'did: is required');
          }
          const c = auth.requestChallenge(req.did);
          return {
            challenge: c.challenge,
            gateway: c.gateway,
            gateway_key_id: c.gatewayKeyId,
            expires_at: c.expiresAt,
          };
        },
      ),
      Authenticate: asyncUnary<AuthenticateRequestMsg, AuthenticateResponseMsg>(
        'Authenticate',
        log,
        async (req, call) => {
          const r = authenticateFromMsg(req);
          const t = auth.authenticate(r.did, r.challenge, r.signature);
          log.info(
            {
              did: r.did,
              tokenId: t.claims.tokenId.toString('hex'),
              expiresAt: t.expiresAt,
              peer: call.getPeer(),
            },
            'client authenticated',
          );
          return { token: t.token, expires_at: t.expiresAt };
        },
      ),
      DispatchMessage: asyncUnary<DispatchMessageRequestMsg, DispatchMessageResponseMsg>(
        'DispatchMessage',
        log,
        dispatch,
      ),
      FetchInbox: (call: ServerWritableStream<FetchInboxRequestMsg, InboxItemMsg>) => {
        fetchInbox(call).catch((err: unknown) => {
          const mapped = fail('FetchInbox', log, err, call.getPeer());
          call.emit('error', mapped.status);
        });
      },
      Ack: asyncUnary<AckRequestMsg, AckResponseMsg>('Ack', log, async (req, call) => {
        const did = caller(call).did;
        const ids = ackFromMsg(req, store.limits.maxAckIds);
        const deleted = await metrics.storeOp('ack', () => store.ack(did, ids));
        return { deleted };
      }),
      GetReceipt: asyncUnary<GetReceiptRequestMsg, GetReceiptResponseMsg>(
        'GetReceipt',
        log,
        async (req, call) => {
          const did = caller(call).did;
          const messageId = messageIdFromMsg(req.message_id, 'message_id');
          const recipient =
            typeof req.recipient === 'string' && req.recipient.length > 0 ? req.recipient : did;
          if (Buffer.byteLength(recipient) > 512) {
            throw refuse(status.INVALID_ARGUMENT, 'ERR_CLIENT_API_REQUEST', 'recipient: too long');
          }
          const receipt = await receiptMsg(recipient, messageId);
          // The recipient may read its receipts; the sender may read the receipts of its own
          // messages. Anything else is indistinguishable from "no such receipt".
          if (receipt === null || (recipient !== did && receipt.sender !== did)) {
            throw refuse(
              status.NOT_FOUND,
              'ERR_RECEIPT_UNKNOWN',
              `no receipt for ${messageId} to ${recipient} that you may read`,
            );
          }
          return { receipt };
        },
      ),
    },
  };
}
