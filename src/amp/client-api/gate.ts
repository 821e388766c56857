/**
 * The client API's admission gate: a grpc-js server interceptor that decides about each call
 * from its method and metadata alone, before a byte of its request body is read
 * (docs/ARCHITECTURE.md, "The client API under load").
 *
 * grpc-js pauses every request stream until the handler asks to read, and the handler asks
 * only once the metadata has passed the interceptors; until then HTTP/2 flow control leaves the
 * body with the client (one stream window at most). So, in this order:
 *
 *  1. login calls (RequestChallenge, Authenticate) are rate limited per client address
 *     (ERR_RATE_LIMITED, RESOURCE_EXHAUSTED, with aftersmtp-retry-after-ms);
 *  2. calls that need a token (DispatchMessage, DispatchStream, FetchInbox, Ack, GetReceipt) are refused
 *     without reading when the token is missing or does not verify (UNAUTHENTICATED, or the
 *     token check's own status);
 *  3. the request size limit is set per call: AFTERSMTP_GRPC_MAX_MESSAGE_BYTES for
 *     DispatchMessage and DispatchStream with a valid token, AFTERSMTP_GRPC_MAX_UNAUTHENTICATED_BYTES
 *     for every other call; a larger length prefix is refused (RESOURCE_EXHAUSTED, ERR_REQUEST_TOO_LARGE)
 *     before the body is buffered;
 *  4. when a request message's length prefix arrives, the whole message is reserved against
 *     AFTERSMTP_GRPC_MAX_INFLIGHT_BYTES until it is answered, and against the caller's shares
 *     (a quarter of it per client address, and per DID); a message that does not fit is
 *     refused UNAVAILABLE (ERR_CLIENT_API_BUSY: retry) before its body is read, and ends the
 *     call. A unary call's request is answered when the call ends; each request of a
 *     request-streaming call (DispatchStream) when its answer is sent, answers being sent in
 *     the order of the requests. Only DispatchMessage and DispatchStream with a valid token can
 *     declare more than the small limit, so holding the budget with declared lengths that are
 *     never sent takes a valid token, and a quarter of it at most per address and per DID;
 *  5. a request that is not valid protobuf is INVALID_ARGUMENT (ERR_CLIENT_API_REQUEST), not
 *     grpc-js's INTERNAL.
 *
 * Guarantees: a caller without a valid token never gets more than the small limit read per call;
 * the request bytes held in total stay under the budget (plus the first DATA frame of calls
 * being admitted); what a refused call still sends is dropped as it arrives. Relies on two fields of grpc-js's innermost call (its stream decoder's
 * `maxReadMessageLength` and `write`, grpc-js 1.14); if they are missing every call is refused
 * INTERNAL rather than read unbounded, and the tests fail.
 */
import {
  Metadata,
  ServerInterceptingCall,
  status,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type ServiceDefinition,
  type StatusObject,
} from '@grpc/grpc-js';
import type { TokenBucketLimiter } from '../../ledger/ratelimit.js';
import { CODE_TRAILER, RETRY_AFTER_TRAILER, toGrpcStatus } from './status.js';

/** The client address without its port: "ipv4:1.2.3.4:5" or "1.2.3.4:5" -> "1.2.3.4". */
export function peerAddress(peer: string): string {
  const m = /^(?:ipv[46]:)?\[?([^\]]*?)\]?:[0-9]+$/.exec(peer);
  const a = m?.[1] ?? peer;
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

export interface GateOptions {
  /** Methods that need `authorization: AfterSMTP <token>`. */
  readonly tokenMethods: ReadonlySet<string>;
  /** Methods whose request may be large once the token is valid (DispatchMessage). */
  readonly largeMethods: ReadonlySet<string>;
  /**
   * Request-streaming methods that answer each request with one response, in order
   * (DispatchStream): a request's reservation is given back when its answer is sent.
   */
  readonly answeredInOrder: ReadonlySet<string>;
  /** Methods rate limited per client address (RequestChallenge, Authenticate). */
  readonly loginMethods: ReadonlySet<string>;
  /**
   * The DID of the valid token in the authorization metadata; throws a refusal
   * (ClientApiRefusal) otherwise.
   */
  readonly verifyToken?: (authorization: unknown[]) => string;
  readonly loginLimiter?: TokenBucketLimiter;
  readonly maxMessageBytes: number;
  readonly maxUnauthenticatedBytes: number;
  readonly maxInflightBytes: number;
  readonly log?: { error(obj: object, msg: string): void };
}

export interface GateStats {
  /** Request bytes held now. */
  inflightBytes: number;
  inflightBytesPeak: number;
  callsAdmitted: number;
  refusedRateLimited: number;
  refusedUnauthenticated: number;
  refusedTooLarge: number;
  refusedBusy: number;
  refusedMalformed: number;
}

