/**
 * The client API's metrics (the caller owns the registry): every gRPC call by method and status
 * code with its duration, and the identity ledger's writes (register, rotate, revoke) by result.
 * Each method's OK series and each write's `accepted` series exist from the first scrape.
 */
import {
  ResponderBuilder,
  ServerInterceptingCall,
  status as grpcStatus,
  type ServerInterceptor,
} from '@grpc/grpc-js';
import { Counter, Histogram, type Registry } from 'prom-client';

export type LedgerOperation = 'register' | 'rotate' | 'revoke';

export interface ClientApiRequestMetrics {
  /** One finished call: its method, gRPC status code (0 = OK) and duration. */
  request(method: string, code: number, seconds: number): void;
  /** One ledger write: `accepted`, or the refusal code. */
  ledgerWrite(operation: LedgerOperation, result: string): void;
}

/** `status.NOT_FOUND` -> "NOT_FOUND"; an unknown number stays a number. */
export function statusName(code: number): string {
  const name = (grpcStatus as unknown as Record<number, string | undefined>)[code];
  return name ?? String(code);
}

export function registerClientApiRequestMetrics(
  registry: Registry,
  methods: readonly string[],
): ClientApiRequestMetrics {
  const requests = new Counter({
    name: 'aftersmtp_client_api_requests_total',
    help: 'Client API (gRPC) calls finished, by method and gRPC status code.',
    labelNames: ['method', 'code'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'aftersmtp_client_api_request_duration_seconds',
    help: 'Client API (gRPC) call duration, by method (a FetchInbox stream lasts as long as it follows).',
    labelNames: ['method'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60],
    registers: [registry],
  });
  const writes = new Counter({
    name: 'aftersmtp_ledger_writes_total',
    help: 'Identity ledger writes through the client API, by operation (register, rotate, revoke) and result (accepted, or the refusal code).',
    labelNames: ['operation', 'result'],
    registers: [registry],
  });
  for (const method of methods) {
    requests.inc({ method, code: 'OK' }, 0);
    duration.zero({ method });
  }
  for (const operation of ['register', 'rotate', 'revoke'] as const) {
    writes.inc({ operation, result: 'accepted' }, 0);
  }
  return {
    request(method, code, seconds) {
      requests.inc({ method, code: statusName(code) });
      duration.observe({ method }, seconds);
    },
    ledgerWrite(operation, result) {
      writes.inc({ operation, result });
    },
  };
}

/** A server interceptor that reports every call's final status and duration to `metrics`. */
export function metricsInterceptor(metrics: ClientApiRequestMetrics): ServerInterceptor {
  return (method, call) => {
    const started = performance.now();
    const name = method.path.slice(method.path.lastIndexOf('/') + 1);
    return new ServerInterceptingCall(
      call,
      new ResponderBuilder()
        .withSendStatus((status, next) => {
          metrics.request(name, status.code, (performance.now() - started) / 1000);
          next(status);
        })
        .build(),
    );
  };
}
