/**
 * The gateway's client API server (DESIGN.md §4): gRPC over TLS serving
 * aftersmtp.client.v1.Gateway, with gRPC server reflection: the identity ledger's operations
 * and, when the messaging dependencies are given, the messaging methods (messaging.ts).
 *
 * TLS is terminated here (src/net/tls-listener.ts, with the connection caps in total and per
 * address, the handshake and idle deadlines) and each secured socket is handed to grpc-js
 * (its connection injector), so no connection reaches HTTP/2 before it is counted and no
 * handshake lasts longer than its deadline. Every call passes the admission gate (gate.ts)
 * before its body is read: login rate limits, the token, the per-call size limit, the budget of
 * request bytes in flight.
 *
 * Guarantees:
 * - Each handler only turns the wire message into a typed request (messages.ts), calls the
 *   ledger, and turns the result back; refusals are translated to statuses in status.ts only.
 * - No call without a valid token has more than `maxUnauthenticatedBytes` of its request read;
 *   DispatchMessage with a valid token up to `maxMessageBytes`; larger requests are refused
 *   (RESOURCE_EXHAUSTED) from their length prefix. Responses are capped too.
 * - An unexpected error is logged with a transaction id and answered INTERNAL with that id only.
 * - close() stops accepting, lets calls in flight finish for up to `graceMs`, then cancels them.
 */
