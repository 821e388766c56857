/**
 * The gateway's client API server (DESIGN.md §4): gRPC over TLS serving
 * aftersmtp.client.v1.Gateway, with gRPC server reflection: the identity ledger's operations
 * and, when the messaging dependencies are given, the messaging methods (messaging.ts).
 *
 * Guarantees:
 * - Each handler only turns the wire message into a typed request (messages.ts), calls the
 *   ledger, and turns the result back; refusals are translated to statuses in status.ts only.
 * - Requests larger than `maxMessageBytes` are refused by grpc-js before they are decoded
 *   (RESOURCE_EXHAUSTED); responses are capped too.
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
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { AfterSmtpError, InputError } from '../../errors.js';
import { listenError } from '../../net/listen.js';
import type { AppendResult, IdentityLedger } from '../../ledger/index.js';
import { clientApiPackage, SERVICE_NAME } from './definition.js';
import {
  bundleToMsg,
  knownSizeFromMsg,
  registerFromMsg,
  revokeFromMsg,
  rotateFromMsg,
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
import { toGrpcStatus } from './status.js';

export interface ClientApiLogger {
  info(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface ClientApiOptions {
  readonly host: string;
  readonly port: number;
  readonly certPem: string;
  readonly keyPem: string;
  readonly ledger: IdentityLedger;
  readonly maxMessageBytes: number;
  readonly log: ClientApiLogger;
  /** The messaging methods (messaging.ts); without them only the ledger methods are served. */
  readonly messaging?: MessagingDeps;
  /** The setting that chose host and port, named when binding fails (AFTERSMTP_GRPC_LISTEN). */
  readonly setting?: string;
  /** Calls by method and status, and ledger writes (metrics.ts); none when absent. */
  readonly metrics?: ClientApiRequestMetrics;
}

export interface ClientApiServer {
  readonly host: string;
  readonly port: number;
  /** The method names served, e.g. for the start-up log line. */
  readonly methods: readonly string[];
  close(graceMs?: number): Promise<void>;
}

/** The client address without its port (the rate-limit key): "ipv4:1.2.3.4:5" -> "1.2.3.4". */
export function peerAddress(peer: string): string {
  const m = /^(?:ipv[46]:)?\[?([^\]]*?)\]?:[0-9]+$/.exec(peer);
  return m?.[1] ?? peer;
}

type Handler<Req, Res> = (req: Req, call: ServerUnaryCall<Req, Res>) => Res;

function unary<Req, Res>(
  name: string,
  log: ClientApiLogger,
  fn: Handler<Req, Res>,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    let res: Res;
    try {
      res = fn(call.request, call);
    } catch (err) {
      const mapped = toGrpcStatus(err);
      if (mapped.transaction !== undefined) {
        log.error(
          { err, method: name, transaction: mapped.transaction, peer: call.getPeer() },
          'client API internal error',
        );
      }
      callback(mapped.status, null, mapped.status.metadata);
      return;
    }
    callback(null, res);
  };
}

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
  const server = new Server({
    'grpc.max_receive_message_length': opts.maxMessageBytes,
    'grpc.max_send_message_length': 4 * 1024 * 1024,
    'grpc.max_concurrent_streams': 100,
    'grpc.keepalive_time_ms': 60_000,
    interceptors: opts.metrics === undefined ? [] : [metricsInterceptor(opts.metrics)],
  });
  const pkg = clientApiPackage();
  const service = pkg[SERVICE_NAME];
  if (service === undefined || 'format' in service) {
    throw new Error(`${SERVICE_NAME} missing from the client API schema`);
  }
  const messaging =
    opts.messaging === undefined ? undefined : messagingService(opts.messaging, opts.log);
  const handlers = {
    ...ledgerHandlers(opts.ledger, opts.log, opts.metrics),
    ...messaging?.handlers,
  };
  server.addService(service as ServiceDefinition, handlers);
  new ReflectionService(pkg).addToServer(server);
  const credentials = ServerCredentials.createSsl(
    null,
    [{ private_key: Buffer.from(opts.keyPem), cert_chain: Buffer.from(opts.certPem) }],
    false,
  );
  const bindHost = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${bindHost}:${opts.port}`, credentials, (err, p) =>
      err
        ? reject(
            listenError(
              'ERR_GRPC_BIND',
              { protocol: 'TCP', host: opts.host, port: opts.port, setting: opts.setting },
              err,
            ),
          )
        : resolve(p),
    );
  });
  return {
    host: opts.host,
    port,
    methods: Object.keys(handlers).map((m) => `${SERVICE_NAME}/${m}`),
    close: (graceMs = 2000) =>
      new Promise<void>((resolve) => {
        messaging?.close();
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
