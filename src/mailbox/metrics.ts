/**
 * The messaging metrics on the admin Prometheus registry (the caller owns the registry; no global
 * one is touched): messages submitted (what the pipeline decided, per entrance), recipient
 * delivery outcomes of the delivery worker (local mailbox and AMP relay alike) by result, and the
 * mailbox store's latency by operation. Entrances, the pipeline and the worker get the small
 * interface, not prom-client. The usual series exist from the first scrape, at 0.
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

const OUTCOMES = ['delivered', 'temporary', 'permanent'] as const;
const STORE_OPS = [
  'deliver',
  'list',
  'ack',
  'getReceipt',
  'putReceipt',
  'purgeExpired',
  'keepShare',
  'releaseShare',
] as const;

export function registerMessagingMetrics(registry: Registry): MessagingMetrics {
  const inbound = new Counter({
    name: 'aftersmtp_messages_in_total',
    help: 'Messages submitted, by entrance (smtp, submission, client-api, relay) and result (accepted or the refusal code).',
    labelNames: ['entrance', 'result'],
    registers: [registry],
  });
  for (const entrance of ['smtp', 'submission', 'client-api', 'relay']) {
    inbound.inc({ entrance, result: 'accepted' }, 0);
  }
  const outbound = new Counter({
    name: 'aftersmtp_messages_out_total',
    help: 'Recipient delivery attempts settled by the delivery worker (local mailbox and AMP relay), by outcome: delivered, temporary (retried) or permanent (bounced).',
    labelNames: ['result'],
    registers: [registry],
  });
  for (const result of OUTCOMES) outbound.inc({ result }, 0);
  const latency = new Histogram({
    name: 'aftersmtp_store_latency_seconds',
    help: 'Mailbox store operation latency, by operation.',
    labelNames: ['op'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  for (const op of STORE_OPS) latency.zero({ op });
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
