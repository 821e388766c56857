/**
 * The messaging metrics on the admin Prometheus registry (the caller owns the registry; no global
 * one is touched): messages in (what the pipeline decided, per entrance) and out (deliveries) by
 * result, and the mailbox store's latency by operation. Entrances, the pipeline and the worker
 * get the small interface, not prom-client.
 */
import { Counter, Histogram, type Registry } from 'prom-client';

export interface MessagingMetrics {
  /** A submission at `entrance` (smtp, submission, client-api, relay): accepted or a code. */
  messageIn(entrance: string, result: string): void;
  messageOut(result: string, n?: number): void;
  /** Times `fn` as one store operation `op`. */
  storeOp<T>(op: string, fn: () => Promise<T>): Promise<T>;
}

export const NO_METRICS: MessagingMetrics = {
  messageIn: () => undefined,
  messageOut: () => undefined,
  storeOp: (_op, fn) => fn(),
};

export function registerMessagingMetrics(registry: Registry): MessagingMetrics {
  const inbound = new Counter({
    name: 'aftersmtp_messages_in_total',
    help: 'Messages submitted, by entrance (smtp, submission, client-api, relay) and result (accepted or the refusal code).',
    labelNames: ['entrance', 'result'],
    registers: [registry],
  });
  const outbound = new Counter({
    name: 'aftersmtp_messages_out_total',
    help: 'Recipient deliveries by the local delivery worker, by result.',
    labelNames: ['result'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'aftersmtp_store_latency_seconds',
    help: 'Mailbox store operation latency, by operation.',
    labelNames: ['op'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  return {
    messageIn: (entrance, result) => inbound.inc({ entrance, result }),
    messageOut: (result, n = 1) => outbound.inc({ result }, n),
    async storeOp(op, fn) {
      const end = latency.startTimer({ op });
      try {
        return await fn();
      } finally {
        end();
      }
    },
  };
}