export interface Gate {
  readonly interceptor: ServerInterceptor;
  stats(): GateStats;
}

/** What the gate needs of grpc-js's innermost call (BaseServerInterceptingCall). */
interface DecoderInternals {
  maxReceiveMessageSize: number;
  decoder: { maxReadMessageLength: number; write(data: Buffer): Buffer[] };
}

/**
 * The innermost call under `call`: interceptors listed before the gate (metrics) wrap it in
 * ServerInterceptingCalls, each holding the call below as `nextCall`.
 */
function internals(call: ServerInterceptingCallInterface): DecoderInternals | undefined {
  let inner: unknown = call;
  for (let depth = 0; depth < 8; depth++) {
    const next = (inner as { nextCall?: unknown }).nextCall;
    if (typeof next !== 'object' || next === null) break;
    inner = next;
  }
  const c = inner as Partial<DecoderInternals>;
  const d = c.decoder;
  if (
    typeof c.maxReceiveMessageSize !== 'number' ||
    d === undefined ||
    typeof d.maxReadMessageLength !== 'number' ||
    typeof d.write !== 'function'
  ) {
    return undefined;
  }
  return c as DecoderInternals;
}

function refusal(code: status, aftersmtpCode: string, details: string): StatusObject {
  const metadata = new Metadata();
  metadata.set(CODE_TRAILER, aftersmtpCode);
  return { code, details, metadata };
}

/** One client address, or one DID, may reserve at most 1/SHARES of the budget. */
export const SHARES = 4;

/** Marks a request that failed to decode (see guardDeserializers). */
const MALFORMED = Symbol('malformed request');

/**
 * The service definition with every request deserializer made total: a request that is not
 * valid protobuf decodes to a marker that the gate answers INVALID_ARGUMENT, instead of grpc-js
 * answering INTERNAL.
 */
export function guardDeserializers(service: ServiceDefinition): ServiceDefinition {
  const out: Record<string, ServiceDefinition[string]> = {};
  for (const [name, def] of Object.entries(service)) {
    const decode = def.requestDeserialize;
    out[name] = {
      ...def,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return decode(bytes);
        } catch {
          return { [MALFORMED]: true };
        }
      },
    };
  }
  return out as ServiceDefinition;
}

