/**
 * The client API's unary methods, one way: the handler's answer (or what it resolves to), or its
 * error turned into a gRPC status by status.ts, an unexpected one logged with the transaction id
 * that the client sees. `classify` lets a service name its own errors first (messaging: the
 * mailbox store's).
 */
import type { sendUnaryData, ServerUnaryCall } from '@grpc/grpc-js';
import { toGrpcStatus } from './status.js';

export interface UnaryLogger {
  error(obj: object, msg: string): void;
}

type Classify = (err: unknown) => unknown;

/** The status for `err` in method `name`; an internal error is logged with its transaction id. */
export function statusOf(
  name: string,
  log: UnaryLogger,
  err: unknown,
  peer: string,
  classify: Classify = (e) => e,
): ReturnType<typeof toGrpcStatus> {
  const mapped = toGrpcStatus(classify(err));
  if (mapped.transaction !== undefined) {
    log.error(
      { err, method: name, transaction: mapped.transaction, peer },
      'client API internal error',
    );
  }
  return mapped;
}

export function unary<Req, Res>(
  name: string,
  log: UnaryLogger,
  fn: (req: Req, call: ServerUnaryCall<Req, Res>) => Res | Promise<Res>,
  classify?: Classify,
): (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void {
  return (call, callback) => {
    const fail = (err: unknown): void => {
      const mapped = statusOf(name, log, err, call.getPeer(), classify);
      callback(mapped.status, null, mapped.status.metadata);
    };
    let res: Res | Promise<Res>;
    try {
      res = fn(call.request, call);
    } catch (err) {
      fail(err);
      return;
    }
    if (res instanceof Promise) res.then((r) => callback(null, r), fail);
    else callback(null, res);
  };
}
