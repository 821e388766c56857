/**
 * The client API's messaging methods (DESIGN.md §4, docs/PROTOCOL.md §12): RequestChallenge,
 * Authenticate, DispatchMessage, DispatchStream (many DispatchMessage requests over one call),
 * FetchInbox (server stream), Ack, GetReceipt, and for expiry (docs/EXPIRY.md) GetTime and
 * ReleaseKey.
 *
 * An entrance in the sense of DESIGN.md §1b: each handler turns the wire message into a typed
 * request and checks the caller's token. DispatchMessage decodes the envelope within
 * AFTERSMTP_MAX_ENVELOPE_BYTES and hands it, with the token's DID, to the pipeline, which checks
 * sender and recipients, adds the gateway signature and commits it to the queue; the answer is
 * sent only once that commit is durable. The mailbox methods read and delete in the store,
 * always with the token's DID as the mailbox: a token for one DID can never name another's
 * mailbox. Nothing here writes an envelope into the store; the mailbox writer does.
 *
 * Expiry is judged by the gateway's trusted clock (src/envelope/time.ts), never by the caller:
 * FetchInbox leaves out what expired by it, even before the purge; ReleaseKey releases an
 * ephemeral message's key share to its recipient only before the expiry; GetTime signs the time.
 *
 * Errors become statuses in status.ts only; refusals carry a stable `aftersmtp-code`.
 */