export function clientApiGate(opts: GateOptions): Gate {
  const s: GateStats = {
    inflightBytes: 0,
    inflightBytesPeak: 0,
    callsAdmitted: 0,
    refusedRateLimited: 0,
    refusedUnauthenticated: 0,
    refusedTooLarge: 0,
    refusedBusy: 0,
    refusedMalformed: 0,
  };
  let internalsMissingLogged = false;

  /** Reserved bytes per client address and per DID (each at most a share of the budget). */
  const shares = new Map<string, number>();
  const share = Math.max(opts.maxMessageBytes + 5, Math.floor(opts.maxInflightBytes / SHARES));
  const take = (keys: readonly string[], n: number): boolean => {
    if (s.inflightBytes + n > opts.maxInflightBytes) return false;
    if (keys.some((k) => (shares.get(k) ?? 0) + n > share)) return false;
    s.inflightBytes += n;
    if (s.inflightBytes > s.inflightBytesPeak) s.inflightBytesPeak = s.inflightBytes;
    for (const k of keys) shares.set(k, (shares.get(k) ?? 0) + n);
    return true;
  };
  const give = (keys: readonly string[], n: number): void => {
    s.inflightBytes -= n;
    for (const k of keys) {
      const left = (shares.get(k) ?? n) - n;
      if (left <= 0) shares.delete(k);
      else shares.set(k, left);
    }
  };

  const interceptor: ServerInterceptor = (method, call) => {
    const name = method.path.slice(method.path.lastIndexOf('/') + 1);
    const inOrder = opts.answeredInOrder.has(name);
    const address = peerAddress(call.getPeer());
    let keys: string[] = [`a:${address}`];
    let held = 0;
    let ended = false;
    /** What each request not yet answered holds, oldest first (answeredInOrder methods). */
    const unanswered: number[] = [];
    const release = (): void => {
      if (ended) return;
      ended = true;
      give(keys, held);
      held = 0;
    };
    const answered = (): void => {
      const n = unanswered.shift();
      if (n === undefined || ended) return;
      give(keys, n);
      held -= n;
    };
    // A refused call's remaining request bytes are read and dropped by grpc-js as they come
    // (nothing is kept). Resetting the stream after the status would stop the client sooner,
    // but Node's HTTP/2 client then loses the status (the reset overtakes the response).
    const refuse = (st: StatusObject): void => {
      release();
      gated.sendStatus(st);
    };
    const gated: ServerInterceptingCall = new ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, forward) => {
            const refused = admit(metadata);
            if (refused !== undefined) {
              refuse(refused);
              return;
            }
            forward(metadata);
          },
          onReceiveMessage: (message, forward) => {
            if (typeof message === 'object' && message !== null && MALFORMED in message) {
              s.refusedMalformed++;
              gated.sendStatus(
                refusal(
                  status.INVALID_ARGUMENT,
                  'ERR_CLIENT_API_REQUEST',
                  'the request is not a valid protobuf message of this method',
                ),
              );
              return;
            }
            forward(message);
          },
          onCancel: release,
        }),
      ...(inOrder
        ? {
            sendMessage: (message: unknown, forward: (m: unknown) => void) => {
              answered();
              forward(message);
            },
          }
        : {}),
      sendStatus: (st, forward) => {
        release();
        forward(st);
      },
    });

    /** The decision about the call; a status to refuse it with, or undefined to read it. */
    function admit(metadata: Metadata): StatusObject | undefined {
      if (opts.loginMethods.has(name) && opts.loginLimiter !== undefined) {
        const d = opts.loginLimiter.take(address);
        if (!d.allowed) {
          s.refusedRateLimited++;
          const st = refusal(
            status.RESOURCE_EXHAUSTED,
            'ERR_RATE_LIMITED',
            'too many login requests from this address; retry later',
          );
          st.metadata.set(RETRY_AFTER_TRAILER, String(d.retryAfterMs));
          return st;
        }
      }
      let limit = opts.maxUnauthenticatedBytes;
      if (opts.tokenMethods.has(name)) {
        if (opts.verifyToken === undefined) {
          s.refusedUnauthenticated++;
          return refusal(status.UNIMPLEMENTED, 'ERR_CLIENT_API_REQUEST', `${name} is not served`);
        }
        try {
          keys = [...keys, `d:${opts.verifyToken(metadata.get('authorization'))}`];
        } catch (err) {
          s.refusedUnauthenticated++;
          const mapped = toGrpcStatus(err);
          if (mapped.transaction !== undefined) {
            opts.log?.error(
              { err, method: name, transaction: mapped.transaction, peer: call.getPeer() },
              'client API internal error',
            );
          }
          return mapped.status;
        }
        if (opts.largeMethods.has(name)) limit = opts.maxMessageBytes;
      }
      if (s.inflightBytes >= opts.maxInflightBytes) {
        s.refusedBusy++;
        return busy();
      }
      const inner = internals(call);
      if (inner === undefined) {
        if (!internalsMissingLogged) {
          internalsMissingLogged = true;
          opts.log?.error(
            { method: name },
            'grpc-js call internals not found: every call is refused (the request size limits cannot be enforced)',
          );
        }
        return refusal(status.INTERNAL, 'ERR_INTERNAL', 'internal error');
      }
      inner.maxReceiveMessageSize = limit;
      inner.decoder.maxReadMessageLength = limit;
      const write = inner.decoder.write.bind(inner.decoder);
      // Each message's 5-byte prefix (flag, u32 length) as it arrives, possibly split, then
      // the `body` bytes that follow it.
      let prefix = Buffer.alloc(0);
      let body = 0;
      inner.decoder.write = (data: Buffer): Buffer[] => {
        if (ended) return [];
        for (let at = 0; at < data.length;) {
          if (body > 0) {
            const n = Math.min(body, data.length - at);
            body -= n;
            at += n;
            continue;
          }
          let declared: number;
          if (prefix.length === 0 && data.length - at >= 5) {
            declared = data.readUInt32BE(at + 1);
            at += 5;
          } else {
            const n = Math.min(5 - prefix.length, data.length - at);
            prefix = Buffer.concat([prefix, data.subarray(at, at + n)]);
            at += n;
            if (prefix.length < 5) break;
            declared = prefix.readUInt32BE(1);
            prefix = Buffer.alloc(0);
          }
          body = declared;
          if (declared > limit) {
            s.refusedTooLarge++;
            refuse(tooLarge(limit));
            return [];
          }
          // The whole message is reserved before its body is read: a message that cannot be
          // held is refused now, not after part of it was read.
          if (!take(keys, declared + 5)) {
            s.refusedBusy++;
            refuse(busy());
            return [];
          }
          held += declared + 5;
          if (inOrder) unanswered.push(declared + 5);
        }
        try {
          return write(data);
        } catch {
          s.refusedTooLarge++;
          refuse(tooLarge(limit));
          return [];
        }
      };
      s.callsAdmitted++;
      return undefined;
    }

    return gated;
  };

  return { interceptor, stats: () => ({ ...s }) };
}

function tooLarge(limit: number): StatusObject {
  return refusal(
    status.RESOURCE_EXHAUSTED,
    'ERR_REQUEST_TOO_LARGE',
    `the request is over this call's limit of ${limit} bytes`,
  );
}

function busy(): StatusObject {
  return refusal(
    status.UNAVAILABLE,
    'ERR_CLIENT_API_BUSY',
    'the gateway holds as many request bytes as it may; retry shortly',
  );
}