import { format } from 'node:util';
import {
  Server,
  ServerCredentials,
  setLogger,
  type ServiceDefinition,
  type ServerUnaryCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { AfterSmtpError, InputError } from '../../errors.js';
import { listenError } from '../../net/listen.js';
import type { AppendResult, IdentityLedger } from '../../ledger/index.js';
import { TokenBucketLimiter } from '../../ledger/ratelimit.js';
import { listenTls, type TlsListenerStats } from '../../net/tls-listener.js';
import { Authenticator, tokenFromAuthorization } from './auth.js';
import { clientApiPackage, SERVICE_NAME } from './definition.js';
import { clientApiGate, guardDeserializers, peerAddress, type GateStats } from './gate.js';
import {
  bundleToMsg,
  knownSizeFromMsg,
  registerFromMsg,
  revokeFromMsg,
  rotateFromMsg,
  type AttestedCheckpointMsg,
  type GetCheckpointRequestMsg,
  type GetCheckpointResponseMsg,
  type GetRegistrationChallengeRequestMsg,
  type LedgerWriteResponseMsg,
  type RegisterIdentityRequestMsg,
  type RegistrationChallengeMsg,
  type ResolveIdentityRequestMsg,
  type ResolveIdentityResponseMsg,
  type RevokeIdentityRequestMsg,
  type RotateIdentityRequestMsg,
} from './messages.js';
import { messagingService, type MessagingDeps } from './messaging.js';
import {
  metricsInterceptor,
  type ClientApiRequestMetrics,
  type LedgerOperation,
} from './request-metrics.js';
import { unary } from './unary.js';
import {
  commitmentFromMsg,
  ownTransitProof,
  type GetTransitProofRequestMsg,
  type TransitProofMsg,
  type TransitSource,
} from './transit.js';

export { peerAddress };

export interface ClientApiLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

/** The client API's caps (AFTERSMTP_GRPC_*, AFTERSMTP_CLIENT_LOGIN_RATE_LIMIT). */
export interface ClientApiLimits {
  readonly maxUnauthenticatedBytes: number;
  readonly maxInflightBytes: number;
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
  readonly maxStreamsPerConnection: number;
  readonly handshakeTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** Login calls per client address (token bucket). */
  readonly loginRateLimit: { readonly capacity: number; readonly refillPerSecond: number };
}

export const DEFAULT_CLIENT_API_LIMITS: ClientApiLimits = {
  maxUnauthenticatedBytes: 64 * 1024,
  maxInflightBytes: 256 * 1024 * 1024,
  maxConnections: 1024,
  maxConnectionsPerAddress: 32,
  maxStreamsPerConnection: 32,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  loginRateLimit: { capacity: 100, refillPerSecond: 100 / 60 },
};

export interface ClientApiOptions {
  readonly host: string;
  readonly port: number;
  readonly certPem: string;
  readonly keyPem: string;
  readonly ledger: IdentityLedger;
  /** Largest DispatchMessage request (with a valid token). */
  readonly maxMessageBytes: number;
  readonly limits?: Partial<ClientApiLimits>;
  readonly log: ClientApiLogger;
  /** The messaging methods (messaging.ts); without them only the ledger methods are served. */
  readonly messaging?: MessagingDeps;
  /** The setting that chose host and port, named when binding fails (AFTERSMTP_GRPC_LISTEN). */
  readonly setting?: string;
  /** Calls by method and status, and ledger writes (metrics.ts); none when absent. */
  readonly metrics?: ClientApiRequestMetrics;
  /** Anchored and witnessed checkpoints served with lookups (PROTOCOL.md §9.9); none when absent. */
  readonly attestations?: AttestationSource;
  /** This gateway's transit log (PROTOCOL.md §12.7), for GetTransitProof; not served when absent. */
  readonly transit?: TransitSource;
}

/** A checkpoint of the log with what attests it: an anchor record, cosignature lines, or both. */
export interface Attestation {
  /** The signed note (the log's signature, then any witness cosignatures). */
  readonly note: string;
  readonly size: number;
  readonly anchor?: {
    readonly genesisHash: string;
    readonly blockHash: string;
    readonly blockNumber: number;
    readonly extrinsicIndex: number;
    readonly eventIndex: number;
    readonly account: string;
    readonly blockTime: number;
    readonly commitment: Buffer;
  };
}

/** The latest attested checkpoints of the log (at most a few; the newest first). */
export type AttestationSource = () => readonly Attestation[];

const hexBytes = (h: string): Buffer => Buffer.from(h.replace(/^0x/, ''), 'hex');

/** Attestations no larger than `size`, each with its consistency proof to `size`. */
function attestedMsgs(
  ledger: IdentityLedger,
  source: AttestationSource | undefined,
  size: number,
): AttestedCheckpointMsg[] {
  if (source === undefined) return [];
  return source()
    .filter((a) => a.size <= size)
    .map((a) => ({
      checkpoint: a.note,
      tree_size: a.size,
      anchor:
        a.anchor === undefined
          ? null
          : {
              genesis_hash: hexBytes(a.anchor.genesisHash),
              block_hash: hexBytes(a.anchor.blockHash),
              block_number: a.anchor.blockNumber,
              extrinsic_index: a.anchor.extrinsicIndex,
              event_index: a.anchor.eventIndex,
              account: a.anchor.account,
              block_time_ms: a.anchor.blockTime,
              commitment: a.anchor.commitment,
            },
      consistency: {
        from_size: a.size,
        to_size: size,
        proof: a.size === 0 ? [] : ledger.consistencyProof(a.size, size),
      },
    }));
}

export interface ClientApiStats extends GateStats, Omit<TlsListenerStats, 'accepted'> {
  connectionsAccepted: number;
}

export interface ClientApiServer {
  readonly host: string;
  readonly port: number;
  /** The method names served, e.g. for the start-up log line. */
  readonly methods: readonly string[];
  /** Connections, refusals by reason, request bytes in flight. */
  stats(): ClientApiStats;
  close(graceMs?: number): Promise<void>;
}

/** The methods that need a token, and the one whose request may be large. */
export const TOKEN_METHODS: ReadonlySet<string> = new Set([
  'DispatchMessage',
  'DispatchStream',
  'FetchInbox',
  'Ack',
  'GetReceipt',
  'GetTransitReceipt',
  'GetTime',
  'ReleaseKey',
]);
export const LARGE_METHODS: ReadonlySet<string> = new Set(['DispatchMessage', 'DispatchStream']);
export const ANSWERED_IN_ORDER: ReadonlySet<string> = new Set(['DispatchStream']);
export const LOGIN_METHODS: ReadonlySet<string> = new Set(['RequestChallenge', 'Authenticate']);

type Handler<Req, Res> = (req: Req, call: ServerUnaryCall<Req, Res>) => Res;

/**
 * A ledger write (register, rotate, revoke): logged at info with the DID, the leaf and the
 * client's address, refused ones with their code, and counted by result.
 */
function ledgerWrite<Req>(
  operation: LedgerOperation,
  log: ClientApiLogger,
  metrics: ClientApiRequestMetrics | undefined,
  didOf: (req: Req) => unknown,
  fn: Handler<Req, LedgerWriteResponseMsg>,
): Handler<Req, LedgerWriteResponseMsg> {
  return (req, call) => {
    const did = String(didOf(req) ?? '');
    const peer = peerAddress(call.getPeer());
    let res: LedgerWriteResponseMsg;
    try {
      res = fn(req, call);
    } catch (err) {
      const code = err instanceof AfterSmtpError ? err.code : 'ERR_INTERNAL';
      metrics?.ledgerWrite(operation, code);
      if (code !== 'ERR_INTERNAL') {
        log.info({ operation, did, peer, code }, `ledger ${operation} refused`);
      }
      throw err;
    }
    metrics?.ledgerWrite(operation, 'accepted');
    log.info(
      {
        operation,
        did,
        peer,
        leaf: res.inclusion?.leaf_index,
        treeSize: res.inclusion?.tree_size,
      },
      `ledger ${operation} logged`,
    );
    return res;
  };
}

export function ledgerHandlers(
  ledger: IdentityLedger,
  log: ClientApiLogger,
  metrics?: ClientApiRequestMetrics,
  attestations?: AttestationSource,
): UntypedServiceImplementation {
  return {
    GetRegistrationChallenge: unary<GetRegistrationChallengeRequestMsg, RegistrationChallengeMsg>(
      'GetRegistrationChallenge',
      log,
      (req) => {
        const c = ledger.issueChallenge(String(req.domain));
        return { challenge: c.challenge, expires_at: c.expiresAt, bits: c.bits };
      },
    ),
    RegisterIdentity: unary<RegisterIdentityRequestMsg, LedgerWriteResponseMsg>(
      'RegisterIdentity',
      log,
      ledgerWrite(
        'register',
        log,
        metrics,
        (req) => req.record?.did,
        (req, call) => {
          const known = knownSizeFromMsg(req.known_tree_size);
          return written(
            ledger,
            known,
            ledger.register(registerFromMsg(req), peerAddress(call.getPeer())),
          );
        },
      ),
    ),
    RotateIdentity: unary<RotateIdentityRequestMsg, LedgerWriteResponseMsg>(
      'RotateIdentity',
      log,
      ledgerWrite(
        'rotate',
        log,
        metrics,
        (req) => req.did,
        (req) => {
          const known = knownSizeFromMsg(req.known_tree_size);
          return written(ledger, known, ledger.rotate(rotateFromMsg(req)));
        },
      ),
    ),
    RevokeIdentity: unary<RevokeIdentityRequestMsg, LedgerWriteResponseMsg>(
      'RevokeIdentity',
      log,
      ledgerWrite(
        'revoke',
        log,
        metrics,
        (req) => req.did,
        (req) => {
          const known = knownSizeFromMsg(req.known_tree_size);
          return written(ledger, known, ledger.revoke(revokeFromMsg(req)));
        },
      ),
    ),
    ResolveIdentity: unary<ResolveIdentityRequestMsg, ResolveIdentityResponseMsg>(
      'ResolveIdentity',
      log,
      (req) => {
        const a = ledger.lookup(String(req.did), knownSizeFromMsg(req.known_tree_size));
        return {
          attested: attestedMsgs(ledger, attestations, a.treeSize),
          did: a.did,
          inclusion: bundleToMsg(a),
          consistency:
            a.consistency === undefined
              ? null
              : {
                  from_size: a.consistency.fromSize,
                  to_size: a.treeSize,
                  proof: a.consistency.proof,
                },
        };
      },
    ),
    GetCheckpoint: unary<GetCheckpointRequestMsg, GetCheckpointResponseMsg>(
      'GetCheckpoint',
      log,
      (req) => {
        const cp = ledger.checkpoint();
        const known = knownSizeFromMsg(req.known_tree_size);
        return {
          attested: attestedMsgs(ledger, attestations, cp.size),
          checkpoint: cp.note,
          tree_size: cp.size,
          verifier_key: ledger.verifierKey,
          consistency:
            known === undefined
              ? null
              : {
                  from_size: known,
                  to_size: cp.size,
                  proof: checkedConsistency(ledger, known, cp.size),
                },
        };
      },
    ),
  };
}

/** GetTransitProof: this gateway's own transit log, no login (the commitment is the secret). */
function transitHandlers(
  transit: TransitSource,
  log: ClientApiLogger,
): UntypedServiceImplementation {
  return {
    GetTransitProof: unary<GetTransitProofRequestMsg, TransitProofMsg>(
      'GetTransitProof',
      log,
      (req) => ownTransitProof(transit, commitmentFromMsg(req)),
    ),
  };
}

/** A write's answer: its inclusion and, if the client said what it last saw, consistency. */
function written(
  ledger: IdentityLedger,
  known: number | undefined,
  r: AppendResult,
): LedgerWriteResponseMsg {
  return {
    inclusion: bundleToMsg(r),
    consistency:
      known === undefined
        ? null
        : {
            from_size: known,
            to_size: r.treeSize,
            proof: checkedConsistency(ledger, known, r.treeSize),
          },
  };
}

function checkedConsistency(ledger: IdentityLedger, from: number, to: number): Buffer[] {
  if (from > to) {
    throw new InputError('ERR_LEDGER_RANGE', `known size ${from} is not in 0..${to}`);
  }
  return ledger.consistencyProof(from, to);
}

/**
 * grpc-js writes its own diagnostics to standard error ("E No address added ..."): they go to
 * the structured log at debug level instead, since every failure that matters reaches the caller
 * as an error of its own (a bind failure as ERR_GRPC_BIND). Process-wide, as grpc-js's logger is.
 */
export function routeGrpcLogs(log: { debug(obj: object, msg: string): void }): void {
  const write = (...args: unknown[]): void => log.debug({ grpc: format(...args) }, 'grpc-js');
  setLogger({ error: write, info: write, debug: write });
}

/** Starts the listener; resolves once it is bound (port 0 gets a free port). */
export async function startClientApi(opts: ClientApiOptions): Promise<ClientApiServer> {
  const limits: ClientApiLimits = { ...DEFAULT_CLIENT_API_LIMITS, ...opts.limits };
  // Tokens are checked statelessly (the gateway's public record and the ledger), so this
  // verifier and the messaging handlers' own agree on every token.
  const m = opts.messaging;
  const verifier =
    m === undefined
      ? undefined
      : new Authenticator({
          gateway: m.gateway,
          ledger: m.ledger,
          domain: m.domain,
          tokenTtlMs: m.tokenTtlMs,
        });
  const gate = clientApiGate({
    tokenMethods: TOKEN_METHODS,
    largeMethods: LARGE_METHODS,
    answeredInOrder: ANSWERED_IN_ORDER,
    loginMethods: LOGIN_METHODS,
    verifyToken:
      verifier === undefined
        ? undefined
        : (authorization) => verifier.verifyToken(tokenFromAuthorization(authorization)).did,
    loginLimiter: new TokenBucketLimiter(limits.loginRateLimit),
    maxMessageBytes: opts.maxMessageBytes,
    maxUnauthenticatedBytes: Math.min(limits.maxUnauthenticatedBytes, opts.maxMessageBytes),
    maxInflightBytes: Math.max(limits.maxInflightBytes, opts.maxMessageBytes),
    log: opts.log,
  });
  const server = new Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes,
    'grpc.max_send_message_length': 4 * 1024 * 1024,
    'grpc.max_concurrent_streams': limits.maxStreamsPerConnection,
    // nghttp2's own memory per connection (header tables, queued output), in MB.
    'grpc-node.max_session_memory': 64,
    'grpc.keepalive_time_ms': 60_000,
    'grpc.max_connection_idle_ms': limits.idleTimeoutMs,
    // Metrics see every call, also those the gate refuses before reading them.
    interceptors: [
      ...(opts.metrics === undefined ? [] : [metricsInterceptor(opts.metrics)]),
      gate.interceptor,
    ],
  });
  const pkg = clientApiPackage();
  const service = pkg[SERVICE_NAME];
  if (service === undefined || 'format' in service) {
    throw new Error(`${SERVICE_NAME} missing from the client API schema`);
  }
  const messaging = m === undefined ? undefined : messagingService(m, opts.log);
  const handlers = {
    ...ledgerHandlers(opts.ledger, opts.log, opts.metrics, opts.attestations),
    ...messaging?.handlers,
    ...(opts.transit === undefined ? {} : transitHandlers(opts.transit, opts.log)),
  };
  server.addService(guardDeserializers(service as ServiceDefinition), handlers);
  new ReflectionService(pkg).addToServer(server);
  // TLS is ours (listener below); grpc-js speaks HTTP/2 over the secured sockets it is given.
  const injector = server.createConnectionInjector(ServerCredentials.createInsecure());
  const listener = await listenTls({
    host: opts.host,
    port: opts.port,
    certPem: opts.certPem,
    keyPem: opts.keyPem,
    alpn: ['h2'],
    limits: {
      maxConnections: limits.maxConnections,
      maxPerAddress: limits.maxConnectionsPerAddress,
      idleTimeoutMs: limits.idleTimeoutMs,
    },
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    onSecure: (socket) => injector.injectConnection(socket),
  }).catch((err: unknown) => {
    injector.destroy();
    throw listenError(
      'ERR_GRPC_BIND',
      { protocol: 'TCP', host: opts.host, port: opts.port, setting: opts.setting },
      err,
    );
  });
  return {
    host: opts.host,
    port: listener.address.port,
    methods: Object.keys(handlers).map((h) => `${SERVICE_NAME}/${h}`),
    stats: () => {
      const { accepted, ...tls } = listener.stats();
      return { ...gate.stats(), ...tls, connectionsAccepted: accepted };
    },
    close: async (graceMs = 2000) => {
      messaging?.close();
      const closed = listener.close();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      injector.destroy();
      listener.destroyAll();
      await closed;
    },
  };
}