import { randomHex } from '../../random.js';
import {
  status,
  type sendUnaryData,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type StatusObject,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { AfterSmtpError } from '../../errors.js';
import type { SecretKeySet } from '../../identity/keys.js';
import type { IdentityLedger } from '../../ledger/index.js';
import type { MailboxStore } from '../../store/types.js';
import { decodeEnvelope, type Envelope } from '../../envelope/codec.js';
import { NO_METRICS, type MessagingMetrics } from '../../mailbox/metrics.js';
import { decodeStoredReceipt } from '../../envelope/receipt.js';
import { signTimeStatement, TrustedClock, type TimeStatement } from '../../envelope/time.js';
import type { MailboxSignal } from '../../mailbox/signal.js';
import type { AmpSubmission, Outcome } from '../../pipeline/types.js';
import { Authenticator, tokenFromAuthorization, type TokenClaims } from './auth.js';
import {
  ackFromMsg,
  authenticateFromMsg,
  fetchInboxFromMsg,
  messageIdFromMsg,
  receiptFromMsg,
  receiptToMsg,
  type AckRequestMsg,
  type AckResponseMsg,
  type AuthenticateRequestMsg,
  type AuthenticateResponseMsg,
  type DeliveryReceiptMsg,
  type DispatchMessageRequestMsg,
  type DispatchMessageResponseMsg,
  type DispatchRefusalMsg,
  type DispatchStreamResponseMsg,
  type FetchInboxRequestMsg,
  type GetReceiptRequestMsg,
  type GetReceiptResponseMsg,
  type GetTimeRequestMsg,
  type InboxItemMsg,
  type LoginChallengeMsg,
  type ReleaseKeyRequestMsg,
  type ReleaseKeyResponseMsg,
  type RequestChallengeRequestMsg,
  type TimeStatementMsg,
  nonceFromMsg,
  timeToMsg,
} from './messages.js';
import {
  CODE_TRAILER,
  ClientApiRefusal,
  PipelineRefusal,
  RETRY_AFTER_TRAILER,
  refusalToStatus,
} from './status.js';
import { statusOf, unary } from './unary.js';
import { drained } from './drained.js';
import {
  ownTransitProof,
  type GetTransitReceiptResponseMsg,
  type TransitProofMsg,
  type TransitSource,
} from './transit.js';
import { transitCommitment } from '../../transit/index.js';
import { parseDid } from '../../identity/index.js';

export interface MessagingLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface MessagingDeps {
  readonly gateway: SecretKeySet;
  readonly ledger: IdentityLedger;
  readonly domain: string;
  /** The one way in for DispatchMessage (src/pipeline). */
  readonly pipeline: { submitAmp(sub: AmpSubmission): Promise<Outcome> };
  readonly store: MailboxStore;
  readonly maxEnvelopeBytes: number;
  readonly tokenTtlMs: number;
  readonly signal: MailboxSignal;
  readonly metrics?: MessagingMetrics;
  /** How often a follower re-reads its mailbox without a wake-up (other processes). */
  readonly followPollMs?: number;
  /** Proof of transit (§12.7): GetTransitReceipt is served when present. */
  readonly transit?: TransitDeps;
  /** The trusted clock expiry is judged by (default: a TrustedClock on the local clock). */
  readonly clock?: TrustedClock;
}

/** Where GetTransitReceipt finds proofs: this gateway's log, or the signing peer's. */
export interface TransitDeps {
  /** Absent when this gateway keeps no transit log (several nodes share its ledger). */
  readonly own?: TransitSource;
  /** GetTransitProof at the gateway of `domain`, over the relay's verified channel. */
  peer(domain: string, commitment: Buffer): Promise<TransitProofMsg>;
}

/** A transaction id for log lines of one call. */
function transactionId(): string {
  return randomHex(8);
}

/** `ipv4:1.2.3.4:5` / `ipv6:[::1]:5` (grpc-js getPeer()) as address and port. */
function peerAddress(peer: string): { address: string; port: number } {
  const m = /^(?:ipv[46]:)?\[?([^\]]*?)\]?:(\d+)$/.exec(peer);
  return m === null ? { address: peer, port: 0 } : { address: m[1] ?? peer, port: Number(m[2]) };
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

type Call = { metadata: { get(key: string): unknown[] }; getPeer(): string };

/**
 * Requests of one DispatchStream call in the pipeline at once: past it the call is not read
 * (HTTP/2 flow control holds the rest with the client) until the oldest is answered.
 */
export const DISPATCH_STREAM_WINDOW = 64;

/** A refusal that would have ended a DispatchMessage call, as one answer of DispatchStream. */
function refusalMsg(st: StatusObject): DispatchRefusalMsg {
  const code = st.metadata.get(CODE_TRAILER)[0];
  const retry = Number(st.metadata.get(RETRY_AFTER_TRAILER)[0] ?? 0);
  return {
    status: st.code,
    code: typeof code === 'string' ? code : 'ERR_INTERNAL',
    message: st.details,
    retry_after_ms: Number.isSafeInteger(retry) && retry > 0 ? retry : 0,
  };
}

/** A messaging method: the mailbox store's errors are named before the shared mapping. */
function asyncUnary<Req, Res>(
  name: string,
  log: MessagingLogger,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Promise<Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return unary(name, log, fn, storeRefusal);
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
  const clock = deps.clock ?? new TrustedClock();
  const timeStatement = (nonce: Buffer): TimeStatement =>
    signTimeStatement(
      { time: clock.now(), nonce, checkpoint: deps.ledger.checkpoint().note },
      deps.gateway,
    );

  const caller = (call: Call): TokenClaims =>
    auth.verifyToken(tokenFromAuthorization(call.metadata.get('authorization')));

  async function dispatch(
    req: DispatchMessageRequestMsg,
    call: Call,
  ): Promise<DispatchMessageResponseMsg> {
    const transaction = transactionId();
    try {
      return await dispatchChecked(req, caller(call), transaction, call.getPeer());
    } catch (err) {
      // Refusals before the pipeline (the token, the envelope's bytes); it counts its own.
      if (err instanceof ClientApiRefusal && !(err instanceof PipelineRefusal)) {
        metrics.messageIn('client-api', err.code);
        log.info({ transaction, code: err.code, peer: call.getPeer() }, 'dispatch refused');
      }
      throw err;
    }
  }

  async function dispatchChecked(
    req: DispatchMessageRequestMsg,
    claims: TokenClaims,
    transaction: string,
    peer: string,
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
    let envelope: Envelope;
    try {
      envelope = decodeEnvelope(raw, { maxBytes: deps.maxEnvelopeBytes });
    } catch (err) {
      const code = err instanceof AfterSmtpError ? err.code : 'ERR_ENVELOPE_FORMAT';
      throw refuse(status.INVALID_ARGUMENT, code, (err as Error).message);
    }
    const share = req.key_share;
    if (share !== undefined && share !== null && !Buffer.isBuffer(share)) {
      throw refuse(status.INVALID_ARGUMENT, 'ERR_CLIENT_API_REQUEST', 'key_share: must be bytes');
    }
    const { address, port } = peerAddress(peer);
    const outcome = await deps.pipeline.submitAmp({
      transaction,
      client: { entrance: 'client-api', address, port, tls: true, did: claims.did },
      envelope,
      bytes: raw,
      receivedAt: clock.now(),
      ...(share !== undefined && share !== null && share.length > 0 ? { keyShare: share } : {}),
    });
    if (outcome.kind === 'refused') throw refusalToStatus(outcome.refusal);
    return {
      message_id: outcome.messageId,
      queue_entry_id: outcome.entries[0] ?? '',
      recipients: outcome.recipients.map((r) => r.recipient),
    };
  }

  async function receiptMsg(
    recipient: string,
    messageId: string,
  ): Promise<DeliveryReceiptMsg | null> {
    const raw = await metrics.storeOp('getReceipt', () =>
      store.getReceipt(recipient, messageId, clock.now()),
    );
    return raw === undefined ? null : receiptToMsg(decodeStoredReceipt(raw));
  }

  /**
   * The receipt of (message, recipient) if the caller may read it: the recipient may read its
   * receipts, the sender those of its own messages. Anything else is indistinguishable from "no
   * such receipt".
   */
  async function readableReceipt(
    req: GetReceiptRequestMsg,
    call: Call,
  ): Promise<DeliveryReceiptMsg> {
    const did = caller(call).did;
    const messageId = messageIdFromMsg(req.message_id, 'message_id');
    const recipient =
      typeof req.recipient === 'string' && req.recipient.length > 0 ? req.recipient : did;
    if (Buffer.byteLength(recipient) > 512) {
      throw refuse(status.INVALID_ARGUMENT, 'ERR_CLIENT_API_REQUEST', 'recipient: too long');
    }
    const receipt = await receiptMsg(recipient, messageId);
    if (receipt === null || (recipient !== did && receipt.sender !== did)) {
      throw refuse(
        status.NOT_FOUND,
        'ERR_RECEIPT_UNKNOWN',
        `no receipt for ${messageId} to ${recipient} that you may read`,
      );
    }
    return receipt;
  }

  /** The receipt and its proof of transit: from this gateway's log, or from the signer's. */
  function getTransitReceipt(transit: TransitDeps) {
    return asyncUnary<GetReceiptRequestMsg, GetTransitReceiptResponseMsg>(
      'GetTransitReceipt',
      log,
      async (req, call) => {
        const receipt = await readableReceipt(req, call);
        const r = receiptFromMsg(receipt);
        const commitment = transitCommitment(r);
        try {
          let proof: TransitProofMsg;
          if (r.gateway !== deps.gateway.did) {
            proof = await transit.peer(parseDid(r.gateway).domain, commitment);
          } else if (transit.own !== undefined) {
            proof = await ownTransitProof(transit.own, commitment);
          } else {
            throw refuse(
              status.UNAVAILABLE,
              'ERR_TRANSIT_UNAVAILABLE',
              'this gateway keeps no transit log (several nodes share its ledger)',
            );
          }
          return { receipt, transit: proof, transit_error: '' };
        } catch (err) {
          const why =
            err instanceof AfterSmtpError ? `${err.code}: ${err.message}` : 'ERR_INTERNAL';
          if (!(err instanceof AfterSmtpError)) {
            log.error({ err, method: 'GetTransitReceipt' }, 'transit proof failed');
          }
          return { receipt, transit: null, transit_error: why.slice(0, 1024) };
        }
      },
    );
  }

  /**
   * DispatchStream: each request is dispatched as DispatchMessage's and answered in the order
   * of the requests, once the pipeline answered it (its queue commit, or its refusal). At most
   * DISPATCH_STREAM_WINDOW requests are in the pipeline at once. The call ends when the client
   * has half-closed it and every request is answered, or at shutdown once the requests read
   * are answered (the client sends the others again on a new call).
   */
  function dispatchStream(
    call: ServerDuplexStream<DispatchMessageRequestMsg, DispatchStreamResponseMsg>,
  ): void {
    const answers: Promise<DispatchStreamResponseMsg>[] = [];
    const cancel = new AbortController();
    let reading = true;
    let writing = false;
    let ended = false;
    const answer = async (req: DispatchMessageRequestMsg): Promise<DispatchStreamResponseMsg> => {
      try {
        return { accepted: await dispatch(req, call), refused: null };
      } catch (err) {
        const mapped = statusOf('DispatchStream', log, err, call.getPeer(), storeRefusal);
        return { accepted: null, refused: refusalMsg(mapped.status) };
      }
    };
    const stopReading = (): void => {
      reading = false;
      call.pause();
      void send();
    };
    const send = async (): Promise<void> => {
      if (writing) return;
      writing = true;
      while (answers.length > 0) {
        const next = await (answers[0] as Promise<DispatchStreamResponseMsg>);
        answers.shift();
        if (cancel.signal.aborted) continue;
        if (!call.write(next)) await drained(call, cancel.signal);
        if (reading && answers.length < DISPATCH_STREAM_WINDOW) call.resume();
      }
      writing = false;
      if (!reading && !cancel.signal.aborted && !ended) {
        ended = true;
        closing.signal.removeEventListener('abort', stopReading);
        call.end();
      }
    };
    call.on('data', (req: DispatchMessageRequestMsg) => {
      answers.push(answer(req));
      if (answers.length >= DISPATCH_STREAM_WINDOW) call.pause();
      void send();
    });
    call.on('end', stopReading);
    call.on('cancelled', () => {
      cancel.abort();
      closing.signal.removeEventListener('abort', stopReading);
    });
    call.on('error', () => undefined);
    closing.signal.addEventListener('abort', stopReading, { once: true });
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
          store.list(did, {
            after: cursor,
            limit: left,
            ...(req.folder !== undefined ? { folder: req.folder } : {}),
          }),
        );
        const now = clock.now();
        for (const e of page.envelopes) {
          // The store leaves out what its local clock says expired; the trusted clock decides.
          if (e.expiresAt <= now) continue;
          const item: InboxItemMsg = {
            seq: e.seq,
            message_id: e.messageId,
            sender: e.sender,
            received_at: e.receivedAt,
            expires_at: e.expiresAt,
            ciphertext_hash: Buffer.from(e.ciphertextHash),
            envelope: Buffer.from(e.envelope),
            receipt: await receiptMsg(did, e.messageId),
            folder: e.folder ?? 'inbox',
          };
          if (!call.write(item)) await drained(call, abort.signal);
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
      DispatchStream: dispatchStream,
      FetchInbox: (call: ServerWritableStream<FetchInboxRequestMsg, InboxItemMsg>) => {
        fetchInbox(call).catch((err: unknown) => {
          const mapped = statusOf('FetchInbox', log, err, call.getPeer(), storeRefusal);
          call.emit('error', mapped.status);
        });
      },
      Ack: asyncUnary<AckRequestMsg, AckResponseMsg>('Ack', log, async (req, call) => {
        const did = caller(call).did;
        const ids = ackFromMsg(req, store.limits.maxAckIds);
        const deleted = await metrics.storeOp('ack', () => store.ack(did, ids));
        return { deleted };
      }),
      GetTime: asyncUnary<GetTimeRequestMsg, TimeStatementMsg>(
        'GetTime',
        log,
        async (req, call) => {
          caller(call);
          return timeToMsg(timeStatement(nonceFromMsg(req.nonce, 'nonce')));
        },
      ),
      ReleaseKey: asyncUnary<ReleaseKeyRequestMsg, ReleaseKeyResponseMsg>(
        'ReleaseKey',
        log,
        async (req, call) => {
          const did = caller(call).did;
          const messageId = messageIdFromMsg(req.message_id, 'message_id');
          const nonce = nonceFromMsg(req.nonce, 'nonce');
          const time = timeStatement(nonce);
          const share = await metrics.storeOp('releaseShare', () =>
            store.releaseShare(did, messageId, time.time),
          );
          if (share === undefined) {
            log.info({ did, messageId, time: time.time }, 'key release refused');
            throw refuse(
              status.NOT_FOUND,
              'ERR_KEY_RELEASE_REFUSED',
              `no key share of ${messageId} for you: unknown, expired or erased`,
            );
          }
          log.info({ did, messageId }, 'key share released');
          return { share: Buffer.from(share), time: timeToMsg(time) };
        },
      ),
      GetReceipt: asyncUnary<GetReceiptRequestMsg, GetReceiptResponseMsg>(
        'GetReceipt',
        log,
        async (req, call) => ({ receipt: await readableReceipt(req, call) }),
      ),
      ...(deps.transit === undefined ? {} : { GetTransitReceipt: getTransitReceipt(deps.transit) }),
    },
  };
}
